"""The `offline-mbrl` command. Every subcommand is a thin layer over a library function."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from offline_mbrl.algorithms import algo_help
from offline_mbrl.cli import COMPILE, PRECISION, THREADS, precision_overrides
from offline_mbrl.cli import set_compile as _set_compile
from offline_mbrl.cli.claims import register as register_claims_command
from offline_mbrl.cli.report import register as register_report_commands
from offline_mbrl.cli.sweep import sweep_app
from offline_mbrl.core.console import console, run_app
from offline_mbrl.core.threads import configure_threads

app = typer.Typer(
    help="Offline model-based RL benchmarking: datasets, dynamics, algorithms, sweeps, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="List, inspect, import and make datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
dynamics_app = typer.Typer(help="Fit and inspect the cached dynamics ensembles.", no_args_is_help=True)
app.add_typer(dynamics_app, name="dynamics")
cache_app = typer.Typer(help="List and clear cached artefacts of every kind.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
app.add_typer(sweep_app, name="sweep")
register_report_commands(app)  # report, evaluate, reproduce, compare
register_claims_command(app)  # claims


@datasets_app.command("list")
def datasets_list() -> None:
    """Every dataset name, the Minari id it resolves to, whether it is present, its size and provenance."""
    from offline_mbrl.data.catalog import catalog

    table = Table(title="datasets (Minari root: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    for col in ("name", "resolves to", "present", "transitions", "episodes", "size MB", "provenance"):
        table.add_column(col)
    entries = catalog()
    for e in entries:
        table.add_row(
            e.name,
            e.dataset_id,
            "DAMAGED" if e.damaged else "yes" if e.present else "no",
            "" if e.transitions is None else f"{e.transitions:,}",
            "" if e.episodes is None else f"{e.episodes:,}",
            "" if e.size_mb is None else f"{e.size_mb:.1f}",
            e.provenance,
        )
    console.print(table)
    for e in {e.dataset_id: e for e in entries if e.damaged}.values():
        console.print(f"damaged: {e.dataset_id}: {e.damage}; write it again with `{e.repair}`", style="red")


@datasets_app.command("info")
def datasets_info(name: Annotated[str, typer.Argument(help="short name or Minari id")]) -> None:
    """Metadata, size, and the distribution of episode returns and normalised scores."""
    from offline_mbrl.data.dataset import load_dataset

    ds = load_dataset(name)
    spec = ds.spec
    console.print(f"{name} -> {ds.dataset_id}", style="bold")
    meta = ds.metadata
    for key in ("algorithm_name", "description", "code_permalink", "minari_version"):
        if key in meta:
            console.print(f"  {key}: {meta[key]}")
    console.print(f"  environment: {spec.gym_id} (short name: {spec.env or 'unknown'})")
    console.print(f"  transitions: {len(ds):,}  episodes: {len(ds.episode_lengths):,}")
    console.print(
        f"  terminals: {int(ds.data.term.sum()):,}  time-outs: {int(ds.timeout.sum()):,}  "
        f"obs dim {spec.obs_dim}, act dim {spec.act_dim}"
    )
    console.print(f"  fingerprint: {ds.fingerprint.key}")
    made_with = (meta.get("offline_mbrl") or {}).get("versions")
    if made_with:
        from offline_mbrl.core.paths import stack_versions

        console.print("  made with: " + ", ".join(f"{k} {v}" for k, v in made_with.items()))
        now = stack_versions()
        changed = [f"{k} {now[k]}" for k, v in made_with.items() if now.get(k, v) != v]
        if changed:
            console.print(
                f"  installed now: {', '.join(changed)}: making it again here may not give the same arrays",
                style="yellow",
            )
    if bad := ds.non_finite():
        where = ", ".join(f"{n:,} transitions in {k}" for k, n in bad.items())
        console.print(
            f"  non-finite values (NaN or inf): {where}; training and fitting refuse it", style="red"
        )
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
    from offline_mbrl.data.d4rl_import import import_d4rl
    from offline_mbrl.data.names import shadowing_note

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
    if note := shadowing_note(s.dataset_id):
        console.print(note)


@datasets_app.command("train-behaviour")
def datasets_train_behaviour(
    env: Annotated[str, typer.Argument(help="environment short name, e.g. hopper or pendulum")],
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    steps: Annotated[int | None, typer.Option(help="environment steps (default: the env's preset)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default datasets/behaviour/ENV)")] = None,
    threads: THREADS = None,
) -> None:
    """Train PPO behaviour policies and write the expert, medium and replay checkpoints with manifests."""
    configure_threads(threads)
    from offline_mbrl.core.errors import UserError
    from offline_mbrl.core.paths import assets_dir, writable_assets
    from offline_mbrl.data.make.behaviour import run_train_behaviour, save_summary

    if out is None and not writable_assets():
        raise UserError(
            f"the behaviour policies of an installed package ({assets_dir()}) are not to be written: pass "
            "--out DIR/datasets/behaviour/ENV and set OFFLINE_MBRL_ROOT=DIR to make datasets with them"
        )
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
    if_missing: Annotated[bool, typer.Option(help="do nothing if the dataset exists (for scripts)")] = False,
    threads: THREADS = None,
) -> None:
    """Collect offline-mbrl/ENV/TIER-v0 from the committed behaviour policies."""
    configure_threads(threads)
    from offline_mbrl.data.make.collect import made_dataset_id, make_dataset
    from offline_mbrl.data.minari_io import check_dataset, dataset_exists
    from offline_mbrl.data.names import shadowing_note

    if if_missing and dataset_exists(made_id := made_dataset_id(name, family)):
        check_dataset(made_id)  # present but damaged: one line naming the repair
        console.print(f"{made_id} is present; nothing to make")
        return
    s = make_dataset(name, size=size, seed=seed, overwrite=overwrite, family=family)
    console.print(
        f"made {s.dataset_id}: {s.transitions:,} transitions, {s.episodes:,} episodes, "
        f"mean return {s.mean_return:.1f}, in {s.seconds:.0f} s at {s.path}"
    )
    if note := shadowing_note(s.dataset_id):
        console.print(note)


@datasets_app.command("families")
def datasets_families(
    name: Annotated[str | None, typer.Argument(help="a family name or .toml path; omit to list all")] = None,
) -> None:
    """List the MDP families, or show one family's distribution and its fixed members."""
    from offline_mbrl.data.make.families import list_families, load_family

    if name is None:
        table = Table(title="MDP families (datasets/families/*.toml)")
        for col in ("family", "environment", "members", "parameters"):
            table.add_column(col)
        for fam in map(load_family, list_families()):
            table.add_row(fam.name, fam.env_id, str(fam.members), ", ".join(sorted(fam.parameters)))
        console.print(table)
        return
    fam = load_family(name)
    console.print(f"{fam.name} on {fam.env_id}, seed {fam.seed}: {fam.description}")
    members = fam.member_params()
    table = Table(title=f"{len(members)} members")
    table.add_column("member")
    for p in sorted(fam.parameters):
        table.add_column(p)
    for k, params in enumerate(members):
        table.add_row(str(k), *(f"{params[p]:.4g}" for p in sorted(fam.parameters)))
    console.print(table)


