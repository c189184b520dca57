"""Termination functions against the real Gymnasium v5 environments' own `terminated` flags."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

from offline_mbrl.core.errors import UserError
from offline_mbrl.models import termination as T
from offline_mbrl.models.termination import termination_fn


def roll(gym_id: str, steps: int, bias: float | None, seed: int) -> dict[str, np.ndarray]:
    """(obs, act, next_obs, terminated) over several episodes; `bias` pushes every action to one side."""
    env = gym.make(gym_id)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    rows: dict[str, list] = {
        k: [] for k in ("obs", "act", "next_obs", "terminated", "tip_env", "tip", "qvel_max")
    }
    data = getattr(env.unwrapped, "data", None)  # MuJoCo state; Pendulum-v1 has none
    scratch = mujoco.MjData(env.unwrapped.model) if data is not None else None
    obs, _ = env.reset(seed=seed)
    episode = 0
    for _ in range(steps):
        act = rng.uniform(low, high)
        if bias is not None:
            act = np.clip(act * 0.5 + bias * high, low, high)
        next_obs, _, terminated, truncated, _ = env.step(act)
        rows["obs"].append(obs)
        rows["act"].append(act)
        rows["next_obs"].append(next_obs)
        rows["terminated"].append(terminated)
        if data is not None:
            rows["qvel_max"].append(np.abs(data.qvel).max())
            if data.site_xpos.shape[0]:  # the double pendulum's tip: as the env read it, and exact
                rows["tip_env"].append(data.site_xpos[0][2])
                scratch.qpos[:] = data.qpos
                mujoco.mj_kinematics(env.unwrapped.model, scratch)
                rows["tip"].append(scratch.site_xpos[0][2])
        obs = next_obs
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + 1000 * episode)
    env.close()
    return {k: np.asarray(v) for k, v in rows.items()}


def judge(env: str, gym_id: str, rows: dict[str, np.ndarray], dtype=torch.float64) -> np.ndarray:
    fn = termination_fn(env, gym_id)
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    out = fn(as_t(rows["obs"]), as_t(rows["act"]), as_t(rows["next_obs"]))
    assert out.dtype == torch.bool and out.shape == (len(rows["obs"]),)
    return out.numpy()


POLICIES = [(None, 0), (None, 1), (0.6, 2), (-0.6, 3)]  # random, random, biased +, biased -


@pytest.mark.parametrize(
    "env,gym_id",
    [
        ("hopper", "Hopper-v5"),
        ("walker2d", "Walker2d-v5"),
        ("inverted-double-pendulum", "InvertedDoublePendulum-v5"),
    ],
)
def test_reproduces_the_environment_terminated_flag(env, gym_id):
    rows = [roll(gym_id, 200, bias, seed) for bias, seed in POLICIES]
    rows = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    want = rows["terminated"]
    assert 10 < want.sum() < len(want) - 10, "the rollouts must contain both terminal and live steps"
    if env == "hopper":
        # The one documented approximation (unclipped qvel >= 100) never arises here, so agreement is exact.
        assert rows["qvel_max"].max() < 100
    np.testing.assert_array_equal(judge(env, gym_id, rows), want)
    # Stored datasets are float32; these states are not within float32 rounding of a bound.
    np.testing.assert_array_equal(judge(env, gym_id, rows, torch.float32), want)


def test_inverted_double_pendulum_tip_height_from_the_observation():
    rows = roll("InvertedDoublePendulum-v5", 300, None, 7)
    height = T.inverted_double_pendulum_tip_height(torch.as_tensor(rows["next_obs"])).numpy()
    # Exact geometry: the kinematics of the observed qpos.
    np.testing.assert_allclose(height, rows["tip"], rtol=0, atol=1e-12)
    # The env's own reading lags by the last RK4 stage (documented in termination.py).
    stale = np.abs(height - rows["tip_env"]).max()
    assert 0 < stale < 1e-4


@pytest.mark.parametrize("env,gym_id", [("halfcheetah", "HalfCheetah-v5"), ("pendulum", "Pendulum-v1")])
def test_never_terminating_environments(env, gym_id):
    rows = roll(gym_id, 300, None, 0) if env == "halfcheetah" else roll(gym_id, 250, 0.8, 0)
    assert not rows["terminated"].any()
    assert not judge(env, gym_id, rows).any()


def test_constants_are_the_v5_defaults():
    hopper = gym.make("Hopper-v5").unwrapped
    walker = gym.make("Walker2d-v5").unwrapped
    assert hopper._healthy_state_range == T.HOPPER_HEALTHY_STATE_RANGE
    assert hopper._healthy_z_range == T.HOPPER_HEALTHY_Z_RANGE
    assert hopper._healthy_angle_range == T.HOPPER_HEALTHY_ANGLE_RANGE
    assert walker._healthy_z_range == T.WALKER2D_HEALTHY_Z_RANGE
    assert walker._healthy_angle_range == T.WALKER2D_HEALTHY_ANGLE_RANGE


def test_bounds_are_strict_and_leading_dims_are_kept():
    hopper = termination_fn("hopper", "Hopper-v5")
    walker = termination_fn("walker2d", "Walker2d-v5")
    obs = torch.zeros(2, 3, 11, dtype=torch.float64)  # (E, B, obs_dim)
    obs[..., 0] = 1.25
    obs[0, 0, 0] = 0.7  # on the height bound: v5's `min_z < z` fails
    obs[0, 1, 1] = 0.2  # on the angle bound
    obs[1, 2, 7] = 100.0  # a model-predicted velocity on the state bound
    done = hopper(obs, None, obs)
    assert done.shape == (2, 3)
    assert done.tolist() == [[True, True, False], [False, False, True]]
    w = torch.zeros(4, 17, dtype=torch.float64)
    w[:, 0] = torch.tensor([0.8, 2.0, 1.2, 1.2], dtype=torch.float64)
    w[:, 1] = torch.tensor([0.0, 0.0, 1.0, -0.99], dtype=torch.float64)
    assert walker(w, None, w).tolist() == [True, True, True, False]


@pytest.mark.parametrize("env", sorted(T.TERMINATION_FNS))
def test_non_finite_next_obs_always_terminates(env):
    dim = {
        "hopper": 11,
        "walker2d": 17,
        "halfcheetah": 17,
        "pendulum": 3,
        "inverted-double-pendulum": 9,
        "pointmaze": 6,
        "point2d": 2,
    }[env]
    obs = torch.zeros(3, dim)
    if env in ("hopper", "walker2d"):
        obs[:, 0] = 1.25  # a healthy height
    if env == "inverted-double-pendulum":
        obs[:, 3:5] = 1.0  # both cosines 1: upright
    obs[1, -1] = float("nan")
    obs[2, -1] = float("inf")
    assert termination_fn(env, "X-v0")(obs, None, obs).tolist() == [False, True, True]


@pytest.mark.parametrize("env", [None, "ant", "hop", "hopper-medium", "Hopper-v5"])
def test_unknown_family_is_a_user_error(env):
    with pytest.raises(UserError, match="no termination function for environment AntMaze_UMaze-v4"):
        termination_fn(env, "AntMaze_UMaze-v4")
