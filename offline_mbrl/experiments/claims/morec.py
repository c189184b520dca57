"""Claim (c), MOREC (Luo et al., ICLR 2024, "Reward-Consistent Dynamics Models are Strongly Generalizable
for Offline Reinforcement Learning"): a learned dynamics reward r_D tells real transitions from model
transitions, and filtering model rollouts by it lets MOPO use long rollouts where MOPO's own long
rollouts fail.

The experiment, on one dataset:
- r_D's separation: `diagnose` with MOREC's dynamics reward (the same reward config and snapshot stride
  as the MOREC-MOPO runs below, so the cached reward is shared) per dynamics seed: ROC AUC of r_D between
  the dataset transitions the reward never trained on (its holdout) and the model transitions of a BC
  policy's 5-step rollouts in the learned ensemble (`auc_data_vs_model`).
- three arms, each 3 seeds: MOPO with its own short rollouts (h = 5), MOPO with MOREC's long rollouts
  (h = 50, 500 start states per round: the `small` budget's MOREC rollouts), MOREC-MOPO with the same
  long rollouts filtered by r_D.
Tests: mean AUC over seeds at least 0.9; MOPO's long rollouts fail (P(MOPO h5 > MOPO h50) > 0.5); MOREC-
MOPO beats MOPO with the same long rollouts (P(MOREC-MOPO > MOPO h50) > 0.5). MOREC-MOPO against MOPO's
short rollouts is reported beside them (a note), not judged.

Budgets: `cpu`: inverted-double-pendulum-medium-replay (made by the suite in seconds; its ensembles are
the penalty claim's), 10,000 steps, SAC 2x128, the reward fitted for 5,000 updates (every 40th snapshot
averaged); `paper`: hopper-medium-replay with every algorithm's defaults and MOREC's h = 100, 1M steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offline_mbrl.experiments.cells import Budget, CellRun, cell_config, run_cells
from offline_mbrl.experiments.claims.base import (
    Claim,
    Context,
    Outcome,
    counted,
    failure_notes,
    save_figure,
    score_of,
    seed_strip,
)
from offline_mbrl.experiments.claims.verdict import Test, mean_ci, poi_ci

_COMMON = ("log_every=250", "eval_episodes=10", "final_eval_episodes=20")
_SAC_CPU = ("algo.sac.actor_hidden=128,128", "algo.sac.critic_hidden=128,128")
_LONG_CPU = ("algo.horizon=50", "algo.rollout_batch=500")
_BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "dataset": "inverted-double-pendulum-medium-replay",
        "common": ("steps=10000", "eval_every=5000", "checkpoint_every=5000", *_COMMON),
        "dynamics": ("dynamics.max_epochs=10", "dynamics.steps_per_epoch=400"),
        "arms": {
            "mopo": ("mopo", (*_SAC_CPU, "algo.rollout_batch=2000")),
            "mopo-long": ("mopo", (*_SAC_CPU, *_LONG_CPU)),
            "morec-mopo": (
                "morec-mopo",
                (*_SAC_CPU, *_LONG_CPU, "algo.reward.updates=5000", "algo.filter.snapshot_stride=40"),
            ),
        },
        "reward": {"updates": 5000},
        "stride": 40,
        "starts": 2_000,
        "bc_steps": 3_000,
    },
    "paper": {
        "dataset": "hopper-medium-replay",
        "common": ("steps=1000000", "eval_every=10000", "checkpoint_every=10000", *_COMMON),
        "dynamics": (),
        "arms": {
            "mopo": ("mopo", ()),
            "mopo-long": ("mopo", ("algo.horizon=100", "algo.rollout_batch=2000")),
            "morec-mopo": ("morec-mopo", ()),
        },
        "reward": {},
        "stride": 10,
        "starts": 10_000,
        "bc_steps": 3_000,
    },
}
LABELS = {
    "mopo": "MOPO (h 5)",
    "mopo-long": "MOPO (long rollouts)",
    "morec-mopo": "MOREC-MOPO (long rollouts)",
}
AUC = 0.9


def _auc(ctx: Context, dataset: str, seed: int) -> float:
    """r_D's ROC AUC, held-out dataset vs model transitions, for one dynamics seed (diagnose, reused)."""
    import json

    from offline_mbrl.algorithms.morec.reward import DynamicsRewardConfig
    from offline_mbrl.experiments.diagnose import diagnose

    b = _BUDGETS[ctx.budget]
    out = ctx.results_root / "claims" / "morec" / ctx.budget / f"{dataset}-seed{seed}"
    meta_file = out / "meta.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if (
            meta.get("overrides") == list(b["dynamics"])
            and "reward" in meta
            and meta.get("starts") == b["starts"]
        ):
            return float(meta["reward"]["auc_data_vs_model"])
    result = diagnose(
        dataset,
        seed=seed,
        overrides=list(b["dynamics"]),
        starts=b["starts"],
        horizon=5,
        out=out,
        device=ctx.device,
        bc_steps=b["bc_steps"],
        progress=ctx.progress,
        reward=DynamicsRewardConfig(**b["reward"]),
        reward_stride=b["stride"],
        log=ctx.log,
    )
    return float(result.meta["reward"]["auc_data_vs_model"])


