"""The edge-of-reach experiment (Sims et al., NeurIPS 2024, "The Edge-of-Reach Problem in Offline
Model-Based Reinforcement Learning"), as one command: `offline-mbrl experiment edge-of-reach`.

The claim: offline model-based methods do not fail because the model is wrong. Give MBPO and MOPO the
true simulator instead of the learned ensemble (`dynamics.kind=oracle`, offline_mbrl/oracle.py): the
model error is gone and MOPO's uncertainty penalty is exactly 0, so MOPO becomes MBPO, and both still
collapse, their Q-values blowing up. The cause is the states reached only at the last step of the
k-step rollouts ("edge of reach"): they are bootstrapped from but never updated. RAVL, whose
pessimism sits in an EDAC critic ensemble instead of the reward, does not collapse.

Cells: {mbpo, mopo, ravl} x {learned ensemble, true simulator} x datasets x seeds, each an ordinary run
under results/ (finished runs are reused, interrupted ones resume). The report (rliable statistics over
the six methods) is preceded by a table of final scores and Q-values and a figure of the Q-value curves
(`q_mean`, the batch mean of the critics' Q, from each run's metrics.jsonl), where the collapse shows as
Q blow-up.

Budgets: `smoke` (a pipeline check, 1 seed, about a minute per cell), `cpu` (10,000 gradient steps,
5,000 rollouts per 1,000 steps, the dynamics fit capped at 10 epochs of 400 steps, RAVL with 5 critics of
2x128: what a 2-core CPU affords in about an hour for one dataset and 3 seeds; far from the paper's 3M
steps, so a trend at most), `paper` (each algorithm's defaults and paper presets: GPU-days).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.ranges import MAX_SEEDS, check_option
from offline_mbrl.experiments.cells import BUDGETS as CELL_BUDGETS
from offline_mbrl.experiments.cells import (
    Budget,
    CellRun,
    cell_config,
    known_budget,
    run_cells,
    split_overrides,
)
from offline_mbrl.report.render import Figure, Heading, Table, Text

ALGORITHMS = ("mbpo", "mopo", "ravl")
DYNAMICS = ("ensemble", "oracle")
_CPU_RAVL = ("algo.sac.critics=5", "algo.sac.actor_hidden=128,128", "algo.sac.critic_hidden=128,128")

BUDGETS: dict[str, tuple[Budget, dict[str, tuple[str, ...]]]] = {
    "smoke": (
        Budget(
            "smoke",
            "a pipeline check: 1,000 steps, 1,000 rollouts per 250 steps, 2-epoch dynamics; its numbers say "
            "nothing",
            (
                "steps=1000",
                "eval_every=500",
                "log_every=100",
                "checkpoint_every=500",
                "eval_episodes=2",
                "final_eval_episodes=5",
                "dynamics.max_epochs=2",
                "dynamics.steps_per_epoch=50",
                "algo.rollout_batch=1000",
                "algo.rollout_every=250",
            ),
            seeds=1,
            scaled=False,
            measured="edge-of-reach-smoke",
        ),
        {"ravl": _CPU_RAVL},
    ),
    "cpu": (
        Budget(
            "cpu",
            "10,000 gradient steps, 5,000 rollouts per 1,000 steps, dynamics capped at 10 epochs of 400 "
            "steps, RAVL with 5 critics of 2x128 (the paper: 3M steps, 50,000 rollouts, 10 critics of 3x256)",
            (
                "steps=10000",
                "eval_every=2000",
                "log_every=250",
                "checkpoint_every=2000",
                "eval_episodes=5",
                "final_eval_episodes=10",
                "dynamics.max_epochs=10",
                "dynamics.steps_per_epoch=400",
                "algo.rollout_batch=5000",
            ),
            seeds=3,
            scaled=False,
            measured="edge-of-reach-cpu",
        ),
        {"ravl": _CPU_RAVL},
    ),
    "paper": (CELL_BUDGETS["paper"], {}),
}


@dataclass(frozen=True)
class Method:
    algorithm: str
    dynamics: str  # "ensemble" or "oracle"

    @property
    def label(self) -> str:
        return f"{self.algorithm} ({'true simulator' if self.dynamics == 'oracle' else 'learned model'})"

    def overrides(self) -> list[str]:
        return ["dynamics.kind=oracle"] if self.dynamics == "oracle" else []


METHODS = [Method(a, d) for a in ALGORITHMS for d in DYNAMICS]


@dataclass
class EdgeOfReach:
    cells: list[tuple[Method, CellRun]]
    summary: pd.DataFrame  # one row per method and dataset
    folder: Path
    report: object  # report.Report, or None when no cell finished


def edge_of_reach(
    datasets: Sequence[str] = ("hopper-medium-replay",),
    seeds: int | None = None,
    budget: str = "cpu",
    steps: int | None = None,
    overrides: Sequence[str] = (),
    results_root: Path = Path("results"),
    out: Path | None = None,
    device: str = "cpu",
    reps: int = 50_000,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> EdgeOfReach:
    """Run the missing cells, then write the report (scores, Q-values, Q curves, rliable statistics)."""
    known_budget(budget, BUDGETS)
    if not datasets:
        raise UserError("the edge-of-reach experiment needs at least one --dataset")
    b, per_budget = BUDGETS[budget]
    n_seeds = seeds if seeds is not None else (b.seeds or 3)
    check_option("--seeds", n_seeds, 1, MAX_SEEDS)
    per_algo = split_overrides(overrides, list(ALGORITHMS))
    cells = [(m, CellRun(m.algorithm, d, d, s)) for s in range(n_seeds) for d in datasets for m in METHODS]
    # A bad --set or dataset name is the user's to fix before anything runs: no try here.
    configs: dict[int, TrainConfig | UserError] = {
        i: cell_config(
            m.algorithm,
            c.dataset,
            c.seed,
            b,
            [*per_budget.get(m.algorithm, ()), *m.overrides(), *per_algo[m.algorithm]],
            device,
            steps,
        )
        for i, (m, c) in enumerate(cells)
    }
    log(
        f"edge-of-reach at budget {b.name}: {len(METHODS)} methods x {len(datasets)} dataset(s) x "
        f"{n_seeds} seed(s)"
    )
    run_cells([c for _, c in cells], configs, b, Path(results_root), progress, log)
    summary = summarise(cells)
    folder = Path(out) if out else Path("reports") / f"edge-of-reach-{b.name}"
    done = [cast(Path, c.run_dir) for _, c in cells if c.final is not None]
    if not done:
        failed = [c for _, c in cells if c.error]
        raise UserError(f"no cell finished; first failure: {failed[0].error if failed else 'none ran'}")
    from offline_mbrl.report.build import make_report

    preface = _preface(b, n_seeds, cells, summary)
    report = make_report(
        done,
        folder,
        title="The edge-of-reach experiment: learned model vs true simulator",
        intersect=any(c.final is None for _, c in cells),
        reps=reps,
        progress=progress,
        preface=preface,
        figures={"q_curves": lambda: q_curves_figure(cells)},
    )
    tmp = folder / ".edge_of_reach.csv.tmp"
    summary.to_csv(tmp, index=False)
    tmp.replace(folder / "edge_of_reach.csv")
    return EdgeOfReach(cells, summary, folder, report)


def _curve(run_dir: Path) -> pd.DataFrame:
    rows = pd.read_json(run_dir / "metrics.jsonl", lines=True)
    if "phase" in rows:
        rows = rows[rows["phase"].isna()]
    return rows[["step", "q_mean"]].dropna()


def summarise(cells: list[tuple[Method, CellRun]]) -> pd.DataFrame:
    """Per method and dataset: final scores over seeds, final and peak Q, the share of seeds whose Q
    exceeded 10x the largest discounted return the data allow (|r|max / (1 - γ))."""
    out = []
    for m in METHODS:
        for dataset in dict.fromkeys(c.dataset for _, c in cells):
            mine = [c for mm, c in cells if mm == m and c.dataset == dataset and c.final is not None]
            if not mine:
                continue
            scores = [c.final["normalized_score"] for c in mine if c.final is not None]
            curves = [_curve(cast(Path, c.run_dir)) for c in mine]
            final_q = [float(cv["q_mean"].iloc[-1]) for cv in curves if len(cv)]
            peak_q = [float(cv["q_mean"].abs().max()) for cv in curves if len(cv)]
            numeric = [s for s in scores if s is not None]
            out.append(
                {
                    "method": m.label,
                    "algorithm": m.algorithm,
                    "dynamics": m.dynamics,
                    "dataset": dataset,
                    "seeds": len(mine),
                    "score_mean": float(np.mean(numeric)) if numeric else None,
                    "score_std": float(np.std(numeric)) if numeric else None,
                    "scores": ", ".join(f"{s:.1f}" for s in numeric),
                    "final_q_mean": float(np.mean(final_q)) if final_q else None,
                    "peak_abs_q": float(np.max(peak_q)) if peak_q else None,
                }
            )
    return pd.DataFrame(out)


def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.2e}"


def _preface(b: Budget, n_seeds: int, cells: list[tuple[Method, CellRun]], summary: pd.DataFrame) -> list:
    failed = [(m, c) for m, c in cells if c.error]
    blocks: list = [
        Text(
            "MBPO, MOPO and RAVL trained with the learned dynamics ensemble and with the true simulator "
            "(`dynamics.kind=oracle`: the real MuJoCo physics set to each state; no model error, and MOPO's "
            "penalty is exactly 0). Sims et al. (NeurIPS 2024) report that MBPO and MOPO still collapse on "
            "the true dynamics, with exploding Q-values, while RAVL does not."
        ),
        Text(f"Budget `{b.name}`: {b.description}. {n_seeds} seed(s) per cell.", "note"),
        Heading("Final scores and Q-values"),
        Table(
            [
                "dataset",
                "method",
                "normalised score (mean ± std)",
                "per seed",
                "final Q (mean over seeds)",
                "peak |Q|",
            ],
            [
                [
                    r["dataset"],
                    r["method"],
                    f"{_fmt(r['score_mean'])} ± {_fmt(r['score_std'])}",
                    r["scores"],
                    _fmt(r["final_q_mean"]),
                    _fmt(r["peak_abs_q"]),
                ]
                for r in summary.to_dict("records")
            ],
        ),
        Figure(
            "figures/q_curves.png",
            "Q-value curves: the batch mean of the critics' Q (`q_mean`) over training, thin lines per seed, "
            "thick the mean; symmetric-log axis. A collapse shows as Q growing far beyond the returns.",
        ),
    ]
    if failed:
        blocks.append(
            Text(
                f"{len(failed)} cell(s) failed and are left out: "
                + "; ".join(f"{m.label} on {c.dataset} seed {c.seed}: {c.error}" for m, c in failed),
                "note",
            )
        )
    return blocks


def q_curves_figure(cells: list[tuple[Method, CellRun]]):
    import matplotlib.pyplot as plt

    from offline_mbrl.report.figures import method_colors

    datasets = list(dict.fromkeys(c.dataset for _, c in cells))
    colors = method_colors(list(ALGORITHMS))  # colour: the algorithm; line: solid learned, dashed true
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for m in METHODS:
            runs = [c for mm, c in cells if mm == m and c.dataset == dataset and c.final is not None]
            curves = [_curve(cast(Path, c.run_dir)) for c in runs]
            style = "-" if m.dynamics == "ensemble" else "--"
            for cv in curves:
                ax.plot(cv["step"], cv["q_mean"], style, color=colors[m.algorithm], alpha=0.25, linewidth=0.8)
            if curves:
                joined = pd.concat(curves).groupby("step")["q_mean"].mean()
                ax.plot(
                    joined.index, joined.values, style, color=colors[m.algorithm], linewidth=2, label=m.label
                )
        ax.set_yscale("symlog", linthresh=10.0)
        ax.set_xlabel("gradient step")
        ax.set_ylabel("mean Q on the training batch")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
