"""Where a study lives, and what keeps it consistent when workers race or die.

`open_storage(study, url)` gives the Optuna storage, a claim lock and a printable location:

- no URL: a journal file `sweeps/<study>/journal.log` (Optuna's JournalFileBackend: append-only, safe for
  several processes on one machine, nothing to start);
- a path without `://`: a journal file there;
- `postgresql://USER:PASS@HOST:PORT/DB`: Optuna's RDBStorage, the multi-machine setup (needs psycopg2);
- `sqlite:///FILE.db`: RDBStorage on one machine.

Heartbeats: RDBStorage records them natively. Optuna's journal storage has none, so `JournalHeartbeat`
adds one as a trial system attribute (`heartbeat`, the worker's wall clock: the journal is one machine's
file). Either way a RUNNING trial whose last heartbeat is older than two intervals is stale:
`fail_stale` marks it FAIL and enqueues a retry with the same parameters (at most `MAX_RETRY` times).

The claim lock serialises "count the trials, then create one" across workers: a file lock next to the
journal or SQLite file, a PostgreSQL advisory lock (released by the server if its holder dies).

Damaged journals: Optuna's reader skips a half-written last line (a writer killed mid-line) and raises only
when a line follows a bad one, so a damaged journal looked whole until the next write appended to the
partial line and poisoned every later read. `check_journal` replays every line as Optuna would and
`open_storage` refuses a damaged journal in one line (file, line number, `offline-mbrl sweep repair
STUDY`); `repair_journal` keeps every complete operation before the first bad line and moves the rest into
a side file next to it (`journal.log.damaged-<time>`); `CheckedJournalBackend` never appends after a
partial line (a live worker finding one left by a killed worker moves it aside first).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import cast

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import JournalFileSymlinkLock, get_lock_file
from optuna.storages.journal._storage import JournalStorageReplayResult
from optuna.trial import FrozenTrial, TrialState

from offline_mbrl.core.cache import key_lock
from offline_mbrl.core.errors import EnvironmentFault, UserError

MAX_RETRY = 2  # a trial whose worker keeps dying (out of memory?) is not retried forever


def retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a trial with the same parameters (Optuna's RetryHeartbeatStaleTrialCallback would also copy
    the user attributes: the failure's reason, its scores)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) <= MAX_RETRY:
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={"retry_of": trial.number, "retry_history": history},
            )
        )


class JournalHeartbeat(JournalStorage, BaseHeartbeat):
    """Optuna's journal file storage plus heartbeats, so a killed worker's trial is failed as RDB's is."""

    def __init__(self, path: str, interval: int):
        super().__init__(CheckedJournalBackend(path))
        self._interval = interval

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(UpdateFinishedTrialError):  # finished meanwhile (or failed as stale)
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        # a running trial always has its start time
        last = {
            t._trial_id: t.system_attrs.get("heartbeat", cast(datetime, t.datetime_start).timestamp())
            for t in running
        }
        return [trial_id for trial_id, beat in last.items() if now - beat > 2 * self._interval]

    def get_heartbeat_interval(self) -> int:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None]:
        return retry

    get_failed_trial_callback = get_heartbeat_stale_trial_callback  # the name Optuna < 4.9 calls


class CheckedJournalBackend(JournalFileBackend):
    """Optuna's journal file, whose writes never continue a half-written line: under the journal's lock
    (no live writer is mid-line) a last line without its line end was left by a killed writer; it is moved
    into a side file before the new operations are appended."""

    def append_logs(self, logs: list[dict]) -> None:
        with get_lock_file(self._lock):
            _move_partial_tail(Path(self._file_path))
            data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
            with open(self._file_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())


def _move_partial_tail(path: Path) -> None:
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = size
        while start > 0:  # back to the last line end
            step = min(start, 1 << 16)
            f.seek(start - step)
            chunk = f.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        f.seek(start)
        tail = f.read()
    side = _side_file(path, tail)
    with open(path, "rb+") as f:
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
    print(
        f"warning: {path} ended in a half-written line (a worker killed while writing); moved it to {side}",
        file=sys.stderr,
    )


