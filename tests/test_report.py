"""Reports on hand-built results: the tidy table, rliable numbers checked against direct rliable calls,
probability of improvement, family-weighted means and ranking flips, and each error that explains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from rliable import library, metrics
from typer.testing import CliRunner

from offline_mbrl.cli.report import register
from offline_mbrl.core.errors import UserError
from offline_mbrl.report.build import make_report
from offline_mbrl.report.table import load_results, select

REPS = 60  # tests check equality with rliable at equal reps, not interval quality


def write_run(
    root: Path,
    algo: str,
    dataset: str,
    seed: int,
    score: float | None,
    *,
    raw: float | None = None,
    fingerprint: str | None = None,
    algo_cfg: dict | None = None,
    steps: int = 1000,
    family: dict | None = None,
) -> Path:
    """A finished run as `Run.finish` writes it: final.json and config.json (no policy: reports read files).

    `family`: {"name": ..., "scores": [per-member normalised score]} adds family_<name>.json."""
    algo_cfg = {"horizon": 5, "hidden": [32, 32], **(algo_cfg or {})}
    tag = abs(hash((json.dumps(algo_cfg, sort_keys=True), steps))) % 10**8
    run_dir = root / algo / dataset / f"seed{seed}-{tag:08d}"
    run_dir.mkdir(parents=True)
    raw = raw if raw is not None else 10.0 * score
    final = {
        "algorithm": algo,
        "dataset": dataset,
        "dataset_id": f"test/{dataset}-v0",
        "dataset_fingerprint": fingerprint or f"test/{dataset}-v0@hash-{dataset}",
        "seed": seed,
        "dynamics_seed": seed,
        "steps": steps,
        "returns": [raw - 1.0, raw + 1.0],
        "lengths": [100, 100],
        "normalized_scores": None if score is None else [score - 0.1, score + 0.1],
        "normalized_score": score,
        "return_mean": raw,
        "score_note": "dataset metadata" if score is not None else "no reference returns",
        "wall_time": 3.0,
        "device": "cpu",
    }
    (run_dir / "final.json").write_text(json.dumps(final))
    config = {
        "algorithm": algo,
        "dataset": dataset,
        "seed": seed,
        "steps": steps,
        "device": "cpu",
        "dynamics_seed": seed,
        "algo": algo_cfg,
        "dynamics": {"members": 7, "hidden": [200, 200], "seed": seed},
    }
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    if family is not None:
        scores = family["scores"]
        params = [{"m": 1.0 + 0.1 * k, "l": 1.0} for k in range(len(scores))]
        record = {
            "family": family["name"],
            "member_params": params,
            "returns": [[10.0 * s] * 2 for s in scores],
            "member_returns": [10.0 * s for s in scores],
            "member_scores": list(scores),
        }
        (run_dir / f"family_{family['name']}.json").write_text(json.dumps(record))
    return run_dir


# Scores per (algorithm, dataset): distinct per seed, no ties between algorithms.
SCORES = {
    ("mopo", "hopper-medium"): [61.0, 72.5, 55.25, 80.0],
    ("mopo", "walker2d-medium"): [40.0, 85.5, 77.0, 66.0],
    ("ravl", "hopper-medium"): [90.0, 35.5, 70.25, 88.0],
    ("ravl", "walker2d-medium"): [95.0, 91.0, 20.5, 60.0],
}


def write_grid(root: Path, scores=SCORES) -> None:
    for (algo, dataset), values in scores.items():
        for seed, s in enumerate(values):
            write_run(root, algo, dataset, seed, s)


def test_tidy_table_has_one_row_per_run_and_family_member(tmp_path):
    write_grid(tmp_path)
    write_run(tmp_path, "bc", "hopper-medium", 0, 30.0, family={"name": "hop", "scores": [10.0, 20.0, 30.0]})
    df = load_results([tmp_path])
    nominal = df[df["family"] == "nominal"]
    assert len(nominal) == 17 and len(df) == 20
    core = ["method", "algorithm", "dataset", "task", "family", "member", "seed", "dynamics_seed"]
    assert list(df.columns[: len(core)]) == core
    for col in ("normalized_score", "raw_return", "steps", "wall_time", "algo.horizon", "dynamics.members"):
        assert col in df.columns
    assert "dynamics.seed" not in df.columns  # the dynamics_seed column already says it
    row = nominal[(nominal["algorithm"] == "ravl") & (nominal["dataset"] == "walker2d-medium")]
    assert row.sort_values("seed")["normalized_score"].tolist() == SCORES[("ravl", "walker2d-medium")]
    assert row["raw_return"].tolist()[0] == 950.0 and (row["algo.hidden"] == "32,32").all()
    members = df[df["family"] == "hop"].sort_values("member")
    assert members["member"].tolist() == [0, 1, 2] and members["normalized_score"].tolist() == [
        10.0,
        20.0,
        30.0,
    ]
    assert members["task"].tolist() == ["hopper-medium/m0", "hopper-medium/m1", "hopper-medium/m2"]
    assert json.loads(members["member_params"].iloc[1]) == {"l": 1.0, "m": 1.1}


def _direct_matrix(algo: str) -> np.ndarray:
    """(runs, tasks) in the report's order: seeds ascending, tasks sorted; scores / 100."""
    return np.array([SCORES[(algo, "hopper-medium")], SCORES[(algo, "walker2d-medium")]]).T / 100.0


