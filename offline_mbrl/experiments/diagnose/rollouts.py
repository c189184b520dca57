"""The model transitions: the policy rolled out in the learned ensemble from dataset states, one row per
valid transition with its true errors (against the true simulator) and every penalty of the family,
evaluated by a step hook on the rollout's own prediction and sampled transition (as MOPO's hook)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from offline_mbrl.algorithms.morec.reward import DynamicsReward
from offline_mbrl.core.progress import stage
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.experiments.diagnose.policy import RolloutPolicy
from offline_mbrl.learning.penalties import PENALTIES, Members, uncertainty
from offline_mbrl.learning.rollout import Step, rollout, with_extras
from offline_mbrl.models.dynamics import DynamicsEnsemble
from offline_mbrl.models.oracle import Simulator
from offline_mbrl.models.termination import termination_fn

PENALTY_MEMBERS: Members = "elites"
CHUNK = 500  # rollout start states per batch (progress granularity; bounds the simulator's batch)
REWARD = "dynamics_reward"  # MOREC's r_D column (with --reward): higher is more plausible


def scores(df: pd.DataFrame) -> list[str]:
    """The score columns to correlate with the true error: every penalty, and r_D when it was computed."""
    return [*PENALTIES, *([REWARD] if REWARD in df.columns else [])]


def penalty_hook(step: Step) -> Step:
    """Every penalty of the family on the step's own prediction and sampled transition (as MOPO's hook
    builds the sample), plus the rollout step h and the elites' mean next state."""
    sample = step.next_obs.new_empty(step.next_obs.shape[0], step.next_obs.shape[1] + 1)
    sample[:, :-1], sample[:, -1] = step.next_obs, step.rew
    values = {
        f"penalty/{name}": uncertainty(name, step.pred, sample, step.member, PENALTY_MEMBERS)
        for name in PENALTIES
    }
    elite_mean = step.pred.mean[step.pred.elites].mean(0)[:, :-1]  # (B, obs_dim)
    h = torch.full_like(step.rew, float(step.h))
    return with_extras(step, **values, h=h, member=step.member.float(), **_columns("mean_next", elite_mean))


def _columns(prefix: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{i}": x[:, i] for i in range(x.shape[1])}  # extras are (B,) each


def model_transitions(
    dynamics: DynamicsEnsemble,
    policy: RolloutPolicy,
    dataset: OfflineDataset,
    sim: Simulator,
    starts: int,
    horizon: int,
    seed: int,
    progress: bool = True,
    reward: DynamicsReward | None = None,
) -> tuple[pd.DataFrame, int]:
    """Roll `policy` out in `dynamics` from `starts` dataset states; one row per valid model transition
    with its true errors and every penalty (and MOREC's r_D with `reward`). Also returns how many the
    simulator rejected (NaN error)."""
    data = dataset.data
    device = data.obs.device
    terminated = termination_fn(dataset.spec.env, dataset.spec.gym_id)
    generator = torch.Generator(device=device).manual_seed(seed)
    start_idx = torch.randint(len(dataset), (starts,), device=device, generator=generator)
    obs_dim = dataset.spec.obs_dim

    def hook(step: Step) -> Step:
        step = penalty_hook(step)
        if reward is not None:
            step = with_extras(step, **{REWARD: reward(step.obs, step.act, step.next_obs)})
        policy.observe(step)
        return step

    frames, rejected = [], 0
    with stage("rollouts", starts, "rollouts", enabled=progress) as rolling:
        for lo in range(0, starts, CHUNK):
            idx = start_idx[lo : lo + CHUNK]
            policy.reset(len(idx))
            r = rollout(dynamics, policy, data.obs[idx], horizon, terminated, hook, generator)
            mask = r.alive  # (H, B): the valid transitions
            rollout_id = (torch.arange(len(idx), device=device) + lo).expand_as(mask)[mask]
            obs, act = r.obs[mask].double().cpu().numpy(), r.act[mask].double().cpu().numpy()
            next_model = r.next_obs[mask].double().cpu().numpy()
            rew_model = r.rew[mask].double().cpu().numpy()
            ex = {k: v[mask].double().cpu().numpy() for k, v in r.extras.items()}
            mean_next = np.stack([ex[f"mean_next/{i}"] for i in range(obs_dim)], axis=1)
            with np.errstate(invalid="ignore", over="ignore"):
                next_true, rew_true = sim.step(obs, act)
                bad = ~np.isfinite(next_true).all(axis=1) | ~np.isfinite(rew_true)
                rejected += int(bad.sum())
                frame = {
                    "h": ex["h"].astype(np.int64),
                    "rollout": rollout_id.cpu().numpy().astype(np.int64),
                    "start_index": idx.cpu().numpy()[rollout_id.cpu().numpy() - lo].astype(np.int64),
                    "member": ex["member"].astype(np.int64),
                    "true_error": np.linalg.norm(next_model - next_true, axis=1),
                    "mean_error": np.linalg.norm(mean_next - next_true, axis=1),
                    "reward_error": np.abs(rew_model - rew_true),
                    **{name: ex[f"penalty/{name}"] for name in PENALTIES},
                    **({REWARD: ex[REWARD]} if reward is not None else {}),
                }
            frames.append(pd.DataFrame(frame))
            rolling.advance(lo + len(idx))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["rollout", "h"], ignore_index=True), rejected