def _side_file(path: Path, data: bytes) -> Path:
    """`data` in a new side file next to the journal, written whole (temporary name, then renamed)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    side = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while side.exists():
        n += 1
        side = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    tmp = side.with_name(side.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, side)
    return side


@dataclass(frozen=True)
class JournalCheck:
    """What `check_journal` found: the complete operations before the first bad line (`good`, ending at
    byte `good_bytes`), and the first bad line (1-based) with why, or `bad_line` 0 for a whole journal."""

    good: int
    good_bytes: int
    size: int
    bad_line: int = 0
    why: str = ""
    lines: int = 0


def check_journal(path: Path) -> JournalCheck:
    """Replay the journal line by line as Optuna does; stop at the first line it cannot use."""
    replay = JournalStorageReplayResult("check-")
    good = offset = number = 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for number, line in enumerate(f, start=1):
            why = ""
            if not line.endswith(b"\n"):
                why = "is half-written (no line end: a writer killed mid-line?)"
            else:
                try:
                    log = json.loads(line)
                except ValueError:  # JSONDecodeError, UnicodeDecodeError
                    why = "is not JSON" if line.strip() else "is empty"
                else:
                    if not isinstance(log, dict) or not isinstance(log.get("op_code"), int):
                        why = f"is not an Optuna operation (a JSON {_json_type(log)} without an op_code)"
                    else:
                        try:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                replay.apply_logs([log])
                        except Exception as exc:  # noqa: BLE001 - any failure to apply: the line is bad
                            what = f"{type(exc).__name__} {exc}".strip()[:80]
                            why = f"is an operation Optuna cannot apply ({' '.join(what.split())})"
            if why:
                rest = sum(1 for _ in f)
                return JournalCheck(good, offset, size, number, why, number + rest)
            good += 1
            offset += len(line)
    return JournalCheck(good, offset, size, 0, "", number)


def _json_type(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null" if value is None else "object"
    )


def repair_command(study: str, url: str | None) -> str:
    return f"offline-mbrl sweep repair {study}" + (f" --storage {url}" if url else "")


def _looks_like_journal(path: Path, study: str, url: str | None) -> bool:
    """The suite's own journal, or a file that starts as one: safe to repair (never a user's other file)."""
    if url is None or path.resolve() == default_journal(study).resolve():
        return True
    op = b'{"op_code":'
    with open(path, "rb") as f:  # a damaged journal still holds operations (or its first one's start)
        head = f.read(len(op))
        if head and op.startswith(head):
            return True
        f.seek(0)
        while chunk := f.read(1 << 20):
            if op in chunk:
                return True
    return False


@contextlib.contextmanager
def _journal_lock(path: Path) -> Iterator[None]:
    """The journal's own lock (Optuna's symlink `journal.log.lock`), for the repair. A writer killed while
    writing leaves it behind: released after 3 s without a change to the journal (Optuna's grace period,
    30 s by default), quietly (Optuna logs every wait)."""
    logger = optuna.logging.get_logger("optuna")
    level = logger.level
    logger.setLevel(optuna.logging.ERROR)
    try:
        with get_lock_file(JournalFileSymlinkLock(str(path), grace_period=3)):
            yield
    finally:
        logger.setLevel(level)


def verify_journal(path: Path, study: str, url: str | None) -> JournalCheck:
    """Refuse a damaged journal in one line with the command that repairs it. A live writer's line in
    progress is not damage: the damage must read the same twice with no writer holding the journal's lock
    in between, or last 2 s (a live writer holds the lock for milliseconds; a killed one leaves it)."""
    found = check_journal(path)
    deadline = time.monotonic() + 2.0
    lock = Path(str(path) + ".lock")
    while found.bad_line and time.monotonic() < deadline:
        time.sleep(0.05)
        again = check_journal(path)
        if again == found and not os.path.lexists(lock):
            break
        found = again
    if not found.bad_line:
        return found
    where = f"{path} line {found.bad_line} of {found.lines} {found.why}"
    if not _looks_like_journal(path, study, url):
        raise UserError(f"{where}: it is not an Optuna journal; pass the study's journal file with --storage")
    raise UserError(
        f"{where}; repair it with `{repair_command(study, url)}` (keeps the {found.good} complete "
        "operations before it, moves the rest into a side file)"
    )


def repair_journal(study: str, url: str | None) -> tuple[JournalCheck, Path | None, str]:
    """Keep the complete operations before the journal's first bad line; move the rest (kept whole) into
    a side file next to it. Returns what was found, the side file (None: nothing to move) and the
    journal's path."""
    check_study_name(study)
    if url is not None and "://" in url:
        raise UserError(
            f"`sweep repair` mends journal files; {shown(url)} is a database (its own server keeps it whole)"
        )
    path = Path(url) if url else default_journal(study)
    if not path.is_file():
        raise UserError(f"no journal at {path}: nothing to repair (pass the study's journal with --storage)")
    with _journal_lock(path):
        found = check_journal(path)
        if not found.bad_line:
            return found, None, str(path)
        if not _looks_like_journal(path, study, url):
            raise UserError(
                f"{path} is not an Optuna journal (line {found.bad_line} {found.why}); nothing changed"
            )
        with open(path, "rb") as f:
            f.seek(found.good_bytes)
            tail = f.read()
        side = _side_file(path, tail)  # first the side file, whole: a kill in between loses nothing
        with open(path, "rb+") as f:
            f.truncate(found.good_bytes)
            f.flush()
            os.fsync(f.fileno())
    return found, side, str(path)


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def check_study_name(study: str) -> None:
    """Study names become folder names (sweeps/STUDY/, results/.study-STUDY/): plain names only."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", study):
        raise UserError(
            f"study name {study!r}: use letters, digits and . _ + - (starting with a letter or digit)"
        )


def default_journal(study: str) -> Path:
    """`sweeps/<study>/journal.log` under the current directory (user state, never the package's)."""
    return Path("sweeps") / study / "journal.log"


def open_storage(
    study: str, url: str | None, heartbeat: int = 60, create: bool = True
) -> tuple[JournalHeartbeat | RDBStorage, Callable[[], contextlib.AbstractContextManager], str]:
    """(storage, claim lock factory, printable location); unreachable or unsupported URLs and study names
    that are not a plain name (they become folder names: sweeps/STUDY/, results/.study-STUDY/) are
    UserErrors."""
    check_study_name(study)
    if url is None or "://" not in url:
        path = Path(url) if url else default_journal(study)
        if url is None and create:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not create and not path.exists():
            known = sorted(p.parent.name for p in Path("sweeps").glob("*/journal.log"))
            raise UserError(
                f"no study at {path} (local studies: {', '.join(known) or 'none'}; or pass --storage)"
            )
        if not path.parent.is_dir():
            raise UserError(f"cannot use storage {path}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise UserError(f"cannot use storage {path}: it is a folder, not a journal file")
        if path.exists():
            verify_journal(path, study, url)
        lock = partial(key_lock, path.with_name(path.name + ".claim"))
        return JournalHeartbeat(str(path), heartbeat), lock, str(path)
    scheme = url.split("://", 1)[0]
    if not (scheme.startswith("postgresql") or scheme == "sqlite"):
        raise UserError(
            f"unsupported storage '{shown(url)}': use postgresql://USER:PASS@HOST:PORT/DB, sqlite:///FILE.db "
            "or a journal file path"
        )
    postgres = scheme.startswith("postgresql")
    engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}} if postgres else {}
    given = shown(url)
    if scheme == "postgresql":  # SQLAlchemy >= 2.1 picks psycopg 3 for a bare postgresql://; use what is here
        driver = next((d for d in ("psycopg2", "psycopg") if importlib.util.find_spec(d)), "psycopg2")
        url = url.replace("postgresql://", f"postgresql+{driver}://", 1)
    import sqlalchemy.exc

    try:
        storage = _rdb(url, engine, heartbeat)
    except ImportError:
        raise UserError(f"storage {given} needs a PostgreSQL driver: pip install psycopg2-binary") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UserError(f"cannot reach storage {given}: {reason}") from None
    if postgres:
        return storage, partial(_pg_lock, storage.engine, study), given
    db = Path(url.split(":///", 1)[-1])
    return storage, partial(key_lock, db.with_name(db.name + ".claim")), given