@app.command("train")
def train_cmd(
    algo: Annotated[str, typer.Option(help=algo_help())],
    dataset: Annotated[str, typer.Option(help="dataset short name or Minari id")],
    seed: Annotated[
        int, typer.Option(help="run seed (also the dynamics seed unless dynamics_seed is set)")
    ] = 0,
    seeds: Annotated[
        int, typer.Option(min=1, help="train seeds SEED..SEED+K-1, batched in one process where it can")
    ] = 1,
    batch_seeds: Annotated[
        bool, typer.Option(help="--no-batch-seeds: train the seeds one after another instead")
    ] = True,
    steps: Annotated[int | None, typer.Option(help="gradient steps (default: the paper's 3M)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key: --set algo.horizon=3")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="'paper': the per-task D4RL settings")] = None,
    config: Annotated[
        Path | None, typer.Option(help="start from a config JSON (a run's or a sweep export)")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    resume: Annotated[
        bool, typer.Option(help="continue an interrupted run from its last checkpoint")
    ] = False,
    force: Annotated[bool, typer.Option(help="start over even if the run exists")] = False,
    results: Annotated[Path, typer.Option(help="results root")] = Path("results"),
    threads: THREADS = None,
    compile_: COMPILE = None,
    precision: PRECISION = None,
) -> None:
    """Train one algorithm on one dataset; writes results/ALGO/DATASET/RUN/{config,metrics,final}.

    With --seeds K, the K runs train as one batched computation where the algorithm can (every algorithm
    on the model-based loop), each still in its own run folder; the others train their seeds one after
    another."""
    configure_threads(threads)
    _set_compile(compile_)
    from offline_mbrl.launch import build_config, execute_seeds, no_flag_overrides, plan_seeds
    from offline_mbrl.learning.run import run_dir_for

    no_flag_overrides(set_ or [], steps_flag=steps is not None)
    plan_seeds(seed, seeds)
    set_ = [*precision_overrides(precision, device), *(set_ or [])]
    cfgs = [
        build_config(algo, dataset, s, steps, device, set_ or [], preset, config)
        for s in range(seed, seed + seeds)
    ]
    try:
        finals = execute_seeds(cfgs, results, resume=resume, force=force, batch=batch_seeds)
    except KeyboardInterrupt:
        dirs = [run_dir_for(cfg, results) for cfg in cfgs]
        folders = (
            ", ".join(map(str, dirs)) if len(dirs) <= 3 else f"{len(dirs)} run folders in {dirs[0].parent}"
        )
        again = ["offline-mbrl", "train", "--algo", algo, "--dataset", dataset, "--seed", str(seed)]
        again += ["--seeds", str(seeds)] if seeds > 1 else []
        again += [] if batch_seeds else ["--no-batch-seeds"]
        again += ["--steps", str(steps)] if steps is not None else []
        again += [x for item in set_ or [] for x in ("--set", item)]
        again += ["--preset", preset] if preset else []
        again += ["--precision", precision] if precision else []
        again += ["--config", str(config)] if config else []
        again += ["--device", device, "--results", str(results), "--resume"]
        print(
            f"interrupted: {folders} {'keeps its' if seeds == 1 else 'keep their'} last checkpoint and "
            f"finished stages; continue with: {shlex.join(again)}",
            file=sys.stderr,
        )
        sys.exit(130)  # not typer.Exit(130): run_app takes that for an interrupt without its own line
    for cfg, final in zip(cfgs, finals, strict=True):
        score = final["normalized_score"]
        shown = (
            f"normalised score {score:.1f}"
            if score is not None
            else f"return {final['return_mean']:.1f} (no references)"
        )
        console.print(
            f"{algo} on {dataset} seed {cfg.seed}: {shown} over {len(final['returns'])} episodes, "
            f"{final.get('gradient_steps', final['steps']):,} steps in {final['wall_time']:.0f} s -> "
            f"{run_dir_for(cfg, results)}"
        )


