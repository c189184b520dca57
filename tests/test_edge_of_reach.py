"""The edge-of-reach experiment end to end on real Pendulum data: six methods, the summary, the Q-curve
figure and the report; and MOPO on the true simulator is exactly MBPO there (its penalty is 0)."""

from __future__ import annotations

import pandas as pd
import pytest

from offline_mbrl.core.errors import UserError
from offline_mbrl.experiments.edge_of_reach import METHODS, edge_of_reach

from .test_mobile_combo import real_pendulum  # noqa: F401 - a fixture

TINY = [
    "steps=40",
    "eval_every=20",
    "log_every=10",
    "checkpoint_every=20",
    "eval_episodes=1",
    "final_eval_episodes=2",
    "dynamics.hidden=16,16",
    "dynamics.weight_decay=1e-5,1e-5,1e-5",
    "algo.rollout_batch=32",
    "algo.rollout_every=10",
    "algo.horizon=2",
    "algo.sac.actor_hidden=16,16",
    "algo.sac.critic_hidden=16,16",
    "ravl:algo.sac.critics=3",
]


def _run(dataset, tmp_path):
    return edge_of_reach(
        [dataset],
        budget="smoke",
        overrides=TINY,
        results_root=tmp_path / "results",
        out=tmp_path / "report",
        reps=200,
        progress=False,
        log=lambda _: None,
    )


def test_edge_of_reach_runs_six_methods_and_reports_q_curves(real_pendulum, tmp_path):  # noqa: F811
    result = _run(real_pendulum, tmp_path)
    assert len(result.cells) == len(METHODS) == 6
    assert all(c.status == "ran" for _, c in result.cells)
    summary = pd.read_csv(tmp_path / "report" / "edge_of_reach.csv")
    assert len(summary) == 6 and set(summary["dynamics"]) == {"ensemble", "oracle"}
    assert (tmp_path / "report" / "figures" / "q_curves.png").stat().st_size > 10_000
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Q-value curves" in html and "true simulator" in html
    # On the true simulator MOPO's penalty is exactly 0, so the run is MBPO's, step for step.
    runs = {(m.algorithm, m.dynamics): c for m, c in result.cells}
    mopo, mbpo = runs[("mopo", "oracle")], runs[("mbpo", "oracle")]
    assert mopo.final is not None and mbpo.final is not None
    assert mopo.final["returns"] == mbpo.final["returns"]
    curve = lambda c: pd.read_json(c.run_dir / "metrics.jsonl", lines=True)["q_mean"].tolist()  # noqa: E731
    assert curve(mopo) == curve(mbpo)
    assert curve(runs[("mopo", "ensemble")]) != curve(runs[("mbpo", "ensemble")])  # a real penalty there
    # a rerun reuses every finished cell
    again = _run(real_pendulum, tmp_path)
    assert all(c.status == "reused" for _, c in again.cells)


def test_edge_of_reach_bad_input_is_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown budget 'huge'"):
        edge_of_reach(["pendulum-medium-replay"], budget="huge")
    with pytest.raises(UserError, match="--seeds must be positive"):
        edge_of_reach(["pendulum-medium-replay"], seeds=0)
    with pytest.raises(UserError, match="needs at least one --dataset"):
        edge_of_reach([])
