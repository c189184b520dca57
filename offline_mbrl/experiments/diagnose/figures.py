"""The figures: each score against the true one-step error, one point per model transition coloured by its
rollout step h, log-log where the values are positive; one PNG per score and an overview of all. Drawn
with the report layer's headless set-up and saved with its `save` (PNG only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from offline_mbrl.experiments.diagnose.rollouts import scores
from offline_mbrl.experiments.diagnose.stats import fmt
from offline_mbrl.report.figures import plt, save


def _scatter(ax, df: pd.DataFrame, name: str, rho: float, n: int, horizon: int, short: bool = False):
    """Penalty (y) against the true error (x), one point per model transition coloured by its step h."""
    from matplotlib.colors import BoundaryNorm

    x, y = df["true_error"].to_numpy(np.float64), df[name].to_numpy(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, h = x[ok], y[ok], df["h"].to_numpy()[ok]
    norm = BoundaryNorm(np.arange(horizon + 1) - 0.5, ncolors=256)  # one colour per step
    points = ax.scatter(x, y, c=h, cmap="viridis", norm=norm, s=5, alpha=0.5, lw=0, rasterized=True)
    for axis, values, label in ((ax.xaxis, x, "true one-step error ‖ŝ′ − s′‖₂"), (ax.yaxis, y, name)):
        log = len(values) > 0 and bool((values > 0).all())  # log only where every value is positive
        (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log" if log else "linear")
        (ax.set_xlabel if axis is ax.xaxis else ax.set_ylabel)(label + ("" if log else " (linear)"))
    ax.set_title(f"{name}: ρ = {fmt(rho)}" if short else f"{name}: Spearman ρ = {fmt(rho)} (n = {n})")
    ax.grid(True, which="major", alpha=0.3)
    return points


def _colorbar(fig, points, horizon: int, **kw) -> None:
    bar = fig.colorbar(points, label="rollout step h", ticks=range(horizon), **kw)
    bar.solids.set_alpha(1.0)


def write_figures(
    df: pd.DataFrame, corr: pd.DataFrame, folder: Path, horizon: int, subtitle: str
) -> list[str]:
    """`<score>.png` for every score and `overview.png` into `folder`; returns their file names."""
    stats = corr.set_index("penalty")
    names = []
    for name in scores(df):
        rho, n = float(stats.loc[name, "spearman_rho"]), int(stats.loc[name, "n"])
        fig, ax = plt.subplots(figsize=(5.5, 4.4))
        points = _scatter(ax, df, name, rho, n, horizon)
        _colorbar(fig, points, horizon, ax=ax)
        fig.suptitle(subtitle, fontsize=8, y=0.995)
        names.append(save(fig, folder, name, dpi=120, svg=False))
    cols = 3 if len(scores(df)) <= 6 else 4
    fig, axes = plt.subplots(2, cols, figsize=(5 * cols, 9), layout="constrained")
    for ax in axes.flat[len(scores(df)) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, scores(df), strict=False):
        rho, n = float(stats.loc[name, "spearman_rho"]), int(stats.loc[name, "n"])
        points = _scatter(ax, df, name, rho, n, horizon, short=True)
    _colorbar(fig, points, horizon, ax=axes, shrink=0.6)
    fig.suptitle(f"Spearman ρ of each score with the true one-step error; {subtitle}")
    return [*names, save(fig, folder, "overview", dpi=100, svg=False)]
