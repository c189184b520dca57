"""How many CPU threads torch uses: the cores this process may actually run on, not the machine's count.

A container with a CPU quota (cgroup `cpu.max`, or v1's `cfs_quota_us`) or a process pinned to some cores
(`taskset`, a scheduler's affinity) still sees every core of the machine in `os.cpu_count()`, and torch's
default of one intra-op thread per core then oversubscribes: threads spin for cores they do not get.
`usable_cores()` takes the smaller of the affinity set and the quota (rounded down, at least 1). A busy
neighbour on an unrestricted machine (another job on a shared node) is the other half: threads that share
a core with it wait on each other, so `default_threads()` also leaves out the cores that other processes
keep busy when the command starts (idle time over a quarter second from /proc/stat). `configure_threads(n)`
sets torch to `n`, or to `default_threads()` when `n` is None (`--threads` of `train`, `compare`,
`reproduce`, `dynamics fit`; a sweep divides the usable cores among its workers).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from offline_mbrl.core.errors import UserError

CGROUP = Path("/sys/fs/cgroup")


def _cgroup_quota(root: Path = CGROUP) -> float | None:
    """The CPU quota in cores (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), or None if unlimited."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu" / "cpu.cfs_quota_us"
        if v1.is_file():
            quota_us = int(v1.read_text())
            period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def usable_cores(root: Path = CGROUP) -> int:
    """Cores this process may use: its affinity set, capped by the cgroup quota; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows: no affinity API in os
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(root)
    if quota is not None:
        cores = min(cores, math.floor(quota))
    return max(1, cores)


def idle_cores(window: float = 0.25, stat: Path = Path("/proc/stat")) -> float | None:
    """How many cores of the machine were idle over the last `window` seconds (from /proc/stat), or None
    where that cannot be read (not Linux)."""
    import time

    def sample() -> tuple[int, int, int]:
        lines = stat.read_text().splitlines()
        fields = [int(x) for x in lines[0].split()[1:]]  # the "cpu" line: user nice system idle iowait ...
        cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0), cpus

    try:
        total0, idle0, cpus = sample()
        time.sleep(window)
        total1, idle1, _ = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return cpus * (idle1 - idle0) / (total1 - total0)


def default_threads() -> int:
    """The usable cores, less those other processes keep busy right now (at least 1). Measured on this
    2-core machine (2-critic SAC update, docs/speed.md): idle, 2 threads give 137 updates/s and 1
    thread 86; beside one busy process, 2 threads fall to 37 (they wait on each other for the core they do
    not get) while 1 thread keeps 88."""
    usable = usable_cores()
    idle = idle_cores()
    if idle is None:
        return usable
    return max(1, min(usable, math.floor(idle + 0.5)))


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to `threads` (None: `default_threads()`); returns the number set."""
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    cores = os.cpu_count() or 1
    if threads is not None and threads > cores:
        raise UserError(
            f"--threads {threads} is more than this machine's {cores} CPU core(s): more threads than cores "
            f"only slow torch down; pass at most --threads {cores} (or leave it out)"
        )
    import torch

    n = threads or default_threads()
    torch.set_num_threads(n)
    return n
