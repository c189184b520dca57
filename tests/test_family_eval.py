"""Family evaluation with a real (tiny) trained policy on a real family: Pendulum-v1's physics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from offline_mbrl.cli.report import register
from offline_mbrl.core.errors import UserError
from offline_mbrl.experiments import family_eval
from offline_mbrl.experiments.family_eval import evaluate_family, family_file
from offline_mbrl.launch import build_config, execute
from offline_mbrl.learning.run import run_dir_for
from offline_mbrl.report.build import make_report

from .conftest import synthetic_episode, write_minari
from .test_algorithms import PER_ALGO, TINY

DATASET = "test/pendulum/refs-v0"


@pytest.fixture
def bc_run(tmp_path):
    """A bc policy trained for 60 steps on a tiny Pendulum dataset that carries reference returns."""
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 100, "trunc") for _ in range(4)]
    for obs, *_ in episodes:
        obs[:, :2] /= np.linalg.norm(obs[:, :2], axis=1, keepdims=True)
    write_minari(DATASET, "Pendulum-v1", episodes, ref_min_score=-1500.0, ref_max_score=-150.0)
    cfg = build_config("bc", DATASET, seed=0, steps=60, overrides=[*TINY, *PER_ALGO["bc"]])
    execute(cfg, tmp_path / "results", progress=False)
    return run_dir_for(cfg, tmp_path / "results")


def test_every_member_is_evaluated_and_the_physics_changes_the_returns(bc_run):
    rec = evaluate_family(bc_run, "pendulum-physics", episodes=2, progress=False)
    saved = json.loads(family_file(bc_run, "pendulum-physics").read_text())
    assert saved == rec and rec["members"] == 8 and rec["episodes"] == 2
    assert np.array(rec["returns"]).shape == (8, 2) and np.array(rec["lengths"]).min() == 200
    assert len(set(rec["member_returns"])) == 8  # every member's physics gives different returns
    assert rec["member_params"][0].keys() == {"m", "l", "g"}
    scores = np.array(rec["normalized_scores"])
    np.testing.assert_allclose(scores, 100 * (np.array(rec["returns"]) + 1500.0) / 1350.0)
    assert rec["family_weighted_score"] == pytest.approx(scores.mean())
    assert rec["family_weighted_return"] == pytest.approx(np.mean(rec["member_returns"]))
    assert rec["weights"] == [0.125] * 8


def test_a_nominal_member_reproduces_the_runs_own_evaluation(bc_run, tmp_path):
    family = tmp_path / "nominal-pendulum.toml"
    family.write_text(
        'name = "nominal-pendulum"\nenv = "Pendulum-v1"\nmembers = 2\nseed = 0\ndescription = "nominal"\n'
        + "".join(
            f'[parameters.{p}]\ndistribution = "fixed"\nvalue = {v}\n'
            for p, v in [("m", 1.0), ("l", 1.0), ("g", 10.0)]
        )
    )
    rec = evaluate_family(bc_run, str(family), progress=False)  # episodes default: the run's final eval (2)
    final = json.loads((bc_run / "final.json").read_text())
    assert rec["returns"] == [final["returns"], final["returns"]]


def test_an_existing_evaluation_is_reused_unless_forced(bc_run, monkeypatch):
    first = evaluate_family(bc_run, "pendulum-physics", episodes=2, progress=False)

    def boom(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(family_eval, "evaluate", boom)
    assert evaluate_family(bc_run, "pendulum-physics", episodes=2, progress=False) == first
    with pytest.raises(AssertionError, match="evaluated again"):
        evaluate_family(bc_run, "pendulum-physics", episodes=2, force=True, progress=False)


def test_a_family_of_another_environment_is_refused(bc_run):
    with pytest.raises(UserError, match=r"family 'hopper-physics' is for Hopper-v5, but .* \(Pendulum-v1\)"):
        evaluate_family(bc_run, "hopper-physics", episodes=1, progress=False)
    assert not family_file(bc_run, "hopper-physics").exists()


def test_evaluate_command_then_the_report_treats_members_as_tasks(bc_run, tmp_path):
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "results"), "--family", "pendulum-physics", "--episodes", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "family-weighted mean score" in result.output and "m7" in result.output
    report = make_report([tmp_path / "results"], tmp_path / "out", reps=30, progress=False)
    family = report.families["pendulum-physics"]
    assert family.scope.tasks == [f"{DATASET}/m{k}" for k in range(8)]
    (summary,) = report.family_summaries
    rec = json.loads(family_file(bc_run, "pendulum-physics").read_text())
    assert summary.family_mean["bc"].point == pytest.approx(rec["family_weighted_score"])
