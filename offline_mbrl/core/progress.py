"""Progress of long work: one API, `stage(name, total)`, for every long stage of the suite.

    with stage("dynamics", total=epochs, label="dynamics fit (epochs)", enabled=progress) as s:
        for epoch in ...:
            s.advance(epoch + 1, f"holdout MSE {mse:.4g}")

`advance(done, info)` drives the three ways progress is seen: a rich bar on a terminal (when `enabled`),
plain lines where there is none (`Ticker`), and `report` to whoever listens (a sweep's trial display).
A stage with no known end (a fit that stops by patience) takes `total=0`: how far, not how long.

The pieces underneath:
- `Ticker`: when the output is not a terminal (a log file, `nohup`, CI), rich draws no live bars, so long
  stages print a plain line at their first step and then every `OFFLINE_MBRL_PROGRESS_SECONDS` (default
  30) seconds instead: what, how far, the time spent and a measured estimate of the time left.
- `report(stage, done, total, info)` / `listen(callback)`: the stages of a run (dynamics fit epochs,
  behaviour fit and training steps with the last evaluation, rollout batches) report where they are; a
  driver that runs them (a sweep) listens and shows the current trial's progress and its time estimates.
  Nothing is reported to nobody: without a listener `report` does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

Listener = Callable[[str, int, int, str], None]  # (stage, done, total, info)
_listeners: list[Listener] = []


def report(stage: str, done: int, total: int, info: str = "") -> None:
    """Tell the active listeners (if any) that `stage` has done `done` of `total`."""
    for listener in list(_listeners):
        listener(stage, done, total, info)


@contextlib.contextmanager
def listen(callback: Listener) -> Iterator[None]:
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def is_terminal() -> bool:
    """Whether rich draws live bars here (stdout is an interactive terminal)."""
    from rich.console import Console

    return Console().is_terminal


def plain_every() -> float:
    """Seconds between plain progress lines (`OFFLINE_MBRL_PROGRESS_SECONDS`, default 30)."""
    raw = os.environ.get("OFFLINE_MBRL_PROGRESS_SECONDS", "30")
    try:
        value = float(raw)
    except ValueError:
        value = 30.0
    return value if value > 0 else 30.0


def duration(seconds: float) -> str:
    """'42 s', '3.5 min', '2.1 h', '1.8 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Ticker:
    """Plain progress lines for a stage, at most one per `every` seconds, only when `enabled` (by default:
    when the output is not a terminal, where rich shows its own bars)."""

    def __init__(
        self,
        label: str,
        total: int,
        start: int = 0,
        enabled: bool | None = None,
        every: float | None = None,
        out: Callable[[str], None] | None = None,
    ):
        self.label, self.total, self.start = label, total, start
        self.enabled = (not is_terminal()) if enabled is None else enabled
        self.every = plain_every() if every is None else every
        self.out = out or (lambda line: print(line, file=sys.stderr, flush=True))
        self.started = self.last = time.monotonic()
        self.said = False

    def update(self, done: int, info: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < self.every and self.said):
            return  # the first update is always said: a stage is seen within seconds of its start
        self.said = True
        self.last = now
        elapsed, moved = now - self.started, done - self.start
        extra = f", {info}" if info else ""
        if self.total <= 0:  # no known end (a fit that stops by patience): how far, not how long
            self.out(f"{self.label}: {done:,}{extra}, {duration(elapsed)} elapsed")
            return
        left = f", ~{duration((self.total - done) * elapsed / moved)} left" if moved > 0 else ""
        pct = f" ({100 * done / self.total:.0f}%)"
        self.out(f"{self.label}: {done:,}/{self.total:,}{pct}{extra}, {duration(elapsed)} elapsed{left}")


class Stage:
    """One long stage: a rich bar (when enabled), plain lines off a terminal, and reports to listeners.
    Use it as a context manager (`stage(...)`); `advance(done, info)` sets how far it is."""

    def __init__(self, name: str, total: int, label: str | None = None, start: int = 0, enabled: bool = True):
        self.name, self.total, self.label = name, total, label or name
        self.enabled = enabled
        self.ticker = Ticker(self.label, total, start, enabled=enabled and not is_terminal())
        self._start = start
        self._bar: Progress | None = None

    def __enter__(self) -> Stage:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        counts = (MofNCompleteColumn(), TimeRemainingColumn()) if self.total > 0 else ()
        bar = Progress(
            TextColumn(self.label),
            BarColumn(),
            *counts[:1],
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            *counts[1:],
            disable=not self.enabled,
        )
        bar.__enter__()
        self._task = bar.add_task(self.name, total=self.total or None, completed=self._start, info="")
        self._bar = bar
        # a listener (a sweep's trial line) sees the stage the moment it starts
        report(self.name, self._start, self.total, "started")
        return self

    def advance(self, done: int, info: str = "") -> None:
        """The stage has done `done` of its total (epochs, steps, batches, episodes)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, info=info)
        self.ticker.update(done, info)
        report(self.name, done, self.total, info)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)
            self._bar = None


def stage(name: str, total: int, label: str | None = None, start: int = 0, enabled: bool = True) -> Stage:
    """A long stage's progress (see the module docstring): `with stage(...) as s: s.advance(done, info)`."""
    return Stage(name, total, label, start, enabled)
