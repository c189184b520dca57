"""Report figures, drawn with rliable's plotters and saved as PNG and SVG (headless: the Agg backend).

No global matplotlib style is set (a plotter calling `plt.style.use` with a style name that matplotlib has
since removed, e.g. 'seaborn', breaks on current matplotlib); rliable 1.2.0's plotters only decorate their
own axes. Colours are fixed per method across all figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # headless rendering, unless a caller already chose a backend
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rliable import plot_utils  # noqa: E402

from offline_mbrl.report.stats import METRICS, FamilySummary, ScopeStats  # noqa: E402

PAIR_SEPARATOR = "\t"  # method labels may hold commas (`mopo[algo.penalty=llv, steps=1000]`)


# A colour-blind-safe qualitative palette of 12 distinct hues: Okabe and Ito's eight (Color Universal
# Design, 2008), ordered so that the first few differ most, then four of Paul Tol's "muted" scheme that
# none of them resembles: every pair is at least 67 apart in RGB (seaborn's "colorblind", used before, has
# its 2nd and 4th colours, orange and vermillion, 50 apart, and a tan 6th). More than 12 methods cycle,
# and their labels tell them apart.
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
    "#332288",  # indigo (Tol)
    "#999933",  # olive (Tol)
    "#882255",  # wine (Tol)
    "#44AA99",  # teal (Tol)
)


def method_colors(methods: list[str]) -> dict[str, str]:
    """Each method's colour, in the order given: distinct hues for up to 12 methods."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def save(fig, folder: Path, name: str, dpi: int = 130, svg: bool = True) -> str:
    """Write `name`.png (and `name`.svg) into `folder` and close the figure; returns the PNG's file name."""
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=dpi, bbox_inches="tight", facecolor="white")
    if svg:
        fig.savefig(folder / f"{name}.svg", bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return f"{name}.png"


def aggregates_figure(stats: ScopeStats, colors: dict) -> plt.Figure:
    """rliable's interval plot: IQM, median, mean, optimality gap with their 95% intervals."""
    methods = stats.scope.methods
    points = {m: np.array([stats.aggregates[m][k].point for k in METRICS]) for m in methods}
    intervals = {
        m: np.array(
            [
                [
                    stats.aggregates[m][k].low if stats.aggregates[m][k].has_ci else points[m][i]
                    for i, k in enumerate(METRICS)
                ],
                [
                    stats.aggregates[m][k].high if stats.aggregates[m][k].has_ci else points[m][i]
                    for i, k in enumerate(METRICS)
                ],
            ]
        )
        for m in methods
    }
    fig, axes = plot_utils.plot_interval_estimates(
        points,
        intervals,
        metric_names=list(METRICS),
        algorithms=methods,
        colors=colors,
        xlabel="Normalised score (1.0 = expert reference)",
        subfigure_width=3.6,
        row_height=max(0.5, 2.2 / len(methods)),
        xlabel_y_coordinate=-0.35 if len(methods) < 3 else -0.15,
    )
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.title.set_fontsize("x-large")
        ax.tick_params(labelsize="large")
        for row, m in enumerate(methods):  # a single run has no interval: mark its point estimate
            if not stats.aggregates[m][METRICS[i]].has_ci:
                ax.plot(points[m][i], row, marker="D", markersize=8, color=colors[m], markeredgecolor="k")
        values = [v for m in methods for v in (points[m][i], *intervals[m][:, i])]
        pad = 0.08 * ((max(values) - min(values)) or 1.0)
        ax.set_xlim(min(values) - pad, max(values) + pad)
    return fig


def profiles_figure(stats: ScopeStats, colors: dict) -> plt.Figure:
    """rliable's performance profiles: fraction of runs above each normalised score tau, 95% bands."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_utils.plot_performance_profiles(
        stats.profiles,
        stats.profile_tau,
        performance_profile_cis=stats.profile_cis,
        colors=colors,
        xlabel=r"Normalised score $\tau$ (1.0 = expert reference)",
        ylabel=r"Fraction of runs with score $> \tau$",
        labelsize="large",
        ticklabelsize="medium",
        ax=ax,
    )
    # Below the axes: method labels of sweep variants are long and would cover the curves.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize="small", frameon=False, ncol=1)
    return fig


def improvement_figure(stats: ScopeStats, colors: dict) -> plt.Figure:
    """rliable's probability-of-improvement plot for every unordered pair of methods."""
    methods = stats.scope.methods
    pairs = [(x, y) for i, x in enumerate(methods) for y in methods[i + 1 :]]
    points = {f"{x}{PAIR_SEPARATOR}{y}": stats.improvement[(x, y)].point for x, y in pairs}
    intervals = {}
    for x, y in pairs:
        p = stats.improvement[(x, y)]
        intervals[f"{x}{PAIR_SEPARATOR}{y}"] = (
            np.array([p.low, p.high]) if p.has_ci else np.array([p.point] * 2)
        )
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.55 * len(pairs)))
    plot_utils.plot_probability_of_improvement(
        points,
        intervals,
        pair_separator=PAIR_SEPARATOR,
        ax=ax,
        colors=[colors[x] for x, _ in pairs],
        xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
        xlabel="P(X > Y)",
        ticklabelsize="medium",
        labelsize="medium",
    )
    ax.set_xlim(-0.02, 1.02)
    ax.axvline(0.5, color="0.5", linestyle=":", linewidth=1)
    for row, (x, y) in enumerate(pairs):  # no interval with a single run: mark the point estimate
        if not stats.improvement[(x, y)].has_ci:
            ax.plot(
                points[f"{x}{PAIR_SEPARATOR}{y}"],
                row,
                "D",
                markersize=8,
                color=colors[x],
                markeredgecolor="k",
            )
    return fig


def family_figure(summary: FamilySummary, colors: dict) -> plt.Figure:
    """Each method's mean on every member (dots), its family-weighted mean (solid) and nominal (dashed)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    k = np.arange(summary.members)
    for m, means in summary.member_means.items():
        ax.plot(k, means, "o", color=colors[m], label=m, markersize=6)
        ax.axhline(summary.family_mean[m].point, color=colors[m], linewidth=1.6)
        ax.axhline(summary.nominal[m].point, color=colors[m], linewidth=1.2, linestyle="--")
    ax.set_xticks(k, [f"m{i}" for i in k])
    ax.set_xlabel(f"member of {summary.family}")
    ax.set_ylabel(summary.unit)
    ax.set_title(f"{summary.dataset}: solid = family-weighted mean, dashed = nominal MDP", fontsize="medium")
    ax.spines[["right", "top"]].set_visible(False)
    ax.grid(True, alpha=0.2)
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
