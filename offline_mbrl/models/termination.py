"""Batched termination functions: `fn(obs, act, next_obs) -> bool (...,)`, judged on `next_obs`.

A model rollout needs to know when the real environment would have ended the episode. Each function
re-states the Gymnasium v5 environment's own rule (its default constructor arguments) on observations,
works on any leading shape (`(B, obs_dim)` or `(E, B, obs_dim)`) and stays on the tensors' device.
The function is chosen by the dataset's `EnvSpec.env` through an explicit dict, never by a substring
of a name (D4RL's `'ant' in name` matched `antmaze`). Every function also terminates a non-finite
`next_obs`: a diverging model state must never be bootstrapped from.

How each rule matches Gymnasium v5, and where it cannot:
- Hopper, Walker2d: the v5 rules and defaults, strict inequalities (`min < x < max`) as in v5's
  `is_healthy`; these coincide with the MBPO/MOPO hand-written rules (height > 0.7, |angle| < 0.2,
  |next_obs[1:]| < 100; 0.8 < height < 2.0, -1 < angle < 1).
- Hopper: v5 checks `state_vector()[2:]` = `[qpos[2:], qvel]` with the *unclipped* qvel against
  (-100, 100), while the observation holds `qvel` clipped to [-10, 10]. On real observations the
  velocity part of the check can therefore never fail: a real state with |qvel| >= 100 (a physics
  blow-up, never seen in the tests' rollouts) terminates in the simulator but not here. On model
  predictions, which are not clipped, it still ends |velocity| >= 100 as the MBPO rule does. The
  position part (`next_obs[1:5]`) is exact.
- InvertedDoublePendulum: v5 terminates when the tip site's height `y <= 1`. The observation has no
  height, so it is rebuilt from the hinge angles: the cart body sits at z = 0 and each pole is 0.6 long
  (inverted_double_pendulum.xml), so `y = 0.6 cos(th1) + 0.6 cos(th1 + th2)` with
  `cos(th1 + th2) = cos1 cos2 - sin1 sin2` from obs `[x, sin1, sin2, cos1, cos2, ...]`; it equals the
  tip height that `mj_kinematics` gives for the observed qpos to float64 rounding. The env itself reads
  `data.site_xpos` right after `mj_step`, which still holds the kinematics of the last RK4 stage, not
  of the final qpos: that height is off by up to ~5e-5 here (tests measure it), so the flag can differ
  only when the tip ends a step within that distance of y = 1 (never in the tests' rollouts). The
  geometric rule on the state is the one a model rollout should use.
- PointMaze (the stitching task, offline_mbrl/data/make/pointmaze.py) and point2d (the edge-of-reach task,
  offline_mbrl/data/make/point2d.py): no terminal states. The suite's
  environment drops Gymnasium-Robotics' goal-reached `terminated` flag and runs all 200 steps, as the
  MBRCSL data does, so only a non-finite state ends a model rollout.
- Data stored as float32 compares against float32-rounded thresholds; a state within ~1e-7 of a bound
  may be judged differently from the float64 simulator.

`rules="offlinerl-kit"` gives OfflineRL-Kit's hand-written functions instead (`utils/termination_fns.py`,
which MOPO, MOBILE, COMBO and MOREC's releases use): HalfCheetah ends when any observation leaves
(-100, 100), Walker2d adds that range on every observation to its height and angle rule, and Hopper's
range test is one-sided (`abs` is applied to the comparison's result, so only `next_obs[1:] < 100`
counts). They differ from Gymnasium's only on diverging model states (|x| >= 100).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from offline_mbrl.core.errors import UserError

TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# Gymnasium v5 constructor defaults (hopper_v5.py, walker2d_v5.py); tests compare them with the envs.
HOPPER_HEALTHY_STATE_RANGE = (-100.0, 100.0)
HOPPER_HEALTHY_Z_RANGE = (0.7, float("inf"))
HOPPER_HEALTHY_ANGLE_RANGE = (-0.2, 0.2)
WALKER2D_HEALTHY_Z_RANGE = (0.8, 2.0)
WALKER2D_HEALTHY_ANGLE_RANGE = (-1.0, 1.0)
IDP_POLE_LENGTH = 0.6  # both poles, from the XML's `fromto="0 0 0 0 0 0.6"`
IDP_MIN_TIP_HEIGHT = 1.0


def _inside(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    return (x > bounds[0]) & (x < bounds[1])


def hopper_v5_unhealthy(next_obs: torch.Tensor) -> torch.Tensor:
    # obs = [z, angle, 3 joint angles, 6 clipped velocities]; obs[1:] stands in for state_vector()[2:].
    healthy = (
        _inside(next_obs[..., 1:], HOPPER_HEALTHY_STATE_RANGE).all(-1)
        & _inside(next_obs[..., 0], HOPPER_HEALTHY_Z_RANGE)
        & _inside(next_obs[..., 1], HOPPER_HEALTHY_ANGLE_RANGE)
    )
    return ~healthy


def walker2d_v5_unhealthy(next_obs: torch.Tensor) -> torch.Tensor:
    healthy = _inside(next_obs[..., 0], WALKER2D_HEALTHY_Z_RANGE) & _inside(
        next_obs[..., 1], WALKER2D_HEALTHY_ANGLE_RANGE
    )
    return ~healthy


def inverted_double_pendulum_tip_height(obs: torch.Tensor) -> torch.Tensor:
    """Height of the tip site above the rail from an InvertedDoublePendulum-v5 observation, `(...,)`."""
    sin1, sin2, cos1, cos2 = obs[..., 1], obs[..., 2], obs[..., 3], obs[..., 4]
    return IDP_POLE_LENGTH * cos1 + IDP_POLE_LENGTH * (cos1 * cos2 - sin1 * sin2)


def inverted_double_pendulum_v5_fallen(next_obs: torch.Tensor) -> torch.Tensor:
    return inverted_double_pendulum_tip_height(next_obs) <= IDP_MIN_TIP_HEIGHT


def _never(next_obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


_RULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "hopper": hopper_v5_unhealthy,
    "walker2d": walker2d_v5_unhealthy,
    "halfcheetah": _never,
    "pendulum": _never,
    "inverted-double-pendulum": inverted_double_pendulum_v5_fallen,
    "pointmaze": _never,
    "point2d": _never,
}


def _in_range_100(next_obs: torch.Tensor) -> torch.Tensor:
    return ((next_obs > -100.0) & (next_obs < 100.0)).all(-1)


def hopper_kit_unhealthy(next_obs: torch.Tensor) -> torch.Tensor:
    """OfflineRL-Kit's hopper rule: its `np.abs(next_obs[:, 1:] < 100)` is the one-sided test."""
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (next_obs[..., 1:] < 100.0).all(-1) & (height > 0.7) & (angle.abs() < 0.2)
    return ~healthy


