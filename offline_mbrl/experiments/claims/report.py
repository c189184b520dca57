"""The claims' report folder: report.md and report.html (one section per claim: its paper, claim,
experiment, statistic, verdict, each test's numbers, its table and figure), claims.csv (every test) and
<claim>.csv (each claim's per-seed numbers), published atomically (`report.build.publish_report`)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from offline_mbrl.experiments.claims.verdict import fmt_interval
from offline_mbrl.report.build import Output, publish_report, write_document
from offline_mbrl.report.render import Cell, Document, Figure, Heading, Table, Text

if TYPE_CHECKING:
    from offline_mbrl.experiments.claims import ClaimRun

CLAIMS_OUTPUT = Output(
    ".offline-mbrl-claims", "claims", "claims report", "an offline-mbrl claims report", "reports/claims-cpu"
)


def document(runs: Sequence[ClaimRun], budget: str, seeds: int) -> Document:
    doc = Document(f"Paper claims at budget {budget} ({seeds} seed{'s' if seeds != 1 else ''})")
    doc.add(
        Text(
            "Each claim's verdict comes from its statistics' 95% bootstrap intervals against the claim's "
            "threshold: holds (the whole interval on the claim's side), does not hold (the whole interval on "
            "the other side) or inconclusive (the interval straddles the threshold, or one seed gives no "
            "interval). A claim holds when every test holds."
        ),
        Table(
            ["claim", "verdict", "minutes"],
            [
                [r.claim.name, Cell(r.outcome.verdict, r.outcome.verdict == "holds"), f"{r.seconds / 60:.1f}"]
                for r in runs
            ],
        ),
    )
    for r in runs:
        c, o = r.claim, r.outcome
        doc.add(
            Heading(f"{c.name}: {o.verdict}"),
            Text(f"**Paper**: {c.paper}. **Claim**: {c.claim}"),
            Text(f"**Experiment**: {c.experiment}. **Statistic**: {c.statistic}."),
            Table(
                ["test", "statistic", "value [95% interval]", "threshold", "verdict"],
                [
                    [
                        t.name,
                        t.statistic,
                        fmt_interval(t.interval),
                        {"above": "> ", "at_least": "≥ ", "below": "< "}[t.direction] + f"{t.threshold:g}",
                        Cell(t.verdict, t.verdict == "holds"),
                    ]
                    for t in o.tests
                ],
            ),
        )
        if o.figure:
            doc.add(Figure(o.figure, o.figure_caption))
        shown = o.table.drop(columns=[k for k in ("run_dir",) if k in o.table])
        if len(shown) and len(shown) <= 60:
            doc.add(
                Table(
                    [str(k) for k in shown.columns],
                    [[_fmt(v) for v in row] for row in shown.itertuples(index=False)],
                    caption=f"{c.name}: the numbers behind the tests ({c.name}.csv)",
                )
            )
        for note in o.notes:
            doc.add(Text(note, "note"))
    return doc


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def publish(runs: Sequence[ClaimRun], budget: str, seeds: int, out: Path, figures: Path) -> None:
    from offline_mbrl.experiments.claims import verdict_table

    def write(folder: Path) -> None:
        if figures.is_dir():
            shutil.copytree(figures, folder / "figures")
        verdict_table(runs).to_csv(folder / "claims.csv", index=False)
        for r in runs:
            r.outcome.table.to_csv(folder / f"{r.claim.name}.csv", index=False)
        write_document(document(runs, budget, seeds), folder)

    publish_report(out, write, CLAIMS_OUTPUT)