@app.command("config")
def config_cmd(
    algo: Annotated[
        str | None, typer.Option(help="algorithm (built-in or an installed plugin's); with --audit: all")
    ] = None,
    dataset: Annotated[str, typer.Option(help="dataset")] = "hopper-medium",
    task: Annotated[
        str | None, typer.Option(help="the preset's task (hopper-medium-replay); sets --dataset to it")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key")] = None,
    preset: Annotated[str | None, typer.Option(help="'paper'")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the config as JSON instead")] = False,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit", help="print the fidelity audit: each sourced setting, suite vs reference, and status"
        ),
    ] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="with --audit: a Markdown table")] = False,
    into: Annotated[
        Path | None, typer.Option(help="with --audit: rewrite the audit tables between this page's markers")
    ] = None,
) -> None:
    """Print the fully resolved config: every key `--set` accepts, its value, where the value comes from
    (the reference repository's file and line, a paper's table, a preset, --set) and what it means."""
    import json

    from offline_mbrl.algorithms import algorithms, get_spec
    from offline_mbrl.config import describe, to_dict
    from offline_mbrl.core.errors import UserError
    from offline_mbrl.data.names import preset_task
    from offline_mbrl.experiments.audit import AuditRow, audit_markdown, audit_table, write_audit
    from offline_mbrl.launch import build_config
    from offline_mbrl.provenance import key_sources

    if audit:
        names = [get_spec(algo).name] if algo else list(algorithms())
        if into is not None:
            write_audit(into)
            console.print(f"wrote the audit tables into {into}")
            return
        if markdown:
            sys.stdout.write(audit_markdown(names))
            return
        table = Table(title="fidelity audit: suite vs reference (docs/fidelity.md)")
        for col in AuditRow._fields:
            table.add_column(col, overflow="fold")
        for row in audit_table(names):
            table.add_row(*row)
        console.print(table)
        return
    if algo is None:
        raise UserError("config needs --algo (or --audit for every algorithm's audit table)")
    if task is not None:
        dataset = task
    cfg = build_config(algo, dataset, overrides=set_ or [], preset=preset)
    if as_json:
        console.print_json(json.dumps(to_dict(cfg)))
        return
    spec = get_spec(algo)
    rows = describe(cfg)
    preset_map = spec.presets.get(preset_task(dataset) or "") if preset else None
    overridden = {item.partition("=")[0].strip() for item in set_ or []}
    sources = key_sources(spec.sources, preset_map, overridden, [k for k, _, _ in rows])
    shown_preset = f", --preset {preset}" if preset else ""
    table = Table(title=f"{algo} on {dataset}{shown_preset}: keys for --set, sweep spaces and result columns")
    for col in ("key", "value", "source", "meaning"):
        table.add_column(col, overflow="fold")
    for key, value, doc in rows:
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        table.add_row(key, shown, sources[key], doc)
    console.print(table)