def run(ctx: Context) -> Outcome:
    from offline_mbrl.experiments.claims.penalties import _ensure_dataset

    b = _BUDGETS[ctx.budget]
    dataset = b["dataset"]
    _ensure_dataset(dataset, ctx.log)
    aucs = [_auc(ctx, dataset, s) for s in range(ctx.seeds)]
    budget = Budget(
        ctx.budget, f"MOREC claim, {ctx.budget}", (*b["common"], *b["dynamics"]), seeds=3, scaled=False
    )
    cells = [
        (key, CellRun(algo, LABELS[key], dataset, s))
        for key, (algo, _) in b["arms"].items()
        for s in range(ctx.seeds)
    ]
    configs: dict[int, Any] = {
        i: cell_config(c.algorithm, dataset, c.seed, budget, list(b["arms"][key][1]), ctx.device, None)
        for i, (key, c) in enumerate(cells)
    }
    run_cells(
        [c for _, c in cells], configs, budget, ctx.results_root, ctx.progress, ctx.log, workers=ctx.workers
    )
    rows = [
        {"arm": "r_D", "method": "dynamics reward", "seed": s, "score": np.nan, "auc": a}
        for s, a in enumerate(aucs)
    ]
    for key, c in cells:
        if counted(c):
            rows.append(
                {"arm": key, "method": LABELS[key], "seed": c.seed, "score": score_of(c), "auc": np.nan}
            )
    table = pd.DataFrame(rows, columns=["arm", "method", "seed", "score", "auc"])
    tests = _tests(table, ctx.reps)
    notes = failure_notes([c for _, c in cells])
    short = poi_ci(_scores(table, "morec-mopo"), _scores(table, "mopo"), ctx.reps)
    notes.append(f"Not judged: P(MOREC-MOPO > MOPO h 5) = {short.fmt(3)}.")
    figure = _figure(table, ctx.figures / "morec.png")
    return Outcome(
        tests,
        table,
        figure,
        "Left: r_D's ROC AUC per dynamics seed (held-out dataset vs model transitions), with the 0.9 "
        "threshold. Right: final normalised score per seed (dots) and mean (bar) of each arm.",
        notes,
    )


def _scores(table: pd.DataFrame, arm: str) -> np.ndarray:
    return table.loc[table["arm"] == arm].sort_values("seed")["score"].to_numpy(np.float64)


def _tests(table: pd.DataFrame, reps: int) -> list[Test]:
    auc = table.loc[table["arm"] == "r_D", "auc"].to_numpy(np.float64)
    return [
        Test(
            "r_D separates held-out real from model transitions",
            "ROC AUC (mean over seeds)",
            mean_ci(auc, reps),
            AUC,
            "at_least",
        ),
        Test(
            "MOPO's long rollouts fail",
            "P(MOPO h 5 > MOPO long)",
            poi_ci(_scores(table, "mopo"), _scores(table, "mopo-long"), reps),
            0.5,
            "above",
        ),
        Test(
            "MOREC-MOPO beats MOPO with the same long rollouts",
            "P(MOREC-MOPO > MOPO long)",
            poi_ci(_scores(table, "morec-mopo"), _scores(table, "mopo-long"), reps),
            0.5,
            "above",
        ),
    ]


def _figure(table: pd.DataFrame, path: Path) -> str:
    import matplotlib.pyplot as plt

    from offline_mbrl.report.figures import method_colors

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0), gridspec_kw={"width_ratios": [1, 2]})
    auc = table[table["arm"] == "r_D"]
    left.scatter(auc["seed"], auc["auc"], color="tab:purple")
    left.axhline(AUC, color="k", linestyle="--", linewidth=1, label=f"threshold {AUC}")
    left.set_ylim(min(0.5, float(np.nanmin(auc["auc"])) - 0.05) if len(auc) else 0.5, 1.0)
    left.set_xlabel("dynamics seed")
    left.set_ylabel("ROC AUC of r_D")
    left.legend(fontsize=8)
    arms = [k for k in LABELS if k in set(table["arm"])]
    colors = method_colors([LABELS[k] for k in arms])
    for i, key in enumerate(arms):
        s = _scores(table, key)
        seed_strip(right, i, s, colors[LABELS[key]])
    right.set_xticks(range(len(arms)), [LABELS[k] for k in arms], fontsize=8)
    right.set_ylabel("final normalised score")
    right.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


CLAIM = Claim(
    name="morec",
    paper=(
        'Luo et al., ICLR 2024, "Reward-Consistent Dynamics Models are Strongly Generalizable for Offline '
        'Reinforcement Learning"'
    ),
    claim=(
        "The learned dynamics reward separates held-out real transitions from model transitions (ROC AUC "
        "at least 0.9), and MOREC-MOPO beats MOPO on a dataset where MOPO's long rollouts fail."
    ),
    experiment=(
        "diagnose with MOREC's dynamics reward per dynamics seed; MOPO h 5, MOPO h 50 and MOREC-MOPO h 50; "
        "cpu: inverted-double-pendulum-medium-replay, 10,000 steps, 2x128 networks, 3 seeds"
    ),
    statistic=("mean ROC AUC (at least 0.9); P(MOPO h 5 > MOPO long) > 0.5; P(MOREC-MOPO > MOPO long) > 0.5"),
    run=run,
    cpu_minutes=13.0,  # measured on a fresh clone, 2026-12-06 (docs/claims.md)
)
