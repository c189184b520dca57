"""A report over a sweep: what tuning bought, for people (`offline-mbrl sweep report STUDY`).

The folder (report.md, a self-contained report.html, trials.csv, figures/) holds: the study's settings;
the best trial and the command that trains it; every trial (parameters, value, state, why it was pruned or
failed); parameter importances (Optuna's PED-ANOVA); and the tuning-budget curve ("budget-aware
evaluation of tuning", Dodge et al., EMNLP 2019, "Show Your Work"): the expected best score among n
trials drawn from the study's completed ones, n = 1 .. N, with its 95% band. Both are exact for sampling
with replacement from the N completed values v_(1) <= ... <= v_(N): P(max of n <= v_(i)) = (i/N)^n, so
E[max] = sum_i v_(i) [(i/N)^n - ((i-1)/N)^n] and the q-quantile is v_(ceil(N q^(1/n))); the same numbers a
bootstrap over the trials converges to, without its noise. The running best in trial order is drawn too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from offline_mbrl.report import figures as rf
from offline_mbrl.report.build import publish_report, write_document
from offline_mbrl.report.render import Document, Figure, Heading, Table, Text
from offline_mbrl.sweep.results import describe

FIXED = {"number", "state", "value", "reason", "duration_s", "worker", "overrides", "scores", "runs"}


def tuning_curve(values: list[float] | np.ndarray) -> pd.DataFrame:
    """Expected best of n trials drawn with replacement from `values`, n = 1..N, and its 95% band."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n_values = len(v)
    if n_values == 0:
        return pd.DataFrame(columns=["trials", "expected_best", "low", "high"])
    i = np.arange(1, n_values + 1)
    rows = []
    for n in range(1, n_values + 1):
        weights = (i / n_values) ** n - ((i - 1) / n_values) ** n  # P(max of n = v_(i))
        quantile = [v[min(n_values, math.ceil(n_values * q ** (1.0 / n))) - 1] for q in (0.025, 0.975)]
        rows.append((n, float(weights @ v), *quantile))
    return pd.DataFrame(rows, columns=["trials", "expected_best", "low", "high"])