def test_rliable_numbers_equal_a_direct_rliable_call_on_the_same_matrix(tmp_path):
    write_grid(tmp_path / "results")
    report = make_report([tmp_path / "results"], tmp_path / "out", reps=REPS, seed=7, progress=False)
    stats = report.nominal

    def four(x):
        return np.array(
            [
                metrics.aggregate_iqm(x),
                metrics.aggregate_median(x),
                metrics.aggregate_mean(x),
                metrics.aggregate_optimality_gap(x),
            ]
        )

    for algo in ("mopo", "ravl"):
        np.testing.assert_array_equal(stats.scope.matrix(algo), _direct_matrix(algo))
        np.random.seed(7)
        points, cis = library.get_interval_estimates({algo: _direct_matrix(algo)}, four, reps=REPS)
        got = stats.aggregates[algo]
        for i, name in enumerate(("IQM", "Median", "Mean", "Optimality gap")):
            assert got[name].point == pytest.approx(points[algo][i], abs=1e-12)
            assert (got[name].low, got[name].high) == pytest.approx(tuple(cis[algo][:, i]), abs=1e-12)
        profile, _ = library.create_performance_profile(
            {algo: _direct_matrix(algo)}, stats.profile_tau, reps=10
        )
        np.testing.assert_allclose(stats.profiles[algo], profile[algo])
    raw = {a: _direct_matrix(a) * 1000.0 for a in ("mopo", "ravl")}  # raw return = 10 x score
    np.random.seed(7)
    points, cis = library.get_interval_estimates(
        {"p": [raw["mopo"], raw["ravl"]]}, metrics.probability_of_improvement, reps=REPS
    )
    p = stats.improvement[("mopo", "ravl")]
    assert p.point == pytest.approx(points["p"]) and (p.low, p.high) == pytest.approx(tuple(cis["p"][:, 0]))
    # the same numbers are in stats.json and in the Markdown table
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())["nominal"]
    assert saved["aggregates"]["ravl"]["IQM"]["point"] == pytest.approx(stats.aggregates["ravl"]["IQM"].point)
    assert stats.aggregates["mopo"]["IQM"].fmt(3) in (tmp_path / "out" / "report.md").read_text()


def test_probability_of_improvement_is_complementary(tmp_path):
    write_grid(tmp_path)
    stats = make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False).nominal
    forward, backward = stats.improvement[("mopo", "ravl")], stats.improvement[("ravl", "mopo")]
    direct_backward = metrics.probability_of_improvement(_direct_matrix("ravl"), _direct_matrix("mopo"))
    assert forward.point + direct_backward == pytest.approx(1.0)
    assert backward.point == pytest.approx(direct_backward)
    assert (backward.low, backward.high) == pytest.approx((1 - forward.high, 1 - forward.low))