def walker2d_kit_unhealthy(next_obs: torch.Tensor) -> torch.Tensor:
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = _in_range_100(next_obs) & (height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~healthy


def halfcheetah_kit_unhealthy(next_obs: torch.Tensor) -> torch.Tensor:
    return ~_in_range_100(next_obs)


_KIT_RULES = {
    **_RULES,
    "hopper": hopper_kit_unhealthy,
    "walker2d": walker2d_kit_unhealthy,
    "halfcheetah": halfcheetah_kit_unhealthy,
}
Rules = Literal["gymnasium", "offlinerl-kit"]


def _with_nonfinite(rule: Callable[[torch.Tensor], torch.Tensor]) -> TerminationFn:
    def terminated(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return rule(next_obs) | ~torch.isfinite(next_obs).all(-1)

    terminated.__name__ = f"terminated_{rule.__name__.strip('_')}"
    terminated.__doc__ = rule.__doc__
    return terminated


TERMINATION_FNS: dict[str, TerminationFn] = {env: _with_nonfinite(rule) for env, rule in _RULES.items()}
KIT_TERMINATION_FNS: dict[str, TerminationFn] = {env: _with_nonfinite(r) for env, r in _KIT_RULES.items()}


def termination_fn(env: str | None, gym_id: str, rules: Rules = "gymnasium") -> TerminationFn:
    """The termination function of an environment (`EnvSpec.env`); `gym_id` names it in errors; `rules`:
    Gymnasium v5's (default) or OfflineRL-Kit's hand-written ones."""
    table = TERMINATION_FNS if rules == "gymnasium" else KIT_TERMINATION_FNS
    fn = table.get(env) if env is not None else None
    if fn is None:
        known = ", ".join(sorted(TERMINATION_FNS))
        raise UserError(
            f"no termination function for environment {gym_id} (short name {env!r}); "
            f"known environments: {known}"
        )
    return fn
