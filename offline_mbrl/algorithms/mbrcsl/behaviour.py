"""A behaviour policy cloned from a whole dataset: MBRCSL's rollout policy, a cached artefact.

MBRCSL (Zhou et al., ICLR 2024) rolls a policy that imitates *all* the data out in the learned model, so
the rollouts mix the behaviours the data holds, and some of them string together pieces that no single
dataset trajectory contains. The policy must therefore keep the data's several modes apart (at a maze
cell half the data stands still and half moves on): a unimodal regression would average them.

Two kinds (`algo.behaviour.kind`):
- `diffusion` (default, the paper's): a DDPM over actions conditioned on the observation. The noise
  schedule, the forward noising and the reverse step are diffusers' `DDPMScheduler` (squared-cosine
  betas, `clip_sample` on actions scaled to [-1, 1], as in the reference); the noise predictor is a
  residual MLP with a sinusoidal diffusion-step embedding, trained with the noise MSE under AdamW; actions
  are sampled with an exponential moving average of its weights (torch's `AveragedModel`).
- `gaussian` (an MLP ablation): an MLP giving a diagonal Gaussian (mean, clamped log-std), trained by
  negative log-likelihood; sampled, then clipped to the action box. The reference's only MLP behaviour
  policy (its RoboVerse ablation) is deterministic, 4 x 200, trained by MSE; it has none on PointMaze.

Deviations from the reference code (zhaoyizhou1123/mbrcsl `offlinerlkit/policy/diffusion/`):
- The noise predictor is a residual MLP (3 x 256 by default, `hidden`), not the reference's U-Net-shaped
  FiLM network (256-512-1024, about 10M parameters): a rollout phase samples 200 rows x 200 steps x 10
  denoising steps per batch, which at that size takes minutes per batch on a CPU. `hidden` makes it wider.
- The reference conditions its diffusion policy on the return-to-go in training and then samples it with
  0 in its place; here it is conditioned on the observation only, which is what a behaviour policy is.
- Observations are z-scored (statistics of the data) before they condition the network.
- EMA decay is fixed (`ema`, 0.995); the reference's `EMAModel` gets a parameter list, so its warm-up is
  off and its decay is (1 + s) / (10 + s), capped at 0.9999.
- The learning rate is a constant 1e-4. The reference hands a 500-step warm-up cosine schedule to a
  trainer that steps it once per epoch for 50 epochs, so its rate never leaves the warm-up (0 in the first
  epoch, at most 9.8e-6): a bug not repeated.

The artefact (kind `behaviour_policy`) is keyed by the dataset's fingerprint, this config and its seed, so
every MBRCSL run of a (dataset, seed) shares one fit and a sweep over the output policy fits it once. The
fit runs as the run's `behaviour` phase: its rows are logged with `phase`, and a killed fit resumes
from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from offline_mbrl.core.cache import load_or_build, stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import EnvSpec, OfflineDataset
from offline_mbrl.learning.run import Parts

if TYPE_CHECKING:
    from offline_mbrl.learning.run import Run

KIND = "behaviour_policy"
FORMAT_VERSION = 1
KINDS = ("diffusion", "gaussian")
LOG_STD = (-5.0, 2.0)  # the Gaussian's log-std is clamped to this range


@dataclass(frozen=True)
class BehaviourConfig:
    kind: str = "diffusion"  # diffusion (a DDPM over actions, the paper's) or gaussian (the MLP ablation)
    hidden: tuple[int, ...] = (256, 256, 256)  # hidden sizes of the noise predictor / Gaussian MLP
    diffusion_steps: int = 10  # DDPM timesteps, in training and in sampling (reference: 10)
    time_embed: int = 32  # size of the sinusoidal embedding of the diffusion step
    lr: float = 1e-4  # AdamW learning rate (the reference's nominal 1e-4; see the module docstring)
    weight_decay: float = 1e-6  # AdamW weight decay (reference: 1e-6)
    batch_size: int = 256  # dataset rows per gradient step (reference: 256)
    steps: int = 40_000  # gradient steps (reference: 50 epochs, about 39,000 steps on 200,000 rows)
    ema: float = 0.995  # decay of the weights' moving average that samples actions (diffusion only)
    seed: int | None = None  # seed of the fit; None: the run's seed

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(
                f"algo.behaviour.kind: unknown behaviour policy '{self.kind}'; choose from {', '.join(KINDS)}"
            )
        for name in ("diffusion_steps", "time_embed", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise UserError(f"algo.behaviour.{name} must be at least 1, got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise UserError(f"algo.behaviour.hidden must be positive layer sizes, got {self.hidden}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"algo.behaviour.lr must be a positive number, got {self.lr}")
        if not (0.0 <= self.ema < 1.0) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(
                f"algo.behaviour.ema must lie in [0, 1) and weight_decay be >= 0, got {self.ema}, "
                f"{self.weight_decay}"
            )


def _step_embedding(t: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) integer diffusion steps -> (B, size) sinusoidal features."""
    half = size // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    angle = t.float().unsqueeze(-1) * freq  # (B, half)
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class ResidualMLP(nn.Module):
    """Input projection, then residual blocks (LayerNorm, Linear, Mish) of the hidden sizes, then output;
    a block whose size changes projects its skip connection."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int):
        super().__init__()
        self.inp = nn.Linear(in_features, hidden[0])
        self.blocks = nn.ModuleList()
        self.skips = nn.ModuleList()
        for a, b in zip(hidden, hidden[1:] + hidden[-1:], strict=True):
            self.blocks.append(nn.Sequential(nn.LayerNorm(a), nn.Linear(a, b), nn.Mish(), nn.Linear(b, b)))
            self.skips.append(nn.Identity() if a == b else nn.Linear(a, b))
        self.out = nn.Sequential(nn.Mish(), nn.Linear(hidden[-1], out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block, skip in zip(self.blocks, self.skips, strict=True):
            h = skip(h) + block(h)
        return self.out(h)


class BehaviourPolicy(nn.Module):
    """`sample(obs, generator) -> act` in environment units; `loss(obs, act, generator)` to fit it."""

    obs_mean: torch.Tensor  # buffers, registered in __init__
    obs_std: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, spec: EnvSpec, cfg: BehaviourConfig, obs_mean: torch.Tensor, obs_std: torch.Tensor):
        super().__init__()
        self.cfg, self.act_dim = cfg, spec.act_dim
        self.register_buffer("obs_mean", obs_mean.clone())
        self.register_buffer("obs_std", obs_std.clone())
        self.register_buffer("low", torch.as_tensor(spec.act_low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(spec.act_high, dtype=torch.float32))
        if cfg.kind == "diffusion":
            in_features = spec.act_dim + spec.obs_dim + cfg.time_embed
            self.net = ResidualMLP(in_features, cfg.hidden, spec.act_dim)
            self.ema: AveragedModel | None = AveragedModel(
                self.net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True
            )
            self.scheduler = _ddpm(cfg.diffusion_steps)
        else:
            self.net = ResidualMLP(spec.obs_dim, cfg.hidden, 2 * spec.act_dim)
            self.ema = None

    # actions live in [-1, 1] inside the model (the DDPM clips samples to that range)
    def _unit(self, act: torch.Tensor) -> torch.Tensor:
        return 2.0 * (act - self.low) / (self.high - self.low) - 1.0

    def _env(self, unit: torch.Tensor) -> torch.Tensor:
        return self.low + (unit.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)

    def _cond(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def _noise(self, net: nn.Module, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([x, cond, _step_embedding(t, self.cfg.time_embed)], dim=-1))

    def loss(self, obs: torch.Tensor, act: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cond, x0 = self._cond(obs), self._unit(act)  # (B, obs_dim), (B, act_dim)
        if self.cfg.kind == "gaussian":
            mean, log_std = self.net(cond).chunk(2, dim=-1)
            log_std = log_std.clamp(*LOG_STD)
            return (0.5 * ((x0 - mean) / log_std.exp()).square() + log_std).sum(-1).mean()
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, self.cfg.diffusion_steps, (x0.shape[0],), generator=generator, device=x0.device)
        noisy = self.scheduler.add_noise(x0, noise, t)
        return (self._noise(self.net, noisy, t, cond) - noise).square().mean()

    def after_step(self) -> None:
        """Update the moving average of the weights (call after each optimiser step)."""
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, obs_dim) -> (B, act_dim) actions drawn from the cloned behaviour, in environment units."""
        cond = self._cond(obs)
        shape = (obs.shape[0], self.act_dim)
        if self.cfg.kind == "gaussian":
            mean, log_std = self.net(cond).chunk(2, dim=-1)
            eps = torch.randn(shape, generator=generator, device=obs.device)
            return self._env(mean + log_std.clamp(*LOG_STD).exp() * eps)
        assert self.ema is not None
        net = self.ema.module
        x = torch.randn(shape, generator=generator, device=obs.device)
        for t in self.scheduler.timesteps:
            steps = torch.full((obs.shape[0],), int(t), device=obs.device)
            x = self.scheduler.step(self._noise(net, x, steps, cond), t, x, generator=generator).prev_sample
        return self._env(x)


