"""Cells: one (algorithm, dataset, seed) run at a budget. Run the missing ones; `compare` them in a report.

A cell's config is the algorithm's defaults, its paper preset for the dataset where it has one (MOPO's
per-task horizon and penalty), the budget's scale (`BUDGETS`: smoke, small, paper) where the algorithm has
the key, then the user's `--set` (`KEY=V` for all algorithms, `ALGO:KEY=V` for one). A cell whose run exists
under `results/` (same resolved config, hence the same run folder) is reused; an interrupted one resumes
from its checkpoint; a failing one (an absent dataset, a diverging run) is recorded and the others go on.
The smoke budget makes an absent suite dataset at a reduced size (and says so); the paper budget refuses
such a dataset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from offline_mbrl.algorithms import get_spec
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.ranges import MAX_SEEDS, check_option
from offline_mbrl.data.names import Resolution, ShortName, preset_task, resolve
from offline_mbrl.experiments.cell_workers import Outcome, run_in_workers, settle, shown_score
from offline_mbrl.launch import (
    build_config,
    execute_seeds,
    plan_estimate,
    reuse,
    run_dir_locks,
    run_mode,
    same_but_seed,
)
from offline_mbrl.learning.run import DivergedError, run_dir_for
from offline_mbrl.report.render import Text


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    overrides: tuple[str, ...]  # common to every algorithm; then its own (AlgorithmSpec.budgets), then --set
    seeds: int | None  # default seed count (None: the table's)
    dataset_size: int | None = None  # make an absent suite dataset at this size (smoke only)
    make_absent: bool = False  # make an absent suite dataset at its full size (small)
    full_data: bool = False  # refuse suite datasets made at a reduced size
    scaled: bool = True  # a reduced budget: every algorithm must bring its own settings for it
    # the section of resources/rates.toml holding this budget's measured seconds per cell (None: none)
    measured: str | None = None


BUDGETS = {
    "smoke": Budget(
        "smoke",
        "a pipeline check of at most a minute per cell on a 2-core CPU (2,000 steps, 2-epoch dynamics, "
        "1,000 rollouts per round, smaller networks for RAVL, MOBILE and COMBO); its numbers say nothing "
        "about the paper's",
        (
            "steps=2000",
            "eval_every=1000",
            "log_every=100",
            "checkpoint_every=1000",
            "eval_episodes=2",
            "final_eval_episodes=5",
            "dynamics.max_epochs=2",
            "dynamics.steps_per_epoch=50",
        ),
        seeds=2,
        dataset_size=20_000,
        measured="smoke",
    ),
    "small": Budget(
        "small",
        "a few minutes per run on a 2-core CPU (at most 5): 2x128 networks, each algorithm's steps from its "
        "measured rate (MOPO 25,000, RAVL 8,000, MOBILE 5,000, COMBO 3,000, ...), 10 evaluations of 5 "
        "episodes, dynamics capped at 10 epochs of 400 steps, 2,000 rollouts per round; enough to tell "
        "methods apart on its tier of small tasks, not the paper's numbers",
        (
            "log_every=100",
            "eval_episodes=5",
            "final_eval_episodes=10",
            "dynamics.max_epochs=10",
            "dynamics.steps_per_epoch=400",
        ),
        seeds=3,
        make_absent=True,
        measured="small",
    ),
    "paper": Budget(
        "paper",
        "the paper's settings: 3M gradient steps, full dynamics training, 50,000 rollouts per round, "
        "per-task presets (GPU-days in all)",
        (),
        seeds=None,
        full_data=True,
        scaled=False,
    ),
}


# What `compare --budget NAME` runs when no --algo or no --dataset is named: the methods its tiers compare,
# and each budget's datasets (docs/reports.md#tiers). On the small tier those methods differ at the small
# budget (benchmarks/results/small_tier.md); on the smoke tier, pendulum-medium-replay, they all score alike:
# it checks the pipeline, not the methods.
TIER_ALGORITHMS = ("bc", "mopo", "mobile", "combo", "ravl", "morec-mopo")
TIERS: dict[str, tuple[str, ...]] = {
    "smoke": ("pendulum-medium-replay",),
    "small": ("pendulum-random", "inverted-double-pendulum-medium-replay", "point2d-partial"),
}


def tier_defaults(
    budget: str, algorithms: Sequence[str], datasets: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The algorithms and datasets a comparison runs: those named, else the budget's tier (`TIERS`)."""
    if algorithms and datasets:
        return list(algorithms), list(datasets)
    if budget not in TIERS:
        raise UserError(
            f"name the algorithms (--algo) and datasets (--dataset) to compare at the {budget} budget; "
            f"only {' and '.join(TIERS)} have a default tier"
        )
    return list(algorithms or TIER_ALGORITHMS), list(datasets or TIERS[budget])


