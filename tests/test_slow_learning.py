"""Slow: learning actually happens on the small tier, from the committed behaviour policies.

Every registered algorithm with a `learning_check` (its AlgorithmSpec brings the steps, settings and
margin) trains on pendulum-medium-replay; its final normalised score must beat the data's mean by the
margin. Run with `python -m pytest -m slow` (minutes per algorithm on a 2-core CPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from offline_mbrl.algorithms import algorithms, get_spec
from offline_mbrl.data import load_dataset
from offline_mbrl.datasets.make import make_dataset
from offline_mbrl.launch import build_config, execute

pytestmark = pytest.mark.slow

COMMON = [
    "eval_every=2000",
    "checkpoint_every=2000",
    "eval_episodes=5",
    "final_eval_episodes=10",
    "dynamics.max_epochs=40",
]


@pytest.mark.parametrize("algo", sorted(a for a, s in algorithms().items() if s.learning_check is not None))
def test_learns_above_the_medium_replay_behaviour(algo, tmp_path):
    check = get_spec(algo).learning_check
    assert check is not None
    make_dataset("pendulum-medium-replay", seed=0)
    data = load_dataset("pendulum-medium-replay")
    behaviour = float(np.mean(data.spec.normalize(data.episode_returns)))
    cfg = build_config(
        algo, "pendulum-medium-replay", seed=0, steps=check.steps, overrides=[*COMMON, *check.overrides]
    )
    final = execute(cfg, tmp_path, progress=False)
    assert behaviour < 20.0  # the data: early PPO checkpoints, mostly swinging near the bottom
    assert final["normalized_score"] > behaviour + check.margin, (final["normalized_score"], behaviour)
