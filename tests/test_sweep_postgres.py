"""The distributed setup for real: a PostgreSQL server on loopback, two worker commands on one study, and a
SIGKILL'd worker whose trial the heartbeat fails.

The server comes from Debian's `postgresql` package (`.ci/system-packages.sh` installs it); without it
these tests fail, they do not skip. `OFFLINE_MBRL_TEST_POSTGRES_URL` points them at a running server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState

from offline_mbrl.core.errors import UserError
from offline_mbrl.sweep.results import load_study
from offline_mbrl.sweep.storage import open_storage
from offline_mbrl.sweep.study import Sweep

from . import test_sweep
from .test_sweep import (
    hanging_sweep,
    kill_during_trial_1_and_check_it_is_failed_then_retried,
    spec,
    start_worker,
)

root = test_sweep.root  # the same fixture: a project root of its own, a tiny dataset with references


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off the PATH
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (run as the `postgres` user when we are root: initdb
    refuses root), with an empty database; stopped and deleted afterwards."""
    if os.environ.get("OFFLINE_MBRL_TEST_POSTGRES_URL"):
        yield os.environ["OFFLINE_MBRL_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.fail("PostgreSQL server binaries not found: apt-get install postgresql", pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="offline-mbrl-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            shutil.chown(base, "postgres")
        except LookupError:
            pytest.fail("no 'postgres' user to run the server as: apt-get install postgresql", pytrace=False)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"

    run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE sweeps")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_two_worker_commands_on_one_postgres_study_record_every_trial_exactly_once(root, postgres_url):
    name = f"two-workers-{uuid.uuid4().hex[:8]}"  # unique on a long-lived OFFLINE_MBRL_TEST_POSTGRES_URL
    s = spec(storage=postgres_url, study=name, trials=8, space="mbpo")
    sweep = Sweep(s)
    with sweep.lock():  # hold the claim lock until both workers wait on it: then they race for every trial
        workers = [start_worker(s), start_worker(s)]  # what two machines run, each the same command
        deadline = time.time() + 120
        while _advisory_waiters(postgres_url) < 2:
            assert all(w.poll() is None for w in workers) and time.time() < deadline, "workers never queued"
            time.sleep(0.2)
    for w in workers:
        assert w.wait(timeout=300) == 0
    trials = load_study(name, postgres_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(8))  # exactly the 8 asked, each once
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials} == {str(w.pid) for w in workers}


def _advisory_waiters(url: str) -> int:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]
    finally:
        conn.close()


def test_a_worker_killed_mid_trial_on_postgres_is_failed_by_heartbeat_and_retried(root, postgres_url):
    s, sweep = hanging_sweep(root, postgres_url, f"killed-{uuid.uuid4().hex[:8]}")
    kill_during_trial_1_and_check_it_is_failed_then_retried(s, sweep)


def test_a_missing_database_on_a_live_server_is_a_one_line_error(postgres_url):
    wrong = postgres_url.rsplit("/", 1)[0] + "/nope"
    with pytest.raises(UserError, match='cannot reach storage .*/nope: .*database "nope" does not exist'):
        open_storage("s", wrong)


def test_workers_starting_together_on_an_empty_database_all_connect(postgres_url):
    """Optuna creates its tables on first connection; simultaneous first connections race for that."""
    import psycopg2

    server, _ = postgres_url.rsplit("/", 1)
    database = f"race_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {database}")
    conn.close()
    start, errors = threading.Barrier(4), []

    def connect() -> None:
        start.wait()
        try:
            open_storage("s", f"{server}/{database}")
        except Exception as exc:  # noqa: BLE001 - collected and shown below
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