def _ddpm(steps: int):
    try:
        from diffusers.schedulers.scheduling_ddpm import DDPMScheduler  # 3 s to import: only when used
    except ImportError as exc:
        raise UserError(
            f"the diffusion behaviour policy needs diffusers ({exc}): pip install 'diffusers>=0.30,<1', or "
            "use --set algo.behaviour.kind=gaussian"
        ) from None

    scheduler = DDPMScheduler(num_train_timesteps=steps, beta_schedule="squaredcos_cap_v2", clip_sample=True)
    scheduler.set_timesteps(steps)
    return scheduler


def new_policy(dataset: OfflineDataset, cfg: BehaviourConfig) -> BehaviourPolicy:
    obs = dataset.data.obs
    return BehaviourPolicy(dataset.spec, cfg, obs.mean(0), obs.std(0) + 1e-3).to(obs.device)


def behaviour_key(fingerprint_key: str, cfg: BehaviourConfig, seed: int) -> str:
    """What determines a fitted behaviour policy: dataset content, its config and its seed."""
    fields = {**dataclasses.asdict(cfg), "seed": seed}
    return stable_hash({"dataset": fingerprint_key, "behaviour": fields, "format": FORMAT_VERSION})


def fit_behaviour(
    dataset: OfflineDataset, cfg: BehaviourConfig, seed: int, loop: Callable[[dict[str, Any]], Any], log
) -> BehaviourPolicy:
    """Clone the whole dataset's actions. `loop(state)` yields the step indices still to run and
    checkpoints `state` (the run's `behaviour` phase); `log(metrics)` records tensors without a sync."""
    device = dataset.data.obs.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the weights' initialisation: a function of the seed alone
        policy = new_policy(dataset, cfg)
    optim = torch.optim.AdamW(policy.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator(device=device).manual_seed(seed)

    for _ in loop({"behaviour": Parts(policy=policy, optim=optim, rng=generator)}):
        batch = dataset.sample(cfg.batch_size, generator)
        loss = policy.loss(batch.obs, batch.act, generator)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        policy.after_step()
        log({"behaviour/loss": loss})
    return policy


def save(policy: BehaviourPolicy, path: Path) -> None:
    torch.save({"config": dataclasses.asdict(policy.cfg), "state": policy.state_dict()}, path)


def load(path: Path, spec: EnvSpec, device: torch.device | str) -> BehaviourPolicy:
    payload = torch.load(path, map_location=device, weights_only=False)
    raw = payload["config"]
    cfg = BehaviourConfig(**{**raw, "hidden": tuple(raw["hidden"])})
    state = payload["state"]
    policy = BehaviourPolicy(spec, cfg, state["obs_mean"], state["obs_std"]).to(device)
    policy.load_state_dict(state)
    return policy


def load_or_fit_behaviour(
    dataset: OfflineDataset, cfg: BehaviourConfig, seed: int, run: Run
) -> tuple[BehaviourPolicy, str]:
    """The cached behaviour policy of (dataset, cfg, seed), fitted as the run's `behaviour` phase on a miss
    and recorded in its config.json; a damaged entry is removed and fitted again (one line on stderr)."""
    dataset.check_finite()
    key = behaviour_key(dataset.fingerprint.key, cfg, seed)

    def build(folder: Path) -> dict:
        policy = fit_behaviour(
            dataset, cfg, seed, lambda state: run.loop(state, phase="behaviour", steps=cfg.steps), run.log
        )
        save(policy, folder / "policy.pt")
        summary = {"config": {**dataclasses.asdict(cfg), "seed": seed}, "format": FORMAT_VERSION}
        (folder / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return {
            "dataset_id": dataset.fingerprint.dataset_id,
            "dataset_name": dataset.name,
            "summary": f"{cfg.kind} behaviour policy, {cfg.steps:,} steps, seed {seed}",
        }

    device = dataset.data.obs.device
    policy = load_or_build(
        KIND, key, build, lambda entry: load(entry / "policy.pt", dataset.spec, device), "fitting it again",
        verbose=run.progress_enabled,
    )  # fmt: skip
    run.use_artefact(KIND, key)
    return policy, key
