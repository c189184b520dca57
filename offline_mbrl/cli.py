"""The `offline-mbrl` command. Every subcommand is a thin layer over a library function."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from offline_mbrl.errors import UserError

app = typer.Typer(
    help="Offline model-based RL benchmarking: datasets, dynamics, algorithms, sweeps, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="List, inspect, import and make datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
# Wide when piped (logs, CI), so tables do not fold into unreadable columns.
console = Console() if sys.stdout.isatty() else Console(width=200)


@datasets_app.command("list")
def datasets_list() -> None:
    """Every dataset name, the Minari id it resolves to, whether it is present, its size and provenance."""
    from offline_mbrl.catalog import catalog

    table = Table(title="datasets (Minari root: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    for col in ("name", "resolves to", "present", "transitions", "episodes", "size MB", "provenance"):
        table.add_column(col)
    for e in catalog():
        table.add_row(
            e.name,
            e.dataset_id,
            "yes" if e.present else "no",
            "" if e.transitions is None else f"{e.transitions:,}",
            "" if e.episodes is None else f"{e.episodes:,}",
            "" if e.size_mb is None else f"{e.size_mb:.1f}",
            e.provenance,
        )
    console.print(table)


@datasets_app.command("info")
def datasets_info(name: Annotated[str, typer.Argument(help="short name or Minari id")]) -> None:
    """Metadata, size, and the distribution of episode returns and normalised scores."""
    from offline_mbrl.data import load_dataset

    ds = load_dataset(name)
    spec = ds.spec
    console.print(f"[bold]{name}[/] -> {ds.dataset_id}")
    meta = ds.metadata
    for key in ("algorithm_name", "description", "code_permalink", "minari_version"):
        if key in meta:
            console.print(f"  {key}: {meta[key]}")
    console.print(f"  environment: {spec.gym_id} (family: {spec.family or 'unknown'})")
    console.print(f"  transitions: {len(ds):,}  episodes: {len(ds.episode_lengths):,}")
    console.print(
        f"  terminals: {int(ds.data.term.sum()):,}  time-outs: {int(ds.timeout.sum()):,}  "
        f"obs dim {spec.obs_dim}, act dim {spec.act_dim}"
    )
    console.print(f"  fingerprint: {ds.fingerprint.key}")
    table = Table(title="episode statistics")
    for col in ("", "mean", "min", "q25", "median", "q75", "max"):
        table.add_column(col)

    def row(label: str, x: np.ndarray) -> None:
        q = np.percentile(x, [0, 25, 50, 75, 100])
        table.add_row(label, f"{x.mean():.2f}", *(f"{v:.2f}" for v in q[:1]), *(f"{v:.2f}" for v in q[1:]))

    row("length", ds.episode_lengths.astype(np.float64))
    row("return", ds.episode_returns)
    scores = spec.normalize(ds.episode_returns)
    if scores is not None:
        row("normalised score", scores)
    console.print(table)
    note = "" if scores is not None else " (raw returns only)"
    console.print(f"  reference returns: {spec.ref_source}{note}")


@datasets_app.command("import-d4rl")
def datasets_import_d4rl(
    file: Annotated[Path, typer.Argument(help="a D4RL hdf5 file, e.g. hopper_medium-v2.hdf5")],
    name: Annotated[str, typer.Option(help="D4RL name with version, e.g. hopper-medium-v2")],
    overwrite: Annotated[bool, typer.Option(help="replace an existing import")] = False,
) -> None:
    """Convert a D4RL hdf5 file into the local Minari dataset d4rl-import/<env>/<tier>-vN."""
    from offline_mbrl.d4rl_import import import_d4rl

    s = import_d4rl(file, name, overwrite=overwrite)
    console.print(
        f"imported {s.transitions:,} transitions in {s.episodes:,} episodes "
        f"({s.terminals:,} terminals, {s.timeouts:,} time-outs) as {s.dataset_id} at {s.path}"
    )
    if s.dropped:
        console.print(
            f"note: the file has no next_observations; {s.dropped:,} final transitions "
            "(one per episode) had no recorded next observation and were dropped"
        )


@datasets_app.command("train-behaviour")
def datasets_train_behaviour(
    env: Annotated[str, typer.Argument(help="environment short name, e.g. hopper or pendulum")],
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    steps: Annotated[int | None, typer.Option(help="environment steps (default: the env's preset)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default datasets/behaviour/ENV)")] = None,
) -> None:
    """Train PPO behaviour policies and write the expert, medium and replay checkpoints with manifests."""
    from offline_mbrl.datasets.behaviour import run_train_behaviour, save_summary
    from offline_mbrl.paths import assets_dir

    out_dir = out or assets_dir() / "behaviour" / env
    command = " ".join(["offline-mbrl", "datasets", "train-behaviour", env, "--seed", str(seed)])
    command += f" --steps {steps}" if steps else ""
    summary = run_train_behaviour(env, seed, steps, out_dir, command)
    save_summary(out_dir / "training_curve.json", summary)
    for tier in ("random", "medium", "expert"):
        s = summary[tier]
        at = f" at {s['training_steps']:,} steps" if "training_steps" in s else ""
        console.print(f"{tier:>7}: return {s['mean_return']:.1f} +- {s['std_return']:.1f}{at}")
    r = summary["replay"]
    console.print(
        f" replay: {r['checkpoints']} checkpoints, {r['collected_steps']:,} steps collected up to medium"
    )
    console.print(f"written to {out_dir}")


@datasets_app.command("make")
def datasets_make(
    name: Annotated[str, typer.Argument(help="ENV-TIER, e.g. hopper-medium or pendulum-medium-replay")],
    size: Annotated[
        int | None, typer.Option(help="transitions (default 1M; 2M medium-expert; replay: as trained)")
    ] = None,
    seed: Annotated[int, typer.Option(help="collection seed: same seed, same dataset")] = 0,
    family: Annotated[str | None, typer.Option(help="collect across the members of this MDP family")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing dataset")] = False,
) -> None:
    """Collect offline-mbrl/ENV/TIER-v0 from the committed behaviour policies."""
    from offline_mbrl.datasets.make import make_dataset

    s = make_dataset(name, size=size, seed=seed, overwrite=overwrite, family=family)
    console.print(
        f"made {s.dataset_id}: {s.transitions:,} transitions, {s.episodes:,} episodes, "
        f"mean return {s.mean_return:.1f}, in {s.seconds:.0f} s at {s.path}"
    )


@datasets_app.command("families")
def datasets_families(
    name: Annotated[str | None, typer.Argument(help="a family name or .toml path; omit to list all")] = None,
) -> None:
    """List the MDP families, or show one family's distribution and its fixed members."""
    from offline_mbrl.datasets.families import list_families, load_family

    if name is None:
        table = Table(title="MDP families (datasets/families/*.toml)")
        for col in ("family", "environment", "members", "parameters"):
            table.add_column(col)
        for fam in map(load_family, list_families()):
            table.add_row(fam.name, fam.env_id, str(fam.members), ", ".join(sorted(fam.parameters)))
        console.print(table)
        return
    fam = load_family(name)
    console.print(f"[bold]{fam.name}[/] on {fam.env_id}, seed {fam.seed}: {fam.description}")
    members = fam.member_params()
    table = Table(title=f"{len(members)} members")
    table.add_column("member")
    for p in sorted(fam.parameters):
        table.add_column(p)
    for k, params in enumerate(members):
        table.add_row(str(k), *(f"{params[p]:.4g}" for p in sorted(fam.parameters)))
    console.print(table)


def main() -> None:
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