@dataclass(frozen=True)
class GridOptions:
    """`--storage URL --study NAME`: run the cells as the trials of one study, on any number of machines
    (`sweep.grid`)."""

    study: str
    storage: str | None = None  # None: a journal file sweeps/STUDY/journal.log (one machine)
    heartbeat: int = 60  # seconds; a cell whose worker misses two is retried by another


@dataclass
class CellRun:
    """One (algorithm, dataset, seed) cell and what happened to it."""

    algorithm: str
    task: str  # the name shown (a published task, or the dataset)
    dataset: str  # the name we train on
    seed: int
    status: str = "pending"  # reused | ran | failed
    error: str | None = None
    run_dir: Path | None = None
    final: dict | None = None
    diverged: bool = False  # failed because training diverged (`DivergedError`): its metrics are kept


def known_budget(budget: str, budgets: Mapping[str, object]) -> None:
    """The one check of a `--budget` name (compare, reproduce, edge-of-reach): a one-line error naming the
    choices."""
    if budget not in budgets:
        raise UserError(f"unknown budget '{budget}'; choose from {', '.join(budgets)}")


def _budget_overrides(budget: Budget, algo: str) -> list[str]:
    """The budget's common overrides (its `dynamics.*` ones only for algorithms that fit dynamics), then
    the algorithm's own for this budget (`AlgorithmSpec.budgets`, every key checked at registration)."""
    spec = get_spec(algo)
    common = [item for item in budget.overrides if spec.uses_dynamics or not item.startswith("dynamics.")]
    if budget.scaled and budget.name not in spec.budgets:
        raise UserError(
            f"algorithm '{algo}' has no settings for the {budget.name} budget (AlgorithmSpec.budgets)"
        )
    return common + list(spec.budgets.get(budget.name, ()))


def as_measured(budget: Budget, cfgs: Sequence[TrainConfig]) -> str | None:
    """The rates.toml section of the budget's measured seconds per cell where they apply (its steps
    unchanged by --steps or --set), else None (the plan falls back to steps/s at paper settings)."""

    def budget_steps(algo: str) -> set[int]:  # the budget's steps for this algorithm (its own win)
        items = _budget_overrides(budget, algo) if budget.scaled else list(budget.overrides)
        return {int(v) for k, _, v in (o.partition("=") for o in items) if k == "steps"}

    return budget.measured if all(c.steps in budget_steps(c.algorithm) for c in cfgs) else None


def split_overrides(overrides: Sequence[str], algorithms: Sequence[str]) -> dict[str, list[str]]:
    """`--set KEY=V` applies to every algorithm; `--set ALGO:KEY=V` to that one only."""
    out: dict[str, list[str]] = {a: [] for a in algorithms}
    for item in overrides:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            if head not in out:
                raise UserError(
                    f"--set {item}: '{head}' is not one of the algorithms ({', '.join(algorithms)})"
                )
            out[head].append(rest)
        else:
            for algo in algorithms:
                out[algo].append(item)
    return out


def has_preset(algo: str, dataset: str) -> bool:
    return preset_task(dataset) in get_spec(algo).presets


