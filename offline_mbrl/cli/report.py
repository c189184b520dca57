"""The `report`, `evaluate`, `reproduce`, `compare` and `experiment edge-of-reach` subcommands, mounted
on the main app by `register`.

Thin layers over `report.build.make_report`, `experiments.family_eval.evaluate_family`,
`experiments.reproduce.reproduce`, `experiments.cells.compare` and `experiments.edge_of_reach`; heavy
imports happen inside the commands so `offline-mbrl --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from offline_mbrl.algorithms import algo_help
from offline_mbrl.cli import COMPILE, PRECISION, THREADS, precision_overrides
from offline_mbrl.cli import set_compile as _set_compile
from offline_mbrl.core.console import console
from offline_mbrl.core.threads import configure_threads

# `--storage/--study/--heartbeat` of the commands that run grids of cells (compare, reproduce)
STORAGE = Annotated[
    str | None,
    typer.Option(
        help="run the cells as trials of --study there: postgresql://..., sqlite:///..., a journal file"
    ),
]
STUDY = Annotated[
    str | None,
    typer.Option(help="the grid's study: every machine running the same command takes free cells of it"),
]
HEARTBEAT = Annotated[
    int, typer.Option(help="seconds between a grid worker's heartbeats; a cell missing two is retried")
]


def _grid(storage: str | None, study: str | None, heartbeat: int):
    from offline_mbrl.core.errors import UserError
    from offline_mbrl.experiments.cells import GridOptions

    if study is None:
        if storage is not None:
            raise UserError("--storage needs --study: the name of the grid's study")
        return None
    return GridOptions(study, storage, heartbeat)


_REPS = typer.Option(
    help="bootstrap repetitions for the aggregate intervals (profiles and pairs use <= 2000)"
)


def register(app: typer.Typer) -> None:
    """Add the four commands to `app` (the main `offline-mbrl` app)."""
    app.command("report")(report_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("reproduce")(reproduce_cmd)
    app.command("compare")(compare_cmd)
    experiment = typer.Typer(help="Shipped experiments, one command each.", no_args_is_help=True)
    experiment.command("edge-of-reach")(edge_of_reach_cmd)
    app.add_typer(experiment, name="experiment")


def report_cmd(
    result_dirs: Annotated[
        list[Path] | None, typer.Argument(help="run folders or folders holding runs (default: results)")
    ] = None,
    out: Annotated[Path, typer.Option(help="report folder, e.g. reports/hopper (replaced)")] = Path(
        "reports/report"
    ),
    title: Annotated[str | None, typer.Option(help="report title")] = None,
    algo: Annotated[list[str] | None, typer.Option(help="only these algorithms (or method labels)")] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="only these datasets")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="only runs whose config KEY=VALUE, e.g. algo.penalty=llv")
    ] = None,
    intersect: Annotated[
        bool, typer.Option(help="keep only the tasks and runs all methods share instead of failing")
    ] = False,
    reps: Annotated[int, _REPS] = 50_000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    storage: Annotated[
        str | None,
        typer.Option(help="with --study: the grid study's storage (default: sweeps/STUDY/journal.log)"),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="report a grid study's recorded cells (compare/reproduce --study)")
    ] = None,
    results: Annotated[
        Path, typer.Option(help="results root (a study's records go in .study-NAME/ there)")
    ] = Path("results"),
) -> None:
    """rliable report of finished runs: report.md, self-contained report.html, figures, CSV and parquet."""
    from offline_mbrl.report.build import make_report

    grid = _grid(storage, study, heartbeat=60)
    if grid is not None:
        from offline_mbrl.core.errors import UserError
        from offline_mbrl.experiments.cells import study_report_runs

        if result_dirs:
            raise UserError("give run folders or --study, not both")
        result_dirs, grid_title = study_report_runs(grid.study, grid.storage, results, log=console.print)
        title = title or grid_title
    report = make_report(
        result_dirs or [Path("results")],
        out,
        title=title,
        algorithms=algo or [],
        datasets=dataset or [],
        where=where or [],
        intersect=intersect,
        reps=reps,
        seed=seed,
    )
    _print_report(report)


def _print_report(report) -> None:
    from offline_mbrl.report.stats import METRICS

    stats = report.nominal
    for note in report.notes:
        console.print(f"note: {note}")
    if stats.aggregates:
        table = Table(title="normalised score / 100, 95% stratified-bootstrap intervals")
        table.add_column("method", overflow="fold")
        for col in ("runs", *METRICS):
            table.add_column(col)
        for m in stats.scope.methods:
            table.add_row(m, str(len(stats.scope.runs[m])), *(stats.aggregates[m][k].fmt(3) for k in METRICS))
        console.print(table)
    for s in report.family_summaries:
        for a, b in s.flips:
            console.print(
                f"{s.family} on {s.dataset}: {a} is above {b} on the nominal MDP, below it over the family"
            )
    console.print(f"report: {report.folder / 'report.html'} and {report.folder / 'report.md'}")


def evaluate_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="finished run folders, or folders holding runs")],
    family: Annotated[str, typer.Option(help="MDP family name or .toml path, e.g. pendulum-physics")],
    episodes: Annotated[
        int | None, typer.Option(help="episodes per member (default: the run's final eval)")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    force: Annotated[bool, typer.Option(help="evaluate again even if family_<name>.json exists")] = False,
    threads: THREADS = None,
) -> None:
    """Evaluate trained policies on every member of an MDP family; writes family_<name>.json by each run."""
    configure_threads(threads)
    from offline_mbrl.experiments.family_eval import evaluate_family, family_file
    from offline_mbrl.report.table import find_runs

    runs = find_runs(run_dirs)
    if not runs:
        from offline_mbrl.core.errors import UserError

        given = ", ".join(map(str, run_dirs))
        raise UserError(
            f"no finished run (a folder with final.json) at or under {given}: nothing to evaluate"
        )
    for run_dir in runs:
        rec = evaluate_family(run_dir, family, episodes, device, force=force)
        scores = rec["member_scores"]
        table = Table(title=f"{rec['algorithm']} on {rec['dataset']} seed {rec['seed']}: {rec['family']}")
        table.add_column("member")
        for p in sorted(rec["member_params"][0]):
            table.add_column(p)
        table.add_column("return")
        table.add_column("score" if scores is not None else "")
        for k, params in enumerate(rec["member_params"]):
            score = "" if scores is None else f"{scores[k]:.1f}"
            table.add_row(
                f"m{k}",
                *(f"{params[p]:.4g}" for p in sorted(params)),
                f"{rec['member_returns'][k]:.1f}",
                score,
            )
        console.print(table)
        weighted = rec["family_weighted_score"]
        shown = (
            f"score {weighted:.1f}" if weighted is not None else f"return {rec['family_weighted_return']:.1f}"
        )
        nominal = rec["nominal_score"] if weighted is not None else rec["nominal_return"]
        console.print(
            f"family-weighted mean {shown} (nominal MDP {nominal:.1f}) over {rec['members']} members x "
            f"{rec['episodes']} episodes -> {family_file(run_dir, rec['family'])}"
        )


def reproduce_cmd(
    table: Annotated[
        str, typer.Argument(help="a table under reports/tables (e.g. offlinerlkit_d4rl_v2) or a .toml")
    ],
    budget: Annotated[
        str, typer.Option(help="smoke (minutes/cell, CPU), small (hours/cell), paper")
    ] = "smoke",
    seeds: Annotated[
        int | None, typer.Option(help="seeds per cell (default: smoke 2, small 3, paper: the table's)")
    ] = None,
    results: Annotated[Path, typer.Option(help="results root")] = Path("results"),
    out: Annotated[Path | None, typer.Option(help="report folder (default reports/TABLE-BUDGET)")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override for every cell: KEY=V or ALGO:KEY=V")
    ] = None,
    reps: Annotated[int, _REPS] = 50_000,
    threads: THREADS = None,
    compile_: COMPILE = None,
    precision: PRECISION = None,
    storage: STORAGE = None,
    study: STUDY = None,
    heartbeat: HEARTBEAT = 60,
) -> None:
    """Run the missing cells of a paper table and render our numbers next to the published ones."""
    grid = _grid(storage, study, heartbeat)
    configure_threads(threads)
    _set_compile(compile_)
    from offline_mbrl.experiments.reproduce import reproduce

    result = reproduce(
        table,
        budget,
        seeds,
        results,
        out,
        device,
        [*precision_overrides(precision, device), *(set_ or [])],
        reps,
        log=console.print,
        grid=grid,
    )
    outside = [r for r in result.rows if r["inside"] is False]
    for r in outside:
        console.print(
            f"{r['task']} {r['algorithm']}: published {r['published'][0]:.1f} is outside our interval "
            f"{r['ours'].fmt(1)}"
        )
    console.print(f"report: {result.folder / 'report.html'} and {result.folder / 'report.md'}")
    failed = [c for c in result.cells if c.status == "failed"]
    if failed:
        console.print(f"{len(failed)} of {len(result.cells)} cells failed; the report lists why")
        raise typer.Exit(1)


def compare_cmd(
    algo: Annotated[
        list[str] | None,
        typer.Option(
            help=algo_help("an algorithm to compare (repeat --algo; default: the budget tier's six)")
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="a dataset; repeat for several (default: the smoke or small budget's tier)"),
    ] = None,
    seeds: Annotated[int, typer.Option(help="seeds 0..K-1 per algorithm and dataset")] = 3,
    budget: Annotated[
        str, typer.Option(help="paper (default: the algorithms' settings), small or smoke")
    ] = "paper",
    steps: Annotated[int | None, typer.Option(help="gradient steps (overrides the budget's)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=V for all, or ALGO:KEY=V for one")
    ] = None,
    family: Annotated[str | None, typer.Option(help="also evaluate every run on this MDP family")] = None,
    episodes: Annotated[int | None, typer.Option(help="episodes per family member")] = None,
    results: Annotated[Path, typer.Option(help="results root")] = Path("results"),
    out: Annotated[
        Path | None,
        typer.Option(
            help="report folder (default reports/compare-ALGOS-DATASETS; a whole tier: reports/BUDGET-tier)"
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    reps: Annotated[int, _REPS] = 50_000,
    threads: THREADS = None,
    compile_: COMPILE = None,
    precision: PRECISION = None,
    storage: STORAGE = None,
    study: STUDY = None,
    heartbeat: HEARTBEAT = 60,
    workers: Annotated[
        int, typer.Option(help="processes of one torch thread training cells side by side (2 on 2 cores)")
    ] = 1,
) -> None:
    """Run what is missing of algorithms x datasets x seeds, then write their report."""
    grid = _grid(storage, study, heartbeat)
    configure_threads(threads)
    _set_compile(compile_)
    from offline_mbrl.experiments.cells import compare

    result = compare(
        algo or [],
        dataset or [],
        seeds,
        budget,
        steps,
        [*precision_overrides(precision, device), *(set_ or [])],
        family,
        episodes,
        results,
        out,
        device,
        reps,
        log=console.print,
        grid=grid,
        workers=workers,
    )
    _print_report(result.report)
    failed = [c for c in result.cells if c.status == "failed"]
    if failed:
        console.print(f"{len(failed)} of {len(result.cells)} cells failed; the report lists why")
        raise typer.Exit(1)


def edge_of_reach_cmd(
    dataset: Annotated[
        list[str] | None, typer.Option(help="datasets (default hopper-medium-replay); repeat for more")
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="seeds per cell (default: smoke 1, cpu 3)")] = None,
    budget: Annotated[str, typer.Option(help="smoke (a pipeline check), cpu (about an hour), paper")] = "cpu",
    steps: Annotated[int | None, typer.Option(help="gradient steps per run (default: the budget's)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=V for every algorithm, or ALGO:KEY=V for one")
    ] = None,
    results: Annotated[Path, typer.Option(help="results root")] = Path("results"),
    out: Annotated[
        Path | None, typer.Option(help="report folder (default reports/edge-of-reach-BUDGET)")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    reps: Annotated[int, _REPS] = 50_000,
    threads: THREADS = None,
) -> None:
    """MBPO, MOPO and RAVL with the learned model and with the true simulator (Sims et al., NeurIPS 2024):
    scores, Q-value curves and rliable statistics."""
    configure_threads(threads)
    from offline_mbrl.experiments.edge_of_reach import edge_of_reach

    result = edge_of_reach(
        dataset or ["hopper-medium-replay"],
        seeds,
        budget,
        steps,
        set_ or [],
        results,
        out,
        device,
        reps,
    )
    table = Table(title="edge of reach: final normalised score and Q")
    for col in ("dataset", "method", "score", "per seed", "final Q", "peak |Q|"):
        table.add_column(col)
    for r in result.summary.to_dict("records"):
        table.add_row(
            r["dataset"],
            r["method"],
            f"{r['score_mean']:.1f} ± {r['score_std']:.1f}" if r["score_mean"] is not None else "n/a",
            r["scores"],
            f"{r['final_q_mean']:.4g}",
            f"{r['peak_abs_q']:.4g}",
        )
    console.print(table)
    console.print(f"report: {result.folder / 'report.html'}")