def test_report_files_html_is_self_contained_and_tables_round_trip(tmp_path):
    write_grid(tmp_path / "results")
    out = tmp_path / "reports" / "r"
    make_report([tmp_path / "results"], out, reps=REPS, progress=False, title="Demo")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # aggregates, profiles, curves, improvement
    assert "http://" not in html.replace("https://", "") and "<script" not in html and "<h1>Demo</h1>" in html
    for name in ("aggregates-nominal", "profiles-nominal", "learning-curves", "improvement"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    md = (out / "report.md").read_text()
    assert "](figures/aggregates-nominal.png)" in md and "| hopper-medium | score |" in md
    csv, parquet = pd.read_csv(out / "results.csv"), pd.read_parquet(out / "results.parquet")
    assert len(csv) == len(parquet) == 16 and list(csv.columns) == list(parquet.columns)
    assert sorted(parquet["normalized_score"]) == sorted(v for vs in SCORES.values() for v in vs)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_no_results_is_one_specific_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no results found: no finished run \(a final.json\) under .*empty"):
        make_report([tmp_path / "empty"], tmp_path / "out", reps=REPS, progress=False)
    with pytest.raises(UserError, match="results path .*nowhere does not exist"):
        make_report([tmp_path / "nowhere"], tmp_path / "out", reps=REPS, progress=False)
    assert not (tmp_path / "out").exists()


def test_different_task_sets_name_the_missing_cells(tmp_path):
    scores = dict(SCORES)
    scores[("ravl", "walker2d-medium")] = []  # ravl never ran on walker2d
    scores[("mopo", "hopper-medium")] = SCORES[("mopo", "hopper-medium")][:3]  # mopo lacks hopper seed 3
    write_grid(tmp_path, scores)
    with pytest.raises(UserError) as err:
        make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)
    message = str(err.value)
    assert message.startswith("algorithms were evaluated on different task sets (nominal MDPs); missing: ")
    assert "mopo on hopper-medium (seed 3)" in message and "ravl on walker2d-medium (all runs)" in message
    assert "\n" not in message
    # --intersect reports on what all share, and says what it dropped
    report = make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False, intersect=True)
    assert report.nominal.scope.tasks == ["hopper-medium"]
    assert {m: len(r) for m, r in report.nominal.scope.runs.items()} == {"mopo": 3, "ravl": 4}
    assert any("dropped walker2d-medium" in n for n in report.notes)


def test_a_single_seed_gives_point_estimates_and_says_why_there_is_no_interval(tmp_path):
    write_grid(tmp_path, {k: v[:1] for k, v in SCORES.items()})
    report = make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)
    iqm = report.nominal.aggregates["mopo"]["IQM"]
    assert not iqm.has_ci and iqm.point == pytest.approx(np.mean([0.61, 0.40]))
    assert any(
        "a single seed for every method: no confidence interval is possible" in n for n in report.notes
    )
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"| mopo | 1 | {iqm.point:.3f} |" in md and "no confidence interval is possible" in md
    assert not report.nominal.improvement[("mopo", "ravl")].has_ci
    # no caption or text claims an interval
    claims = [line for line in md.splitlines() if "95%" in line and not line.startswith("4 runs of")]
    assert not claims and md.count("point estimates (one run per task and method: no interval)") >= 4
    # no probability of improvement from single runs (0 or 1 for every pair): a sentence instead
    assert "so a probability of improvement would be 0 or 1" in md and "P(row > column)" not in md
    assert not (tmp_path / "out" / "figures" / "improvement.png").exists()


def test_results_from_different_dataset_contents_are_not_mixed(tmp_path):
    write_run(
        tmp_path / "a", "mopo", "hopper-medium", 0, 50.0, fingerprint="d4rl-import/hopper/medium-v2@aaa"
    )
    write_run(
        tmp_path / "b", "mopo", "hopper-medium", 1, 60.0, fingerprint="offline-mbrl/hopper/medium-v0@bbb"
    )
    with pytest.raises(
        UserError, match=r"results under dataset 'hopper-medium' come from 2 different datasets: "
    ):
        make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)


def test_tasks_without_reference_returns_are_left_out_of_the_aggregates_only(tmp_path):
    write_grid(tmp_path)
    for seed, (a, b) in enumerate([(-900.0, -700.0), (-850.0, -600.0), (-800.0, -820.0), (-700.0, -500.0)]):
        write_run(tmp_path, "mopo", "pendulum-medium", seed, None, raw=a)
        write_run(tmp_path, "ravl", "pendulum-medium", seed, None, raw=b)
    report = make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)
    scope = report.nominal.scope
    assert scope.norm_tasks == ["hopper-medium", "walker2d-medium"] and "pendulum-medium" in scope.tasks
    assert scope.matrix("mopo").shape == (4, 2) and scope.matrix("mopo", "raw").shape == (4, 3)
    assert any("no reference returns for pendulum-medium" in n for n in report.notes)
    assert report.nominal.task_means[("ravl", "pendulum-medium")].point == pytest.approx(-655.0)


