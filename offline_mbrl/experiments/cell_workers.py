"""Cells run side by side: `run_cells`'s groups (a batch of seeds, or one cell) on N spawned processes of
one torch thread each (`compare --workers`, `claims --workers`; docs/reports.md#comparisons)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.launch import execute_seeds
from offline_mbrl.learning.run import DivergedError

if TYPE_CHECKING:
    from offline_mbrl.experiments.cells import CellRun


def shown_score(final: dict) -> str:
    if final.get("normalized_score") is not None:
        return f"normalised score {final['normalized_score']:.1f}"
    return f"return {final['return_mean']:.1f}"


Outcome = tuple[str, "list[dict] | str"]  # ("ran", finals) or ("diverged" | "failed", why)


def run_group(cfgs: list[TrainConfig], results_root: Path, progress: bool) -> Outcome:
    """One seed group trained (or reused) here; a UserError is its outcome, not raised."""
    try:
        return "ran", execute_seeds(cfgs, results_root, resume="auto", progress=progress)
    except DivergedError as exc:
        return "diverged", str(exc)
    except UserError as exc:
        return "failed", str(exc)


def settle(group: list[CellRun], outcome: Outcome) -> str:
    """Record a group's outcome on its cells; returns what the log line says of it."""
    kind, result = outcome
    if kind == "ran":
        finals = cast(list[dict], result)
        for cell, final in zip(group, finals, strict=True):
            cell.final, cell.status = final, "ran"
        return "; ".join(shown_score(f) for f in finals)
    for cell in group:
        cell.status, cell.error, cell.diverged = "failed", str(result), kind == "diverged"
    return f"failed: {result}"


def _group_in_worker(cfgs: list[TrainConfig], results_root: Path) -> Outcome:
    """One seed group, in a worker process of one torch thread."""
    import torch

    torch.set_num_threads(1)
    return run_group(cfgs, results_root, progress=False)


def run_in_workers(
    groups: list[list[CellRun]],
    cfgs: list[list[TrainConfig]],
    results_root: Path,
    workers: int,
    log: Callable[[str], None],
) -> None:
    """The seed groups on `workers` processes of one torch thread each (spawned: no state shared but the
    files), the batched groups first. On a 2-core CPU two 1-thread processes train these small networks
    about twice as fast as one 2-thread process (docs/claims.md). An interrupted group resumes from its
    checkpoint when the command runs again, as a group run in this process does."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(range(len(groups)), key=lambda k: -len(groups[k]))  # stable: ties keep their order
    groups, cfgs = [groups[k] for k in order], [cfgs[k] for k in order]
    total = sum(len(g) for g in groups)
    log(f"running {len(groups)} groups of cells on {workers} worker processes of one thread each")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        started = time.time()
        futures = {
            pool.submit(_group_in_worker, c, results_root): g for g, c in zip(groups, cfgs, strict=True)
        }
        done = 0
        for future in as_completed(futures):
            group = futures[future]
            outcome = future.result()
            done += len(group)
            first = group[0]
            seeds = ", ".join(str(c.seed) for c in group)
            where = f"[{done}/{total}] {first.algorithm} on {first.dataset} seed(s) {seeds}"
            said = settle(group, outcome)
            log(
                f"{where}: done at {time.time() - started:.0f} s: {said}"
                if outcome[0] == "ran"
                else f"{where}: {said}"
            )
