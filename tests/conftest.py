"""Shared fixtures: every test gets its own Minari root and artefact cache, so nothing leaks between tests."""

from __future__ import annotations

import warnings

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from minari.data_collector import EpisodeBuffer

# Tiny networks run fastest on one thread, and a second thread competing with another process on a
# 2-core machine makes each step tens of times slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(tmp_path / "cache"))
    return tmp_path


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
