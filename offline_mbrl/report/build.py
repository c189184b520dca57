"""Reports: finished runs -> tidy table -> rliable statistics -> `report.md`, `report.html`, figures, tables.

`make_report(paths, out)` reads the runs under `paths` (files only: the report layer never imports
algorithm code; see `report.table`), checks them, computes the statistics (`report.stats`), draws the
figures (`report.figures`) and writes, all or nothing, the folder `out`:

    report.md  report.html       the report (the HTML is self-contained: figures embedded)
    results.csv  results.parquet the tidy table, one row per run and scope (nominal MDP, family member)
    stats.json                   every number of the report, machine-readable
    figures/*.png  figures/*.svg

Sections: aggregates (IQM, median, mean, optimality gap with 95% stratified-bootstrap intervals),
performance profiles, probability of improvement for every pair of methods, per-task scores, and, for
every MDP family the runs were evaluated on, the same statistics over the family's members as tasks, the
family-weighted mean and where the ranking of methods on the nominal MDP differs from the one over the
family. Callers (reproduce, compare) add their own sections before the statistics.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offline_mbrl.core.cache import replace_dir, temp_dir_beside
from offline_mbrl.core.errors import UserError
from offline_mbrl.report import figures as rf
from offline_mbrl.report.render import Bullets, Document, Figure, Heading, Table, Text, to_html, to_markdown
from offline_mbrl.report.stats import (
    METRICS,
    Bootstrap,
    FamilySummary,
    ScopeStats,
    family_summaries,
    scope_stats,
)
from offline_mbrl.report.table import (
    NOMINAL,
    build_scope,
    check_fingerprints,
    load_results,
    select,
)

FEW_RUNS = 5  # below this many runs per task, percentile-bootstrap intervals under-cover


@dataclass
class Report:
    folder: Path
    table: pd.DataFrame
    nominal: ScopeStats
    families: dict[str, ScopeStats] = field(default_factory=dict)
    family_summaries: list[FamilySummary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Output:
    """A kind of folder written whole and published atomically (`publish_report`): it carries the marker
    file `marker`, and only a folder carrying it is ever replaced."""

    marker: str
    command: str  # the offline-mbrl command that writes it (named in the marker file)
    noun: str  # what it is called: "report"
    named: str  # how an error names one: "an offline-mbrl report"
    example: str  # an --out to suggest


REPORT = Output(".offline-mbrl-report", "report", "report", "an offline-mbrl report", "reports/NAME")
REPORT_MARKER = REPORT.marker  # marks a folder a report wrote: the only kind a report replaces


def check_report_out(out: Path, kind: Output = REPORT) -> None:
    """A report replaces only a previous report (a folder carrying the marker file): never a folder of
    the user's, the working directory or a file. `kind`: another kind of output folder, same rule."""
    if out.exists() and not (out.is_dir() and (out / kind.marker).is_file()):
        what = "a file" if not out.is_dir() else f"a folder that is not {kind.named}"
        raise UserError(
            f"--out {out} is {what} (no {kind.marker} marker in it) and a {kind.noun} replaces its whole "
            f"folder: choose a new or previous {kind.noun} folder, e.g. --out {kind.example}"
        )


def make_report(
    paths: Sequence[Path],
    out: Path,
    *,
    title: str | None = None,
    algorithms: Sequence[str] = (),
    datasets: Sequence[str] = (),
    where: Sequence[str] = (),
    intersect: bool = False,
    reps: int = 50_000,
    seed: int = 0,
    progress: bool = True,
    preface: Sequence = (),
    figures: Mapping[str, Callable[[], Any]] = {},  # noqa: B006 - read only
) -> Report:
    """Gather, check, compute and write the report folder `out` (replaced atomically).

    `figures` maps a name to a function making a matplotlib figure, saved as `figures/NAME.png|svg`
    before the document is written, so that a preface `Figure("figures/NAME.png", ...)` can show it."""
    check_report_out(Path(out))
    df = select(load_results(paths), algorithms, datasets, where)
    check_fingerprints(df)
    df, legend = _short_methods(df)
    nominal = build_scope(df, NOMINAL, intersect)
    families = {name: build_scope(df, name, intersect) for name in sorted(set(df["family"]) - {NOMINAL})}
    with Bootstrap(reps, seed, progress) as boot:
        nominal_stats = scope_stats(nominal, boot)
        family_stats = {name: scope_stats(scope, boot) for name, scope in families.items()}
        summaries = [
            s
            for scope in families.values()
            for s in family_summaries(scope, df[df["family"] == NOMINAL], boot)
        ]
    report = Report(
        Path(out), df, nominal_stats, family_stats, summaries, _notes(nominal_stats, family_stats)
    )
    methods = nominal.methods
    named = ", ".join(methods) if len(methods) <= 3 else f"{len(methods)} methods"
    doc = Document(title or f"offline-mbrl report: {named}")
    doc.add(Text(_summary(df, nominal_stats, paths, reps, seed)))
    doc.add(*preface)
    if legend:
        doc.add(Heading("Methods"))
        doc.add(
            Text(
                "Methods whose settings make a long name are shown by a short label; `method_settings` in "
                "results.csv holds the full one."
            )
        )
        doc.add(Table(["label", "algorithm and the settings that set it apart"], legend))

    def write(staging: Path) -> None:
        _write_tables(df, staging)
        for name, make in figures.items():
            rf.save(make(), staging / "figures", name)
        _document(doc, report, staging / "figures")
        _write_stats(report, staging / "stats.json")
        write_document(doc, staging)

    publish_report(Path(out), write)
    return report


