"""Grids on the sweep's storage (sweep/grid.py): compare's cells as the trials of one study, drained by any
number of workers; a study's records rebuild the report anywhere; the refusals of a mismatched grid, study
or worker. The multi-machine test against a real PostgreSQL server is tests/test_grid_postgres.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from offline_mbrl.core.errors import UserError
from offline_mbrl.experiments.cells import GridOptions, compare, study_report_runs
from offline_mbrl.report.build import make_report
from offline_mbrl.sweep import grid as grid_module
from offline_mbrl.sweep.storage import open_storage

from . import test_sweep
from .test_interrupts import INTERRUPTED
from .test_sweep import DS, DS2, write_dataset

root = test_sweep.root  # a project root of its own (OFFLINE_MBRL_ROOT), cwd in tmp, the tiny dataset DS

ALGOS = ("bc", "mbpo")
STEPS = 60
# the sweep tests' tiny settings, the model-based ones for mbpo only (bc has no dynamics, no rollouts)
TINY = (
    *(f"mbpo:{o}" if o.startswith(("dynamics.", "algo.")) else o for o in test_sweep.TINY),
    "bc:algo.hidden=32,32",
)


def run_compare(seeds: int, grid: GridOptions | None, results: str = "results", **kw):
    return compare(
        ALGOS, [DS, DS2], seeds, "paper", STEPS, TINY, results_root=Path(results), reps=200,
        progress=False, log=lambda _: None, grid=grid, out=Path(kw.pop("out", "reports/r")), **kw,
    )  # fmt: skip


def cli_args(seeds: int, steps: int = STEPS) -> list[str]:
    args = [x for a in ALGOS for x in ("--algo", a)] + ["--dataset", DS, "--dataset", DS2]
    args += ["--seeds", str(seeds), "--steps", str(steps), "--reps", "200", "--threads", "1"]
    return args + [x for o in TINY for x in ("--set", o)]


def comparable(folder: Path) -> tuple[pd.DataFrame, dict]:
    """A report's numbers: results.csv without where the runs lie and how long they took, and stats.json."""
    table = pd.read_csv(folder / "results.csv")
    table = table.drop(columns=[c for c in table.columns if c in ("run_dir", "wall_time")])
    table = table.sort_values(["algorithm", "dataset", "seed"]).reset_index(drop=True)
    return table, json.loads((folder / "stats.json").read_text())


@pytest.fixture
def two_datasets(root):
    write_dataset(DS2, 1)
    return root


def test_a_grid_on_a_journal_records_every_cell_and_rebuilds_the_same_report(two_datasets, tmp_path):
    grid = GridOptions("g", None, heartbeat=1)
    first = run_compare(2, grid)
    assert {c.status for c in first.cells} == {"ran"} and len(first.cells) == 8
    loaded = optuna.load_study(study_name="g", storage=open_storage("g", None)[0])
    trials = loaded.get_trials()
    assert sorted(t.params["cell"] for t in trials) == list(range(8))  # one trial per cell
    assert all(t.state == TrialState.COMPLETE for t in trials)
    rec = trials[0].user_attrs
    assert {"final", "config", "curve", "families", "run_path", "run_dir", "versions"} <= rec.keys()
    assert rec["curve"] and all(len(point) == 2 for point in rec["curve"])

    again = run_compare(2, grid)  # the same command once the grid is drained: nothing runs again
    assert {c.status for c in again.cells} == {"reused"}
    assert len(loaded.get_trials()) == 8

    # the report from the study alone equals the one of the runs' own folders
    local = make_report([Path("results")], tmp_path / "local", reps=200, progress=False)
    runs, title = study_report_runs("g", None, Path("elsewhere"), log=lambda _: None)
    assert title == "bc vs mbpo on " + f"{DS}, {DS2}"
    assert all(p.is_relative_to(Path("elsewhere/.study-g")) for p in runs) and len(runs) == 8
    from_study = make_report(runs, tmp_path / "study", reps=200, progress=False)
    pd.testing.assert_frame_equal(comparable(local.folder)[0], comparable(from_study.folder)[0])
    assert comparable(local.folder)[1] == comparable(from_study.folder)[1]


