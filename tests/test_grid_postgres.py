"""A paper-table grid on many machines, for real: three `compare` worker processes, each with its own
working directory, results and artefact cache, drain one 12-cell grid study on a real PostgreSQL server
while one of them is SIGKILLed mid-cell. Every cell finishes exactly once, the killed worker's cell is
retried by another, and the report built from the study alone equals the report of the same grid run in
one process, to the last digit (the server comes from `.ci/system-packages.sh`, as in
tests/test_sweep_postgres.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from offline_mbrl.sweep.storage import open_storage

from . import test_grid, test_sweep, test_sweep_postgres
from .test_grid import cli_args, comparable

root = test_sweep.root  # the fixtures: a project root of its own, the two tiny datasets, the server
two_datasets = test_grid.two_datasets
postgres_url = test_sweep_postgres.postgres_url

SEEDS = 3  # 2 algorithms x 2 datasets x 3 seeds = 12 cells
HEARTBEAT = 2


def _worker(folder: Path, extra: list[str]) -> subprocess.Popen:
    folder.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OFFLINE_MBRL_CACHE": str(folder / "cache")}
    args = [*cli_args(SEEDS, steps=200), "--out", "reports/r", *extra]  # cells of about 1-3 s
    cmd = [sys.executable, "-m", "offline_mbrl.cli", "compare", *args]
    log = (folder / "out.log").open("w")
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def _running_on(study: optuna.Study, pid: int) -> bool:
    return any(
        t.state == TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(f":{pid}")
        for t in study.get_trials(deepcopy=False)
    )


def test_three_workers_drain_a_grid_on_postgres_one_killed_and_the_study_reports_as_one_process(
    two_datasets, postgres_url, tmp_path
):
    # the same grid in one process (a local journal study): the reference. Not a plain `compare`: that
    # batches each cell's seeds into one computation, whose floats differ from lone runs' in the 8th digit
    alone = _worker(tmp_path / "alone", ["--study", "alone", "--heartbeat", str(HEARTBEAT)])
    assert alone.wait(timeout=600) == 0, (tmp_path / "alone" / "out.log").read_text()

    name = f"grid-{uuid.uuid4().hex[:8]}"
    extra = ["--storage", postgres_url, "--study", name, "--heartbeat", str(HEARTBEAT)]
    workers = [_worker(tmp_path / f"w{i}", extra) for i in range(3)]
    victim = workers[0]
    storage = open_storage(name, postgres_url)[0]  # the driver this machine has (psycopg2)
    study = None
    try:
        deadline = time.time() + 300
        while study is None:
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                assert time.time() < deadline, "no worker created the study"
                time.sleep(0.2)
        while not _running_on(study, victim.pid):  # kill it mid-cell: a cell of its own is running
            assert victim.poll() is None and time.time() < deadline, "the victim never ran a cell"
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        for w in workers[1:]:
            assert w.wait(timeout=600) == 0, (tmp_path / f"w{workers.index(w)}" / "out.log").read_text()
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()

    trials = study.get_trials()
    complete = [t.params["cell"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == list(range(12))  # every cell finished, exactly once
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].user_attrs["worker"].endswith(f":{victim.pid}")
    retried = [t for t in trials if t.system_attrs.get("retry_of") == killed[0].number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert not retried[0].user_attrs["worker"].endswith(f":{victim.pid}")
    survivors = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials if t.state == TrialState.COMPLETE}
    assert survivors <= {str(w.pid) for w in workers} and len(survivors) >= 2

    # the report from the study, on a machine with nothing but the storage URL
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "offline_mbrl.cli", "report", "--storage", postgres_url, "--study", name]
    done = subprocess.run([*cmd, "--out", "reports/g", "--reps", "200"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    mine, theirs = comparable(tmp_path / "alone" / "reports" / "r"), comparable(elsewhere / "reports" / "g")
    pd.testing.assert_frame_equal(mine[0], theirs[0])
    assert mine[1] == theirs[1]
    # each surviving worker wrote the same report too
    for i in (1, 2):
        pd.testing.assert_frame_equal(mine[0], comparable(tmp_path / f"w{i}" / "reports" / "r")[0])
