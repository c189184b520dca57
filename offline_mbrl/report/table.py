"""Finished runs -> one tidy table -> complete score matrices (`Scope`), the input of every statistic.

The report layer reads files only (`final.json`, `config.json`, `family_<name>.json` beside each run) and
never imports algorithm code. `load_results` gathers them into one pandas table, one row per run and scope:
the nominal MDP (`family == "nominal"`) and, for every family the run was evaluated on, one row per member.
Columns: `method, algorithm, dataset, task, family, member, seed, dynamics_seed, normalized_score,
raw_return, episodes, steps, wall_time, ...` then every config key by its dotted name (the `--set` keys).

`method` is the algorithm name, extended by the config keys that tell its variants apart when one dataset
holds runs of the same algorithm with different settings (`mopo[algo.penalty=llv]`); keys that differ only
between datasets (per-task paper presets) do not split a method. Runs a sweep trial made (its `trials.json`
in the run folder) are named by the trial too (`ravl[trial 3: algo.eta=0.5, ...]`, shown as `ravl trial 3`),
and results.csv carries the tag as `sweep_trial`.

Before any statistic is computed the table is checked: one dataset name must mean one dataset content
(fingerprint), and every method must have the same runs on every task (else the missing cells are named,
or with `intersect=True` the report keeps the tasks and runs that all methods share, and says so).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import TRIALS_FILE
from offline_mbrl.core.run_files import read_config, read_final, read_object

NOMINAL = "nominal"
SCORE_SCALE = 100.0  # D4RL normalised scores are in [0, 100]; rliable gets score / 100 (1.0 = expert)

# Config keys that never make two runs different methods: they identify the run or its hardware.
_RUN_IDENTITY = {"algorithm", "dataset", "seed", "dynamics_seed", "dynamics.seed", "device"}
_CORE = [
    "method",
    "algorithm",
    "dataset",
    "task",
    "family",
    "member",
    "seed",
    "dynamics_seed",
    "normalized_score",
    "raw_return",
    "episodes",
    "steps",
    "wall_time",
    "device",
    "dataset_id",
    "fingerprint",
    "score_note",
    "member_params",
    "run_dir",
]


def member_task(dataset: str, member: int) -> str:
    """The rliable task name of one family member of a dataset's environment."""
    return f"{dataset}/m{member}"


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Every finished run directory (it has final.json) at or under `paths`, sorted, hidden ones skipped."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"results path {path} does not exist")
        if (path / "final.json").is_file():
            found.add(path)
            continue
        for final in path.rglob("final.json"):
            if not any(part.startswith(".") for part in final.relative_to(path).parts):
                found.add(final.parent)
    return sorted(found)


def load_results(paths: Sequence[Path]) -> pd.DataFrame:
    """The tidy table of every finished run under `paths` (see the module docstring for its columns)."""
    runs = find_runs(paths)
    if not runs:
        shown = ", ".join(map(str, paths))
        raise UserError(
            f"no results found: no finished run (a final.json) under {shown}; train with "
            "`offline-mbrl train` or run `offline-mbrl compare` first"
        )
    rows = []
    for run_dir in runs:
        rows += _run_rows(run_dir)
    df = pd.DataFrame(rows)
    df["member"] = df["member"].astype("Int64")
    df = label_methods(df)
    config_cols = sorted(c for c in df.columns if c not in _CORE and not c.startswith("_"))
    return df[[*_CORE, *config_cols, "_mtime", "_trial"]].reset_index(drop=True)


def _read_json(path: Path) -> dict:
    return read_final(path.parent) if path.name == "final.json" else read_object(path)