@dynamics_app.command("fit")
def dynamics_fit(
    dataset: Annotated[str, typer.Option(help="dataset short name or Minari id")],
    seed: Annotated[int, typer.Option(help="dynamics seed")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: --set dynamics.members=5 (as train takes)")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    reward: Annotated[
        bool,
        typer.Option(
            "--reward",
            help="also fit (or load) MOREC's dynamics reward for this ensemble (--set algo.reward.KEY=V)",
        ),
    ] = False,
    threads: THREADS = None,
    precision: PRECISION = None,
) -> None:
    """Fit (or load from the cache) the dynamics ensemble for a dataset and print its holdout errors;
    with --reward, also MOREC's dynamics reward and its held-out AUCs."""
    configure_threads(threads)
    from offline_mbrl.algorithms.morec.overrides import split_reward_overrides
    from offline_mbrl.config import dynamics_config_from_overrides
    from offline_mbrl.data.dataset import load_dataset
    from offline_mbrl.models.dynamics import load_or_fit

    dyn_items, reward_cfg = split_reward_overrides(set_ or [], reward)
    from offline_mbrl.launch import check_device

    check_device(device)
    dyn_items = [f"dynamics.{o}" for o in precision_overrides(precision, device)] + dyn_items
    cfg = dynamics_config_from_overrides(seed, dyn_items)
    from offline_mbrl.core.precision import check_precision

    check_precision(cfg.precision, device)  # also a --set dynamics.precision=bf16
    ds = load_dataset(dataset, device=device)
    from offline_mbrl.models.fit_plan import fit_plan

    for line in fit_plan(ds, cfg):
        console.print(line, highlight=False)
    model, report, key = load_or_fit(ds, cfg, device=device)
    table = Table(title=f"dynamics {key} on {ds.dataset_id}")
    table.add_column("member")
    table.add_column("holdout MSE")
    table.add_column("holdout NLL")
    table.add_column("elite")
    elites = set(report["elites"])
    for i, (mse, nll) in enumerate(zip(report["holdout_mse"], report["holdout_nll"], strict=True)):
        table.add_row(str(i), f"{mse:.5f}", f"{nll:.3f}", "yes" if i in elites else "")
    console.print(table)
    console.print(
        f"elite mean MSE {report['elite_mse']:.5f}; mean-delta baseline MSE {report['baseline_mse']:.5f}; "
        f"{report['epochs']} epochs, {report['wall_time']:.0f} s"
    )
    if reward_cfg is not None:
        from offline_mbrl.algorithms.morec.reward_fit import load_or_fit_reward

        _, rep, rkey = load_or_fit_reward(ds, model, key, reward_cfg)
        console.print(
            f"dynamics reward {rkey}: {rep['snapshots']} snapshots, fitted in {rep['wall_time']:.0f} s; "
            f"held-out AUC of r_D, data vs the ensemble's one-step samples {rep['auc_one_step']:.3f}, "
            f"vs {reward_cfg.replay_steps}-step replays {rep['auc_replay']:.3f}, vs Δs perturbed by 0.1 / 1 "
            f"std {rep['auc_perturbed_0.1']:.3f} / {rep['auc_perturbed_1']:.3f}"
        )