def cell_config(
    algo: str,
    dataset: str,
    seed: int,
    budget: Budget,
    overrides: Sequence[str],
    device: str,
    steps: int | None,
) -> TrainConfig:
    scaled = _budget_overrides(budget, algo) + list(overrides)
    preset = "paper" if has_preset(algo, dataset) else None
    return build_config(algo, dataset, seed, steps, device, scaled, preset)


def _short(res: Resolution) -> ShortName:
    """`res.short` where the code needs it; a dataset named by its full Minari id has none."""
    if res.short is None:
        raise UserError(
            f"{res.dataset_id} is named by its Minari id: name a suite dataset by its short name (ENV-TIER) "
            "for a budget to make or check it"
        )
    return res.short


def reduced_size(dataset: str) -> tuple[int, int] | None:
    """`(size, full size)` of a suite dataset made smaller than its default (a smoke run's), else None."""
    res = resolve(dataset)
    if res.provenance != "made by offline-mbrl" or not res.present:
        return None
    meta = json.loads((res.path / "data" / "metadata.json").read_text()).get("offline_mbrl") or {}
    if meta.get("size") is None:
        return None
    from offline_mbrl.data.make.collect import default_size

    try:
        short = _short(res)
        full = default_size(short.env, short.tier)
    except UserError:  # no behaviour manifest to say what full is
        return None
    return (meta["size"], full) if meta["size"] < full else None


def dataset_note(dataset: str) -> str | None:
    reduced = reduced_size(dataset)
    if reduced is None:
        return None
    size, full = reduced
    return f"{resolve(dataset).dataset_id} holds {size:,} transitions, a reduced size (full: {full:,})"


def prepare_dataset(dataset: str, budget: Budget, log: Callable[[str], None] = print) -> None:
    """Make an absent suite dataset at the smoke size, or at its full size for the small budget (saying so
    first, in one line); refuse reduced-size data for the paper budget.

    Raises UserError (the cell fails) when the dataset cannot be had at this budget."""
    res = resolve(dataset)
    if res.provenance != "made by offline-mbrl":
        return
    if not res.present and (budget.dataset_size is not None or budget.make_absent):
        from offline_mbrl.data.make.collect import default_size, make_dataset

        short = _short(res)
        env_tier = f"{short.env}-{short.tier}"
        full = default_size(short.env, short.tier)
        size = min(budget.dataset_size or full, full)
        log(
            f"making {env_tier} at {size:,} transitions, "
            + (
                f"the {budget.name} budget's size (full: {full:,}; its numbers are not the full dataset's)"
                if size < full
                else "its full size"
            )
        )
        make_dataset(env_tier, size=size)
        return
    reduced = reduced_size(dataset)  # an absent one fails in the run, with the command that makes it
    if budget.full_data and reduced is not None:
        short = _short(res)
        env_tier = f"{short.env}-{short.tier}"
        raise UserError(
            f"{res.dataset_id} holds {reduced[0]:,} transitions, fewer than its full {reduced[1]:,} (made by "
            f"a smoke run?); remake it: `offline-mbrl datasets make {env_tier} --overwrite`"
        )


def _prepare_once(
    dataset: str, budget: Budget, prepared: dict[str, UserError | None], log: Callable[[str], None]
) -> None:
    """`prepare_dataset` once per dataset of a command; its error again for each later cell on it."""
    if dataset not in prepared:
        try:
            prepare_dataset(dataset, budget, log)
            prepared[dataset] = None
        except UserError as exc:
            prepared[dataset] = exc
    error = prepared[dataset]
    if error is not None:
        raise error