def test_a_study_with_another_grid_a_sweep_or_other_versions_is_refused(two_datasets, monkeypatch):
    run_compare(1, GridOptions("g", None, heartbeat=1))
    with pytest.raises(UserError, match=r"holds another grid .*4 cell\(s\) only in this command \(first: "):
        run_compare(2, GridOptions("g", None, heartbeat=1))
    assert not Path("results/.study-g-2").exists()
    test_sweep.Sweep(test_sweep.spec(study="s", space="mbpo"))  # a sweep's study
    with pytest.raises(UserError, match="study 's' in .* is a sweep, not a grid"):
        run_compare(1, GridOptions("s", None, heartbeat=1))
    with pytest.raises(UserError, match="study 'g' in .* is a grid of `bc vs mbpo on .*`, not a sweep"):
        test_sweep.Sweep(test_sweep.spec(study="g", space="mbpo"))
    from offline_mbrl.sweep.results import load_study

    with pytest.raises(UserError, match=r"is a grid of .*: report it with `offline-mbrl report --study g`"):
        load_study("g")  # sweep show, report and export
    real = grid_module.versions()
    monkeypatch.setattr(grid_module, "versions", lambda: {**real, "torch": "0.0.1"})
    with pytest.raises(UserError, match=r"packages differ .*torch 0\.0\.1 \(study: 2"):
        run_compare(1, GridOptions("g", None, heartbeat=1))


def test_grid_command_line_errors_are_one_line(two_datasets):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cases = {
        ("--storage", "postgresql://u:secret@127.0.0.1:1/db"): "--storage needs --study",
        ("--storage", "postgresql://u:secret@127.0.0.1:1/db", "--study", "x"): "cannot reach storage "
        "postgresql://u:***@127.0.0.1:1/db",
        ("--study", "x", "--heartbeat", "0"): "--heartbeat must be at least 1 second, got 0",
        ("--study", "../up"): "study name '../up': use letters, digits and . _ + -",
        ("--study", ""): "study name '': use letters, digits",
    }
    for extra, message in cases.items():
        out = subprocess.run(
            [sys.executable, "-m", "offline_mbrl.cli", "compare", *cli_args(1), *extra],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and message in lines[0], out.stderr
        assert "secret" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "offline_mbrl.cli", "report", "--study", "nope"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "no study at sweeps/nope/journal.log" in out.stderr


def test_a_grid_worker_stopped_by_sigterm_requeues_its_cell_and_the_same_command_finishes(two_datasets):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "offline_mbrl.cli", "compare", *cli_args(1, steps=400), "--study", "t"]
    worker = subprocess.Popen([*cmd, "--heartbeat", "1"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert worker.stdout is not None
    seen = []
    for line in worker.stdout:  # the worker says when its first cell starts
        seen.append(line)
        if "cell 1/4" in line:
            break
    assert worker.poll() is None, "".join(seen)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    out = "".join(seen) + worker.communicate(timeout=60)[0]
    assert worker.returncode in INTERRUPTED, out
    assert "interrupted" in out.splitlines()[-1]
    study = optuna.load_study(study_name="t", storage=open_storage("t", None)[0])
    trials = study.get_trials()
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs["retried"]
    requeued = [t for t in trials if t.system_attrs.get("retry_of") == stopped[0].number]
    assert len(requeued) == 1 and requeued[0].state == TrialState.WAITING
    assert requeued[0].params == stopped[0].params  # the same cell

    again = subprocess.run([*cmd, "--heartbeat", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    complete = [t.params["cell"] for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert sorted(complete) == list(range(4))  # every cell once, the stopped one included


def test_a_killed_workers_cell_resumes_from_its_checkpoint_where_the_results_folder_is_shared(two_datasets):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*cli_args(1, steps=1500), "--set", "checkpoint_every=300", "--set", "eval_every=300"]
    cmd = [sys.executable, "-m", "offline_mbrl.cli", "compare", *args, "--study", "k", "--heartbeat", "1"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(Path("results").glob("bc/*/seed0-*/checkpoint.pt")):  # bc's first cell checkpointed
        assert first.poll() is None and time.time() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    (run_dir,) = {p.parent for p in Path("results").glob("bc/*/seed0-*/checkpoint.pt")}
    assert not (run_dir / "final.json").exists()  # killed mid-cell
    time.sleep(2.5)  # two heartbeat intervals: the cell is stale
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"resuming {run_dir} from its checkpoint" in second.stdout
    study = optuna.load_study(study_name="k", storage=open_storage("k", None)[0])
    complete = [t.params["cell"] for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert sorted(complete) == list(range(4))
    assert sum(t.state == TrialState.FAIL for t in study.get_trials()) == 1  # the killed try
