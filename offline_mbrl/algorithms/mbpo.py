"""MBPO without a penalty: SAC on a mix of real data and short model rollouts. The baseline every
offline model-based comparison needs (Janner et al., NeurIPS 2019, used offline as in Yu et al. 2020).

Loop: every `rollout_every` gradient steps, branch `rollout_batch` rollouts of `horizon` steps from start
states drawn uniformly from the dataset, with the current policy's sampled actions and one random elite
per transition; keep the last `retain_rollouts` rounds in a FIFO; train SAC on batches that are
`real_ratio` real data and the rest model data. MOPO (a reward penalty through `step_hook`) and RAVL (N
critics and the EDAC regulariser through `critic_reg`) reuse this loop with their own ideas plugged in.

Defaults follow OfflineRL-Kit's MOPO settings (the README table's source): h 5, real ratio 0.05, 50 000
rollouts per round, 5 rounds retained, SAC 256x256, actor lr 1e-4 cosine-annealed, critic lr 3e-4,
alpha lr 1e-4, 3M steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from offline_mbrl.data import OfflineDataset
from offline_mbrl.dynamics import DynamicsEnsemble
from offline_mbrl.policies import ActorPolicy
from offline_mbrl.rollout import ModelBuffer, StepHook, mix, rollout
from offline_mbrl.run import Run, TrainConfig
from offline_mbrl.sac import SAC, SACConfig, TanhGaussianActor
from offline_mbrl.termination import termination_fn


@dataclass(frozen=True)
class MBPOConfig:
    horizon: int = 5
    real_ratio: float = 0.05
    rollout_batch: int = 50_000
    rollout_every: int = 1_000
    retain_rollouts: int = 5
    batch_size: int = 256
    actor_lr_cosine: bool = True
    sac: SACConfig = field(default_factory=lambda: SACConfig(actor_lr=1e-4, critic_lr=3e-4, alpha_lr=1e-4))


def train_model_based(
    cfg: TrainConfig,
    dataset: OfflineDataset,
    dynamics: DynamicsEnsemble,
    run: Run,
    step_hook: StepHook | None = None,
    critic_reg: Callable | None = None,
    reg_coef: float = 0.0,
) -> tuple[ActorPolicy, dict[str, Any]]:
    """The MBPO loop shared by MBPO, MOPO and RAVL. `cfg.algo` has MBPOConfig's fields."""
    a = cfg.algo
    spec, device = dataset.spec, run.device
    sac_cfg = a.sac
    if a.actor_lr_cosine:
        sac_cfg = dataclasses.replace(sac_cfg, actor_lr_cosine_steps=cfg.steps)
    sac = SAC(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, sac_cfg, device=device)
    terminated = termination_fn(spec.env, spec.gym_id)
    buffer = ModelBuffer(a.rollout_batch * a.horizon * a.retain_rollouts, spec.obs_dim, spec.act_dim, device)
    n_real = round(a.batch_size * a.real_ratio)
    gen = run.generator

    def explore(obs: torch.Tensor) -> torch.Tensor:
        return sac.act(obs, deterministic=False, generator=gen)

    def policy() -> ActorPolicy:
        return ActorPolicy(lambda o: sac.act(o, deterministic=True), device)

    for step in run.loop({"sac": sac, "buffer": buffer}, policy):
        if step % a.rollout_every == 0:
            idx = torch.randint(len(dataset), (a.rollout_batch,), device=device, generator=gen)
            ro = rollout(dynamics, explore, dataset.data.obs[idx], a.horizon, terminated, step_hook, gen)
            batch, extras = ro.transitions()
            buffer.add(batch)
            run.log(
                {
                    "rollout/length": ro.lengths().float().mean(),
                    "rollout/reward": batch.rew.mean(),
                    "rollout/terminal_rate": batch.term.mean(),
                    **{f"rollout/{k}": v.mean() for k, v in extras.items()},
                }
            )
        real = dataset.sample(n_real, gen)
        model = buffer.sample(a.batch_size - n_real, gen)
        run.log(sac.update(mix(real, model), critic_reg=critic_reg, reg_coef=reg_coef, generator=gen))
    return policy(), {"actor": sac.actor.state_dict()}


def load_policy(cfg: TrainConfig, spec, state: dict, device) -> ActorPolicy:
    """Rebuild the deterministic actor of a finished SAC-based run from its `policy.pt`."""
    s = cfg.algo.sac
    actor = TanhGaussianActor(
        spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, s.actor_hidden, s.log_std_min, s.log_std_max
    )
    actor.load_state_dict(state["actor"])
    actor.to(device).eval()
    return ActorPolicy(lambda o: actor(o, deterministic=True)[0], device)


def train(cfg: TrainConfig, dataset: OfflineDataset, dynamics: DynamicsEnsemble, run: Run):
    return train_model_based(cfg, dataset, dynamics, run)