def run_cells(
    cells: list[CellRun],
    configs: Mapping[int, TrainConfig | UserError],
    budget: Budget,
    results_root: Path,
    progress: bool,
    log: Callable[[str], None],
    grid: GridOptions | None = None,
    title: str = "",
    after: Callable[[Path], None] | None = None,
    workers: int = 1,
) -> dict[str, str]:
    """Run the cells whose run is missing; returns notes per dataset (e.g. made at a reduced size).

    With `grid`, the cells are the trials of that study, drained together with the other workers running
    the same command (`run_grid`). With `workers` > 1, that many processes of one torch thread each run the
    groups side by side (`_run_in_workers`)."""
    if grid is not None:
        run_grid(cells, configs, budget, results_root, progress, log, grid, title, after)
        return _notes(cells, log)
    prepared: dict[str, UserError | None] = {}
    for i, cell in enumerate(cells):
        cfg = configs[i]
        if isinstance(cfg, UserError):
            cell.status, cell.error = "failed", str(cfg)
            continue
        cell.run_dir = run_dir_for(cfg, results_root)
        if run_mode(cell.run_dir, resume="auto") == "reuse":
            cell.status, cell.final = "reused", reuse(cell.run_dir)
    todo = [c for c in cells if c.status == "pending"]
    reused = sum(c.status == "reused" for c in cells)
    failed = sum(c.status == "failed" for c in cells)
    log(
        f"{len(cells)} cells: {reused} done, {len(todo)} to run"
        + (f", {failed} failed to configure" if failed else "")
    )
    todo_cfgs = [cast(TrainConfig, configs[cells.index(c)]) for c in todo]
    for line in plan_estimate(todo_cfgs, budget=as_measured(budget, todo_cfgs)):
        log(line)
    groups = _seed_groups(todo, [cast(TrainConfig, configs[cells.index(c)]) for c in todo])
    if workers > 1 and len(groups) > 1:
        for group in groups:  # datasets are made here, once, before any worker starts
            try:
                _prepare_once(group[0].dataset, budget, prepared, log)
            except UserError as exc:
                for cell in group:
                    cell.status, cell.error = "failed", str(exc)
        live = [g for g in groups if g[0].status == "pending"]
        run_in_workers(live, [[cast(TrainConfig, configs[cells.index(c)]) for c in g] for g in live],
                        results_root, workers, log)  # fmt: skip
        return _notes(cells, log)
    done = 0
    for group in groups:
        # pending: its config is not a UserError (those cells failed in the loop above)
        group_cfgs = [cast(TrainConfig, configs[cells.index(c)]) for c in group]
        first = group[0]
        seeds = ", ".join(str(c.seed) for c in group)
        which = f"seed {seeds}" if len(group) == 1 else f"seeds {seeds} (batched in one process)"
        span = f"{done + 1}" if len(group) == 1 else f"{done + 1}-{done + len(group)}"
        done += len(group)
        log(
            f"[{span}/{len(todo)}] {first.algorithm} on {first.dataset} {which} "
            f"({len(todo) - done} remaining after it)"
        )
        start = time.time()
        try:
            _prepare_once(first.dataset, budget, prepared, log)
            outcome: Outcome = (
                "ran",
                execute_seeds(group_cfgs, results_root, resume="auto", progress=progress),
            )
        except UserError as exc:  # a DivergedError among them
            outcome = ("diverged" if isinstance(exc, DivergedError) else "failed", str(exc))
        said = settle(group, outcome)
        log(f"  done in {time.time() - start:.0f} s: {said}" if outcome[0] == "ran" else f"  {said}")
    return _notes(cells, log)


def _notes(cells: list[CellRun], log: Callable[[str], None]) -> dict[str, str]:
    notes = {d: n for d in dict.fromkeys(c.dataset for c in cells) if (n := dataset_note(d))}
    for note in notes.values():
        log(f"note: {note}")
    return notes


