"""The true-simulator dynamics against transitions recorded from the Gymnasium environments themselves.

Each environment is stepped with random actions from a fixed seed (resetting on termination or
truncation) and every recorded (obs, act) is replayed through the oracle. Measured max |error| on these
recordings (next obs; reward): hopper 2.3e-15; 2.6e-10, walker2d 1.5e-13; 4.0e-10, halfcheetah 2.5e-13;
4.3e-8, inverted-double-pendulum 1.3e-15; 8.9e-16 (1.4e-14; 4.6e-14 at the slider limit), pendulum
4.5e-7; 3.8e-7 (MuJoCo 4.0.1, gymnasium 1.4.0). The locomotion reward errors are the env's float32
control cost (it squares the float32 action); pendulum's come from its float32 observations. The
tolerances below leave headroom for other BLAS/CPU rounding. Transitions whose recorded observation holds
a velocity clipped at ±10 are excluded, since the clip loses the true velocity: none of hopper's 300,
636 of walker2d's 800 (its random-action falls clip often, hence the longer recording).
"""

from __future__ import annotations

import functools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from offline_mbrl.core.errors import UserError
from offline_mbrl.learning.rollout import rollout
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble
from offline_mbrl.models.oracle import (
    LOCOMOTION,
    SUPPORTED,
    InvertedDoublePendulumSimulator,
    OracleDynamics,
    PendulumSimulator,
    simulator,
)
from offline_mbrl.models.termination import termination_fn


