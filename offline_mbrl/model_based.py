"""The model-based loop every SAC-based algorithm shares: `ModelBasedConfig` (its fields, declared once)
and `train_model_based(cfg, dataset, dynamics, run, hooks)`.

Loop: every `rollout_every` gradient steps, branch `rollout_batch` rollouts of `horizon` steps from start
states drawn uniformly from the dataset, with the current policy's sampled actions and one random elite
per transition; keep the last `retain_rollouts` rounds in a FIFO; train SAC on batches that are
`real_ratio` real data and the rest model data (the batch's `from_model` mask says which rows are which).

An algorithm brings its idea as one `Hooks` bundle: a rollout step hook (MOPO's reward penalty; MOREC's
filter composed with a penalty by `rollout.compose`), a critic regulariser (RAVL's EDAC term; COMBO's
conservative term) and a critic-target penalty (MOBILE's), plus any state of theirs that a checkpoint must
hold. Its config subclasses `ModelBasedConfig`, adding its own fields: the dotted keys (`algo.horizon`,
`algo.sac.critics`) are the same for every model-based algorithm.

Defaults follow OfflineRL-Kit's MOPO settings (the README table's source): h 5, real ratio 0.05, 50 000
rollouts per round, 5 rounds retained, SAC 256x256, actor lr 1e-4 cosine-annealed, critic lr 3e-4,
alpha lr 1e-4.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from offline_mbrl.algorithm_spec import AlgorithmSpec, LearningCheck, TrainFn
from offline_mbrl.config import TrainConfig
from offline_mbrl.data import EnvSpec, OfflineDataset
from offline_mbrl.dynamics import Dynamics
from offline_mbrl.errors import UserError
from offline_mbrl.policies import ActorPolicy
from offline_mbrl.rollout import ModelBuffer, Rollout, StepHook, mix, model_rows, rollout
from offline_mbrl.run import Run
from offline_mbrl.sac import SAC, SACConfig, TanhGaussianActor, UpdateHook
from offline_mbrl.termination import termination_fn

# The contract battery's tiny run and the run budgets' scale, shared by the model-based algorithms' specs.
TEST_SETTINGS = (
    "algo.rollout_batch=32",
    "algo.rollout_every=20",
    "algo.horizon=2",
    "algo.sac.actor_hidden=32,32",
    "algo.sac.critic_hidden=32,32",
)
BUDGETS = {
    "smoke": ("algo.rollout_batch=1000", "algo.rollout_every=250"),
    "small": ("algo.rollout_batch=10000",),
}
# The slow test's toy task (MBPO's scores ~114 there at 20k steps; the data's mean is ~13).
LEARNING_CHECK = LearningCheck(steps=6000, margin=50.0, overrides=("algo.rollout_batch=2000",))
# 2x128 actor and critics: what the learning check of an algorithm with a costly update (MOBILE's penalty
# on 50 candidate next states per row, COMBO's 30 proposals) affords on a CPU.
CPU_NETS = ("algo.sac.actor_hidden=128,128", "algo.sac.critic_hidden=128,128")


def _mopo_sac() -> SACConfig:
    return SACConfig(actor_lr=1e-4, critic_lr=3e-4, alpha_lr=1e-4)


@dataclass(frozen=True)
class ModelBasedConfig:
    horizon: int = 5  # h, the length of each model rollout
    real_ratio: float = 0.05  # the fraction of each SAC batch drawn from the dataset, the rest from the model
    rollout_batch: int = 50_000  # rollouts started per round, from dataset states drawn uniformly
    rollout_every: int = 1_000  # gradient steps between rollout rounds
    retain_rollouts: int = 5  # rounds of model data kept in the FIFO buffer
    batch_size: int = 256  # rows per SAC update, real and model together
    actor_lr_cosine: bool = True  # anneal the actor lr to 0 over the run's steps (OfflineRL-Kit's MOPO)
    sac: SACConfig = field(default_factory=_mopo_sac)  # the actor-critic learner

    def __post_init__(self) -> None:
        """Out-of-range loop settings are one line at config time, before a run folder exists (every
        algorithm's config calls this first from its own `__post_init__`)."""
        problems = [
            f"{name} must be at least 1, got {value}"
            for name, value in (
                ("horizon", self.horizon),
                ("rollout_batch", self.rollout_batch),
                ("rollout_every", self.rollout_every),
                ("retain_rollouts", self.retain_rollouts),
                ("batch_size", self.batch_size),
            )
            if value < 1
        ]
        if not 0.0 <= self.real_ratio <= 1.0:  # also refuses NaN
            problems.append(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        elif self.batch_size >= 1 and 0.0 < self.real_ratio < 1.0:
            n_real = round(self.batch_size * self.real_ratio)
            if n_real in (0, self.batch_size):
                problems.append(
                    f"batch_size {self.batch_size} x real_ratio {self.real_ratio} leaves no "
                    f"{'real' if n_real == 0 else 'model'} rows in a batch: raise batch_size or change "
                    "real_ratio (0 or 1 if that is meant)"
                )
        if problems:
            raise UserError("invalid model-based loop settings: " + "; ".join(problems))


@dataclass(frozen=True)
class Hooks:
    """An algorithm's idea inside the shared loop; every part is optional (none of them: MBPO)."""

    step: StepHook | None = None  # applied to every rollout step (compose several with rollout.compose)
    critic_reg: UpdateHook | None = None  # added to the critic loss
    target_penalty: UpdateHook | None = None  # subtracted from the reward inside the critic target
    # more metrics of each rollout round, from the whole `Rollout` (MOREC: truncation rate, r_D)
    round_metrics: Callable[[Rollout], dict[str, torch.Tensor]] | None = None
    state: Mapping[str, Any] = field(default_factory=dict)  # more objects a checkpoint must hold

    def checkpointed(self) -> dict[str, Any]:
        """Every stateful part (anything with `state_dict`), named for the checkpoint."""
        parts = {"step": self.step, "critic_reg": self.critic_reg, "target_penalty": self.target_penalty}
        found = {f"hooks/{k}": v for k, v in parts.items() if hasattr(v, "state_dict")}
        return {**found, **{f"hooks/{k}": v for k, v in self.state.items()}}


def build_sac(cfg: TrainConfig[ModelBasedConfig], spec: EnvSpec, device: torch.device) -> SAC:
    a = cfg.algo
    sac_cfg = a.sac
    if a.actor_lr_cosine:
        sac_cfg = dataclasses.replace(sac_cfg, actor_lr_cosine_steps=cfg.steps)
    return SAC(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, sac_cfg, device=device)


def train_model_based(
    cfg: TrainConfig[ModelBasedConfig],
    dataset: OfflineDataset,
    dynamics: Dynamics,
    run: Run,
    hooks: Hooks = Hooks(),  # noqa: B008 - frozen, never mutated
) -> tuple[ActorPolicy, dict[str, Any]]:
    """Train SAC on real and model data with `hooks`; `cfg.algo` is a `ModelBasedConfig`."""
    a = cfg.algo
    spec, device = dataset.spec, run.device
    sac = build_sac(cfg, spec, device)
    terminated = termination_fn(spec.env, spec.gym_id)
    buffer = ModelBuffer(a.rollout_batch * a.horizon * a.retain_rollouts, spec.obs_dim, spec.act_dim, device)
    n_real = round(a.batch_size * a.real_ratio)
    from_model = model_rows(n_real, a.batch_size - n_real, device)  # the same rows every update
    gen = run.generator

    def explore(obs: torch.Tensor) -> torch.Tensor:
        return sac.act(obs, deterministic=False, generator=gen)

    def policy() -> ActorPolicy:
        return ActorPolicy(lambda o: sac.act(o, deterministic=True), device)

    state = {"sac": sac, "buffer": buffer, **hooks.checkpointed()}
    for step in run.loop(state, policy):
        if step % a.rollout_every == 0:
            idx = torch.randint(len(dataset), (a.rollout_batch,), device=device, generator=gen)
            ro = rollout(dynamics, explore, dataset.data.obs[idx], a.horizon, terminated, hooks.step, gen)
            batch, extras = ro.transitions()
            buffer.add(batch)
            run.log(
                {
                    "rollout/length": ro.lengths().float().mean(),
                    "rollout/reward": batch.rew.mean(),
                    "rollout/terminal_rate": batch.term.mean(),
                    **{f"rollout/{k}": v.mean() for k, v in extras.items()},
                    **(hooks.round_metrics(ro) if hooks.round_metrics is not None else {}),
                }
            )
        real = dataset.sample(n_real, gen)
        model = buffer.sample(a.batch_size - n_real, gen)
        metrics = sac.update(
            mix(real, model, from_model),
            critic_reg=hooks.critic_reg,
            target_penalty=hooks.target_penalty,
            generator=gen,
        )
        run.log(metrics)
    return policy(), {"actor": sac.actor.state_dict()}


def load_sac_policy(
    cfg: TrainConfig[ModelBasedConfig], spec: EnvSpec, state: dict, device: torch.device
) -> ActorPolicy:
    """Rebuild the deterministic actor of a finished SAC-based run from its `policy.pt`."""
    s = cfg.algo.sac
    actor = TanhGaussianActor(
        spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, s.actor_hidden, s.log_std_min, s.log_std_max
    )
    actor.load_state_dict(state["actor"])
    actor.to(device).eval()
    return ActorPolicy(lambda o: actor(o, deterministic=True)[0], device)


def model_based_spec(
    name: str, config_type: type[ModelBasedConfig], train: TrainFn, paper: str, **fields: Any
) -> AlgorithmSpec:
    """The spec of an algorithm built on this loop: its SAC policy loader, the shared tiny test settings,
    budgets and learning check, unless `fields` says otherwise (presets, more test settings)."""
    defaults: dict[str, Any] = {
        "load_policy": load_sac_policy,
        "test_settings": TEST_SETTINGS,
        "budgets": BUDGETS,
        "learning_check": LEARNING_CHECK,
    }
    return AlgorithmSpec(name, config_type, train, paper=paper, **{**defaults, **fields})