def publish_report(out: Path, write: Callable[[Path], None], kind: Output = REPORT) -> None:
    """`write(folder)` fills a private staging folder, which then replaces `out` atomically (only a
    previous report, or output of `kind`, may be replaced; the folder carries the marker and normal
    permissions)."""
    check_report_out(out, kind)
    staging = temp_dir_beside(out.parent)
    staging.chmod(0o755)  # mkdtemp's 0700 would become the published folder's mode
    try:
        marker = f"written by offline-mbrl {kind.command}; it may replace this folder\n"
        (staging / kind.marker).write_text(marker)
        write(staging)
        check_report_out(out, kind)  # again: something else may have appeared there meanwhile
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_document(doc: Document, folder: Path) -> None:
    """`report.md` and the self-contained `report.html` of `doc` into `folder` (its figures already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(to_markdown(doc))
    (folder / "report.html").write_text(to_html(doc, folder))


def _write_tables(df: pd.DataFrame, folder: Path) -> None:
    tidy = df.drop(columns=["_mtime"]).rename(columns={"_trial": "sweep_trial"})
    tidy.to_csv(folder / "results.csv", index=False)
    for col in [c for c in tidy.columns if tidy[c].dtype == "object"]:
        kinds = {type(v) for v in tidy[col] if v is not None and not (isinstance(v, float) and np.isnan(v))}
        if len(kinds) > 1 or kinds - {str}:  # mixed (e.g. bool and str): parquet columns need one type
            tidy[col] = tidy[col].map(lambda v: None if v is None or v != v else str(v))
    tidy.to_parquet(folder / "results.parquet", index=False)


def _write_stats(report: Report, path: Path) -> None:
    payload = {
        "nominal": report.nominal.to_dict(),
        "families": {name: s.to_dict() for name, s in report.families.items()},
        "family_summaries": [s.to_dict() for s in report.family_summaries],
        "notes": report.notes,
    }
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def _summary(df: pd.DataFrame, stats: ScopeStats, paths: Sequence[Path], reps: int, seed: int) -> str:
    nominal = df[df["family"] == NOMINAL]
    scope = stats.scope
    seeds = sorted({s for runs in scope.runs.values() for s, _ in runs})
    where = ", ".join(f"`{p}`" for p in paths)
    if len(paths) > 3:
        where = (
            f"{len(paths)} run folders under `{os.path.commonpath([str(Path(p).resolve()) for p in paths])}`"
        )
    return (
        f"{len(nominal)} runs of {len(scope.methods)} method(s) on {len(scope.tasks)} dataset(s), seeds "
        f"{', '.join(map(str, seeds))}; read from {where} on "
        f"{time.strftime('%Y-%m-%d %H:%M')}. Intervals: 95% stratified bootstrap (rliable), {reps:,} "
        f"repetitions for aggregates and {min(reps, 2000):,} for profiles, probabilities of improvement and "
        f"per-task means, seed {seed}."
    )


def _notes(nominal: ScopeStats, families: dict[str, ScopeStats]) -> list[str]:
    notes = []
    for stats in [nominal, *families.values()]:
        scope = stats.scope
        where = "" if scope.name == NOMINAL else f" (family {scope.name})"
        notes += [n + where for n in scope.notes]
        single = [m for m in scope.methods if scope.single_run(m)]
        if single and scope.name == NOMINAL:
            who = "every method" if len(single) == len(scope.methods) else ", ".join(single)
            notes.append(
                f"a single seed for {who}: no confidence interval is possible, so only point estimates are "
                "shown; run more seeds (`--seeds K`) for intervals"
            )
        few = [m for m in scope.methods if 2 <= len(scope.runs[m]) < FEW_RUNS]
        if few and scope.name == NOMINAL:
            notes.append(
                f"{', '.join(few)}: fewer than {FEW_RUNS} runs per task; percentile-bootstrap intervals "
                "from so few runs are too narrow, read them as rough"
            )
        raw_only = [t for t in scope.tasks if t not in scope.norm_tasks]
        if raw_only and scope.name == NOMINAL:
            notes.append(
                f"no reference returns for {', '.join(raw_only)}: excluded from the normalised aggregates "
                "and profiles; their raw returns are in the per-task table, and they count in the "
                "probability of improvement (a rank statistic, the same on raw returns)"
            )
    return notes


def _document(doc: Document, report: Report, figures: Path) -> None:
    nominal = report.nominal
    colors = _colors(report)
    for note in report.notes:
        doc.add(Text(note, "note"))
    doc.add(Heading("Aggregate performance on the nominal MDPs"))
    _aggregate_section(doc, nominal, colors, figures, "nominal")
    _curves_section(doc, report, colors, figures)
    doc.add(Heading("Probability of improvement"))
    methods = nominal.scope.methods
    if len(methods) > 1 and all(nominal.scope.single_run(m) for m in methods):
        doc.add(
            Text(
                "Every method has one run per task, so a probability of improvement would be 0 or 1 for "
                "each pair and say nothing about the methods: it is left out. Run more seeds (`--seeds`) "
                "for it."
            )
        )
    else:
        _improvement_section(doc, nominal, colors, figures)
    doc.add(Heading("Per-task scores"))
    _task_table(doc, nominal)
    for summary_scope, stats in report.families.items():
        doc.add(Heading(f"MDP family {summary_scope}"))
        _family_section(doc, report, stats, colors, figures)
    _datasets_table(doc, report.table)
    doc.add(Heading("Files"))
    doc.add(
        Bullets(
            [
                "`results.csv`, `results.parquet`: the tidy table, one row per run and scope (`family` is "
                "`nominal` or a family name, `member` its index), with every config key as a column",
                "`stats.json`: every number in this report",
                "`figures/`: each figure as PNG and SVG",
            ]
        )
    )


def _improvement_section(doc: Document, nominal: ScopeStats, colors: dict, figures: Path) -> None:
    doc.add(
        Text(
            "P(row > column): the probability that a run of the row method beats a run of the column method "
            "on a task drawn at random (ties count one half), averaged over tasks; "
            + _interval_words(nominal, "95% interval in brackets")
            + "."
        )
    )
    _improvement_table(doc, nominal)
    if len(nominal.scope.methods) > 1:
        name = rf.save(rf.improvement_figure(nominal, colors), figures, "improvement")
        doc.add(
            Figure(
                f"figures/{name}",
                "Probability of improvement for every pair, " + _interval_words(nominal, "95% intervals"),
            )
        )


def _short_methods(df: pd.DataFrame) -> tuple[pd.DataFrame, list[list[str]]]:
    """Long method labels (sweep or variant settings) become `algo (A)` everywhere in the report, so
    tables and figures fit a laptop screen; returns the table and the legend rows (label, full name)."""
    from offline_mbrl.report.curves import short_labels

    labels = short_labels(sorted(set(df["method"])))
    legend = [[short, full] for full, short in sorted(labels.items(), key=lambda kv: kv[1]) if short != full]
    if not legend:
        return df, []
    df = df.copy()
    df["method_settings"] = df["method"]
    df["method"] = df["method"].map(labels)
    return df, legend


def _interval_words(stats: ScopeStats, words: str) -> str:
    """`words` (a claim of intervals) unless every method has a single run per task."""
    scope = stats.scope
    if all(scope.single_run(m) for m in scope.methods):
        return "point estimates (one run per task and method: no interval)"
    return words


def _curves_section(doc: Document, report: Report, colors: dict, figures: Path) -> None:
    from offline_mbrl.report import curves as rc

    data = rc.load_curves(report.table)
    if data.empty:
        return
    labels = rc.short_labels(rc.order_by_final(data))
    doc.add(Heading("Learning curves"))
    fig, drawn = rc.curves_figure(data, report.table, colors, labels)
    name = rf.save(fig, figures, "learning-curves")
    doc.add(Figure(f"figures/{name}", rc.caption(data, drawn)))
    long = [(short, method) for method, short in labels.items() if short != method]
    if long:
        doc.add(Table(["label", "method (the settings that set it apart)"], [list(pair) for pair in long]))


def _colors(report: Report) -> dict:
    return rf.method_colors(sorted(set(report.table["method"])))


def _aggregate_section(doc: Document, stats: ScopeStats, colors: dict, figures: Path, tag: str) -> None:
    scope = stats.scope
    if not stats.aggregates:
        doc.add(Text("No task has reference returns, so there are no normalised aggregates.", "note"))
        return
    doc.add(
        Text(
            f"Normalised score / 100 over {len(scope.norm_tasks)} task(s): 1.0 is the expert and 0.0 the "
            "random reference return (D4RL's for MuJoCo; see Datasets). Interquartile mean, median, mean and "
            "optimality gap (mean shortfall below 1.0; lower is better): "
            + _interval_words(stats, "each with its 95% stratified-bootstrap interval")
            + "."
        )
    )
    rows = [
        [m, str(len(scope.runs[m])), *(stats.aggregates[m][k].fmt(3) for k in METRICS)] for m in scope.methods
    ]
    doc.add(Table(["method", "runs per task", *METRICS], rows))
    name = rf.save(rf.aggregates_figure(stats, colors), figures, f"aggregates-{tag}")
    words = _interval_words(stats, "with 95% stratified-bootstrap intervals")
    doc.add(Figure(f"figures/{name}", f"Aggregate metrics, {words}"))
    name = rf.save(rf.profiles_figure(stats, colors), figures, f"profiles-{tag}")
    bands = _interval_words(stats, "with 95% bands")
    doc.add(Figure(f"figures/{name}", f"Performance profiles (score distributions), {bands}"))


def _improvement_table(doc: Document, stats: ScopeStats) -> None:
    methods = stats.scope.methods
    if len(methods) < 2:
        doc.add(Text("One method only: nothing to compare."))
        return
    rows = [[x, *("" if x == y else stats.improvement[(x, y)].fmt(2) for y in methods)] for x in methods]
    doc.add(Table(["P(row > column)", *methods], rows))


def _task_table(doc: Document, stats: ScopeStats) -> None:
    scope = stats.scope
    doc.add(
        Text(
            "Mean over runs ("
            + _interval_words(stats, "with its 95% interval")
            + "): D4RL normalised score (0-100), or the raw return where the dataset has no reference "
            "returns."
        )
    )
    rows = []
    for task in scope.tasks:
        unit = "score" if task in scope.norm_tasks else "return"
        rows.append([task, unit, *(stats.task_means[(m, task)].fmt(1) for m in scope.methods)])
    doc.add(Table(["task", "unit", *scope.methods], rows))


def _family_section(doc: Document, report: Report, stats: ScopeStats, colors: dict, figures: Path) -> None:
    name = stats.scope.name
    doc.add(
        Text(
            f"Every member of the family is a task ({len(stats.scope.tasks)} tasks: dataset x member). "
            "The family-weighted mean (Jayawardana et al., NeurIPS 2022) weights the members by their "
            "probability under the family's distribution; the members are i.i.d. draws, so each weighs 1/K."
        )
    )
    _aggregate_section(doc, stats, colors, figures, f"family-{name}")
    doc.add(Text("Probability of improvement over the members, P(row > column):"))
    _improvement_table(doc, stats)
    for s in [s for s in report.family_summaries if s.family == name]:
        doc.add(Heading(f"{s.dataset} on {name}: nominal MDP vs family ({s.unit})", 3))
        rows = [
            [
                m,
                s.nominal[m].fmt(1),
                s.family_mean[m].fmt(1),
                str(s.nominal_rank.index(m) + 1),
                str(s.family_rank.index(m) + 1),
            ]
            for m in stats.scope.methods
        ]
        doc.add(
            Table(["method", "nominal MDP", "family-weighted mean", "rank (nominal)", "rank (family)"], rows)
        )
        if s.flips:
            flips = [
                f"{a} is above {b} on the nominal MDP ({s.nominal[a].point:.1f} vs {s.nominal[b].point:.1f}) "
                "but "
                f"below it over the family ({s.family_mean[a].point:.1f} vs {s.family_mean[b].point:.1f})"
                for a, b in s.flips
            ]
            doc.add(
                Text("The ranking changes between the nominal MDP and the family:", "note"), Bullets(flips)
            )
        else:
            doc.add(Text("The ranking on the nominal MDP and over the family agree."))
        params = sorted(s.member_params[0]) if s.member_params else []
        member_rows = [
            [f"m{k}", ", ".join(f"{p}={s.member_params[k][p]:.3g}" for p in params)]
            + [f"{s.member_means[m][k]:.1f}" for m in stats.scope.methods]
            for k in range(s.members)
        ]
        doc.add(
            Table(["member", "parameters", *stats.scope.methods], member_rows, "Mean over runs per member")
        )
        fig = rf.save(rf.family_figure(s, colors), figures, f"family-{name}-{s.dataset.replace('/', '_')}")
        doc.add(Figure(f"figures/{fig}", f"{s.dataset} on the members of {name}"))


def _datasets_table(doc: Document, df: pd.DataFrame) -> None:
    nominal = df[df["family"] == NOMINAL]
    rows = []
    for dataset, runs in nominal.groupby("dataset"):
        first = runs.iloc[0]
        rows.append(
            [
                dataset,
                str(first["dataset_id"]),
                str(first["fingerprint"]).split("@")[-1][:12],
                str(first["score_note"]),
                str(len(runs)),
            ]
        )
    doc.add(Heading("Datasets"))
    doc.add(Table(["dataset", "Minari id", "content hash", "reference returns", "runs"], rows))
