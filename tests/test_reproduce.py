"""Paper tables and comparisons: declared tables, budgets, only missing cells run, published values
outside our interval marked, per-cell failures reported, and `compare` in one call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import typer
from typer.testing import CliRunner

from offline_mbrl.cli.report import register
from offline_mbrl.core.errors import UserError
from offline_mbrl.experiments import cells
from offline_mbrl.experiments.cells import BUDGETS, Budget, cell_config, compare, prepare_dataset
from offline_mbrl.experiments.reproduce import load_table, reproduce, task_dataset

from .conftest import synthetic_episode, write_minari
from .test_algorithms import MODEL_BASED, PER_ALGO, TINY
from .test_cli import assert_one_line_error, run_cli

TASK = "test/pendulum/refs-v0"
TINY_BC = [*TINY, *PER_ALGO["bc"], "steps=60"]


@pytest.fixture
def tiny_data():
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 100, "trunc") for _ in range(4)]
    for obs, *_ in episodes:
        obs[:, :2] /= np.linalg.norm(obs[:, :2], axis=1, keepdims=True)
    write_minari(TASK, "Pendulum-v1", episodes, ref_min_score=-1500.0, ref_max_score=-150.0)
    return TASK


def write_table(folder: Path, published_mean: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pub.csv").write_text(
        f"# a test source\ntask,algorithm,mean,spread\n{TASK},BC,{published_mean},1.0\n"
    )
    path = folder / "tiny.toml"
    path.write_text(
        'name = "tiny"\ntitle = "A tiny table"\nsource = "Test et al. (2099), Table 1"\n'
        'published = "pub.csv"\n'
        f'seeds = 2\ntasks = ["{TASK}", "test/pendulum/absent-v0"]\n[algorithms]\nbc = "BC"\n'
    )
    return path


def test_the_shipped_table_declares_offlinerlkit_mopo_mobile_combo_on_nine_d4rl_tasks():
    table = load_table("offlinerlkit_d4rl_v2")
    assert table.algorithms == {"mopo": "MOPO", "mobile": "MOBILE", "combo": "COMBO"}
    assert table.seeds == 4 and len(table.tasks) == 9
    for label in table.algorithms.values():
        assert all((task, label) in table.published for task in table.tasks)
    assert table.published[("hopper-medium-v2", "MOPO")] == (62.8, 38.1)
    assert table.published[("hopper-medium-v2", "MOBILE")] == (103.6, 1.0)
    assert table.published[("walker2d-medium-expert-v2", "COMBO")] == (110.0, 0.2)
    # every task has a paper preset for each algorithm, so `reproduce` runs the reference's settings
    from offline_mbrl.algorithms import get_spec
    from offline_mbrl.data.names import parse_short_name
    from offline_mbrl.experiments.reproduce import task_dataset

    for algo in table.algorithms:
        for task in table.tasks:
            short = parse_short_name(task_dataset(task)[0])
            assert short is not None and f"{short.env}-{short.tier}" in get_spec(algo).presets, (algo, task)
    assert "OfflineRL-Kit" in table.source
    with pytest.raises(UserError, match=r"no paper table 'nope' .*declared tables: offlinerlkit_d4rl_v2"):
        load_table("nope")


def test_a_task_runs_on_imported_d4rl_data_when_present_else_on_the_suites_own():
    dataset, note, same = task_dataset("hopper-medium-v2")
    assert (dataset, same) == ("hopper-medium-v0", False)
    assert note == "suite's own (offline-mbrl/hopper/medium-v0)"
    rng = np.random.default_rng(0)
    write_minari("d4rl-import/hopper/medium-v2", "Hopper-v5", [synthetic_episode(rng, 11, 3, 5, "term")])
    assert task_dataset("hopper-medium-v2") == (
        "hopper-medium-v2",
        "D4RL's (d4rl-import/hopper/medium-v2)",
        True,
    )


def test_budgets_scale_the_paper_preset_and_skip_keys_an_algorithm_lacks():
    smoke = cell_config("mopo", "hopper-medium-v0", 1, BUDGETS["smoke"], [], "cpu", None)
    assert (smoke.algo.penalty_coef, smoke.algo.horizon) == (5.0, 5)  # OfflineRL-Kit's hopper-medium preset
    assert smoke.steps == 2000 and smoke.algo.rollout_batch == 1000 and smoke.dynamics.max_epochs == 2
    assert smoke.seed == 1 and smoke.final_eval_episodes == 5
    paper = cell_config("mopo", "walker2d-medium-replay-v0", 0, BUDGETS["paper"], [], "cpu", None)
    assert (paper.steps, paper.algo.horizon, paper.algo.penalty_coef) == (3_000_000, 1, 2.5)
    assert paper.algo.rollout_batch == 50_000 and paper.dynamics.max_epochs is None
    bc = cell_config("bc", "hopper-medium-v0", 0, BUDGETS["smoke"], ["algo.lr=0.01"], "cpu", None)
    assert bc.steps == 2000 and bc.algo.lr == 0.01 and bc.dynamics.max_epochs is None  # bc fits no dynamics
    ravl = cell_config("ravl", "pendulum-medium", 0, BUDGETS["small"], [], "cpu", 500)  # no preset: defaults
    assert ravl.steps == 500 and ravl.algo.rollout_batch == 2_000 and ravl.algo.eta == 1.0


def test_reproduce_runs_only_missing_cells_marks_published_values_and_reports_failures(
    tiny_data, tmp_path, monkeypatch
):
    table = write_table(tmp_path / "tables", published_mean=1e6)
    lines: list[str] = []
    kwargs = dict(
        results_root=tmp_path / "results", out=tmp_path / "rep", overrides=TINY_BC, reps=50, progress=False
    )
    first = reproduce(str(table), "smoke", log=lines.append, **kwargs)
    assert [c.status for c in first.cells] == ["ran", "failed", "ran", "failed"]  # seed-major, 2 tasks
    assert lines[1] == "4 cells: 0 done, 4 to run" and lines[2].startswith("estimate: no measured rate")
    assert lines[3].startswith("[1/4] bc on test/pendulum/refs-v0 seed 0")
    failure = first.cells[1].error
    assert "dataset 'test/pendulum/absent-v0' is not present" in failure
    (row, absent) = first.rows
    assert row["inside"] is False and row["runs"] == 2 and row["ours"].has_ci
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**1000000.0 ± 1.0**" in md and "**no: outside**" in md and failure in md
    assert "Test et al. (2099), Table 1" in md and "| bc |" in md  # the statistics section follows
    assert absent["ours"] is None and absent["errors"] == [failure]
    assert '<td class="flag nw">1000000.0 ± 1.0</td>' in (tmp_path / "rep" / "report.html").read_text()

    # a second invocation runs nothing new; with the published mean at our mean it is inside the interval
    table = write_table(tmp_path / "tables", published_mean=row["ours"].point)
    attempted, real_execute = [], cells.execute_seeds
    monkeypatch.setattr(
        cells,
        "execute_seeds",
        lambda cfgs, *a, **k: attempted.extend(c.dataset for c in cfgs) or real_execute(cfgs, *a, **k),
    )
    lines.clear()
    second = reproduce(str(table), "smoke", log=lines.append, **kwargs)
    assert [c.status for c in second.cells] == ["reused", "failed", "reused", "failed"]
    assert attempted == ["test/pendulum/absent-v0"] * 2  # only the failed cells are tried again
    assert lines[1] == "4 cells: 2 done, 2 to run" and second.rows[0]["inside"] is True
    html = (tmp_path / "rep" / "report.html").read_text()
    paper_table = html.split("Aggregate performance")[0]
    assert '<td class="flag' not in paper_table and '<td class="nw">yes</td>' in paper_table


def test_smoke_makes_an_absent_suite_dataset_at_a_reduced_size_and_paper_refuses_it():
    budget = Budget("t", "test", (), 1, dataset_size=2000)
    assert cells.dataset_note("pendulum-random-v0") is None  # absent
    said: list[str] = []
    prepare_dataset("pendulum-random-v0", budget, said.append)
    assert said == [
        "making pendulum-random at 2,000 transitions, the t budget's size (full: 1,000,000; its numbers are "
        "not the full dataset's)"
    ]
    note = cells.dataset_note("pendulum-random-v0")
    assert note == "offline-mbrl/pendulum/random-v0 holds 2,000 transitions, a reduced size (full: 1,000,000)"
    with pytest.raises(
        UserError, match=r"holds 2,000 transitions, fewer than its full 1,000,000 .*--overwrite"
    ):
        prepare_dataset("pendulum-random-v0", BUDGETS["paper"])
    prepare_dataset("pendulum-random-v0", BUDGETS["small"])  # small runs on it, with the note


def test_small_makes_an_absent_suite_dataset_at_its_full_size():
    assert not cells.resolve("point2d-partial").present
    said: list[str] = []
    prepare_dataset("point2d-partial", BUDGETS["small"], said.append)
    assert said == ["making point2d-partial at 10,000 transitions, its full size"]
    assert cells.reduced_size("point2d-partial") is None and cells.resolve("point2d-partial").present


def test_a_comparison_without_algorithms_or_datasets_runs_its_budgets_tier(capsys, tmp_path):
    six = ["bc", "mopo", "mobile", "combo", "ravl", "morec-mopo"]
    small = ["pendulum-random", "inverted-double-pendulum-medium-replay", "point2d-partial"]
    assert cells.tier_defaults("small", [], []) == (six, small)
    assert cells.tier_defaults("smoke", ["bc"], []) == (["bc"], ["pendulum-medium-replay"])
    assert cells.tier_defaults("paper", ["bc"], ["hopper-medium"]) == (["bc"], ["hopper-medium"])
    with pytest.raises(UserError, match=r"^name the algorithms .* at the paper budget; only smoke and small"):
        cells.tier_defaults("paper", [], ["hopper-medium"])

    # the command says so in one line, before anything runs
    code, out, err = run_cli(capsys, "compare", "--dataset", "hopper-medium", "--results", str(tmp_path))
    assert_one_line_error(code, err, "name the algorithms (--algo) and datasets (--dataset)")
    assert list(tmp_path.iterdir()) == []


def test_compare_runs_what_is_missing_and_reports(tiny_data, tmp_path, monkeypatch):
    overrides = [*TINY, *(f"mopo:{o}" for o in MODEL_BASED), "bc:algo.hidden=32,32"]
    kwargs = dict(
        seeds=2, steps=60, overrides=overrides, results_root=tmp_path / "results", reps=50, progress=False
    )
    lines: list[str] = []
    result = compare(["mopo", "bc"], [tiny_data], out=tmp_path / "cmp", log=lines.append, **kwargs)
    assert sorted(c.status for c in result.cells) == ["ran"] * 4
    # mopo's two seeds differ only by seed: one batched computation; bc's train one after another
    assert any("mopo on" in line and "seeds 0, 1 (batched in one process)" in line for line in lines)
    assert sum(line.startswith("[") and "bc on" in line for line in lines) == 2
    stats = result.report.nominal
    assert stats.scope.methods == ["bc", "mopo"] and ("mopo", "bc") in stats.improvement
    assert stats.aggregates["mopo"]["IQM"].has_ci
    assert (tmp_path / "cmp" / "report.html").exists()
    monkeypatch.setattr(cells, "execute_seeds", lambda *a, **k: pytest.fail("a finished cell was run again"))
    again = compare(["mopo", "bc"], [tiny_data], out=tmp_path / "cmp", log=lambda _: None, **kwargs)
    assert [c.status for c in again.cells] == ["reused"] * 4
    with pytest.raises(UserError, match=r"--set ravl:algo.eta=1: 'ravl' is not one of the algorithms"):
        compare(["mopo"], [tiny_data], overrides=["ravl:algo.eta=1"], log=lambda _: None)
    with pytest.raises(UserError, match="unknown config key 'algo.rollout_batch'"):
        compare(["bc"], [tiny_data], overrides=["algo.rollout_batch=3"], log=lambda _: None)


def test_cells_on_two_worker_processes_give_what_one_process_gives(tiny_data, tmp_path):
    overrides = [*TINY, *(f"mopo:{o}" for o in MODEL_BASED), "bc:algo.hidden=32,32"]
    kwargs = dict(seeds=2, steps=60, overrides=overrides, reps=50, progress=False, log=lambda _: None)
    lines: list[str] = []
    two = compare(["mopo", "bc"], [tiny_data], results_root=tmp_path / "two", out=tmp_path / "r2",
                  workers=2, **{**kwargs, "log": lines.append})  # fmt: skip
    one = compare(["mopo", "bc"], [tiny_data], results_root=tmp_path / "one", out=tmp_path / "r1", **kwargs)
    assert [c.status for c in two.cells] == ["ran"] * 4
    assert "running 3 groups of cells on 2 worker processes of one thread each" in lines
    # mopo's two seeds are one batched group; bc's seeds one group each; one thread everywhere here
    assert [c.final["return_mean"] for c in two.cells] == [c.final["return_mean"] for c in one.cells]
    assert [c.run_dir.name for c in two.cells] == [c.run_dir.name for c in one.cells]
    with pytest.raises(UserError, match="--workers"):
        compare(["bc"], [tiny_data], workers=0, log=lambda _: None)
    with pytest.raises(UserError, match="a grid .--study. has its workers already"):
        compare(["bc"], [tiny_data], workers=2, grid=cells.GridOptions("g"), log=lambda _: None)


def test_reproduce_and_compare_commands(tiny_data, tmp_path):
    app = typer.Typer()
    register(app)
    table = write_table(tmp_path / "tables", published_mean=1e6)
    common = ["--results", str(tmp_path / "results"), "--reps", "50"]
    sets = [arg for o in TINY_BC for arg in ("--set", o)]
    result = CliRunner().invoke(
        app, ["reproduce", str(table), "--out", str(tmp_path / "r"), "--seeds", "1", *common, *sets]
    )
    assert result.exit_code == 1, result.output  # a cell failed: reported, and the status says so
    assert "2 cells: 0 done, 2 to run" in result.output
    assert "1 of 2 cells failed; the report lists why" in result.output
    assert "published 1000000.0 is outside" not in result.output  # one seed: no interval to be outside of
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "--algo",
            "bc",
            "--dataset",
            tiny_data,
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "c"),
            *common,
            *sets,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "a single seed for every method" in result.output
    assert json.loads((tmp_path / "c" / "stats.json").read_text())["nominal"]["methods"] == ["bc"]


def test_reproduce_on_a_grid_stops_a_worker_without_the_data_and_its_cell_waits_for_another(
    tiny_data, tmp_path
):
    """A grid worker missing a dataset is the machine's fault (EnvironmentFault): it stops, its cell goes
    back to the queue for a worker that has the data, and no cell is spent as failed on it."""
    from offline_mbrl.experiments.cells import GridOptions
    from offline_mbrl.sweep.storage import open_storage

    table = write_table(tmp_path / "tables", published_mean=1e6)
    journal = str(tmp_path / "rep.log")
    kwargs = dict(
        results_root=tmp_path / "results", out=tmp_path / "rep", overrides=TINY_BC, reps=50, progress=False,
        log=lambda _: None, grid=GridOptions("rep", journal, heartbeat=1),
    )  # fmt: skip
    with pytest.raises(UserError, match=r"cell bc on test/pendulum/absent-v0 seed 0 .* stopped this worker: "
                       r"dataset 'test/pendulum/absent-v0' is not present"):  # fmt: skip
        reproduce(str(table), "smoke", **kwargs)
    study = optuna.load_study(study_name="rep", storage=open_storage("rep", journal)[0])
    states = {t.params["cell"]: t.state.name for t in study.get_trials() if t.state.name != "FAIL"}
    assert states == {0: "COMPLETE", 1: "WAITING", 2: "WAITING", 3: "WAITING"}

    rng = np.random.default_rng(1)  # the data arrives (another machine would have had it)
    episodes = [synthetic_episode(rng, 3, 1, 100, "trunc") for _ in range(4)]
    write_minari(
        "test/pendulum/absent-v0", "Pendulum-v1", episodes, ref_min_score=-1500.0, ref_max_score=-150.0
    )
    done = reproduce(str(table), "smoke", **kwargs)
    assert [c.status for c in done.cells] == ["reused", "ran", "ran", "ran"]
    assert all(".study-rep" in str(c.run_dir) for c in done.cells)
    assert [r["runs"] for r in done.rows] == [2, 2]
    complete = sorted(t.params["cell"] for t in study.get_trials() if t.state.name == "COMPLETE")
    assert complete == [0, 1, 2, 3]  # each once