def run_grid(
    cells: list[CellRun],
    configs: Mapping[int, TrainConfig | UserError],
    budget: Budget,
    results_root: Path,
    progress: bool,
    log: Callable[[str], None],
    grid: GridOptions,
    title: str,
    after: Callable[[Path], None] | None = None,
) -> None:
    """The cells as one grid study's trials: claim, run and record cells until the grid is drained (here
    and on the other workers), then give every cell its recorded result, materialised under
    `results/.study-NAME/` (the same files on every machine, whoever ran the cell). Seeds run one cell
    at a time: on a grid, each seed is a cell another worker may take. `after(run_dir)` runs inside the
    cell, before its record is taken (a family evaluation)."""
    from offline_mbrl.sweep.grid import Grid, GridCell, materialise, record, study_folder

    live = [i for i, c in enumerate(cells) if not isinstance(configs[i], UserError)]
    for i, cell in enumerate(cells):
        if isinstance(configs[i], UserError):
            cell.status, cell.error = "failed", str(configs[i])
    cfgs = [cast(TrainConfig, configs[i]) for i in live]
    keys = [
        GridCell(
            cells[i].algorithm,
            cells[i].task,
            cells[i].dataset,
            cells[i].seed,
            run_dir_for(cfg, results_root).name,
        )
        for i, cfg in zip(live, cfgs, strict=True)
    ]
    study = Grid(grid.study, grid.storage, keys, title=title, heartbeat=grid.heartbeat)
    log(
        f"grid {grid.study} in {study.where}: {len(keys)} cells; each worker running this command takes "
        "the next free one"
    )
    for line in plan_estimate(cfgs, budget=as_measured(budget, cfgs)):
        log(line + (" (all cells, for one worker)" if line.startswith("estimate: about") else ""))
    prepared: dict[str, UserError | None] = {}

    def run(j: int) -> dict:
        cell, cfg = cells[live[j]], cfgs[j]
        _prepare_once(cell.dataset, budget, prepared, log)
        out = run_dir_for(cfg, results_root)
        with run_dir_locks([cfg], results_root):  # a shared results folder: one process per run
            if run_mode(out, resume="auto") == "resume":  # a killed worker's cell, in a shared folder
                log(f"  resuming {out} from its checkpoint")
            start = time.time()
            (final,) = execute_seeds([cfg], results_root, resume="auto", progress=progress)
            log(f"  done in {time.time() - start:.0f} s: {shown_score(final)}")
            if after is not None:
                after(out)
            return record(out, Path(results_root))

    ended = study.drain(run, log)
    folder = study_folder(Path(results_root), grid.study)
    for j, outcome in ended.items():
        cell = cells[live[j]]
        if outcome.record is not None:
            cell.run_dir = materialise(outcome.record, folder)
            cell.final = outcome.record["final"]
            cell.status = "ran" if outcome.ran_here else "reused"
        else:
            cell.status, cell.error = "failed", outcome.error
    log(f"grid {grid.study}: every cell has ended; its records are in {folder}")


def _seed_groups(cells: list[CellRun], cfgs: list[TrainConfig]) -> list[list[CellRun]]:
    """The cells in order; those whose configs differ only by seed together (one batch of seeds) when the
    algorithm batches seeds (`AlgorithmSpec.train_seeds`)."""
    groups: list[tuple[TrainConfig, list[CellRun]]] = []
    for cell, cfg in zip(cells, cfgs, strict=True):
        if get_spec(cfg.algorithm).train_seeds is None:
            groups.append((cfg, [cell]))
            continue
        for key, members in groups:
            if same_but_seed([key, cfg]):
                members.append(cell)
                break
        else:
            groups.append((cfg, [cell]))
    return [members for _, members in groups]


@dataclass
class Comparison:
    cells: list[CellRun]
    report: object  # report.Report, or None when no cell finished
    folder: Path


