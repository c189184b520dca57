"""Claim (e), task underspecification over MDP families (Jayawardana et al., "Impact of Task
Underspecification in Evaluating Deep Reinforcement Learning", NeurIPS 2022): a policy trained and scored
on the one nominal MDP loses score across a family of nearby MDPs, and the ranking of methods over the
family is not the ranking on the nominal MDP, so a benchmark that scores only the nominal MDP can rank
methods wrongly.

The experiment: four methods trained on one dataset of the nominal MDP, 3 seeds each (the cells are the
MOREC claim's at the same budget, so they are reused when that claim ran first, plus BC), every final
policy evaluated on each of the family's 8 fixed members (`experiments.family_eval`: deterministic
actions, the same environment seeds on every member, the run's final-evaluation episode count).

Tests:
- "loses score across the family": the nominal score minus the mean member score, per run, averaged over
  every run of every method, bootstrap 95% interval above 0;
- "the ranking differs": Kendall's τ between the methods' ranking by nominal mean score and by the IQM
  over (seeds x members) of member scores (rliable's interquartile mean over the family), with a
  bootstrap 95% interval from resampling each method's seeds; the rankings differ when τ's interval lies
  below 1 (τ = 1: the same order).

Budgets: `cpu`: inverted-double-pendulum-medium-replay and the `inverted-double-pendulum-physics` family
(gravity, pole masses, joint damping, motor gear within ±20-50%); `paper`: hopper-medium-replay and
`hopper-physics` with the MOREC claim's paper-scale cells.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offline_mbrl.experiments.cells import Budget, CellRun, cell_config, run_cells
from offline_mbrl.experiments.claims import morec
from offline_mbrl.experiments.claims.base import Claim, Context, Outcome, failure_notes, save_figure
from offline_mbrl.experiments.claims.verdict import Test, mean_ci
from offline_mbrl.report.stats import Interval

FAMILIES = {"cpu": "inverted-double-pendulum-physics", "paper": "hopper-physics"}
METHODS = {"bc": ("bc", ()), "mopo": None, "mopo-long": None, "morec-mopo": None}  # None: morec's arm
LABELS = {"bc": "BC", **morec.LABELS}


def _arms(budget: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    shared = morec._BUDGETS[budget]["arms"]
    return {k: v if v is not None else shared[k] for k, v in METHODS.items()}


def kendall_tau_ci(
    nominal: dict[str, np.ndarray], members: dict[str, np.ndarray], reps: int, seed: int = 0
) -> Interval:
    """Kendall's τ between the methods' order by nominal mean score (`nominal[m]`: (seeds,)) and by the
    IQM of member scores (`members[m]`: (seeds, members)), with a bootstrap over each method's seeds."""
    from rliable import metrics
    from scipy import stats

    names = list(nominal)

    def tau(pick: dict[str, np.ndarray]) -> float:
        a = [float(np.mean(nominal[m][pick[m]])) for m in names]
        b = [float(metrics.aggregate_iqm(members[m][pick[m]])) for m in names]
        t = stats.kendalltau(a, b).statistic
        return float(t) if t is not None and math.isfinite(t) else math.nan

    point = tau({m: np.arange(len(nominal[m])) for m in names})
    if min(len(v) for v in nominal.values()) < 2:
        return Interval(point)
    rng = np.random.default_rng(seed)
    draws = np.array(
        [tau({m: rng.integers(0, len(nominal[m]), len(nominal[m])) for m in names}) for _ in range(reps)]
    )
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return Interval(point, float(low), float(high))


def tests_of(table: pd.DataFrame, reps: int) -> list[Test]:
    """The claim's two tests from the per-run table (columns arm, seed, nominal, member_0..member_K-1)."""
    member_cols = [c for c in table.columns if c.startswith("member_")]
    drop = (table["nominal"] - table[member_cols].mean(axis=1)).to_numpy(np.float64)
    arms = list(dict.fromkeys(table["arm"]))
    nominal = {a: table.loc[table["arm"] == a, "nominal"].to_numpy(np.float64) for a in arms}
    members = {a: table.loc[table["arm"] == a, member_cols].to_numpy(np.float64) for a in arms}
    return [
        Test(
            "policies lose score across the family",
            "nominal score - mean member score (mean over runs)",
            mean_ci(drop, reps),
            0.0,
            "above",
        ),
        Test(
            "the method ranking over the family differs from the nominal one",
            "Kendall τ(nominal ranking, family IQM ranking)",
            kendall_tau_ci(nominal, members, min(reps, 1_000)),
            1.0,
            "below",
        ),
    ]


