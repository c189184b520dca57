"""MBRCSL's PointMaze stitching dataset: the environment, the waypoint controller, groups, made data."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.data.envs import POINTMAZE
from offline_mbrl.data.make import pointmaze as pm
from offline_mbrl.data.make.collect import default_size, made_dataset_id, make_dataset
from offline_mbrl.data.names import missing_dataset_message, resolve
from offline_mbrl.models.termination import termination_fn

from .test_cli import assert_one_line_error, run_cli

GOAL_RADIUS = 0.45  # Gymnasium-Robotics' "success" distance


def _goal_distance(obs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(obs[:, :2] - obs[:, 4:6], axis=1)


@pytest.fixture(scope="module")
def collected() -> pm.Collected:
    return pm.collect(8, seed=0)


@pytest.fixture
def made(monkeypatch) -> None:
    monkeypatch.setattr(pm, "REFERENCE_EPISODES", 3)
    summary = make_dataset("pointmaze-stitch", size=2000, seed=5)  # rounded down to 8 episodes
    assert (summary.transitions, summary.episodes) == (1600, 8)


def test_gymnasium_robotics_imports():
    import gymnasium_robotics
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

    assert gymnasium_robotics.__version__.startswith("1.")
    assert pm._point_maze_env_class() is PointMazeEnv


def test_registered_env_is_the_papers_maze_without_terminals():
    env = gym.make(POINTMAZE.gym_id)
    assert env.spec is not None and env.spec.max_episode_steps == 200
    assert env.observation_space.shape == (6,) and env.action_space.shape == (2,)
    maze = env.unwrapped.maze  # type: ignore[attr-defined]
    walls = [[1 if c == 1 else 0 for c in row] for row in maze.maze_map]
    assert walls == [list(r) for r in pm.MAZE_MAP]
    obs, _ = env.reset(seed=1)
    assert pm.cell_of(maze, obs[:2]) == pm.START_CELL and pm.cell_of(maze, obs[4:6]) == pm.GOAL_CELL
    # the expert reaches the goal, where Gymnasium-Robotics alone would terminate; here it runs on
    ep = pm.run_episode(env, 1, pm.expert_controller(env, np.random.default_rng(0)).act)
    assert len(ep.rew) == 200 and not ep.term.any() and ep.trunc.tolist() == [False] * 199 + [True]
    assert (_goal_distance(ep.obs) <= GOAL_RADIUS).any()
    np.testing.assert_allclose(ep.rew, np.exp(-_goal_distance(ep.obs[1:])), rtol=1e-5)
    env.close()


def test_shortest_paths_over_cells():
    assert pm.shortest_path(pm.MAZE_MAP, (1, 2), (2, 4)) == [(1, 2), (2, 2), (2, 3), (2, 4)]
    assert pm.shortest_path(pm.MAZE_MAP, (2, 1), (2, 4)) == [(2, 1), (2, 2), (2, 3), (2, 4)]
    assert pm.shortest_path(pm.MAZE_MAP, (1, 2), (1, 2)) == [(1, 2)]
    with pytest.raises(ValueError, match="no path"):
        pm.shortest_path(pm.MAZE_MAP, (1, 2), (0, 0))


def test_direct_route_reaches_the_goal_and_beats_every_group(collected):
    env = pm.make_env()
    for i in range(3):
        ep = pm.run_episode(env, 100 + i, pm.expert_controller(env, np.random.default_rng(i)).act)
        dist = _goal_distance(ep.obs)
        arrival = int(np.argmax(dist <= GOAL_RADIUS))
        assert dist[arrival] <= GOAL_RADIUS and arrival < 120  # well within the 200 steps
        assert dist[arrival:].max() <= GOAL_RADIUS  # and it stays there
        assert pm.episode_return(ep) > max(pm.episode_return(e) for e in collected.episodes) + 30
    env.close()
    refs = pm.reference_returns(4)
    assert refs.expert > 100 > 40 > refs.random


def test_groups_follow_their_routes(collected):
    assert collected.groups == [0, 0, 1, 1, 2, 2, 3, 3]
    maze = pm.make_env().unwrapped.maze  # type: ignore[attr-defined]
    for ep, g in zip(collected.episodes, collected.groups, strict=True):
        assert ep.obs.shape == (201, 6) and ep.act.shape == (200, 2) and not ep.term.any() and ep.trunc[-1]
        assert np.abs(ep.act).max() <= 1.0
        cells = {pm.cell_of(maze, xy) for xy in ep.obs[:, :2].astype(np.float64)}
        reached = bool((_goal_distance(ep.obs) <= GOAL_RADIUS).any())
        if g in (0, 1):  # to (2, 2) and stay: never the goal, still and near (2, 2)'s centre at the end
            assert not reached and cells <= {(1, 2), (2, 2)}
            assert pm.cell_of(maze, ep.obs[-1, :2]) == (2, 2)
            assert np.linalg.norm(ep.obs[-1, :2] - pm.cell_center(maze, (2, 2))) <= 0.5
            assert np.abs(ep.obs[-1, 2:4]).max() < 0.05
        else:  # the detour through (1, 1) and (2, 1) reaches the goal
            assert reached and {(1, 1), (2, 1), (2, 4)} <= cells
    g2 = [pm.episode_return(e) for e, g in zip(collected.episodes, collected.groups, strict=True) if g == 2]
    assert min(g2) > max(pm.episode_return(e) for e in collected.episodes[:4])
    # group 3 ends with uniform-random actions, group 2 holds still at its last sub-goal
    assert np.abs(collected.episodes[6].act[-20:]).mean() > 0.3
    assert np.abs(collected.episodes[4].act[-20:]).mean() < 0.1


def test_collection_is_deterministic_for_a_seed(collected):
    again = pm.collect(8, seed=0)
    for a, b in zip(collected.episodes, again.episodes, strict=True):
        for field in ("obs", "act", "rew", "term", "trunc"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
    other = pm.collect(4, seed=1)
    assert not np.array_equal(other.episodes[0].obs, collected.episodes[0].obs)


def test_made_dataset_loads_with_groups_references_and_no_terminals(made):
    ds = load_dataset("pointmaze-stitch")
    assert ds.dataset_id == made_dataset_id("pointmaze-stitch") == "offline-mbrl/pointmaze/stitch-v0"
    assert len(ds) == 1600 and ds.episode_lengths.tolist() == [200] * 8
    assert ds.data.term.sum() == 0
    ends = ds.episode_starts + ds.episode_lengths - 1
    assert torch.nonzero(ds.timeout).flatten().tolist() == ends.tolist()
    spec = ds.spec
    assert (spec.gym_id, spec.env, spec.obs_dim, spec.act_dim) == (POINTMAZE.gym_id, "pointmaze", 6, 2)
    assert spec.act_low == (-1.0, -1.0) and spec.act_high == (1.0, 1.0) and spec.max_episode_steps == 200
    info = ds.metadata["offline_mbrl"]
    assert (spec.ref_min, spec.ref_max) == (
        info["reference"]["random"]["mean_return"],
        info["reference"]["expert"]["mean_return"],
    )
    assert spec.ref_max > 100 > 40 > spec.ref_min and info["reference"]["episodes"] == 3
    assert info["episode_groups"] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [g["episodes"] for g in info["groups"]] == [2, 2, 2, 2]
    for g, group in enumerate(info["groups"]):
        assert group["mean_return"] == pytest.approx(ds.episode_returns[2 * g : 2 * g + 2].mean(), rel=1e-5)
    assert info["best_return"] == pytest.approx(ds.episode_returns.max(), rel=1e-5)
    assert "best trajectory return" in ds.metadata["description"]
    terminated = termination_fn(spec.env, spec.gym_id)
    assert not terminated(ds.data.obs, ds.data.act, ds.data.next_obs).any()
    nan = torch.full((1, 6), float("nan"))
    assert terminated(nan, nan[:, :2], nan).tolist() == [True]


def test_made_dataset_is_the_same_for_a_seed(made, monkeypatch):
    first = load_dataset("pointmaze-stitch")
    monkeypatch.setattr(pm, "REFERENCE_EPISODES", 3)
    make_dataset("pointmaze-stitch", size=1600, seed=5, overwrite=True)
    second = load_dataset("pointmaze-stitch")
    for name in ("obs", "act", "rew", "next_obs"):
        assert torch.equal(getattr(first.data, name), getattr(second.data, name))
    assert first.fingerprint == second.fingerprint
    with pytest.raises(UserError, match="already exists"):
        make_dataset("pointmaze-stitch", size=1600, seed=5)


def test_eval_env_replays_a_recorded_episode(made):
    ds = load_dataset("pointmaze-stitch")
    env = gym.make(ds.spec.gym_id)
    for k in (1, 6):  # a (2, 2) episode and a detour that ends with random actions
        seed = ds.metadata["offline_mbrl"]["episode_seeds"][k]
        rows = slice(int(ds.episode_starts[k]), int(ds.episode_starts[k] + ds.episode_lengths[k]))
        obs, _ = env.reset(seed=seed)
        assert np.array_equal(obs.astype(np.float32), ds.data.obs[rows][0].numpy())
        for act, rew, next_obs in zip(
            ds.data.act[rows], ds.data.rew[rows], ds.data.next_obs[rows], strict=True
        ):
            obs, r, term, trunc, _ = env.step(act.numpy())
            assert np.array_equal(obs.astype(np.float32), next_obs.numpy()) and np.float32(r) == rew.item()
            assert not term
        assert trunc
    env.close()


def test_names_sizes_and_bad_input():
    res = resolve("pointmaze-stitch-v0")
    assert (res.dataset_id, res.provenance, res.present) == (
        "offline-mbrl/pointmaze/stitch-v0",
        "made by offline-mbrl",
        False,
    )
    assert "offline-mbrl datasets make pointmaze-stitch`" in missing_dataset_message(res)
    assert default_size("pointmaze", "stitch") == 200_000 and pm.episodes_for_size(None) == 1000
    assert pm.episodes_for_size(2399) == 8
    with pytest.raises(UserError, match="at least 800"):
        pm.episodes_for_size(799)
    with pytest.raises(UserError, match="--family"):
        make_dataset("pointmaze-stitch", size=800, family="hopper-gravity")
    with pytest.raises(UserError, match="multiple of 4"):
        pm.collect(6, seed=0)


def test_missing_gymnasium_robotics_is_a_one_line_error(monkeypatch, capsys):
    for name in [m for m in sys.modules if m.startswith("gymnasium_robotics")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(UserError, match=r"pip install 'gymnasium-robotics>=1.4,<2'") as exc:
        gym.make(POINTMAZE.gym_id)
    assert "\n" not in str(exc.value)
    code, _, err = run_cli(capsys, "datasets", "make", "pointmaze-stitch", "--size", "800")
    assert_one_line_error(code, err, "gymnasium-robotics")
