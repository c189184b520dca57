"""Learning curves: the evaluation score against gradient steps, per dataset, one line per method.

Read from each run's metrics.jsonl (its periodic `eval/score` rows of the output policy's loop, earlier
phases left out) and final.json (the last point, at the gradient steps the loop ran). Per method the line
is the mean over its seeds at each step and the band the range (min to max) over seeds, said so in the
caption; with one seed there is no band and the caption says that too. The dataset's own behaviour (its
mean episode return, and its best where the dataset records it, normalised like the scores) is drawn as
reference lines, and so is BC's final mean when BC is in the report. Methods are ordered by their final
mean score; labels longer than `SHORT` characters are replaced by a letter (a sweep trial's by its trial
number) and listed in a legend table.
"""

from __future__ import annotations

import json
import string
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from offline_mbrl.core.run_files import read_final, read_metrics
from offline_mbrl.report.figures import plt  # headless backend chosen there
from offline_mbrl.report.table import NOMINAL

SHORT = 28  # a method label longer than this is shown as a letter, with a legend table


def load_curves(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, evaluation): method, dataset, seed, step, score."""
    rows = []
    for run in df[df["family"] == NOMINAL].itertuples():
        run_dir = Path(str(run.run_dir))
        for row in read_metrics(run_dir):
            if "phase" not in row and "eval/score" in row:
                rows.append((run.method, run.dataset, run.seed, int(row["step"]), float(row["eval/score"])))
        final = read_final(run_dir)
        score = (
            final["normalized_score"] if final.get("normalized_score") is not None else final["return_mean"]
        )
        last = int(final.get("gradient_steps", final["steps"]))
        rows.append((run.method, run.dataset, run.seed, last, float(score)))
    out = pd.DataFrame(rows, columns=["method", "dataset", "seed", "step", "score"])
    return out.drop_duplicates(["method", "dataset", "seed", "step"], keep="last")


def behaviour_lines(dataset_id: str | None) -> dict[str, float]:
    """The dataset's mean (and best, where recorded) episode return, normalised by its references."""
    if not dataset_id:
        return {}
    try:
        from offline_mbrl.data.names import resolve

        meta = json.loads((resolve(dataset_id).path / "data" / "metadata.json").read_text())
    except Exception:  # noqa: BLE001 - a dataset that is not here only loses its reference lines
        return {}
    own = meta.get("offline_mbrl") or {}
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    lines = {}
    for label, key in (("data mean", "dataset_mean_return"), ("data best", "best_return")):
        value = own.get(key)
        if value is None:
            continue
        lines[label] = 100 * (value - lo) / (hi - lo) if lo is not None and hi is not None else value
    return lines


def short_labels(methods: list[str]) -> dict[str, str]:
    """Each method's label in figures: itself, or a letter when it is long."""
    letters = iter(string.ascii_uppercase)

    def short(m: str) -> str:
        if len(m) <= SHORT:
            return m
        algo, _, rest = m.partition("[")
        if rest.startswith("trial ") and ": " in rest:  # a sweep trial: its number (settings in the legend)
            return f"{algo} {rest.split(': ')[0]}"
        return f"{algo} ({next(letters)})"

    return {m: short(m) for m in methods}


def order_by_final(curves: pd.DataFrame) -> list[str]:
    last = curves.sort_values("step").groupby(["method", "dataset", "seed"]).tail(1)
    return list(last.groupby("method")["score"].mean().sort_values(ascending=False).index)


REFERENCE_STYLES = {"data mean": ":", "data best": "-.", "bc (final)": "--"}


def curves_figure(
    curves: pd.DataFrame, table: pd.DataFrame, colors: dict, labels: dict[str, str]
) -> tuple[plt.Figure, set[str]]:
    """The figure, and which reference lines it draws (`REFERENCE_STYLES`' names), for its caption."""
    drawn: set[str] = set()
    datasets = sorted(curves["dataset"].unique())
    cols = min(3, len(datasets))
    rows = -(-len(datasets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    methods = order_by_final(curves)
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        here = curves[curves["dataset"] == dataset]
        for method in methods:
            runs = here[here["method"] == method]
            if runs.empty:
                continue
            by_step = runs.groupby("step")["score"]
            steps = by_step.mean().index.to_numpy()
            ax.plot(steps, by_step.mean().to_numpy(), color=colors.get(method), label=labels[method], lw=1.6)
            if runs["seed"].nunique() > 1:
                ax.fill_between(
                    steps,
                    by_step.min().to_numpy(),
                    by_step.max().to_numpy(),
                    color=colors.get(method),
                    alpha=0.15,
                )
        ids = table.loc[table["dataset"] == dataset, "dataset_id"].dropna()
        for label, value in behaviour_lines(ids.iloc[0] if len(ids) else None).items():
            ax.axhline(value, color="0.35", ls=REFERENCE_STYLES[label], lw=1.0, label=label)
            drawn.add(label)
        bc = here[(here["method"] == "bc")].sort_values("step").groupby("seed").tail(1)
        if len(bc):
            ax.axhline(
                bc["score"].mean(), color="0.6", ls=REFERENCE_STYLES["bc (final)"], lw=1.0, label="bc (final)"
            )
            drawn.add("bc (final)")
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=min(4, len(names)),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(names) // 4)),
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig, drawn


def caption(curves: pd.DataFrame, drawn: Collection[str] = ()) -> str:
    """The learning-curve figure's caption, naming only the reference lines `drawn`."""
    seeds = curves.groupby(["method", "dataset"])["seed"].nunique()
    if seeds.max() <= 1:
        band = "one seed per method: no interval is shown"
    else:
        band = (
            f"band: the range (min to max) over {seeds.min()}-{seeds.max()} seeds"
            if seeds.min() != seeds.max()
            else f"band: the range (min to max) over {seeds.max()} seeds"
        )
    words = {
        "data mean": "dotted: the data's mean episode return",
        "data best": "dash-dot: its best episode",
        "bc (final)": "dashed: BC's final score",
    }
    lines = [words[name] for name in REFERENCE_STYLES if name in drawn]
    return (
        f"Evaluation score (normalised where the dataset has reference returns) against gradient steps: "
        f"mean over seeds, {band}" + "".join(f"; {line}" for line in lines) + ". Methods in the legend are "
        "ordered by final score."
    )