def _curve_figure(curve: pd.DataFrame, running: list[float], name: str):
    fig, ax = rf.plt.subplots(figsize=(6.0, 3.6))
    ax.plot(curve["trials"], curve["expected_best"], color="C0", lw=1.8, label="expected best of n trials")
    ax.fill_between(curve["trials"], curve["low"], curve["high"], color="C0", alpha=0.15, label="95% band")
    ax.step(
        range(1, len(running) + 1),
        running,
        where="post",
        color="0.4",
        ls="--",
        lw=1.0,
        label="running best (trial order)",
    )
    ax.set_xlabel("trials")
    ax.set_ylabel("objective")
    ax.set_title(name, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def trial_curves(study: optuna.Study) -> pd.DataFrame:
    """One row per (complete trial, evaluation): the trial, its run, step and score, read from the runs'
    metrics.jsonl and final.json (the final evaluation) where this machine has them (a run elsewhere is
    left out)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        for run in t.user_attrs.get("runs", []):
            metrics = Path(run) / "metrics.jsonl"
            if not metrics.is_file():
                continue
            for line in metrics.read_text().splitlines():
                row = json.loads(line)
                if "phase" not in row and "eval/score" in row:
                    rows.append((t.number, run, int(row["step"]), float(row["eval/score"])))
            final_file = Path(run) / "final.json"
            if final_file.is_file():
                final = json.loads(final_file.read_text())
                score = final.get("normalized_score")
                step = int(final.get("gradient_steps", final["steps"]))
                rows.append((t.number, run, step, float(final["return_mean"] if score is None else score)))
    out = pd.DataFrame(rows, columns=["trial", "run", "step", "score"])
    return out.drop_duplicates(["trial", "run", "step"], keep="last")


def _trials_figure(curves: pd.DataFrame, study: optuna.Study, best: int | None):
    """Each complete trial's mean evaluation curve over its runs, labelled by trial number and settings."""
    params = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    trials = sorted(curves["trial"].unique())
    colors = rf.method_colors([str(t) for t in trials])
    fig, ax = rf.plt.subplots(figsize=(8.0, 4.2 + 0.16 * len(trials)))
    for trial in trials:
        mean = curves[curves["trial"] == trial].groupby("step")["score"].mean()
        settings = ", ".join(f"{k.rsplit('.', 1)[-1]}={_fmt(v)}" for k, v in params[trial].items())
        label = f"trial {trial}{' (best)' if trial == best else ''}: {settings}"
        width = 2.4 if trial == best else 1.3
        ax.plot(
            mean.index, mean.to_numpy(), color=colors[str(trial)], lw=width, marker="o", ms=2.5, label=label
        )
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("evaluation score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    return fig


def sweep_report(study: optuna.Study, out: Path) -> Path:
    """Write the report folder `out` (replacing only a previous report); returns it."""
    info = describe(study)
    attrs, rows, best = info["attrs"], info["rows"], info["best"]
    params = list(dict.fromkeys(k for r in rows for k in r if k not in FIXED))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    values = [float(r["value"]) for r in complete]
    doc = Document(f"sweep {info['name']}")
    states = pd.Series([r["state"].lower() for r in rows]).value_counts()
    doc.add(
        Text(
            f"{attrs.get('algorithm')} on {', '.join(attrs.get('datasets', []))}: objective "
            f"{attrs.get('objective')} over {attrs.get('seeds')} seed(s) of {attrs.get('steps')} gradient "
            "steps, "
            f"sampler {attrs.get('sampler')}, space {attrs.get('space_file')}. Trials: "
            + ", ".join(f"{n} {s}" for s, n in states.items())
            + "."
        )
    )
    doc.add(Heading("Best trial"))
    if best is None:
        doc.add(Text("No trial has completed yet.", "note"))
    else:
        flags = " ".join(f"--set {o}" for o in best.user_attrs.get("overrides", []))
        doc.add(
            Table(
                ["trial", "value", *best.params],
                [[str(best.number), f"{best.value:.2f}", *(_fmt(v) for v in best.params.values())]],
            )
        )
        doc.add(
            Text(
                f"Train it: `offline-mbrl train --algo {attrs.get('algorithm')} --dataset "
                f"{attrs.get('datasets', ['?'])[0]} --steps {attrs.get('steps')} {flags}`"
            )
        )
    curve = tuning_curve(values)

    def write(folder: Path) -> None:
        pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
        curve.to_csv(folder / "tuning_curve.csv", index=False)
        if len(values):
            running = list(np.maximum.accumulate([r["value"] for r in complete]))
            name = rf.save(_curve_figure(curve, running, info["name"]), folder / "figures", "tuning-budget")
            doc.add(Heading("What tuning bought"))
            first, last = curve.iloc[0], curve.iloc[-1]
            doc.add(
                Figure(
                    f"figures/{name}",
                    f"Expected best objective among n trials drawn from the {len(values)} completed ones "
                    f"(exact, sampling with replacement), 95% band; dashed: the best so far in trial order. "
                    f"One trial: {first.expected_best:.2f} expected; {len(values)}: "
                    f"{last.expected_best:.2f}.",
                )
            )
        curves = trial_curves(study)
        if not curves.empty:
            evals = curves.groupby("run")["step"].nunique()
            name = rf.save(
                _trials_figure(curves, study, None if best is None else best.number),
                folder / "figures",
                "trials",
            )
            doc.add(Heading("Learning curves of the trials"))
            doc.add(
                Figure(
                    f"figures/{name}",
                    "Each complete trial's periodic evaluation score (normalised where the dataset has "
                    "reference returns) against gradient steps, the mean over its runs, "
                    + (f"{evals.max()}" if evals.min() == evals.max() else f"{evals.min()}-{evals.max()}")
                    + " evaluations per run (the last is the final one); labelled by trial number and its "
                    "settings, the best trial drawn thicker.",
                )
            )
        doc.add(Heading("Parameter importances (PED-ANOVA)"))
        doc.add(
            Table(
                ["parameter", "importance"],
                [[k, f"{v:.3f}" if isinstance(v, float) else str(v)] for k, v in info["importances"].items()],
            )
        )
        doc.add(Heading("Trials"))
        table_rows = [
            [
                str(r["number"]),
                r["state"].lower(),
                "" if r["value"] is None else f"{r['value']:.2f}",
                *(_fmt(r.get(p)) for p in params),
                "" if r["duration_s"] is None else f"{r['duration_s']:.0f}",
                r["reason"],
            ]
            for r in rows
        ]
        doc.add(Table(["#", "state", "value", *params, "seconds", "pruned / failed because"], table_rows))
        write_document(doc, folder)

    publish_report(out, write)
    return out


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
