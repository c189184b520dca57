"""The probabilistic dynamics ensemble of MBPO/MOPO practice: fit once per dataset, cached by content.

Each of `members` MLPs (4 x 200 SiLU, one batched layer for all members) maps z-scored `[obs, act]` to
the mean and log-variance of `[Δobs, reward]`; `next_obs = obs + Δobs`. Log-variances are soft-clamped
between learnable bounds. Each member trains on its own bootstrap resample of the training split with
the Gaussian NLL (no constant), a small loss on the bounds and per-layer L2 weight decay; training stops
once no member's holdout MSE improved by more than 1% for `patience` epochs, and every member gets back
its best weights. The `elites` members with the lowest holdout MSE are the ones sampled from.
Every figure is a `DynamicsConfig` field (Lu et al. 2022 tuned them), defaults from algorithms.md.

Deviations from the reference code (OfflineRL-Kit / mbpo), each deliberate:
- `max_logvar` / `min_logvar` are shared by the members (as in the references) and, as there, are not
  part of the per-member best snapshot: they keep their final values.
- The epoch's batches come from a per-member shuffle of its bootstrap indices drawn from a seeded
  `torch.Generator` on the data's device; the init runs under `torch.random.fork_rng`, so fitting or
  loading never touches the global RNG and one seed gives identical weights on a CPU.
- `steps_per_epoch` (None: one pass over the training split, the last batch partial) lets an epoch be
  longer or shorter than a pass; longer epochs chain fresh shuffles.
- `Prediction.sample` first picks one uniformly random elite per transition, then samples only that
  member's Gaussian: the same distribution as sampling all members and picking, E times cheaper.
- The report's holdout NLL is the proper per-dimension Gaussian NLL in nats (with 1/2 and log 2π),
  for readability; the training loss is the constant-free form above.
- The fitted ensemble is an entry of the artefact store (`offline_mbrl.core.cache`, kind "dynamics"), which
  serialises concurrent fits of one key with a lock and publishes the entry atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from offline_mbrl.core.cache import artefact_path, atomic_path, load_or_build, stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.nets import EnsembleLinear, EnsembleMLP
from offline_mbrl.core.precision import PRECISIONS, Precision, apply_precision
from offline_mbrl.core.progress import stage

if TYPE_CHECKING:
    from offline_mbrl.data.dataset import OfflineDataset

FORMAT_VERSION = 2  # 2: the references' layer init (truncated normal weights, zero biases)
ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
_EVAL_CHUNK = 8192  # holdout rows per forward pass, to bound memory for a large max_holdout
_WITHIN_EPOCH = 250  # gradient steps between progress reports inside an epoch


@dataclass(frozen=True)
class DynamicsConfig:
    members: int = 7  # ensemble size (each member on its own bootstrap of the training split)
    elites: int = 5  # members with the lowest holdout MSE, the ones rollouts sample from
    hidden: tuple[int, ...] = (200, 200, 200, 200)  # each member's hidden layer sizes
    activation: str = "silu"  # hidden activation: silu, relu, tanh or elu
    weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)  # L2 per layer, output last
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 256  # rows per member per gradient step
    holdout_ratio: float = 0.2  # the fraction of the data held out for early stopping and elite choice
    max_holdout: int | None = 1000  # at most this many held-out rows (None: no cap, RAVL's reference)
    patience: int = 5  # epochs in a row in which no member improved
    improvement: float = 0.01  # relative holdout-MSE gain that counts as an improvement
    max_epochs: int | None = None  # stop after this many epochs at the latest; None: only by patience
    min_epochs: int = 0  # train at least this many epochs before early stopping may stop
    # the first time the patience runs out before min_epochs, multiply the lr by this and count the
    # patience afresh (RAVL's reference: 0.3); None: no lr change
    plateau_lr_factor: float | None = None
    steps_per_epoch: int | None = None  # None: one pass over the training split
    logvar_loss_coef: float = 0.01  # weight of the loss on the learnable log-variance bounds
    seed: int = 0  # init and batch order; set from the run's dynamics_seed
    # "ensemble": the learned model; "oracle": the true simulator (offline_mbrl/oracle.py) for experiments
    kind: Literal["ensemble", "oracle"] = "ensemble"
    oracle_mix: float = 1.0  # with kind=oracle: λ between the learned model (0) and the true simulator (1)
    # the products of the fit: fp32, bf16 (inner layers; mean, log-variance and NLL stay fp32; its holdout
    # MSE measured 10-23% worse on pendulum, docs/speed.md) or fp32-strict (no TF32 on CUDA). Rollouts
    # run at the run's precision whatever the fit's
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        # JSON round trips give lists; tuples keep the config hashable and its cache key unchanged.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "weight_decay", tuple(float(w) for w in self.weight_decay))
        problems = []
        if not 1 <= self.elites <= self.members:
            problems.append(f"elites ({self.elites}) must be between 1 and members ({self.members})")
        if len(self.weight_decay) != len(self.hidden) + 1:
            problems.append(
                f"weight_decay needs one value per layer of hidden {self.hidden} and the output "
                f"({len(self.hidden) + 1}), got {len(self.weight_decay)}"
            )
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.max_epochs is not None and self.max_epochs < 1:
            problems.append("max_epochs must be at least 1 (or None)")
        if not 0 < self.holdout_ratio < 1 or (self.max_holdout is not None and self.max_holdout < 1):
            problems.append("holdout_ratio must be in (0, 1) and max_holdout at least 1")
        if (
            self.batch_size < 1
            or self.patience < 1
            or (self.steps_per_epoch is not None and self.steps_per_epoch < 1)
        ):
            problems.append("batch_size, patience and steps_per_epoch must be positive")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.logvar_loss_coef) and self.logvar_loss_coef >= 0):
            problems.append(f"logvar_loss_coef must be a finite number >= 0, got {self.logvar_loss_coef}")
        if self.plateau_lr_factor is not None and not 0.0 < self.plateau_lr_factor <= 1.0:
            problems.append(f"plateau_lr_factor must lie in (0, 1] (or None), got {self.plateau_lr_factor}")
        if not (0.0 <= self.improvement < 1.0):
            problems.append(f"improvement must lie in [0, 1), got {self.improvement}")
        if any(not (math.isfinite(w) and w >= 0) for w in self.weight_decay):
            problems.append(f"weight_decay values must be finite and >= 0, got {self.weight_decay}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.kind not in ("ensemble", "oracle"):
            problems.append(f"kind must be ensemble or oracle, got {self.kind!r}")
        if not 0.0 <= self.oracle_mix <= 1.0:  # also refuses NaN
            problems.append(
                f"oracle_mix must be in [0, 1] (1: the true simulator alone), got {self.oracle_mix}"
            )
        elif self.kind == "ensemble" and self.oracle_mix != 1.0:
            problems.append("oracle_mix applies to kind=oracle only (set dynamics.kind=oracle)")
        if problems:
            raise UserError("invalid dynamics config: " + "; ".join(problems))

    def learned(self) -> DynamicsConfig:
        """The config of the learned ensemble itself (kind and oracle mix at their defaults): what is
        fitted and cached, also for an oracle mix that interpolates with it."""
        return dataclasses.replace(self, kind="ensemble", oracle_mix=1.0)

    @property
    def needs_fit(self) -> bool:
        """Whether these dynamics need a learned ensemble (the true simulator alone does not)."""
        return self.kind == "ensemble" or self.oracle_mix < 1.0


@dataclass(frozen=True)
class Prediction:
    """Every member's Gaussian over `[next_obs, reward]` in environment units, and the elite indices."""

    mean: torch.Tensor  # (E, B, obs_dim + 1)
    std: torch.Tensor  # (E, B, obs_dim + 1)
    elites: torch.Tensor  # (K,) long, best member first
    exact: bool = False  # the true simulator's prediction: no uncertainty, every penalty is 0

    def sample(
        self, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One draw per transition from a uniformly random elite.

        Returns `next_obs (B, obs_dim), rew (B,), member (B,)`, all on the device, without a host sync.
        """
        batch = self.mean.shape[1]
        device = self.mean.device
        pick = torch.randint(len(self.elites), (batch,), device=device, generator=generator)
        member = self.elites[pick]  # (B,)
        rows = torch.arange(batch, device=device)
        mean, std = self.mean[member, rows], self.std[member, rows]  # (B, obs_dim + 1)
        noise = torch.randn(mean.shape, device=device, dtype=mean.dtype, generator=generator)
        draw = mean + std * noise
        return draw[:, :-1], draw[:, -1], member

    def samples(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` draws from every member's Gaussian: `(n, E, B, obs_dim + 1)` (next state, then reward)."""
        noise = torch.randn(
            (n, *self.mean.shape), device=self.mean.device, dtype=self.mean.dtype, generator=generator
        )
        return self.mean + self.std * noise  # (n, E, B, D)

    def candidates(self, n: int, generator: torch.Generator | None = None) -> Candidates:
        """`n` draws from each elite for every transition: `K·n` candidate next states per (s, a).

        Candidate `c` comes from elite `c // n` (MOBILE's Bellman-inconsistency penalty and MOREC's
        filter both choose or aggregate over this set).
        """
        mean, std = self.mean[self.elites], self.std[self.elites]  # (K, B, D)
        k, b, d = mean.shape
        noise = torch.randn((k, n, b, d), device=mean.device, dtype=mean.dtype, generator=generator)
        draw = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).reshape(k * n, b, d)  # (K·n, B, D)
        return Candidates(draw[..., :-1], draw[..., -1], self.elites.repeat_interleave(n))