def test_family_weighted_mean_and_ranking_flip(tmp_path):
    # nominal: ravl > mopo > bc; over the family: bc > mopo > ravl
    nominal = {"ravl": 80.0, "mopo": 60.0, "bc": 40.0}
    members = {"ravl": [10.0, 20.0, 30.0], "mopo": [30.0, 35.0, 40.0], "bc": [50.0, 45.0, 55.0]}
    for algo in nominal:
        for seed in range(3):
            shift = 2.0 * seed
            scores = [s + shift for s in members[algo]]
            write_run(
                tmp_path,
                algo,
                "pendulum-medium",
                seed,
                nominal[algo] + shift,
                family={"name": "pf", "scores": scores},
            )
    report = make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)
    (summary,) = report.family_summaries
    assert summary.family == "pf" and summary.members == 3 and summary.unit == "normalised score"
    assert summary.family_mean["mopo"].point == pytest.approx(np.mean(members["mopo"]) + 2.0)
    assert summary.nominal["ravl"].point == pytest.approx(82.0)
    assert summary.nominal_rank == ["ravl", "mopo", "bc"] and summary.family_rank == ["bc", "mopo", "ravl"]
    assert sorted(summary.flips) == [("mopo", "bc"), ("ravl", "bc"), ("ravl", "mopo")]
    assert summary.kendall_tau == pytest.approx(-1.0)
    family = report.families["pf"]
    assert family.scope.tasks == ["pendulum-medium/m0", "pendulum-medium/m1", "pendulum-medium/m2"]
    assert family.aggregates["bc"]["Mean"].point == pytest.approx(summary.family_mean["bc"].point / 100)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "ravl is above bc on the nominal MDP (82.0 vs 42.0) but below it over the family" in md
    assert (tmp_path / "out" / "figures" / "family-pf-pendulum-medium.png").exists()


def test_a_family_evaluated_for_some_runs_only_names_them(tmp_path):
    write_run(tmp_path, "mopo", "pendulum-medium", 0, 50.0, family={"name": "pf", "scores": [1.0, 2.0]})
    write_run(tmp_path, "mopo", "pendulum-medium", 1, 55.0)
    with pytest.raises(UserError, match=r"\(MDP family pf\); missing: mopo on pendulum-medium/m0 \(seed 1\)"):
        make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)


def test_config_variants_become_methods_but_per_task_presets_do_not(tmp_path):
    for seed in range(2):
        write_run(tmp_path, "mopo", "hopper-medium", seed, 50.0 + seed, algo_cfg={"penalty_coef": 5.0})
        write_run(tmp_path, "mopo", "walker2d-medium", seed, 60.0 + seed, algo_cfg={"penalty_coef": 0.5})
    assert set(load_results([tmp_path])["method"]) == {"mopo"}  # presets differ by dataset only
    for seed in range(2):
        write_run(
            tmp_path, "mopo", "hopper-medium", seed, 70.0 + seed, algo_cfg={"penalty_coef": 5.0}, steps=50
        )
    df = load_results([tmp_path])
    assert set(df["method"]) == {"mopo[steps=50]", "mopo[steps=1000]"}
    assert len(select(df, where=["steps=1000"])) == 4
    with pytest.raises(UserError, match=r"mopo\[steps=50\] on walker2d-medium \(all runs\)"):
        make_report([tmp_path], tmp_path / "out", reps=REPS, progress=False)
    with pytest.raises(UserError, match="--where expects KEY=VALUE with a results column"):
        select(df, where=["nonsense=1"])


def test_report_command(tmp_path):
    write_grid(tmp_path / "results")
    app = typer.Typer()
    register(app)
    out = tmp_path / "rep"
    result = CliRunner().invoke(
        app, ["report", str(tmp_path / "results"), "--out", str(out), "--reps", str(REPS), "--algo", "mopo"]
    )
    assert result.exit_code == 0, result.output
    assert "IQM" in result.output and (out / "report.html").exists()
    failed = CliRunner().invoke(app, ["report", str(tmp_path / "nothing"), "--out", str(out)])
    assert isinstance(failed.exception, UserError)


