"""`offline-mbrl sweep`: run a study (`sweep --algo A --dataset D ...`); `sweep show`, `sweep report`,
`sweep export` and `sweep repair` one.

A thin layer over `offline_mbrl.sweep.study`. The group's own options run a sweep when no subcommand
follows; `cli/main.py` mounts it with `app.add_typer(sweep_app, name="sweep")`, and
`python -m offline_mbrl.cli.sweep` runs it alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from offline_mbrl.algorithms import algo_help
from offline_mbrl.cli import PRECISION, precision_overrides
from offline_mbrl.core.console import console, run_app
from offline_mbrl.core.errors import UserError

sweep_app = typer.Typer(
    help="Optuna sweeps. `sweep --algo A --dataset D [options]` runs or continues a study; "
    "`sweep show STUDY` prints it; `sweep export STUDY` writes its trials and best config; "
    "`sweep repair STUDY` mends a damaged journal.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@sweep_app.callback()
def sweep_run(
    ctx: typer.Context,
    algo: Annotated[str | None, typer.Option(help=algo_help())] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="dataset; repeat for several (the objective averages them; a repeat counts once)"),
    ] = None,
    trials: Annotated[
        int, typer.Option(help="the study's total number of trials (all workers together)")
    ] = 20,
    seeds: Annotated[int, typer.Option(help="seeds per trial and dataset: 0..K-1")] = 1,
    steps: Annotated[int | None, typer.Option(help="gradient steps per run (default: the config's)")] = None,
    sampler: Annotated[str, typer.Option(help="tpe, gp (Bayesian optimisation), random, cmaes")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median, hyperband, none")] = "median",
    objective: Annotated[str, typer.Option(help="mean or iqm of the runs' final normalised scores")] = "mean",
    study: Annotated[
        str | None, typer.Option(help="study name (default ALGO-DATASET[+DATASET][-SPACE])")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="postgresql://USER:PASS@HOST:PORT/DB, sqlite:///F.db or a journal file")
    ] = None,
    space: Annotated[str | None, typer.Option(help="search space: a name in sweeps/ or a TOML file")] = None,
    workers: Annotated[int, typer.Option(help="local worker processes on this machine")] = 1,
    threads: Annotated[
        int | None, typer.Option(help="torch threads per worker (default: cores / workers)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="fix a config key on every trial (each key once)")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    results: Annotated[Path, typer.Option(help="results root for the trials' runs")] = Path("results"),
    heartbeat: Annotated[int, typer.Option(help="seconds between heartbeats; stale after two")] = 60,
    sampler_seed: Annotated[
        int | None, typer.Option(help="seed the sampler (reproducible proposals)")
    ] = None,
    startup_trials: Annotated[
        int | None,
        typer.Option(help="random trials before tpe/gp/cmaes model the space (Optuna's default 10)"),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="smoke, small or paper: the run budget compare and reproduce use (default: none)"),
    ] = None,
    precision: PRECISION = None,
) -> None:
    """Run (or continue) a sweep: `offline-mbrl sweep --algo ravl --dataset hopper-medium --trials 50`.

    Rerunning the same command continues the study; the same command on another machine (with a shared
    --storage) adds workers. `sweep show STUDY` and `sweep export STUDY` inspect it."""
    if ctx.invoked_subcommand is not None:
        return
    if algo is None and not dataset:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    if algo is None or not dataset:
        raise UserError("a sweep needs --algo and --dataset (or a subcommand: show STUDY, export STUDY)")
    import optuna

    from offline_mbrl.sweep.study import SweepSpec, once, run_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset, set_, notes = once(dataset, set_ or [])
    for note in notes:
        console.print(f"note: {note}")
    items = (*precision_overrides(precision, device), *set_)
    if budget is not None:
        items = (*budget_overrides(budget, algo, space), *items)
    spec = SweepSpec(
        algo=algo,
        datasets=tuple(dataset),
        trials=trials,
        seeds=seeds,
        steps=steps,
        sampler=sampler,
        pruner=pruner,
        objective=objective,
        study=study,
        storage=storage,
        space=space,
        overrides=items,
        device=device,
        results=str(results),
        heartbeat=heartbeat,
        seed=sampler_seed,
        startup_trials=startup_trials,
        # the budget's measured seconds per run hold while its steps do
        budget=budget if steps is None and not any(i.startswith("steps=") for i in set_ or ()) else None,
    )
    sweep = run_sweep(spec, workers=workers, console=console, threads=threads)
    done, _ = sweep.tally()
    console.print(f"study {spec.study_name()} in {sweep.where}: {done} of {trials} trials")
    storage_flag = f" --storage {storage}" if storage else ""
    console.print(f"see it with `offline-mbrl sweep show {spec.study_name()}{storage_flag}`")


def budget_overrides(budget: str, algo: str, space: str | None) -> list[str]:
    """The `--budget`'s settings for `algo` (as `compare --budget` applies them), less the keys the search
    space searches (the search decides those)."""
    from offline_mbrl.experiments.cells import BUDGETS, _budget_overrides
    from offline_mbrl.sweep.space import find_space, load_space

    if budget not in BUDGETS:
        raise UserError(f"unknown --budget '{budget}'; choose from {', '.join(BUDGETS)}")
    searched = {p.key for p in load_space(find_space(space, algo)).params}
    return [i for i in _budget_overrides(BUDGETS[budget], algo) if i.partition("=")[0] not in searched]


@sweep_app.command("show")
def sweep_show(
    study: Annotated[str, typer.Argument(help="study name")],
    storage: Annotated[str | None, typer.Option(help="storage URL (default: the local journal)")] = None,
) -> None:
    """The study's settings, best config, every trial, and parameter importances."""
    from offline_mbrl.sweep.results import describe, load_study

    info = describe(load_study(study, storage))
    attrs = info["attrs"]
    console.print(
        f"{info['name']}: {attrs.get('algorithm')} on {', '.join(map(str, attrs.get('datasets') or []))}, "
        f"objective {attrs.get('objective')} over {attrs.get('seeds')} seed(s), {attrs.get('steps')} steps, "
        f"space {attrs.get('space_file')}"
    )
    best = info["best"]
    if best is None:
        console.print("no completed trial yet")
    else:
        console.print(f"best: trial {best.number}, value {best.value:.2f}")
        flags = " ".join(f"--set {o}" for o in best.user_attrs.get("overrides", []))
        if attrs.get("algorithm") and attrs.get("datasets") and attrs.get("steps"):  # set when it was created
            console.print(
                f"  offline-mbrl train --algo {attrs['algorithm']} --dataset {attrs['datasets'][0]} "
                f"--steps {attrs['steps']} {flags}"
            )
    rows = info["rows"]
    params = list(dict.fromkeys(k for r in rows for k in r if k not in _FIXED_COLUMNS))
    table = Table(title=f"{len(rows)} trials")
    for col in ("#", "state", "value", *params, "seconds", "reason"):
        table.add_column(col)
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.2f}"
        cells = [_cell(r.get(p)) for p in params]
        secs = "" if r["duration_s"] is None else f"{r['duration_s']:.0f}"
        table.add_row(str(r["number"]), r["state"].lower(), value, *cells, secs, r["reason"])
    console.print(table)
    table = Table(title="parameter importances (PED-ANOVA)")
    table.add_column("parameter")
    table.add_column("importance")
    for name, value in info["importances"].items():
        table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


