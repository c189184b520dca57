"""Each paper's headline claim as one command: `offline-mbrl claims [NAME ...] --budget cpu|paper`.

A claim (`base.Claim`) states its paper, the claim in one sentence, the experiment, the statistic and its
threshold. `run_claims` runs each named claim's experiment (its cells are ordinary runs under results/:
finished ones are reused, interrupted ones resume), judges each of its tests (`verdict.py`: holds, does
not hold or inconclusive, from the statistic's 95% interval against the threshold), prints one verdict
line per claim and publishes a report folder (report.md, report.html, claims.csv with every test's
numbers, each claim's table as CSV, its figure) atomically, like every report of the suite.

Claims, one module each:
- `edge-of-reach` (edge_of_reach.py): Sims et al., NeurIPS 2024.
- `penalties` (penalties.py): Lu et al., ICLR 2022, the penalty study.
- `morec` (morec.py): Luo et al., ICLR 2024, MOREC's reward consistency.
- `families` (families.py): Jayawardana et al., NeurIPS 2022, task underspecification over MDP families.
- `mbrcsl` (mbrcsl.py): Zhou et al., ICLR 2024, stitching on pointmaze-stitch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.ranges import MAX_SEEDS, check_option
from offline_mbrl.experiments.claims.base import CLAIM_BUDGETS, Claim, Context, Outcome
from offline_mbrl.experiments.claims.verdict import fmt_interval


def registry() -> dict[str, Claim]:
    from offline_mbrl.experiments.claims import edge_of_reach, families, mbrcsl, morec, penalties

    # the order they run in: penalties fits the ensembles morec reuses; families reuses morec's runs
    claims = (edge_of_reach.CLAIM, penalties.CLAIM, morec.CLAIM, families.CLAIM, mbrcsl.CLAIM)
    return {c.name: c for c in claims}


@dataclass
class ClaimRun:
    claim: Claim
    outcome: Outcome
    seconds: float

    def line(self) -> str:
        """`NAME: VERDICT (first deciding test's statistic = value [low, high]; ...)`."""
        o = self.outcome
        # the tests that decide the verdict, the closest call first (an interval end nearest its threshold)
        deciding = sorted(
            [t for t in o.tests if t.verdict == o.verdict] or o.tests,
            key=lambda t: min(
                abs((t.interval.low or t.interval.point) - t.threshold),
                abs((t.interval.high or t.interval.point) - t.threshold),
            ),
        )
        shown = "; ".join(f"{t.name}: {t.statistic} = {fmt_interval(t.interval)}" for t in deciding[:2])
        more = f"; +{len(deciding) - 2} more" if len(deciding) > 2 else ""
        return f"{self.claim.name}: {o.verdict} ({shown}{more}) [{self.seconds / 60:.1f} min]"


def check_names(names: Sequence[str]) -> list[Claim]:
    known = registry()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(
            f"unknown claim {', '.join(repr(n) for n in unknown)}; choose from {', '.join(known)}"
        )
    return [known[n] for n in (names or list(known))]


def run_claims(
    names: Sequence[str] = (),
    budget: str = "cpu",
    seeds: int = 3,
    results_root: Path = Path("results"),
    out: Path | None = None,
    device: str = "cpu",
    reps: int = 2_000,
    progress: bool = True,
    log: Callable[[str], None] = print,
    workers: int = 1,
) -> tuple[list[ClaimRun], Path]:
    """Run the claims (all when `names` is empty); returns their runs and the report folder."""
    from offline_mbrl.core.cache import temp_dir_beside
    from offline_mbrl.experiments.claims.report import CLAIMS_OUTPUT, publish

    if budget not in CLAIM_BUDGETS:
        raise UserError(f"unknown budget '{budget}'; choose from {', '.join(CLAIM_BUDGETS)}")
    check_option("--seeds", seeds, 1, MAX_SEEDS)
    check_option("--reps", reps, 10, 1_000_000)
    check_option("--workers", workers, 1, 64)
    from offline_mbrl.launch import check_device

    check_device(device)  # a missing GPU is one line before any dataset, run or folder is made
    claims = check_names(names)
    folder = Path(out) if out is not None else Path("reports") / f"claims-{budget}"
    from offline_mbrl.report.build import check_report_out

    check_report_out(folder, CLAIMS_OUTPUT)  # before any run: a folder we may not replace is one line
    folder.parent.mkdir(parents=True, exist_ok=True)
    figures = temp_dir_beside(folder.parent) / "figures"
    if budget == "cpu":
        total = sum(c.cpu_minutes for c in claims)
        log(
            f"plan: {len(claims)} claim(s) at budget cpu, {seeds} seed(s): "
            + ", ".join(f"{c.name} (~{c.cpu_minutes:.0f} min)" for c in claims)
            + f"; about {total:.0f} min on a 2-core CPU with empty caches (3 seeds, measured with one "
            "process" + (f"; {workers} workers take less" if workers > 1 else "") + "), less for what "
            f"is already under {results_root} or cached; report into {folder}"
        )
    else:
        log(
            f"plan: {len(claims)} claim(s) at budget {budget}: {', '.join(c.name for c in claims)}; "
            f"report into {folder}"
        )
    done: list[ClaimRun] = []
    try:
        for claim in claims:
            log(f"claim {claim.name} ({claim.paper}): {claim.claim}")
            start = time.time()
            ctx = Context(budget, seeds, Path(results_root), figures, device, reps, progress, log, workers)
            outcome = claim.run(ctx)
            done.append(ClaimRun(claim, outcome, time.time() - start))
            for test in outcome.tests:
                log("  " + test.line())
        publish(done, budget, seeds, folder, figures)
    finally:
        import shutil

        shutil.rmtree(figures.parent, ignore_errors=True)
    return done, folder


def verdict_table(runs: Sequence[ClaimRun]) -> pd.DataFrame:
    """One row per test of every claim (claims.csv)."""
    rows = [
        {"claim": r.claim.name, "claim_verdict": r.outcome.verdict, **t.row(), "minutes": r.seconds / 60}
        for r in runs
        for t in r.outcome.tests
    ]
    return pd.DataFrame(rows)
