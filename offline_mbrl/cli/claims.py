"""The `claims` command: each paper's headline claim as one command (`experiments.claims`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from offline_mbrl.cli import THREADS
from offline_mbrl.core.console import console
from offline_mbrl.core.threads import configure_threads


def register(app: typer.Typer) -> None:
    app.command("claims")(claims_cmd)


def claims_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="claims to run (default: all); `--list` names them")
    ] = None,
    budget: Annotated[
        str, typer.Option(help="cpu (each claim at most about 20 minutes on 2 cores) or paper (a GPU)")
    ] = "cpu",
    seeds: Annotated[int, typer.Option(help="seeds per method")] = 3,
    results: Annotated[Path, typer.Option(help="results root (finished runs are reused)")] = Path("results"),
    out: Annotated[Path | None, typer.Option(help="report folder (default reports/claims-BUDGET)")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    reps: Annotated[int, typer.Option(help="bootstrap repetitions of each interval")] = 2_000,
    list_: Annotated[
        bool, typer.Option("--list", help="print each claim's paper and statement, run none")
    ] = False,
    threads: THREADS = None,
    workers: Annotated[
        int,
        typer.Option(
            help="processes of one torch thread training the cells side by side (2 on a 2-core CPU: "
            "about twice as fast for these small networks)"
        ),
    ] = 1,
) -> None:
    """Run paper claims and print one verdict per claim (holds, does not hold, inconclusive) with its
    statistic and 95% interval; the report folder holds every test, table and figure."""
    from offline_mbrl.experiments.claims import check_names, run_claims

    if list_:
        for claim in check_names(names or []):
            console.print(f"{claim.name} ({claim.paper}): {claim.claim}", highlight=False)
            console.print(f"  experiment: {claim.experiment}", highlight=False)
            console.print(f"  statistic: {claim.statistic}", highlight=False)
        return
    configure_threads(threads)
    runs, folder = run_claims(names or [], budget, seeds, results, out, device, reps, workers=workers)
    console.rule("verdicts")
    for r in runs:
        console.print(r.line(), highlight=False, soft_wrap=True)
    console.print(f"report: {folder / 'report.html'}")