def compare(
    algorithms: Sequence[str],
    datasets: Sequence[str],
    seeds: int = 3,
    budget: str = "paper",
    steps: int | None = None,
    overrides: Sequence[str] = (),
    family: str | None = None,
    episodes: int | None = None,
    results_root: Path = Path("results"),
    out: Path | None = None,
    device: str = "cpu",
    reps: int = 50_000,
    progress: bool = True,
    log: Callable[[str], None] = print,
    grid: GridOptions | None = None,
    workers: int = 1,
) -> Comparison:
    """Run the missing cells of algorithms x datasets x seeds (and evaluate on a family), then report.

    With `grid`, the cells are one study's trials shared with every worker running the same command."""
    known_budget(budget, BUDGETS)
    whole_tier = not algorithms and not datasets
    algorithms, datasets = tier_defaults(budget, algorithms, datasets)
    check_option("--seeds", seeds, 1, MAX_SEEDS)
    if steps is not None:
        check_option("--steps", steps, 1, 10**9)
    check_option("--workers", workers, 1, 64)
    if grid is not None and workers > 1:
        raise UserError(
            "--workers runs one machine's cells side by side; a grid (--study) has its workers already: "
            "start the same command once per worker instead"
        )
    algorithms = list(dict.fromkeys(algorithms))
    b = BUDGETS[budget]
    per_algo = split_overrides(overrides, algorithms)
    cells = [CellRun(a, d, d, s) for s in range(seeds) for d in datasets for a in algorithms]
    # A bad --set, algorithm or dataset name is the user's to fix before anything runs: no try here.
    configs = {
        i: cell_config(c.algorithm, c.dataset, c.seed, b, per_algo[c.algorithm], device, steps)
        for i, c in enumerate(cells)
    }
    title = f"{' vs '.join(algorithms)} on {', '.join(datasets)}"
    after = None
    if family is not None and grid is not None:  # in the cell, so that its record holds the evaluation
        from offline_mbrl.experiments.family_eval import evaluate_family

        def after(run_dir: Path) -> None:
            evaluate_family(run_dir, family, episodes, device, progress=progress)

    notes = run_cells(cells, configs, b, Path(results_root), progress, log, grid, title, after, workers)
    failed = [c for c in cells if c.status == "failed"]
    done = [c for c in cells if c.final is not None]
    if not done:
        raise UserError(f"no cell finished; first failure: {failed[0].error}")
    done_dirs = [cast(Path, c.run_dir) for c in done]  # a cell gets its run_dir before it can finish
    if family is not None and grid is None:
        from offline_mbrl.experiments.family_eval import evaluate_family

        for run_dir in done_dirs:
            evaluate_family(run_dir, family, episodes, device, progress=progress)
    default = "compare-" + "-".join(algorithms) + "-" + "-".join(d.replace("/", "_") for d in datasets)
    if whole_tier:
        default = f"{budget}-tier"
    folder = Path(out) if out else Path("reports") / default
    preface = [
        Text(f"{note}: its numbers are not those of the full dataset.", "note") for note in notes.values()
    ]
    if failed:
        preface.append(
            Text(
                f"{len(failed)} cell(s) failed and are left out: "
                + "; ".join(f"{c.algorithm} on {c.dataset} seed {c.seed}: {c.error}" for c in failed),
                "note",
            )
        )
    from offline_mbrl.report.build import make_report

    report = make_report(
        done_dirs,
        folder,
        title=title,
        intersect=bool(failed),
        reps=reps,
        progress=progress,
        preface=preface,
    )
    return Comparison(cells, report, folder)


def study_report_runs(
    study: str, storage: str | None, results_root: Path, log: Callable[[str], None] = print
) -> tuple[list[Path], str]:
    """A grid study's finished cells materialised under `results/.study-NAME/` (run folders a report
    reads), and the grid's title: the report of a grid from any machine, with no shared filesystem."""
    from offline_mbrl.sweep.grid import grid_records, load_grid, materialise, study_folder

    loaded, where = load_grid(study, storage)
    records, missing = grid_records(loaded)
    if not records:
        raise UserError(f"study '{study}' in {where} has no finished cell yet ({len(missing)} to run)")
    if missing:
        log(
            f"note: {len(missing)} cell(s) of {study} have not finished (first: {missing[0]}); "
            "reporting the rest"
        )
    folder = study_folder(Path(results_root), study)
    return [materialise(rec, folder) for rec in records], str(loaded.user_attrs.get("title", study))
