"""Shared fixtures: every test gets its own Minari root and artefact cache, so nothing leaks between tests."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from minari.data_collector import EpisodeBuffer

# Tiny networks run fastest on one thread, and a second thread competing with another process on a
# 2-core machine makes each step tens of times slower.
torch.set_num_threads(1)


# the run loop at its smallest: a metrics row, an evaluation and a checkpoint every 10 steps, one episode
TINY_LOOP = [
    "log_every=10",
    "eval_every=10",
    "checkpoint_every=10",
    "eval_episodes=1",
    "final_eval_episodes=1",
]


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def real_pendulum_episodes(episodes: int, steps: int) -> list:
    """Episodes of the real Pendulum-v1 under uniform random actions (seeded resets, rng seed 0), each cut
    by the time limit after `steps` steps: `(obs, act, rew, term, timeout)` as `write_minari` takes."""
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        o, a, r = [obs], [], []
        for _ in range(steps):
            act = rng.uniform(-2, 2, size=1).astype(np.float32)
            obs, rew, *_ = env.step(act)
            o.append(obs), a.append(act), r.append(rew)
        ends = np.eye(1, steps, steps - 1, dtype=bool)[0]
        out.append(
            (
                np.array(o, np.float32),
                np.array(a, np.float32),
                np.array(r, np.float32),
                np.zeros(steps, bool),
                ends,
            )
        )
    return out


def synthetic_episode(rng, obs_dim, act_dim, steps, end):
    """An episode with `steps` steps ending by 'term', 'trunc' or 'none'; obs rows are distinguishable."""
    obs = rng.normal(size=(steps + 1, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(steps, act_dim)).astype(np.float32)
    rew = rng.normal(size=steps).astype(np.float32)
    term = np.zeros(steps, dtype=bool)
    trunc = np.zeros(steps, dtype=bool)
    if end == "term":
        term[-1] = True
    elif end == "trunc":
        trunc[-1] = True
    return obs, act, rew, term, trunc


def write_minari(dataset_id, env_id, episodes, **kwargs):
    """Write a dataset the way an independent script would: Minari's own API, official layout."""
    env = gym.make(env_id)
    buffers = [
        EpisodeBuffer(id=i, observations=o, actions=a, rewards=r, terminations=t, truncations=u, infos={})
        for i, (o, a, r, t, u) in enumerate(episodes)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=kwargs.pop("env", env_id),
            algorithm_name="test",
            data_format="hdf5",
            observation_space=kwargs.pop("observation_space", env.observation_space),
            action_space=kwargs.pop("action_space", env.action_space),
            **kwargs,
        )
    env.close()


@pytest.fixture
def hopper_episodes():
    rng = np.random.default_rng(0)
    return [
        synthetic_episode(rng, 11, 3, 7, "term"),
        synthetic_episode(rng, 11, 3, 5, "trunc"),
        synthetic_episode(rng, 11, 3, 4, "term"),
    ]


@pytest.fixture
def tiny_pendulum():
    """Four 100-step Pendulum-shaped episodes written as a Minari dataset; its id."""
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 100, "trunc") for _ in range(4)]
    for obs, *_ in episodes:
        obs[:, :2] = obs[:, :2] / np.linalg.norm(
            obs[:, :2], axis=1, keepdims=True
        )  # (cos, sin) on the circle
    write_minari("test/pendulum/tiny-v0", "Pendulum-v1", episodes)
    return "test/pendulum/tiny-v0"


@contextlib.contextmanager
def killed_at(step: int, monkeypatch) -> Iterator[None]:
    """Inside the block, every run is interrupted (KeyboardInterrupt) when it flushes `step`'s metrics,
    right after its checkpoint there; the kill a resume test recovers from."""
    from offline_mbrl.learning.run import Run

    original = Run._flush

    def flush(self, done, extra=None, where=None):
        if done == step:
            raise KeyboardInterrupt
        return original(self, done, extra, where)

    monkeypatch.setattr(Run, "_flush", flush)
    try:
        yield
    finally:
        monkeypatch.setattr(Run, "_flush", original)