def _flatten(config: dict, prefix: str = "") -> dict:
    """Nested config dict -> dotted keys; tuples become `a,b` (what `--set` accepts)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple):
            out[f"{prefix}{key}"] = ",".join(map(str, value))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _trial_tag(run_dir: Path) -> str | None:
    """`trial N` for a run a sweep trial made (`STUDY trial N` when several studies ran it), else None."""
    path = run_dir / TRIALS_FILE
    if not path.is_file():
        return None
    try:
        tags = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged tag only costs the label; the run's own files are read strictly
    if not isinstance(tags, dict) or not tags:
        return None
    if len(tags) == 1:
        return f"trial {next(iter(tags.values()))}"
    return ", ".join(f"{study} trial {number}" for study, number in tags.items())


def _run_rows(run_dir: Path) -> list[dict]:
    final = _read_json(run_dir / "final.json")
    config_file = run_dir / "config.json"
    config = read_config(run_dir) if config_file.exists() else {}
    flat = {k: v for k, v in _flatten(config).items() if k not in _RUN_IDENTITY and k != "steps"}
    base = {
        "algorithm": final["algorithm"],
        "dataset": final["dataset"],
        "seed": int(final["seed"]),
        "dynamics_seed": int(final.get("dynamics_seed", final["seed"])),
        "steps": int(final["steps"]),
        "wall_time": float(final["wall_time"]),
        "device": final.get("device"),
        "dataset_id": final.get("dataset_id"),
        "fingerprint": final.get("dataset_fingerprint"),
        "score_note": final.get("score_note"),
        "run_dir": str(run_dir),
        "_mtime": (run_dir / "final.json").stat().st_mtime,
        "_trial": _trial_tag(run_dir),
        **flat,
    }
    rows = [
        {
            **base,
            "task": final["dataset"],
            "family": NOMINAL,
            "member": None,
            "member_params": None,
            "normalized_score": final.get("normalized_score"),
            "raw_return": float(final["return_mean"]),
            "episodes": len(final["returns"]),
        }
    ]
    for path in sorted(run_dir.glob("family_*.json")):
        fam = _read_json(path)
        scores = fam.get("member_scores")
        for k, params in enumerate(fam["member_params"]):
            rows.append(
                {
                    **base,
                    "task": member_task(final["dataset"], k),
                    "family": fam["family"],
                    "member": k,
                    "member_params": json.dumps(params, sort_keys=True),
                    "normalized_score": None if scores is None else scores[k],
                    "raw_return": float(fam["member_returns"][k]),
                    "episodes": len(fam["returns"][k]),
                }
            )
    return rows


def _short(value) -> str:
    """A config value as a method label shows it: floats to 4 significant digits (sweeps draw long ones)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def label_methods(df: pd.DataFrame) -> pd.DataFrame:
    """Add `method`: the algorithm, plus the config keys that split its runs into variants on a dataset."""
    df = df.copy()
    df["method"] = df["algorithm"]
    # `steps` is a core column and a config key; the other config keys are the non-core columns.
    config_cols = ["steps"] + [c for c in df.columns if c not in _CORE and not c.startswith("_")]
    for algo, runs in df[df["family"] == NOMINAL].groupby("algorithm"):
        splitting = [
            c
            for c in config_cols
            if runs[c].notna().any() and (runs.groupby("dataset")[c].nunique(dropna=False) > 1).any()
        ]
        if not splitting:
            continue
        by_run = runs.set_index("run_dir")
        labels = {
            run_dir: ", ".join(f"{c}={_short(row[c])}" for c in splitting)
            for run_dir, row in by_run.iterrows()
        }
        # a sweep's trials are named by their number: every run of one setting made by the same trial
        by_label: dict[str, set] = {}
        for run_dir, label in labels.items():
            tag = by_run.at[run_dir, "_trial"] if "_trial" in by_run else None
            by_label.setdefault(label, set()).add(tag)
        for run_dir, label in labels.items():
            trial = by_label[label]
            named = f"{next(iter(trial))}: {label}" if len(trial) == 1 and None not in trial else label
            df.loc[df["run_dir"] == run_dir, "method"] = f"{algo}[{named}]"
    return df


