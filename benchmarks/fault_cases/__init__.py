"""The fault catalogue's cases by area (benchmarks/fault_catalogue.py runs them).

A `Case` is one `offline-mbrl` command run as a user would, in a scratch root holding a made dataset, a
dataset with NaN, one finished BC run, a user's folder and file (`fault_catalogue._prepare`, plus each
area module's own `prepare`). A case with `before` runs in a private copy of that root: `before` is Python
run there first (damage a file, write a bad input); `after` is Python run there afterwards that exits
non-zero when the command harmed what it found (`harm`: "lost" for a user's data gone, "poisoned" for a
state that breaks later commands). `concurrent` starts the command that many times at once (races): each
start must exit 0 or end in the one-line error holding `expect`, at least one exits 0, and `after` judges
what they left together.

Each run ends in one outcome: "one-line error" (expected: exit 2, one `error:` line holding `expect`, no
file changed), "correct" (an `ok` case that succeeded), or what went wrong: "traceback", "silent" (exit 0
or files written where an error was due), "hang" (past `timeout`), "poisoned", "lost", "other" (an error
of the wrong form: several lines, wrong words, wrong status).
"""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES = ("one-line error", "correct", "traceback", "silent", "hang", "poisoned", "lost", "other")


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    expect: str  # words the one-line error (or, for "ok" cases, the output) must hold
    ok: bool = False  # the command must succeed (exit 0)
    env: tuple[tuple[str, str], ...] = ()  # variables set to paths under the scratch root
    before: str = ""  # Python run first in a private copy of the scratch root (cwd: that copy)
    after: str = ""  # Python run afterwards in that copy; a non-zero exit is `harm`
    harm: str = "poisoned"  # "lost" or "poisoned"
    concurrent: int = 1  # start the command this many times at once (a race)
    interrupt: float = 0.0  # send SIGINT this many seconds after the start (0: none); expects exit 130 and
    # one `interrupted:` line holding `expect`
    timeout: int = 300  # seconds before the case counts as a hang
    area: str = "catalogue"  # the module the case comes from (its table section)
