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


def _group_in_worker(cfgs: list[TrainConfig], results_root: Path) -> tuple[str, list[dict] | str]:
    """One seed group, in a worker process of one torch thread: ("ran", finals) or (failure kind, why)."""
    import torch

    torch.set_num_threads(1)
    try:
        return "ran", execute_seeds(cfgs, results_root, resume="auto", progress=False)
    except DivergedError as exc:
        return "diverged", str(exc)
    except UserError as exc:
        return "failed", str(exc)


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
            kind, result = future.result()
            done += len(group)
            first = group[0]
            seeds = ", ".join(str(c.seed) for c in group)
            where = f"[{done}/{total}] {first.algorithm} on {first.dataset} seed(s) {seeds}"
            if kind == "ran":
                finals = cast(list[dict], result)
                for cell, final in zip(group, finals, strict=True):
                    cell.final, cell.status = final, "ran"
                scores = "; ".join(shown_score(f) for f in finals)
                log(f"{where}: done at {time.time() - started:.0f} s: {scores}")
            else:
                for cell in group:
                    cell.status, cell.error, cell.diverged = "failed", str(result), kind == "diverged"
                log(f"{where}: failed: {result}")