def select(
    df: pd.DataFrame,
    algorithms: Iterable[str] = (),
    datasets: Iterable[str] = (),
    where: Iterable[str] = (),
) -> pd.DataFrame:
    """Keep the runs of these algorithms (or method labels), datasets, and `KEY=VALUE` config matches."""
    algorithms, datasets = list(algorithms), list(datasets)
    if algorithms:
        unknown = sorted(set(algorithms) - set(df["algorithm"]) - set(df["method"]))
        if unknown:
            have = ", ".join(sorted(set(df["method"])))
            raise UserError(f"no results for algorithm(s) {', '.join(unknown)}; results have: {have}")
        df = df[df["algorithm"].isin(algorithms) | df["method"].isin(algorithms)]
    if datasets:
        unknown = sorted(set(datasets) - set(df["dataset"]))
        if unknown:
            have = ", ".join(sorted(set(df["dataset"])))
            raise UserError(f"no results on dataset(s) {', '.join(unknown)}; results have: {have}")
        df = df[df["dataset"].isin(datasets)]
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or key not in df.columns:
            raise UserError(f"--where expects KEY=VALUE with a results column as KEY, got '{item}'")
        df = df[df[key].map(lambda v, want=value: _matches(v, want))]
    if df.empty:
        raise UserError("no results found: the filters (--algo, --dataset, --where) left no run")
    return df


def _matches(value, wanted: str) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return wanted.lower() in ("none", "null")
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return str(value).lower() == wanted.lower()


def check_fingerprints(df: pd.DataFrame) -> None:
    """Refuse to mix results from different dataset contents under one dataset name."""
    nominal = df[df["family"] == NOMINAL]
    for dataset, runs in nominal.groupby("dataset"):
        prints = runs.groupby("fingerprint")["run_dir"].agg(list)
        if len(prints) > 1:
            parts = "; ".join(
                f"{fp} ({len(dirs)} run{'s' * (len(dirs) > 1)}, e.g. {dirs[0]})"
                for fp, dirs in prints.items()
            )
            raise UserError(
                f"results under dataset '{dataset}' come from {len(prints)} different datasets: {parts}; "
                "refusing to mix them: report each one's result folders separately"
            )


@dataclass
class Scope:
    """One set of rliable tasks: the nominal MDPs (tasks = datasets) or one family (dataset x member)."""

    name: str  # NOMINAL or a family name
    methods: list[str]
    tasks: list[str]
    norm_tasks: list[str]  # tasks whose runs all have normalised scores
    runs: dict[str, list[tuple[int, int]]]  # method -> its (seed, dynamics_seed) rows, in matrix order
    table: pd.DataFrame  # the complete rows of this scope
    notes: list[str] = field(default_factory=list)

    def matrix(self, method: str, value: str = "score", tasks: list[str] | None = None) -> np.ndarray:
        """`(runs, tasks)` of normalised score / 100 (`value="score"`) or raw return (`"raw"`)."""
        tasks = tasks if tasks is not None else (self.norm_tasks if value == "score" else self.tasks)
        column = "normalized_score" if value == "score" else "raw_return"
        rows = self.table[self.table["method"] == method]
        grid = rows.pivot(index=["seed", "dynamics_seed"], columns="task", values=column)
        grid = grid.loc[self.runs[method], tasks].to_numpy(dtype=np.float64)
        return grid / SCORE_SCALE if value == "score" else grid

    def single_run(self, method: str) -> bool:
        return len(self.runs[method]) < 2


def _run_label(seed: int, dyn: int) -> str:
    return f"seed {seed}" if seed == dyn else f"seed {seed} (dynamics seed {dyn})"