@functools.cache
def record(gym_id: str, steps: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """`steps` random-action transitions of the real env: obs, act, next_obs, rew, terminated."""
    env = gym.make(gym_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        act = env.action_space.sample()
        next_obs, rew, term, trunc, _ = env.step(act)
        rows.append((obs, act, next_obs, rew, term))
        obs = next_obs
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    obs_, act_, next_, rew_, term_ = zip(*rows, strict=True)
    as64 = [np.asarray(x, dtype=np.float64) for x in (obs_, act_, next_, rew_)]
    return (*as64, np.asarray(term_, dtype=bool))


# name, gym id, recorded steps, clipped-velocity slice of the obs, next-obs tolerance, reward tolerance
CASES = [
    ("hopper", "Hopper-v5", 300, slice(5, 11), 1e-9, 1e-6),
    ("walker2d", "Walker2d-v5", 800, slice(8, 17), 1e-9, 1e-6),
    ("halfcheetah", "HalfCheetah-v5", 300, None, 1e-9, 1e-6),
    ("inverted-double-pendulum", "InvertedDoublePendulum-v5", 300, slice(5, 8), 1e-9, 1e-9),
    ("pendulum", "Pendulum-v1", 300, None, 1e-5, 1e-5),
]


def usable(name: str) -> tuple[np.ndarray, ...]:
    """The recorded transitions of `name` whose observation holds no clipped velocity."""
    _, gym_id, steps, velocities, _, _ = next(c for c in CASES if c[0] == name)
    obs, act, next_obs, rew, term = record(gym_id, steps)
    keep = np.ones(len(obs), dtype=bool)
    if velocities is not None:
        keep = (np.abs(obs[:, velocities]) < 10.0).all(axis=1)
    return obs[keep], act[keep], next_obs[keep], rew[keep], term[keep]


@pytest.mark.parametrize(("name", "gym_id", "steps", "velocities", "obs_tol", "rew_tol"), CASES)
def test_simulator_reproduces_recorded_env_transitions(name, gym_id, steps, velocities, obs_tol, rew_tol):
    obs, act, next_obs, rew, term = usable(name)
    assert len(obs) >= 100
    if name in ("hopper", "walker2d", "inverted-double-pendulum"):
        assert term.any() and (~term).any()  # both healthy and terminal steps are checked
    sim = simulator(name, gym_id)
    got_obs, got_rew = sim.step(obs, act)
    assert got_obs.shape == next_obs.shape and got_rew.shape == rew.shape
    assert np.abs(got_obs - next_obs).max() < obs_tol
    assert np.abs(got_rew - rew).max() < rew_tol
    # The suite's termination rule on the oracle's next state agrees with the env's flag.
    ended = termination_fn(name, gym_id)(*(torch.from_numpy(x) for x in (obs, act, got_obs)))
    assert ended.numpy().tolist() == term.tolist()


def test_inverted_double_pendulum_at_the_slider_limit():
    """Random episodes end before the cart reaches the rail's end; bang-bang pushes of the bare env
    (ignoring termination, the physics stays valid) make the constraint force of the observation, which
    the oracle reads from MuJoCo after the step as the env does, non-zero."""
    env = gym.make("InvertedDoublePendulum-v5").unwrapped
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for t in range(200):
        act = np.array([1.0 if (t // 25) % 2 == 0 else -1.0]) * rng.uniform(0.3, 1.0)
        next_obs, rew, *_ = env.step(act)
        rows.append((obs, act, next_obs, rew))
        obs = next_obs
    env.close()
    obs_, act_, next_, rew_ = (np.asarray(x, dtype=np.float64) for x in zip(*rows, strict=True))
    keep = (np.abs(obs_[:, 5:8]) < 10.0).all(axis=1)
    assert (next_[keep, 8] != 0).sum() >= 20  # the slider limit is active
    got_obs, got_rew = simulator("inverted-double-pendulum", "InvertedDoublePendulum-v5").step(
        obs_[keep], act_[keep]
    )
    assert np.abs(got_obs - next_[keep]).max() < 1e-9  # measured 1.4e-14
    assert np.abs(got_rew - rew_[keep]).max() < 1e-9  # measured 4.6e-14


@pytest.mark.parametrize(
    ("name", "gym_id"), [("hopper", "Hopper-v5"), ("inverted-double-pendulum", "InvertedDoublePendulum-v5")]
)
def test_two_threads_give_the_same_transitions(name, gym_id):
    obs, act, *_ = usable(name)
    one = simulator(name, gym_id, threads=1).step(obs, act)
    two = simulator(name, gym_id, threads=2).step(obs, act)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


def test_constants_are_the_v5_defaults():
    for name, task in LOCOMOTION.items():
        env = gym.make(task.gym_id).unwrapped
        assert task.ctrl_cost_weight == env._ctrl_cost_weight
        assert task.forward_reward_weight == env._forward_reward_weight
        if name != "halfcheetah":
            assert task.healthy_reward == env._healthy_reward
            assert task.healthy_z == env._healthy_z_range
            assert task.healthy_angle == env._healthy_angle_range
            assert env._terminate_when_unhealthy
        assert task.healthy_state == getattr(env, "_healthy_state_range", None)
        env.close()
    assert (
        InvertedDoublePendulumSimulator.HEALTHY_REWARD
        == gym.make("InvertedDoublePendulum-v5").unwrapped._healthy_reward
    )
    pend = gym.make("Pendulum-v1").unwrapped
    p = PendulumSimulator
    assert (p.G, p.M, p.L, p.DT, p.MAX_SPEED, p.MAX_TORQUE) == (
        pend.g,
        pend.m,
        pend.l,
        pend.dt,
        pend.max_speed,
        pend.max_torque,
    )


def test_pure_oracle_prediction_is_the_truth_with_zero_std():
    obs, act, next_obs, rew, _ = (torch.from_numpy(x) for x in usable("hopper"))
    obs32, act32 = obs[:50].float(), act[:50].float()
    oracle = OracleDynamics("hopper", "Hopper-v5", 11, 3, members=7, elites=5)
    with torch.no_grad():
        pred = oracle.predict(obs32, act32)
    assert pred.mean.shape == (7, 50, 12) and pred.mean.dtype == torch.float32
    assert torch.equal(pred.std, torch.zeros_like(pred.mean))
    assert pred.elites.tolist() == [0, 1, 2, 3, 4] and oracle.elites.tolist() == [0, 1, 2, 3, 4]
    true_obs, true_rew = simulator("hopper", "Hopper-v5").step(obs32.double().numpy(), act32.double().numpy())
    truth = torch.from_numpy(np.concatenate([true_obs, true_rew[:, None]], axis=1)).float()
    assert all(torch.equal(pred.mean[i], truth) for i in range(7))
    sample_obs, sample_rew, member = pred.sample(torch.Generator().manual_seed(0))
    assert torch.equal(sample_obs, truth[:, :-1]) and torch.equal(sample_rew, truth[:, -1])
    assert set(member.tolist()) <= {0, 1, 2, 3, 4}
    # float32 rounding of the inputs only: still the recorded transition to float32 precision
    assert torch.allclose(sample_obs.double(), next_obs[:50], atol=1e-4)
    assert oracle.eval() is oracle and oracle.to("cpu") is oracle


def test_mix_interpolates_member_by_member_with_the_learned_ensemble():
    obs, act, *_ = (torch.from_numpy(x).float() for x in usable("hopper"))
    obs, act = obs[:20], act[:20]
    learned = DynamicsEnsemble(11, 3, DynamicsConfig(hidden=(8, 8), weight_decay=(0, 0, 0)))
    learned.elites = torch.tensor([3, 1, 0, 6, 2])
    truth = OracleDynamics("hopper", "Hopper-v5", 11, 3).truth(obs, act)
    with torch.no_grad():
        ref = learned.predict(obs, act)
        half = OracleDynamics("hopper", "Hopper-v5", 11, 3, learned=learned, mix=0.5).predict(obs, act)
        zero = OracleDynamics("hopper", "Hopper-v5", 11, 3, learned=learned, mix=0.0).predict(obs, act)
    assert torch.allclose(half.mean, (ref.mean + truth) / 2, atol=1e-5)
    assert torch.allclose(half.std, ref.std / 2)
    assert torch.equal(half.elites, learned.elites)
    assert torch.equal(zero.mean, ref.mean) and torch.equal(zero.std, ref.std)


@pytest.mark.parametrize("mix", [-0.1, 1.5, math.nan])
def test_mix_outside_unit_interval_is_a_user_error(mix):
    with pytest.raises(UserError, match="mix"):
        OracleDynamics("pendulum", "Pendulum-v1", 3, 1, mix=mix)


def test_mix_below_one_needs_a_learned_ensemble():
    with pytest.raises(UserError, match="learned ensemble"):
        OracleDynamics("pendulum", "Pendulum-v1", 3, 1, mix=0.3)


@pytest.mark.parametrize(("env", "gym_id"), [(None, "CartPole-v1"), ("ant", "Ant-v5")])
def test_unknown_environment_is_a_one_line_user_error(env, gym_id):
    with pytest.raises(UserError) as err:
        simulator(env, gym_id)
    message = str(err.value)
    assert "\n" not in message and gym_id in message
    assert all(name in message for name in SUPPORTED)
    with pytest.raises(UserError):
        OracleDynamics(env, gym_id, 4, 1)


def test_exact_gym_id_stands_in_for_a_missing_short_name():
    assert simulator(None, "Pendulum-v1").obs_dim == 3


def test_mismatched_dimensions_are_user_errors():
    with pytest.raises(UserError, match="obs_dim"):
        OracleDynamics("hopper", "Hopper-v5", 12, 3)
    learned = DynamicsEnsemble(3, 1, DynamicsConfig(hidden=(8, 8), weight_decay=(0, 0, 0)))
    with pytest.raises(UserError, match="learned ensemble"):
        OracleDynamics("hopper", "Hopper-v5", 11, 3, learned=learned, mix=0.5)
    oracle = OracleDynamics("pendulum", "Pendulum-v1", 3, 1)
    with pytest.raises(UserError):
        oracle.predict(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(UserError):
        oracle.predict(torch.zeros(4, 3), torch.zeros(5, 1))
    with pytest.raises(UserError):
        simulator("hopper", "Hopper-v5").step(np.zeros((2, 11)), np.zeros((2, 6)))


@pytest.mark.parametrize(
    ("name", "gym_id", "dims"),
    [("hopper", "Hopper-v5", (11, 3)), ("inverted-double-pendulum", "InvertedDoublePendulum-v5", (9, 1))],
)
def test_states_mujoco_rejects_give_nan_and_leave_the_others_alone(name, gym_id, dims, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo appends its warnings to ./MUJOCO_LOG.TXT
    obs, act, next_obs, rew, _ = usable(name)
    obs, act = obs[:4].copy(), act[:4]
    obs[1, 2], obs[2, -2] = np.nan, 1e12  # a non-finite position, a velocity beyond MuJoCo's bound
    got_obs, got_rew = simulator(name, gym_id).step(obs, act)
    assert np.isnan(got_obs).all(axis=1).tolist() == [False, True, True, False]
    assert np.isnan(got_rew).tolist() == [False, True, True, False]
    assert np.abs(got_obs[[0, 3]] - next_obs[[0, 3]]).max() < 1e-9


def test_rollout_runs_on_the_oracle():
    obs, act, *_ = usable("walker2d")
    start = torch.from_numpy(obs[:6]).float()
    oracle = OracleDynamics("walker2d", "Walker2d-v5", 17, 6)
    generator = torch.Generator().manual_seed(0)

    def policy(o: torch.Tensor) -> torch.Tensor:
        return torch.rand(o.shape[0], 6, generator=generator) * 2 - 1

    ro = rollout(oracle, policy, start, 3, termination_fn("walker2d", "Walker2d-v5"), generator=generator)
    assert ro.obs.shape == (3, 6, 17) and ro.rew.shape == (3, 6) and ro.alive[0].all()
    truth = oracle.truth(ro.obs[0], ro.act[0])
    assert torch.equal(ro.next_obs[0], truth[:, :-1]) and torch.equal(ro.rew[0], truth[:, -1])


def test_an_old_mujoco_is_a_user_error(monkeypatch):
    monkeypatch.setattr("mujoco.__version__", "3.3.7")
    with pytest.raises(UserError, match="MuJoCo >= 4.0"):
        simulator("hopper", "Hopper-v5")


@pytest.mark.parametrize("env", ["hopper", "walker2d", "halfcheetah", "inverted-double-pendulum", "pendulum"])
def test_oracle_reproduces_the_suites_own_dataset_transitions(env):
    """The data path a run uses: a dataset made by the suite (`datasets make`, the committed medium
    policy), stored by Minari and flattened by `load_dataset`. Its observations are float32, so the
    rebuilt state carries float32 rounding: tolerance 1e-4 on states and rewards. Transitions whose
    recorded observation holds a velocity clipped at ±10 are left out (not recoverable)."""
    from offline_mbrl.data.dataset import load_dataset
    from offline_mbrl.data.make.collect import make_dataset

    make_dataset(f"{env}-medium", size=300, seed=0)
    ds = load_dataset(f"{env}-medium")
    data = ds.data
    oracle = OracleDynamics(ds.spec.env, ds.spec.gym_id, ds.spec.obs_dim, ds.spec.act_dim)
    truth = oracle.truth(data.obs, data.act).double()
    keep = torch.ones(len(data.obs), dtype=torch.bool)
    clipped = {"hopper": slice(5, 11), "walker2d": slice(8, 17), "inverted-double-pendulum": slice(5, 8)}
    if env in clipped:
        keep = (data.obs[:, clipped[env]].abs() < 10).all(1) & (
            data.next_obs[:, clipped[env]].abs() < 10
        ).all(1)
    assert keep.sum() >= 100
    state_err = (truth[keep, :-1] - data.next_obs[keep].double()).abs().max().item()
    reward_err = (truth[keep, -1] - data.rew[keep].double()).abs().max().item()
    assert state_err < 1e-4 and reward_err < 1e-4, (state_err, reward_err)