@app.command("diagnose")
def diagnose_cmd(
    dataset: Annotated[str, typer.Option(help="dataset short name or Minari id")],
    run: Annotated[
        Path | None, typer.Option(help="a finished run of this dataset: roll out its policy (default: BC)")
    ] = None,
    seed: Annotated[int, typer.Option(help="dynamics seed (also of the starts, rollouts and BC)")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="dynamics override, as dynamics fit takes")
    ] = None,
    starts: Annotated[int, typer.Option(help="rollout start states drawn from the dataset")] = 2000,
    horizon: Annotated[int, typer.Option(help="rollout horizon")] = 5,
    out: Annotated[
        Path | None, typer.Option(help="output folder (default reports/diagnose/DATASET-seedS)")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    bc_steps: Annotated[int, typer.Option(help="gradient steps of the BC policy (without --run)")] = 3000,
    reward: Annotated[
        bool,
        typer.Option(
            "--reward", help="also score MOREC's dynamics reward r_D (fitted on a miss; --set algo.reward.*)"
        ),
    ] = False,
    reward_stride: Annotated[
        int, typer.Option(help="average every this-many-th r_D snapshot (MOREC-MOPO 10, MOREC-MOBILE 40)")
    ] = 10,
    threads: THREADS = None,
) -> None:
    """Model-error diagnostics (Lu et al. 2022): how each uncertainty penalty (and, with --reward, MOREC's
    dynamics reward) tracks the true model error."""
    configure_threads(threads)
    from offline_mbrl.algorithms.morec.overrides import split_reward_overrides
    from offline_mbrl.experiments.diagnose import diagnose, print_result

    dyn_items, reward_cfg = split_reward_overrides(set_ or [], reward)
    print_result(
        diagnose(
            dataset,
            run,
            seed,
            dyn_items,
            starts,
            horizon,
            out,
            device,
            bc_steps,
            reward=reward_cfg,
            reward_stride=reward_stride,
        )
    )


@cache_app.command("ls")
def cache_ls(
    kind: Annotated[str | None, typer.Option(help="only this kind (dynamics, dynamics_reward, ...)")] = None,
) -> None:
    """List the cached artefacts of every kind (dynamics, dynamics rewards, behaviour policies, rollouts)."""
    from offline_mbrl.core.cache import cache_root, list_artefacts

    rows = list_artefacts(kind)
    table = Table(title=f"cached artefacts in {cache_root()}")
    for col in ("kind", "key", "dataset", "summary", "MB", "created"):
        table.add_column(col)
    for e in rows:
        table.add_row(
            e["kind"],
            e["key"],
            e["dataset_id"] or "",
            "DAMAGED (cache clear removes it)" if e["damaged"] else e["summary"],
            f"{e['size_mb']:.1f}",
            e["created"] or "",
        )
    console.print(table)
    console.print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


@cache_app.command("clear")
def cache_clear(
    kind: Annotated[str | None, typer.Option(help="only this kind of artefact")] = None,
    dataset: Annotated[str | None, typer.Option(help="only the entries of this dataset (id or name)")] = None,
) -> None:
    """Remove cached artefacts: all, one kind's, or one dataset's (damaged entries always); with neither
    filter, also the datasets' read caches (flattened arrays, content hashes: rebuilt on the next load)."""
    from offline_mbrl.core.cache import clear_artefacts
    from offline_mbrl.data.dataset import clear_read_cache

    n = clear_artefacts(kind, dataset)
    console.print(f"removed {n} cached artefact{'' if n == 1 else 's'}")
    if kind is None and dataset is None:
        files = clear_read_cache()
        console.print(f"removed {files} read-cache file{'' if files == 1 else 's'} of the datasets")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
