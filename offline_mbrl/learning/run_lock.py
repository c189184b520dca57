"""One process per run folder: a file lock `.RUN.lock` beside each run folder, taken before its first write.

`run_dir_locks(cfgs, results)` holds the folders of these runs for this process. A second process asking
for a held folder either waits (sweep trials and grid workers, which share a results folder by design) or
gets one line naming the holder (`train`, two identical commands). The lock file records the holder (pid
and command) while held; the kernel releases the lock when the holder dies, so a killed process never
leaves a folder locked. A folder this process holds already is held again without waiting (a sweep's
trial, then the run it executes), and one named twice is held once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import EnvironmentFault, UserError
from offline_mbrl.learning.run import run_dir_for

_HELD: dict[Path, int] = {}  # run folders this process holds, with how many holders inside it


@contextlib.contextmanager
def run_dir_locks(cfgs: list[TrainConfig], results_root: Path, wait: bool = True) -> Iterator[None]:
    """Hold these runs' folders for this process: a file lock per run folder (`.RUN.lock` beside it),
    taken in one order before the first write, so that two processes never train one run at once. A
    folder this process holds already is held again without waiting (a sweep's trial, then its run), and
    one named twice is held once. `wait`: wait for another process's hold (sweep trials, grid workers);
    else one line naming the holder (two identical `train` commands)."""
    outs = sorted({run_dir_for(cfg, results_root) for cfg in cfgs})
    with contextlib.ExitStack() as locks:
        for out in outs:
            locks.enter_context(_hold(out, wait))
        yield


def holder_of(out: Path) -> str | None:
    """Who holds run folder `out` now (another process), or None."""
    lock = out.parent / f".{out.name}.lock"
    if out in _HELD or not lock.is_file():
        return None
    try:
        with open(lock) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return " ".join(handle.read().split()) or "another process"
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def in_use(out: Path, holder: str) -> str:
    return (
        f"run folder {out} is in use by {holder}: wait for it to finish (or stop it), then run this "
        "command again"
    )


@contextlib.contextmanager
def _hold(out: Path, wait: bool) -> Iterator[None]:
    import fcntl

    if out in _HELD:
        _HELD[out] += 1
        try:
            yield
        finally:
            _HELD[out] -= 1
        return
    lock = out.parent / f".{out.name}.lock"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise EnvironmentFault(
            f"cannot create the run folder {out} ({exc.strerror}): choose a writable --results"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = " ".join(handle.read().split()) or "another process"
            if not wait:
                raise UserError(in_use(out, holder)) from None
            print(f"waiting for run folder {out}, in use by {holder}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} ({' '.join(['offline-mbrl', *sys.argv[1:]])[:200]})\n")
            handle.flush()
        except OSError as exc:  # a full disk: the lock holds, only its note of the holder is missing
            if exc.errno != errno.ENOSPC:
                raise EnvironmentFault(
                    f"cannot write the lock of run folder {out} ({exc.strerror})"
                ) from None
        _HELD[out] = 1
        try:
            yield
        finally:
            del _HELD[out]
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