_FIXED_COLUMNS = {"number", "state", "value", "reason", "duration_s", "worker", "overrides", "scores", "runs"}


def _cell(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@sweep_app.command("report")
def sweep_report_cmd(
    study: Annotated[str, typer.Argument(help="study name")],
    storage: Annotated[str | None, typer.Option(help="storage URL (default: the local journal)")] = None,
    out: Annotated[Path | None, typer.Option(help="report folder (default reports/sweep-STUDY)")] = None,
) -> None:
    """A report of the study: best trial, every trial, importances, and what tuning bought (the expected
    best score as a function of the number of trials)."""
    from offline_mbrl.sweep.report import sweep_report
    from offline_mbrl.sweep.results import load_study

    folder = sweep_report(load_study(study, storage), out or Path("reports") / f"sweep-{study}")
    console.print(f"report: {folder / 'report.html'} and {folder / 'report.md'}")


@sweep_app.command("export")
def sweep_export(
    study: Annotated[str, typer.Argument(help="study name")],
    storage: Annotated[str | None, typer.Option(help="storage URL (default: the local journal)")] = None,
    results: Annotated[Path, typer.Option(help="results root; files go to RESULTS/sweeps/STUDY/")] = Path(
        "results"
    ),
) -> None:
    """Write the trials as CSV and parquet, and the best config as a file `train --config` accepts."""
    from offline_mbrl.sweep.results import export, load_study

    loaded = load_study(study, storage)
    paths = export(loaded, results)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    if "best_config" not in paths:
        console.print("no completed trial yet: no best config written")
        return
    attrs = loaded.user_attrs
    console.print(
        f"train it: offline-mbrl train --algo {attrs['algorithm']} --dataset {attrs['datasets'][0]} "
        f"--config {paths['best_config']}"
    )


@sweep_app.command("repair")
def sweep_repair(
    study: Annotated[str, typer.Argument(help="study name")],
    storage: Annotated[
        str | None, typer.Option(help="its journal file (default: sweeps/STUDY/journal.log)")
    ] = None,
) -> None:
    """Mend a damaged journal (a worker killed mid-line, a truncated or edited file): keep every complete
    operation before the first bad line, move the rest into a side file next to it (nothing is deleted)."""
    from offline_mbrl.sweep.storage import repair_journal

    found, side, where = repair_journal(study, storage)
    if side is None:
        console.print(f"{where} is whole: {found.good} operations, nothing to repair")
        return
    console.print(
        f"{where}: kept the {found.good} complete operations before line {found.bad_line} "
        f"({found.good_bytes:,} bytes); line {found.bad_line} {found.why}"
    )
    console.print(
        f"moved lines {found.bad_line}-{found.lines} ({found.size - found.good_bytes:,} bytes) to {side}"
    )
    flag = f" --storage {storage}" if storage else ""
    console.print(f"see it with `offline-mbrl sweep show {study}{flag}`")


def main() -> None:
    run_app(sweep_app, prog_name="offline-mbrl sweep")


if __name__ == "__main__":
    main()
