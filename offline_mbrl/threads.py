"""How many CPU threads torch uses: the cores this process may actually run on, not the machine's count.

A container with a CPU quota (cgroup `cpu.max`, or v1's `cfs_quota_us`) or a process pinned to some cores
(`taskset`, a scheduler's affinity) still sees every core of the machine in `os.cpu_count()`, and torch's
default of one intra-op thread per core then oversubscribes: threads spin for cores they do not get.
`usable_cores()` takes the smaller of the affinity set and the quota (rounded down, at least 1);
`configure_threads(n)` sets torch to `n`, or to the usable cores when `n` is None (`--threads` of `train`,
`compare`, `reproduce`, `dynamics fit`; a sweep divides them among its workers).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from offline_mbrl.errors import UserError

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


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to `threads` (None: the usable cores); returns the number set."""
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    import torch

    n = threads or usable_cores()
    torch.set_num_threads(n)
    return n