def run(ctx: Context) -> Outcome:
    from offline_mbrl.experiments.claims.penalties import _ensure_dataset
    from offline_mbrl.experiments.family_eval import evaluate_family

    b = morec._BUDGETS[ctx.budget]
    dataset, family = b["dataset"], FAMILIES[ctx.budget]
    _ensure_dataset(dataset, ctx.log)
    budget = Budget(
        ctx.budget, f"families claim, {ctx.budget}", (*b["common"], *b["dynamics"]), seeds=3, scaled=False
    )
    arms = _arms(ctx.budget)
    cells = [
        (key, CellRun(algo, LABELS[key], dataset, s))
        for key, (algo, _) in arms.items()
        for s in range(ctx.seeds)
    ]
    configs: dict[int, Any] = {
        i: cell_config(c.algorithm, dataset, c.seed, budget, list(arms[key][1]), ctx.device, None)
        for i, (key, c) in enumerate(cells)
    }
    run_cells(
        [c for _, c in cells], configs, budget, ctx.results_root, ctx.progress, ctx.log, workers=ctx.workers
    )
    rows = []
    for key, c in cells:
        if c.final is None:
            continue
        ctx.log(f"family {family}: {LABELS[key]} seed {c.seed}")
        record = evaluate_family(Path(str(c.run_dir)), family, device=ctx.device, progress=ctx.progress)
        scores = record["member_scores"]
        rows.append(
            {
                "arm": key,
                "method": LABELS[key],
                "seed": c.seed,
                "nominal": record["nominal_score"],
                **{f"member_{i}": s for i, s in enumerate(scores)},
            }
        )
    table = pd.DataFrame(rows)
    tests = tests_of(table, ctx.reps) if len(table) else []
    notes = failure_notes([c for _, c in cells])
    if any(c.diverged for _, c in cells):
        notes.append("A diverged run has no policy to evaluate on the members: it is left out here.")
    if len(table):
        notes.append(_rankings(table))
    figure = _figure(table, family, ctx.figures / "families.png") if len(table) else None
    return Outcome(
        tests,
        table,
        figure,
        f"Each method's nominal score (black) and its score on each member of {family} (dots, one colour per "
        "method; means over seeds).",
        notes,
    )


def _rankings(table: pd.DataFrame) -> str:
    from rliable import metrics

    member_cols = [c for c in table.columns if c.startswith("member_")]
    nominal = table.groupby("method")["nominal"].mean().sort_values(ascending=False)
    iqm = {
        m: float(metrics.aggregate_iqm(part[member_cols].to_numpy(np.float64)))
        for m, part in table.groupby("method")
    }
    fam = sorted(iqm, key=lambda m: -iqm[m])
    return (
        "Ranking on the nominal MDP: "
        + " > ".join(f"{m} ({v:.1f})" for m, v in nominal.items())
        + "; over the family (IQM of member scores): "
        + " > ".join(f"{m} ({iqm[m]:.1f})" for m in fam)
        + "."
    )


def _figure(table: pd.DataFrame, family: str, path: Path) -> str:
    import matplotlib.pyplot as plt

    from offline_mbrl.report.figures import method_colors

    member_cols = [c for c in table.columns if c.startswith("member_")]
    methods = list(dict.fromkeys(table["method"]))
    colors = method_colors(methods)
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for i, m in enumerate(methods):
        part = table[table["method"] == m]
        per_member = part[member_cols].mean(axis=0).to_numpy()
        ax.scatter(
            np.full(len(per_member), i) + np.linspace(-0.2, 0.2, len(per_member)), per_member, color=colors[m]
        )
        ax.scatter([i], [part["nominal"].mean()], marker="_", s=900, color="k", linewidths=2)
    ax.set_xticks(range(len(methods)), methods, fontsize=8)
    ax.set_ylabel("normalised score")
    ax.set_title(f"nominal (black bar) vs the members of {family} (dots)")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


CLAIM = Claim(
    name="families",
    paper=(
        'Jayawardana et al., NeurIPS 2022, "Impact of Task Underspecification in Evaluating Deep '
        'Reinforcement Learning"'
    ),
    claim=(
        "A policy trained on the nominal MDP loses score across the family's members, and the method "
        "ranking over the family differs from the ranking on the nominal MDP."
    ),
    experiment=(
        "BC, MOPO (h 5), MOPO (h 50) and MOREC-MOPO trained on the nominal dataset (the MOREC claim's "
        "cells), each final policy evaluated on the family's 8 members; cpu: "
        "inverted-double-pendulum-medium-replay and inverted-double-pendulum-physics, 3 seeds"
    ),
    statistic=(
        "nominal minus mean member score (> 0), and Kendall τ between the nominal and the family IQM "
        "rankings (< 1), each with a bootstrap 95% interval"
    ),
    run=run,
    cpu_minutes=2.0,  # measured on a fresh clone, 2026-12-06 (docs/claims.md)
)