class Dynamics(Protocol):
    """What rollouts and algorithms use of a dynamics model: the learned `DynamicsEnsemble` or the true
    simulator (`offline_mbrl.models.oracle.OracleDynamics`), interchangeably."""

    obs_dim: int
    act_dim: int

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> Prediction: ...


@dataclass(frozen=True)
class Candidates:
    """A set of candidate transitions per (s, a), the candidate axis first."""

    next_obs: torch.Tensor  # (C, B, obs_dim)
    rew: torch.Tensor  # (C, B)
    member: torch.Tensor  # (C,) the member each candidate was drawn from


class DynamicsEnsemble(nn.Module):
    """`members` Gaussian MLPs over `[Δobs, reward]` given `[obs, act]`, with their input normaliser."""

    input_mean: torch.Tensor  # buffers, registered in __init__
    input_std: torch.Tensor
    elites: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, cfg: DynamicsConfig):
        super().__init__()
        self.obs_dim, self.act_dim, self.cfg = obs_dim, act_dim, cfg
        in_dim, out_dim = obs_dim + act_dim, obs_dim + 1
        self.net = EnsembleMLP(cfg.members, in_dim, cfg.hidden, 2 * out_dim, ACTIVATIONS[cfg.activation])
        for layer in cast("Sequence[EnsembleLinear]", self.net.layers):
            # the references' init (OfflineRL-Kit nets/ensemble_linear.py#L20-L23, as MBPO's): weights
            # from a normal of std 1/(2·sqrt(fan_in)) truncated at ±2 (never reached at these fan-ins),
            # zero biases
            nn.init.trunc_normal_(layer.weight, std=1.0 / (2.0 * math.sqrt(layer.in_features)))
            nn.init.zeros_(layer.bias)
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))
        self.register_buffer("elites", torch.arange(cfg.elites))
        apply_precision(self.net, cfg.precision)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw `[obs, act]` `(B, in)` or `(E, B, in)` -> mean and soft-clamped log-variance `(E, B, out)`."""
        out = self.net((inputs - self.input_mean) / self.input_std)
        mean, logvar = out.chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> Prediction:
        """Differentiable; call it under `torch.no_grad()` in rollouts."""
        mean, logvar = self(torch.cat([obs, act], dim=-1))  # (E, B, obs_dim + 1)
        mean = torch.cat([mean[..., : self.obs_dim] + obs, mean[..., self.obs_dim :]], dim=-1)
        return Prediction(mean=mean, std=(0.5 * logvar).exp(), elites=self.elites)


def _build(obs_dim: int, act_dim: int, cfg: DynamicsConfig) -> DynamicsEnsemble:
    # The init is drawn on the CPU from cfg.seed, so it is the same on every device.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return DynamicsEnsemble(obs_dim, act_dim, cfg)


def member_losses(model: DynamicsEnsemble, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's NLL on its own batch plus its L2 weight decay, `(E,)`: entry i sees member i only."""
    mean, logvar = model(inputs)  # (E, B, out)
    nll = ((mean - targets).square() * torch.exp(-logvar) + logvar).mean(dim=(1, 2))
    layers = cast("Sequence[EnsembleLinear]", model.net.layers)  # an nn.ModuleList of EnsembleLinear
    decay = sum(
        wd * 0.5 * layer.weight.square().sum(dim=(1, 2))
        for wd, layer in zip(model.cfg.weight_decay, layers, strict=True)
    )
    return nll + decay


