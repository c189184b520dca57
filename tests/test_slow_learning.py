"""Slow: learning actually happens on the small tier, from the committed behaviour policies.

Run with `python -m pytest -m slow` (a few minutes on a 2-core CPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from offline_mbrl.data import load_dataset
from offline_mbrl.datasets.make import make_dataset
from offline_mbrl.launch import build_config, execute

pytestmark = pytest.mark.slow


def test_mbpo_learns_far_above_the_medium_replay_behaviour(tmp_path):
    make_dataset("pendulum-medium-replay", seed=0)
    behaviour = float(
        np.mean(
            load_dataset("pendulum-medium-replay").spec.normalize(
                load_dataset("pendulum-medium-replay").episode_returns
            )
        )
    )
    cfg = build_config(
        "mbpo",
        "pendulum-medium-replay",
        seed=0,
        steps=6000,
        overrides=[
            "algo.rollout_batch=2000",
            "eval_every=2000",
            "checkpoint_every=2000",
            "eval_episodes=5",
            "final_eval_episodes=10",
            "dynamics.max_epochs=40",
        ],
    )
    final = execute(cfg, tmp_path, progress=False)
    assert behaviour < 20.0  # the data: early PPO checkpoints, mostly swinging near the bottom
    assert final["normalized_score"] > behaviour + 50.0
