"""Paper tables reproduced: run every missing cell of a declared table, then our numbers next to theirs.

A paper table is a TOML file (`reports/tables/NAME.toml`) declaring the published tasks, which of our
algorithms stand for which published column, the source, and a CSV of the published numbers (looked up
beside the TOML, then in the package's `resources/published/`, so an installed suite has them):

    name = "offlinerlkit_d4rl_v2"
    title = "OfflineRL-Kit's D4RL MuJoCo v2 results, reproduced"
    source = "yihaosun1124/OfflineRL-Kit README, 'Benchmark Results (4 seeds)'"
    url = "https://github.com/yihaosun1124/OfflineRL-Kit"
    published = "offlinerlkit_readme_d4rl_v2.csv"   # columns task, algorithm, mean, spread
    spread = "what the +- means, as far as the source says"
    seeds = 4                                         # the paper's; `--seeds` overrides
    tasks = ["hopper-medium-v2", ...]
    notes = ["..."]                                   # optional, shown in the report
    [algorithms]
    mopo = "MOPO"                                     # ours = the published column

A task runs on D4RL's data when it has been imported (`datasets import-d4rl`), else on the suite's own
`{env}-{tier}-v0`, and the report says the data differ. Cells are run by `cells.run_cells` (presets,
budgets, reuse, per-cell failures). The side-by-side table marks every published mean that lies outside
our 95% interval (a stratified bootstrap of the mean over seeds).
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from offline_mbrl.algorithms import algorithms as registered
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import asset
from offline_mbrl.core.ranges import MAX_SEEDS, check_option
from offline_mbrl.data.names import resolve
from offline_mbrl.experiments.cells import (
    BUDGETS,
    Budget,
    CellRun,
    GridOptions,
    cell_config,
    known_budget,
    run_cells,
    split_overrides,
)
from offline_mbrl.report.render import Bullets, Document, Heading, Table, Text
from offline_mbrl.report.render import Cell as Shown
from offline_mbrl.report.stats import mean_interval

_TABLE_KEYS = {
    "name",
    "title",
    "source",
    "url",
    "published",
    "spread",
    "seeds",
    "tasks",
    "algorithms",
    "notes",
}
_REQUIRED = {"name", "title", "source", "published", "tasks", "algorithms"}


@dataclass(frozen=True)
class PaperTable:
    name: str
    title: str
    source: str
    url: str
    spread: str
    seeds: int
    tasks: list[str]
    algorithms: dict[str, str]  # ours -> published column
    published: dict[tuple[str, str], tuple[float, float | None]]  # (task, published algo) -> (mean, spread)
    notes: list[str] = field(default_factory=list)


def tables_dir() -> Path:
    return asset("tables")


def load_table(name_or_path: str) -> PaperTable:
    path = Path(name_or_path)
    if not path.suffix:
        path = tables_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in tables_dir().glob("*.toml"))) or "none"
        raise UserError(f"no paper table '{name_or_path}' (looked for {path}); declared tables: {known}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    missing, unknown = sorted(_REQUIRED - raw.keys()), sorted(raw.keys() - _TABLE_KEYS)
    if missing or unknown:
        what = f"missing key(s) {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(unknown)}"
        raise UserError(f"{path}: {what}; keys: {', '.join(sorted(_TABLE_KEYS))}")
    algorithms = dict(raw["algorithms"])
    bad = sorted(set(algorithms) - set(registered()))
    if bad:
        raise UserError(
            f"{path}: algorithm(s) {', '.join(bad)} are not in the suite ({', '.join(registered())})"
        )
    published = _read_published(path, raw["published"])
    return PaperTable(
        raw["name"],
        raw["title"],
        raw["source"],
        raw.get("url", ""),
        raw.get("spread", ""),
        int(raw.get("seeds", 1)),
        list(raw["tasks"]),
        algorithms,
        published,
        list(raw.get("notes", [])),
    )


def _read_published(table_path: Path, name: str) -> dict:
    beside = table_path.parent / name
    if beside.is_file():
        text = beside.read_text()
    else:
        packaged = resources.files("offline_mbrl").joinpath(f"resources/published/{name}")
        if not packaged.is_file():
            raise UserError(
                f"{table_path}: published numbers '{name}' found neither beside it nor in the package"
            )
        text = packaged.read_text()
    rows = csv.DictReader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    out = {}
    for row in rows:
        spread = row.get("spread")
        out[(row["task"], row["algorithm"])] = (float(row["mean"]), float(spread) if spread else None)
    return out


def task_dataset(task: str) -> tuple[str, str, bool]:
    """What a published task is trained on here: `(dataset name, data description, same data as paper)`."""
    res = resolve(task)
    if res.provenance == "imported D4RL" and res.present:
        return task, f"D4RL's ({res.dataset_id})", True
    short = res.short
    if short is not None and short.version not in (None, 0):
        own = f"{short.env}-{short.tier}-v0"
        return own, f"suite's own ({resolve(own).dataset_id})", False
    return task, res.dataset_id, res.provenance != "made by offline-mbrl"


@dataclass
class Reproduction:
    table: PaperTable
    budget: Budget
    seeds: list[int]
    cells: list[CellRun]
    rows: list[dict]  # one per (task, algorithm): ours, published, inside
    folder: Path
    report: object  # report.Report, or None when no cell finished


def reproduce(
    table: str,
    budget: str = "smoke",
    seeds: int | None = None,
    results_root: Path = Path("results"),
    out: Path | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
    reps: int = 50_000,
    progress: bool = True,
    log: Callable[[str], None] = print,
    grid: GridOptions | None = None,
) -> Reproduction:
    """Run every missing cell of a paper table at `budget`, then write the side-by-side report."""
    known_budget(budget, BUDGETS)
    spec, b = load_table(table), BUDGETS[budget]
    n_seeds = seeds if seeds is not None else (b.seeds or spec.seeds)
    check_option("--seeds", n_seeds, 1, MAX_SEEDS)
    data = {task: task_dataset(task) for task in spec.tasks}
    per_algo = split_overrides(overrides, list(spec.algorithms))
    cells = [
        CellRun(algo, task, data[task][0], seed)
        for seed in range(n_seeds)
        for task in spec.tasks
        for algo in spec.algorithms
    ]
    configs: dict[int, TrainConfig | UserError] = {}
    for i, c in enumerate(cells):
        try:
            configs[i] = cell_config(c.algorithm, c.dataset, c.seed, b, per_algo[c.algorithm], device, None)
        except UserError as exc:
            configs[i] = exc
    log(f"reproduce {spec.name} at budget {b.name} with {n_seeds} seed(s)")
    made = run_cells(cells, configs, b, Path(results_root), progress, log, grid, f"{spec.title} ({b.name})")
    rows = _side_by_side(spec, cells, reps)
    folder = Path(out) if out else Path("reports") / f"{spec.name}-{b.name}"
    preface = _preface(spec, b, n_seeds, cells, rows, data, made, list(overrides))
    report = _write(
        folder, preface, [c.run_dir for c in cells if c.final is not None], spec.title, reps, progress
    )
    return Reproduction(spec, b, list(range(n_seeds)), cells, rows, folder, report)


def _side_by_side(spec: PaperTable, cells: list[CellRun], reps: int) -> list[dict]:
    rows = []
    for task in spec.tasks:
        for algo, label in spec.algorithms.items():
            mine = [c for c in cells if c.task == task and c.algorithm == algo]
            done = [c.final for c in mine if c.final is not None]
            scores = [f["normalized_score"] for f in done]
            ours = None
            if done and all(s is not None for s in scores):
                ours = mean_interval(scores, min(reps, 2000))
            published = spec.published.get((task, label))
            inside = ours.contains(published[0]) if ours is not None and published else None
            errors = sorted({c.error for c in mine if c.error})
            rows.append(
                {
                    "task": task,
                    "algorithm": algo,
                    "published_label": label,
                    "ours": ours,
                    "runs": len(done),
                    "published": published,
                    "inside": inside,
                    "no_scores": bool(done) and ours is None,
                    "errors": errors,
                }
            )
    return rows


def _fmt_published(published) -> str:
    if published is None:
        return "not published"
    mean, spread = published
    return f"{mean:.1f}" + ("" if spread is None else f" ± {spread:.1f}")


def _preface(spec, b, n_seeds, cells, rows, data, made, overrides) -> list:
    counts = {s: sum(c.status == s for c in cells) for s in ("reused", "ran", "failed")}
    blocks = [
        Heading(f"Paper table: {spec.title}"),
        Text(
            f"Published numbers: {spec.source}" + (f" ({spec.url})" if spec.url else "") + f". {spec.spread}"
        ),
        Text(
            f"Budget `{b.name}`: {b.description}. {n_seeds} seed(s) per cell; {len(cells)} cells: "
            f"{counts['reused']} reused from earlier runs, {counts['ran']} run now, "
            f"{counts['failed']} failed."
            + (f" Overrides given with --set: {', '.join(overrides)}." if overrides else "")
        ),
    ]
    if b.name != "paper":
        blocks.append(
            Text(f"This is the `{b.name}` budget, not the paper's: compare the numbers with care.", "note")
        )
    differ = [t for t, (_, _, same) in data.items() if not same]
    if differ:
        blocks.append(
            Text(
                f"The data differ for {len(differ)} of {len(data)} task(s): without D4RL's files they run on "
                "the suite's own datasets (same environments and tiers, different behaviour policies and "
                "data). Import D4RL's files with `offline-mbrl datasets import-d4rl FILE.hdf5 --name TASK` "
                "to measure on the paper's data.",
                "note",
            )
        )
    for note in made.values():
        blocks.append(Text(f"{note}: its numbers are not those of the full dataset.", "note"))
    for note in spec.notes:
        blocks.append(Text(note))
    blocks.append(
        Text(
            "Evaluation runs in Gymnasium's MuJoCo v5 environments; the published numbers used D4RL's "
            "mujoco-py v2 ones. Highlighted: a published mean outside our 95% interval (stratified bootstrap "
            "of the mean over seeds)."
        )
    )
    table_rows = []
    errors: dict[str, int] = {}  # each failure's text -> its footnote number
    for r in rows:
        ours = r["ours"]
        failed = ", ".join(f"[{errors.setdefault(e, len(errors) + 1)}]" for e in r["errors"])
        if ours is not None:
            shown = f"{ours.fmt(1)} ({r['runs']} run{'s' * (r['runs'] != 1)})"
        elif r["no_scores"]:
            shown = "no reference returns"
        else:
            shown = "no run"
        if failed:
            shown += f", failed {failed}"
        if r["inside"] is None:
            verdict = "n/a (one run)" if ours is not None and r["published"] else "n/a"
        else:
            verdict = "yes" if r["inside"] else "no: outside"
        table_rows.append(
            [
                r["task"],
                f"{r['algorithm']} ({r['published_label']})",
                data[r["task"]][1],
                shown,
                Shown(_fmt_published(r["published"]), r["inside"] is False),
                Shown(verdict, r["inside"] is False),
            ]
        )
    columns = ["task", "ours (theirs)", "our data", "ours: mean [95% CI]", "published", "inside our CI"]
    blocks.append(Table(columns, table_rows))
    if errors:
        blocks.append(Text("Failed cells (rerun the same command once fixed: finished cells are reused):"))
        blocks.append(Bullets([f"[{k}] {e}" for e, k in errors.items()]))
    return blocks


def _write(folder: Path, preface: list, run_dirs: list, title: str, reps: int, progress: bool):
    from offline_mbrl.report.build import make_report, write_document

    if run_dirs:
        return make_report(
            run_dirs, folder, title=title, intersect=True, reps=reps, progress=progress, preface=preface
        )
    doc = Document(title)
    doc.add(*preface, Text("No cell finished, so there are no statistics.", "note"))
    write_document(doc, folder)
    return None
