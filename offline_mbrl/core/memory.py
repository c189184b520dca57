"""What a run will hold in memory, bounded from below before it starts, against what the machine has.

`lower_bound(flat)` reads a run's flattened config (`{dotted key: value}`) and adds the parts that grow
with its settings: each network's weights with their gradients and Adam moments (and target copies), a
batch's activations, the model-rollout buffer (`rollout_batch x horizon x retain_rollouts` rows) and one
rollout step's predictions (`members x rollout_batch`).
Observation and action sizes count as 1, so the figure is a floor: a run refused by it cannot fit, and
one it lets through may still need more (the dataset itself, the true simulator's states). The point is
to refuse in one line, at once, what would otherwise hang the machine in swap or die hours later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FLOAT = 4  # bytes of a float32
# parameters live four times over in training (weights, gradient, Adam's two moments), plus a target copy
TRAINED = 5


def _mlp(hidden: tuple[int, ...]) -> int:
    """Parameters of an MLP with 1 input and 1 output around these hidden layers."""
    sizes = (1, *hidden, 1)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def lower_bound(flat: Mapping[str, Any]) -> dict[str, int]:
    """Bytes by part (networks, batches, model buffer) that a run with these settings holds at least."""
    networks = activations = 0
    batch = int(flat.get("algo.batch_size", 256))
    for key, value in flat.items():
        if not key.endswith("hidden") or not isinstance(value, tuple):
            continue
        if key.startswith("dynamics."):
            copies, rows = int(flat.get("dynamics.members", 1)), int(flat.get("dynamics.batch_size", 256))
        else:
            copies = int(flat.get("algo.sac.critics", 1)) if "critic" in key else 1
            rows = batch
        networks += copies * _mlp(value) * FLOAT * TRAINED
        activations += copies * rows * sum(value) * FLOAT * 3  # forward, its gradient, the saved input
    buffer = 0
    if "algo.rollout_batch" in flat and "algo.horizon" in flat:
        rounds = int(flat.get("algo.retain_rollouts", 1))
        rows = int(flat["algo.rollout_batch"]) * int(flat["algo.horizon"] or 1) * rounds
        buffer = rows * 6 * FLOAT  # observation, action, reward, next observation, done: 1 wide at least
    step = 0
    if "algo.rollout_batch" in flat:  # one rollout step's prediction: every member's output, mean and std
        # (seeds trained together step their rollouts as one: their configs' parts add up)
        step = int(flat.get("dynamics.members", 1)) * int(flat["algo.rollout_batch"]) * 8 * FLOAT
    return {"networks": networks, "batches": activations, "model buffer": buffer, "rollout step": step}


def available_bytes() -> int | None:
    """Memory this process can still take: MemAvailable of /proc/meminfo (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**27 else f"{n / 2**20:,.0f} MiB"