def training_loss(model: DynamicsEnsemble, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    bounds = model.cfg.logvar_loss_coef * (model.max_logvar.sum() - model.min_logvar.sum())
    return member_losses(model, inputs, targets).sum() + bounds


@torch.no_grad()
def holdout_scores(
    model: DynamicsEnsemble, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member MSE of the mean and per-dimension Gaussian NLL (nats) on shared data, each `(E,)`."""
    sq_sum = torch.zeros(model.cfg.members, device=inputs.device)
    nll_sum = torch.zeros(model.cfg.members, device=inputs.device)
    for start in range(0, len(inputs), _EVAL_CHUNK):
        mean, logvar = model(inputs[start : start + _EVAL_CHUNK])  # (E, b, out)
        err = (mean - targets[start : start + _EVAL_CHUNK]).square()
        sq_sum += err.sum(dim=(1, 2))
        nll_sum += (0.5 * (err * torch.exp(-logvar) + logvar + math.log(2 * math.pi))).sum(dim=(1, 2))
    count = targets.numel()
    return sq_sum / count, nll_sum / count


def holdout_size(n: int, cfg: DynamicsConfig) -> int:
    """Held-out transitions of n: min(holdout_ratio * n, max_holdout) (no cap with max_holdout None)."""
    n_hold = int(cfg.holdout_ratio * n)
    return n_hold if cfg.max_holdout is None else min(n_hold, cfg.max_holdout)


def holdout_split(
    n: int, cfg: DynamicsConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random `(train_idx, holdout_idx)` with `holdout_size(n, cfg)` held out."""
    n_hold = holdout_size(n, cfg)
    if n_hold < 1 or n - n_hold < 1:
        raise UserError(f"{n} transitions are too few to fit dynamics with a holdout split")
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return perm[n_hold:], perm[:n_hold]


def _epoch_order(boot: torch.Tensor, steps: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Each member's bootstrap rows, reshuffled, chained to cover `steps` batches: `(E, >= steps*batch)`."""
    members, n = boot.shape
    passes = math.ceil(steps * batch / n)
    keys = torch.rand(members, passes, n, generator=generator, device=boot.device)
    order = keys.argsort(dim=-1).flatten(1)  # (E, passes * n) positions into each member's resample
    return boot.gather(1, order)


def fit_dynamics(
    dataset: OfflineDataset, cfg: DynamicsConfig, progress: bool = True, checkpoint: Path | None = None
) -> tuple[DynamicsEnsemble, dict]:
    """Train an ensemble on the dataset's device; return it with a JSON-ready report.

    With `checkpoint`, the fit's whole state (weights, optimiser, generator, best snapshots, counters) is
    written there after every epoch, atomically, and a fit that finds one continues from its epoch: an
    interrupted fit loses at most one epoch, and the resumed fit is the uninterrupted one, bit for bit.
    """
    started = time.perf_counter()
    data = dataset.data
    device = data.obs.device
    inputs = torch.cat([data.obs, data.act], dim=-1).float()  # (N, obs_dim + act_dim)
    delta = data.next_obs - data.obs
    targets = torch.cat([delta, data.rew.reshape(-1, 1)], dim=-1).float()  # (N, obs_dim + 1)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    train_idx, hold_idx = holdout_split(len(inputs), cfg, generator)
    x_train, y_train = inputs[train_idx], targets[train_idx]
    x_hold, y_hold = inputs[hold_idx], targets[hold_idx]
    n_train = len(train_idx)

    model = _build(data.obs.shape[1], data.act.shape[1], cfg).to(device)
    std = x_train.std(0, correction=0)  # population std, as the references' scaler
    model.input_mean.copy_(x_train.mean(0))
    model.input_std.copy_(torch.where(std < 1e-12, torch.ones_like(std), std))  # a constant input stays as is
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    boot = torch.randint(n_train, (cfg.members, n_train), generator=generator, device=device)  # (E, n_train)
    steps = cfg.steps_per_epoch or math.ceil(n_train / cfg.batch_size)
    snapshot = [p.detach().clone() for p in model.net.parameters()]  # each (E, ...)
    best = torch.full((cfg.members,), math.inf, device=device)
    best_epoch = torch.zeros(cfg.members, dtype=torch.long, device=device)
    history: list[list[float]] = []
    epoch, since_improved, elapsed_before = 0, 0, 0.0
    lr_dropped_at: int | None = None  # the epoch whose plateau lowered the lr (plateau_lr_factor)

    def fit_state() -> dict:
        return {
            "epoch": epoch,
            "since_improved": since_improved,
            "lr_dropped_at": lr_dropped_at,
            "history": history,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "boot": boot,
            "snapshot": snapshot,
            "best": best,
            "best_epoch": best_epoch,
            "seconds": elapsed_before + time.perf_counter() - started,
        }

    if checkpoint is not None and checkpoint.exists():
        try:
            saved = torch.load(checkpoint, map_location=device, weights_only=False)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            boot, snapshot, best, best_epoch = (
                saved["boot"],
                saved["snapshot"],
                saved["best"],
                saved["best_epoch"],
            )
            epoch, since_improved, history = saved["epoch"], saved["since_improved"], saved["history"]
            lr_dropped_at = saved.get("lr_dropped_at")
            elapsed_before = saved["seconds"]
            if progress:
                print(f"dynamics fit: continuing from epoch {epoch} ({checkpoint.name})", file=sys.stderr)
        except Exception as exc:  # a damaged checkpoint: start over (the file is the suite's own)
            print(
                f"dynamics fit: checkpoint {checkpoint} unreadable ({type(exc).__name__}); starting over",
                file=sys.stderr,
            )
            checkpoint.unlink(missing_ok=True)
    fit = stage("dynamics", cfg.max_epochs or 0, "dynamics fit (epochs)", epoch, enabled=progress)
    with fit:
        while True:
            epoch += 1
            order = _epoch_order(boot, steps, cfg.batch_size, generator)
            for step in range(steps):
                rows = order[:, step * cfg.batch_size : (step + 1) * cfg.batch_size]  # (E, b)
                loss = training_loss(model, x_train[rows], y_train[rows])  # inputs (E, b, in)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if step % _WITHIN_EPOCH == _WITHIN_EPOCH - 1:  # long epochs show where they are (no sync)
                    fit.advance(epoch - 1, f"epoch {epoch} step {step + 1:,}/{steps:,}")
            mse, _ = holdout_scores(model, x_hold, y_hold)
            improved = mse < best * (1.0 - cfg.improvement)  # relative gain over the best > `improvement`
            best = torch.where(improved, mse, best)
            best_epoch = torch.where(improved, epoch, best_epoch)
            with torch.no_grad():
                for saved, param in zip(snapshot, model.net.parameters(), strict=True):
                    mask = improved.view(-1, *([1] * (param.dim() - 1)))
                    saved.copy_(torch.where(mask, param, saved))
            host = torch.cat([mse, improved.any().float().reshape(1)]).tolist()  # the epoch's one host sync
            history.append(host[:-1])
            since_improved = 0 if host[-1] else since_improved + 1
            if (
                cfg.plateau_lr_factor is not None
                and lr_dropped_at is None
                and since_improved >= cfg.patience
                and epoch < cfg.min_epochs
            ):
                for group in optimizer.param_groups:
                    group["lr"] *= cfg.plateau_lr_factor
                lr_dropped_at, since_improved = epoch, 0
            rule = (  # an uncapped fit has no total to show: its stopping rule and where it stands instead
                ""
                if cfg.max_epochs is not None
                else f", stops after {cfg.patience} epochs without a {cfg.improvement:.0%} gain "
                f"({since_improved} so far)"
            )
            fit.advance(epoch, f"holdout MSE {min(host[:-1]):.4g}{rule}")
            if checkpoint is not None:
                with atomic_path(checkpoint) as tmp:
                    torch.save(fit_state(), tmp)
            if cfg.max_epochs is not None and epoch >= cfg.max_epochs:
                stopped = "max_epochs"
                break
            if since_improved >= cfg.patience and epoch >= cfg.min_epochs:
                stopped = "patience"
                break

    with torch.no_grad():
        for saved, param in zip(snapshot, model.net.parameters(), strict=True):
            param.copy_(saved)
    mse, nll = holdout_scores(model, x_hold, y_hold)
    elites = mse.argsort()[: cfg.elites]
    model.elites.copy_(elites)
    baseline = (y_hold - y_train.mean(0)).square().mean()
    mse_l, nll_l, elites_l = mse.tolist(), nll.tolist(), elites.tolist()
    report = {
        "holdout_mse": mse_l,
        "holdout_nll": nll_l,
        "elites": elites_l,
        "elite_mse": sum(mse_l[i] for i in elites_l) / len(elites_l),
        "baseline_mse": baseline.item(),  # predicting the mean training target [Δobs, reward]
        "epochs": epoch,
        "best_epoch": best_epoch.tolist(),
        "stopped": stopped,
        "lr_dropped_at": lr_dropped_at,
        "history": history,  # per epoch, each member's holdout MSE before the restore
        "n_train": n_train,
        "n_holdout": len(hold_idx),
        "wall_time": elapsed_before + time.perf_counter() - started,  # seconds, resumed fits included
    }
    return model, report


def save(model: DynamicsEnsemble, path: Path | str) -> None:
    """Write the model (weights, normaliser, elites, config) to one file, atomically."""
    payload = {
        "format": FORMAT_VERSION,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "config": dataclasses.asdict(model.cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load(path: Path | str, device: torch.device | str | None = None) -> DynamicsEnsemble:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {payload.get('format')} is not {FORMAT_VERSION}")
        model = _build(payload["obs_dim"], payload["act_dim"], DynamicsConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # torch, pickle and zipfile raise many types for a damaged file
        raise UserError(f"cannot read dynamics model {path} ({type(exc).__name__}: {exc})") from None
    return model.to(device) if device is not None else model


# ---- the cached artefact: cache_root()/dynamics/<key>/{model.pt, report.json, manifest.json} ------------


def hashed_fields(cfg: DynamicsConfig) -> dict:
    """The config as it enters cache keys: `precision` only when it is not fp32, so the artefacts made
    before the key existed keep their keys."""
    fields = dataclasses.asdict(cfg)
    if fields["precision"] == "fp32":
        del fields["precision"]
    return fields


def dynamics_key(fingerprint_key: str, cfg: DynamicsConfig) -> str:
    """What determines a fitted ensemble: dataset content, dynamics config (with its seed), format version."""
    if cfg.kind != "ensemble" or cfg.oracle_mix != 1.0:
        raise ValueError("dynamics_key is the key of a learned ensemble: pass cfg.learned()")
    fields = hashed_fields(cfg)
    del fields["kind"], fields["oracle_mix"]  # not the learned model's: keys stay as before they existed
    return stable_hash({"dataset": fingerprint_key, "dynamics": fields, "format": FORMAT_VERSION})


def load_or_fit(
    dataset: OfflineDataset,
    cfg: DynamicsConfig,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[DynamicsEnsemble, dict, str]:
    """The cached ensemble for (dataset content, cfg), fitting and publishing it on a miss (for an oracle
    config, the learned ensemble it would interpolate with: `cfg.learned()`)."""
    cfg = cfg.learned()
    if device is not None:
        dataset = dataset.to(device)
    key = dynamics_key(dataset.fingerprint.key, cfg)

    dataset.check_finite()

    # The fit's epoch checkpoint lives beside the entry until it is published (then it is removed): a
    # rerun of an interrupted fit continues from it.
    partial = artefact_path("dynamics", key).with_name(f".{key}.partial.pt")

    def build(folder: Path) -> dict:
        model, report = fit_dynamics(dataset, cfg, progress, checkpoint=partial)
        if not all(math.isfinite(m) for m in report["holdout_mse"]):
            partial.unlink(missing_ok=True)  # a rerun must not continue a diverged fit
            raise UserError(
                f"the dynamics fit of {dataset.name} ended with a non-finite holdout error "
                f"({report['holdout_mse']}); nothing was cached: lower dynamics.lr or check the data"
            )
        report = {**report, **_provenance(dataset, cfg, key)}
        save(model, folder / "model.pt")
        (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return {
            "dataset_id": dataset.fingerprint.dataset_id,
            "dataset_name": dataset.name,
            "summary": f"{report['epochs']} epochs, elite MSE {report['elite_mse']:.5f}",
        }

    def load_entry(entry: Path) -> tuple[DynamicsEnsemble, dict]:
        partial.unlink(missing_ok=True)
        report = json.loads((entry / "report.json").read_text())
        model = load(entry / "model.pt", dataset.data.obs.device)
        shape = (dataset.data.obs.shape[1], dataset.data.act.shape[1], cfg)
        if (model.obs_dim, model.act_dim, model.cfg) != shape:
            raise UserError(
                f"dynamics cache entry {entry} is damaged (its model does not match the dataset and "
                "config of its key)"
            )
        return model, report

    # a damaged entry is removed and fitted once more, as every cached kind is (core.cache.load_or_build)
    model, report = load_or_build("dynamics", key, build, load_entry, "fitting it again", verbose=progress)
    return model, report, key


def _provenance(dataset: OfflineDataset, cfg: DynamicsConfig, key: str) -> dict:
    return {
        "key": key,
        "dataset_id": dataset.fingerprint.dataset_id,
        "dataset_name": dataset.name,
        "fingerprint": dataset.fingerprint.key,
        "config": dataclasses.asdict(cfg),
        "format": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
