"""The oracle's own check: N random dataset transitions replayed through the true simulator, one line."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.models.oracle import (
    VELOCITY_CLIP,
    InvertedDoublePendulumSimulator,
    LocomotionSimulator,
    Simulator,
)


def _velocities(sim: Simulator) -> slice | None:
    """Where the observation holds the velocities the env clips at ±10 (None: it clips none)."""
    if isinstance(sim, LocomotionSimulator):  # hopper, walker2d: obs = [qpos[1:], qvel]; halfcheetah: no clip
        return slice(sim.nq - 1, None) if sim.task.clip_velocity else None
    if isinstance(sim, InvertedDoublePendulumSimulator):  # [x, sin, cos, qvel, constraint (not state)]
        start = 1 + 2 * (sim.nq - 1)
        return slice(start, start + sim.nv)
    return None  # pendulum


def oracle_check(dataset: OfflineDataset, sim: Simulator, n: int, seed: int) -> dict[str, Any]:
    """Replay `n` random dataset transitions (all of them if fewer) through the simulator."""
    n = min(n, len(dataset))
    idx = np.sort(np.random.default_rng(seed).choice(len(dataset), n, replace=False))
    data = dataset.data
    as64 = [t.detach().cpu().numpy()[idx].astype(np.float64) for t in (data.obs, data.act, data.next_obs)]
    obs, act, next_obs = as64
    rew = data.rew.detach().cpu().numpy()[idx].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        next_true, rew_true = sim.step(obs, act)
    ds_err = np.abs(next_true - next_obs).max(axis=1)
    r_err = np.abs(rew_true - rew)
    velocities = _velocities(sim)
    clipped: np.ndarray = np.zeros(n, dtype=bool)
    if velocities is not None:  # a recorded velocity at the clip: the true state is lost
        clipped = np.asarray((np.abs(obs[:, velocities]) >= VELOCITY_CLIP).any(axis=1))
    rest = ~clipped

    def top(x: np.ndarray) -> float:
        return float(np.nanmax(x)) if len(x) else math.nan

    check: dict[str, Any] = {
        "transitions": n,
        "max_abs_next_obs_error": top(ds_err),
        "max_abs_reward_error": top(r_err),
        "clipped_velocity": int(clipped.sum()),
        "unclipped": int(rest.sum()),
        "max_abs_next_obs_error_unclipped": top(ds_err[rest]),
        "max_abs_reward_error_unclipped": top(r_err[rest]),
        "simulator": getattr(sim, "name", type(sim).__name__),
    }
    line = (
        f"oracle check: max |Δs'| {check['max_abs_next_obs_error']:.1e}, max |Δr| "
        f"{check['max_abs_reward_error']:.1e} over {n} dataset transitions of {dataset.name}"
    )
    if velocities is None:
        line += f" ({check['simulator']} observations are not clipped)"
    elif check["clipped_velocity"] == 0:
        line += "; none has a velocity clipped at ±10 in s"
    else:
        line += (
            f"; {check['clipped_velocity']} have a velocity clipped at ±10 in s (not recoverable), over "
            f"the other {check['unclipped']}: max |Δs'| {check['max_abs_next_obs_error_unclipped']:.1e}, "
            f"max |Δr| {check['max_abs_reward_error_unclipped']:.1e}"
        )
    check["line"] = line
    return check