def _dedupe(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep the newest of several runs of one cell (e.g. the same config on a CPU and a GPU)."""
    key = ["method", "task", "seed", "dynamics_seed"]
    counts = df.groupby(key)["run_dir"].transform("count")
    notes = []
    for (method, task, seed, dyn), group in df[counts > 1].groupby(key):
        kept = group.sort_values("_mtime").iloc[-1]["run_dir"]
        notes.append(
            f"{len(group)} runs of {method} on {task} {_run_label(seed, dyn)}: kept the newest, {kept}"
        )
    return df.sort_values("_mtime").drop_duplicates(key, keep="last"), notes


def build_scope(df: pd.DataFrame, name: str, intersect: bool = False) -> Scope:
    """Check that every method has the same runs on every task of the scope and build it.

    Missing cells are an error naming them, unless `intersect`: then only the tasks every method has and,
    per method, the runs present on all of them are kept, and the notes say what was dropped.
    """
    rows, notes = _dedupe(df[df["family"] == name])
    # A family's expected runs are all the nominal runs on the datasets it was evaluated for.
    nominal = df[(df["family"] == NOMINAL) & df["dataset"].isin(set(rows["dataset"]))]
    reference = rows if name == NOMINAL else _dedupe(nominal)[0]
    methods = sorted(reference["method"].unique())
    tasks = sorted(rows["task"].unique())
    present = {
        (m, t, s, d) for m, t, s, d in rows[["method", "task", "seed", "dynamics_seed"]].itertuples(False)
    }
    expected = list(reference[["method", "seed", "dynamics_seed"]].itertuples(False))
    runs = {m: sorted({(s, d) for mm, s, d in expected if mm == m}) for m in methods}
    missing = [(m, t, r) for m in methods for t in tasks for r in runs[m] if (m, t, *r) not in present]
    if missing and not intersect:
        raise UserError(_missing_message(name, missing, runs))
    if missing:
        kept_tasks = [t for t in tasks if all(any((m, t, *r) in present for r in runs[m]) for m in methods)]
        if not kept_tasks:
            raise UserError(f"{_scope_words(name)}: no task has runs of every method, nothing to compare")
        dropped = sorted(set(tasks) - set(kept_tasks))
        runs = {m: [r for r in runs[m] if all((m, t, *r) in present for t in kept_tasks)] for m in methods}
        notes.append(
            f"--intersect: kept the {len(kept_tasks)} task(s) every method has"
            + (f"; dropped {', '.join(dropped)}" if dropped else "")
            + "; runs kept per method: "
            + ", ".join(f"{m} {len(runs[m])}" for m in methods)
        )
        tasks = kept_tasks
        in_runs = [
            (s, d) in runs[m] for m, s, d in rows[["method", "seed", "dynamics_seed"]].itertuples(False)
        ]
        keep = rows["task"].isin(tasks).to_numpy() & np.array(in_runs, dtype=bool)
        rows = rows[keep]
    norm_tasks = [t for t in tasks if rows.loc[rows["task"] == t, "normalized_score"].notna().all()]
    return Scope(name, methods, tasks, norm_tasks, runs, rows, notes)


def _scope_words(name: str) -> str:
    return "nominal MDPs" if name == NOMINAL else f"MDP family {name}"


def _missing_message(name: str, missing: list, runs: dict) -> str:
    by_cell: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for method, task, run in missing:
        by_cell.setdefault((method, task), []).append(run)
    parts = []
    for (method, task), cell_runs in by_cell.items():
        which = (
            "all runs"
            if len(cell_runs) == len(runs[method])
            else ", ".join(_run_label(*r) for r in cell_runs)
        )
        parts.append(f"{method} on {task} ({which})")
    shown = "; ".join(parts[:8]) + (f"; and {len(parts) - 8} more" if len(parts) > 8 else "")
    if name == NOMINAL:
        fix = "run them (`offline-mbrl compare` runs what is missing) or pass --intersect"
    else:
        fix = f"evaluate them (`offline-mbrl evaluate RUN_DIR --family {name}`) or pass --intersect"
    return f"algorithms were evaluated on different task sets ({_scope_words(name)}); missing: {shown}; {fix}"