def test_the_report_layer_reads_files_and_never_imports_algorithm_code():
    code = (
        "import sys, offline_mbrl.report.build, offline_mbrl.cli.report\n"
        # the registry's names (the --algo help) are not algorithm code: no algorithm module is imported
        "bad = [m for m in sys.modules if m.startswith(('offline_mbrl.algorithms.', 'offline_mbrl.launch', "
        "'offline_mbrl.learning.sac', 'offline_mbrl.models.dynamics', 'torch'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_report_replaces_only_a_previous_report_never_a_users_folder(tmp_path, monkeypatch):
    write_grid(tmp_path / "results")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an offline-mbrl report") as err:
        make_report([tmp_path / "results"], mine, reps=REPS, progress=False)
    assert "\n" not in str(err.value) and (mine / "notes.txt").read_text() == "keep me"
    monkeypatch.chdir(mine)
    with pytest.raises(UserError, match="not an offline-mbrl report"):
        make_report([tmp_path / "results"], Path("."), reps=REPS, progress=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        make_report([tmp_path / "results"], tmp_path / "afile", reps=REPS, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (tmp_path / "afile").read_text() == "x"
    # a previous report is replaced; the folder gets normal permissions
    out = tmp_path / "reports" / "r"
    make_report([tmp_path / "results"], out, reps=REPS, progress=False)
    make_report([tmp_path / "results"], out, reps=REPS, progress=False, title="again")
    assert "again" in (out / "report.md").read_text() and (out.stat().st_mode & 0o777) == 0o755


def test_evaluate_on_a_folder_without_runs_is_a_one_line_error(tmp_path):
    app = typer.Typer()
    register(app)
    (tmp_path / "empty").mkdir()
    failed = CliRunner().invoke(app, ["evaluate", str(tmp_path / "empty"), "--family", "pendulum-physics"])
    assert isinstance(failed.exception, UserError) and "no finished run" in str(failed.exception)
    assert list((tmp_path / "empty").iterdir()) == []


def test_learning_curves_follow_metrics_and_final_scores_in_order_with_short_labels(tmp_path):
    from offline_mbrl.report import curves as rc
    from offline_mbrl.report.table import label_methods

    for seed, (a, b) in enumerate([(10.0, 30.0), (20.0, 50.0)]):  # mopo's eval scores at steps 500 and 1000
        run = write_run(tmp_path / "results", "mopo", "hopper-medium", seed, b + 1.0)
        rows = [
            {"step": 500, "eval/score": a},
            {"step": 1000, "eval/score": b},
            {"step": 0, "phase": "x", "eval/score": 99.0},
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    long_cfg = {"penalty_coef_of_a_very_long_name": 2.5}
    write_run(tmp_path / "results", "ravl", "hopper-medium", 0, 90.0, algo_cfg=long_cfg)
    write_run(tmp_path / "results", "ravl", "hopper-medium", 1, 95.0)
    table = label_methods(load_results([tmp_path / "results"]))
    curves = rc.load_curves(table)
    mopo = curves[curves["method"] == "mopo"].sort_values(["seed", "step"])
    # the output policy's evaluations, not an earlier phase's, then the final score at the run's steps
    assert mopo[["seed", "step", "score"]].values.tolist() == [
        [0, 500, 10.0], [0, 1000, 31.0], [1, 500, 20.0], [1, 1000, 51.0]
    ]  # fmt: skip
    order = rc.order_by_final(curves)
    assert order[-1] == "mopo" and set(order[:2]) == {m for m in table["method"] if m.startswith("ravl")}
    labels = rc.short_labels(order)
    # both ravl variants carry the long key in their labels (one set, one absent): letters and a table
    assert labels["mopo"] == "mopo" and sorted(v for k, v in labels.items() if k != "mopo") == [
        "ravl (A)",
        "ravl (B)",
    ]
    assert "one seed per method" not in rc.caption(curves) and "over 1-2 seeds" in rc.caption(curves)
    # the caption names only the reference lines drawn
    assert "dotted" not in rc.caption(curves) and "dashed" not in rc.caption(curves)
    only_bc = rc.caption(curves, {"bc (final)"})
    assert "dashed: BC's final score" in only_bc and "dotted" not in only_bc and "dash-dot" not in only_bc
    assert "one seed per method: no interval" in rc.caption(curves[curves["seed"] == 0])
    out = tmp_path / "report"
    make_report([tmp_path / "results"], out, reps=REPS, progress=False)
    md = (out / "report.md").read_text()
    assert "## Learning curves" in md and "## Methods" in md and "| ravl (A) | ravl[" in md
    # long labels appear only in the legend: every table and figure uses the short one (fits a laptop)
    assert md.count("ravl[") == 2 and "| ravl (A) | 1 |" in md.replace("  ", " ")
    assert "method_settings" in pd.read_csv(out / "results.csv").columns
    assert (out / "figures" / "learning-curves.png").stat().st_size > 1000


def test_method_colours_are_twelve_distinct_colour_blind_safe_hues():
    from offline_mbrl.report import figures as rf

    methods = [f"m{i}" for i in range(13)]
    colors = rf.method_colors(methods)
    assert len(set(list(colors.values())[:12])) == 12 and colors["m12"] == colors["m0"]  # then they cycle
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in rf.PALETTE], dtype=float)
    gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(12) * 1e9
    # no two near-identical hues: ours are >= 67 apart in RGB (vermillion, orange); seaborn's colorblind
    # palette, used before, has its 2nd and 4th colours (orange, vermillion) 50 apart
    assert gaps.min() > 60
