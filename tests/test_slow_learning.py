"""Slow: learning actually happens on the small tier, from the committed behaviour policies.

Every registered algorithm with a `learning_check` (its AlgorithmSpec brings the steps, settings and
margin) trains on pendulum-medium-replay; its final normalised score must beat the data's mean by the
margin. Run with `python -m pytest -m slow` (minutes per algorithm on a 2-core CPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from offline_mbrl.algorithms import algorithms, get_spec
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.data.make.collect import make_dataset
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


def test_mbrcsl_stitches_on_the_pointmaze_task(tmp_path):
    """MBRCSL's own task: the kept model rollouts beat every trajectory of the data, and the policy trained
    on them alone scores well above the data's mean in the real maze (about 6 minutes here: a 10-epoch
    dynamics fit, a Gaussian behaviour policy, up to 60 batches of 100 rollouts)."""
    import json

    from offline_mbrl.learning.run import run_dir_for

    make_dataset("pointmaze-stitch", seed=0)
    data = load_dataset("pointmaze-stitch")
    best, mean = data.episode_returns.max(), float(np.mean(data.spec.normalize(data.episode_returns)))
    overrides = [
        "eval_every=1000",
        "checkpoint_every=1000",
        "eval_episodes=5",
        "final_eval_episodes=20",
        "dynamics.max_epochs=10",
        "algo.behaviour.kind=gaussian",
        "algo.behaviour.steps=10000",
        "algo.rollout_batch=100",
        "algo.max_batches=60",
        "algo.hidden=256,256",
    ]
    cfg = build_config("mbrcsl", "pointmaze-stitch", seed=0, steps=10_000, overrides=overrides)
    final = execute(cfg, tmp_path, progress=False)
    rows = [
        json.loads(line) for line in (run_dir_for(cfg, tmp_path) / "metrics.jsonl").read_text().splitlines()
    ]
    kept = next(r for r in rows if r.get("phase") == "rollouts")
    assert kept["rollouts/kept"] >= 100 and kept["rollouts/threshold"] == pytest.approx(best)
    assert kept["rollouts/kept_return_mean"] > best  # every kept rollout beats the best dataset episode
    assert final["normalized_score"] > mean + 15.0, (final["normalized_score"], mean)
