"""What a claim is: its paper, the claim in one sentence, the experiment, the statistic and its threshold,
and a function that runs the experiment at a budget and returns its tests (`verdict.Test`) and figure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from offline_mbrl.experiments.cells import CellRun
from offline_mbrl.experiments.claims.verdict import DIVERGED, Test, Verdict, combine

CLAIM_BUDGETS = ("cpu", "paper")


@dataclass(frozen=True)
class Context:
    """What a claim's run gets: the budget, seeds, where runs live, a staging folder for its figure."""

    budget: str  # "cpu" or "paper"
    seeds: int
    results_root: Path
    figures: Path  # write figures/<claim>.png here
    device: str = "cpu"
    reps: int = 2_000  # bootstrap repetitions of each interval
    progress: bool = True
    log: Callable[[str], None] = print
    workers: int = 1  # processes of one torch thread running its cells side by side (`run_cells`)


@dataclass
class Outcome:
    """What a claim's experiment showed: its tests, a table of the numbers behind them, its figure (a
    path relative to the report folder), and remarks (what the run shows and why, failed cells)."""

    tests: list[Test]
    table: pd.DataFrame
    figure: str | None = None
    figure_caption: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return combine([t.verdict for t in self.tests])


@dataclass(frozen=True)
class Claim:
    name: str  # the CLI name: edge-of-reach
    paper: str  # authors, venue, year, title
    claim: str  # the claim in one sentence
    experiment: str  # what is run, at each budget
    statistic: str  # the statistics and their thresholds, in words
    run: Callable[[Context], Outcome]
    cpu_minutes: float  # minutes measured at --budget cpu, 3 seeds, 2 cores, empty caches (the plan line)


def counted(cell: CellRun) -> bool:
    """Whether a cell enters a claim's statistics: it finished, or the suite stopped it as diverged."""
    return cell.final is not None or cell.diverged


def score_of(cell: CellRun, key: str = "normalized_score") -> float:
    """A finished cell's final `key`; `DIVERGED` (-inf: the lowest rank) for a diverged one."""
    if cell.final is not None:
        value = cell.final.get(key)
        return float("nan") if value is None else float(value)
    return DIVERGED if cell.diverged else float("nan")


def failure_notes(cells: list[CellRun]) -> list[str]:
    def what(c: CellRun) -> str:
        return "diverged (counted as the lowest score)" if c.diverged else "failed"

    return [f"{c.task} seed {c.seed} {what(c)}: {c.error}" for c in cells if c.error]


def save_figure(fig: Any, path: Path) -> str:
    """Write `fig` to `path` (a PNG in the claims' staging figures folder); its report-relative path."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"figures/{path.name}"


def seed_strip(ax: Any, i: int, values: Any, color: Any) -> None:
    """One method's per-seed values at x = i: dots and a bar at their mean; diverged runs (-inf) are not
    plotted but counted under the bar ("n diverged")."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    if ok.size:
        ax.bar(i, float(ok.mean()), color=color, alpha=0.5)
        ax.scatter(np.full(ok.size, i), ok, color=color, zorder=3)
    if ok.size < v.size:
        ax.annotate(
            f"{v.size - ok.size} diverged",
            (i, 0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
        )