def _rdb(url: str, engine: dict, heartbeat: int) -> RDBStorage:
    import sqlalchemy.exc

    def make() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=retry,
            )

    for attempt in range(4):
        try:
            return make()
        except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError):
            # Workers starting together on an empty database race to create Optuna's tables ("relation
            # already exists"); the losers find them made when they try again.
            time.sleep(0.5 + attempt)
    return make()


@contextlib.contextmanager
def _pg_lock(engine, study: str) -> Iterator[None]:
    from sqlalchemy import text

    key = int.from_bytes(hashlib.blake2b(study.encode(), digest_size=8).digest(), "big", signed=True)
    with engine.connect() as conn:  # the server releases a session lock when its connection drops
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def fail_stale(study: optuna.Study) -> None:
    """Fail RUNNING trials without a recent heartbeat and enqueue their retries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def counts(t: FrozenTrial) -> bool:
    """Whether a trial uses up one of the study's `--trials`: a result, or a failure of its own config.

    A trial that was interrupted or whose worker died is retried instead, so it does not count."""
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state == TrialState.FAIL and "fail_reason" in t.user_attrs and not t.user_attrs.get("retried")


class Heartbeat:
    """Record a trial's heartbeat every `interval` seconds while it runs (Optuna's own thread only runs
    inside `study.optimize`, which cannot claim trials under a lock)."""

    def __init__(self, storage: BaseHeartbeat, trial_id: int, interval: int):
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; two missed make the trial stale
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_trial(
    study: optuna.Study,
    storage: BaseHeartbeat,
    trial: optuna.Trial,
    heartbeat: int,
    call: Callable[[], float],
    stopped: Callable[[EnvironmentFault], str],
) -> None:
    """Run `call` for a claimed trial under a heartbeat and record how it ended: COMPLETE with its value,
    PRUNED, or FAIL with its reason (and traceback, for a bug). An interrupted trial, or one stopped by
    the machine (`EnvironmentFault`), is retried with the same parameters, and the interrupt or the
    fault then stops this worker (a UserError worded by `stopped`)."""
    state, value, interrupted = TrialState.COMPLETE, None, False
    fault: EnvironmentFault | None = None
    with Heartbeat(storage, trial._trial_id, heartbeat):
        try:  # from its first statement: an interrupt anywhere in the trial is caught and retried
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
            value = call()
        except optuna.TrialPruned as exc:
            state = TrialState.PRUNED
            trial.set_user_attr("prune_reason", str(exc))
        except KeyboardInterrupt:
            state, interrupted = TrialState.FAIL, True
            trial.set_user_attr("fail_reason", "interrupted (retried with the same parameters)")
            trial.set_user_attr("retried", True)
        except EnvironmentFault as exc:  # the machine's fault, not the trial's: stop, keep the trials
            state, fault = TrialState.FAIL, exc
            trial.set_user_attr("fail_reason", f"environment: {str(exc)[:480]} (retried)")
            trial.set_user_attr("retried", True)
        except Exception as exc:  # noqa: BLE001 - any failure of one trial is recorded, the study goes on
            state = TrialState.FAIL
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}"
            trial.set_user_attr("fail_reason", why[:500])
            if not isinstance(exc, UserError):
                trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
    try:
        study.tell(trial, value, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it as stale meanwhile
        print(f"warning: trial {trial.number} was marked stale by another worker", file=sys.stderr)
    if interrupted or fault is not None:
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        retry(study, frozen)
    if interrupted:
        raise KeyboardInterrupt
    if fault is not None:
        raise UserError(stopped(fault))
