"""The statistics: Spearman (and Pearson) correlation of each score with the true one-step error, over all
model transitions and within each rollout step h; how well MOREC's dynamics reward r_D separates dataset
from model transitions and good model transitions from bad ones."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from offline_mbrl.algorithms.morec.reward import DynamicsReward
from offline_mbrl.algorithms.morec.reward_fit import auc
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.experiments.diagnose.rollouts import REWARD, scores


def fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def correlate(x: np.ndarray, y: np.ndarray) -> tuple[int, float, float, float, float]:
    """`(n, Spearman ρ, its p, Pearson r, its p)` over the rows where both are finite; NaN where a
    correlation is undefined (under 3 rows, or a constant column)."""
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return n, math.nan, math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp, pe = stats.spearmanr(x[ok], y[ok]), stats.pearsonr(x[ok], y[ok])
    return n, float(sp.statistic), float(sp.pvalue), float(pe.statistic), float(pe.pvalue)


def correlations(df: pd.DataFrame) -> pd.DataFrame:
    """Per penalty: Spearman ρ (and p) and Pearson r (and p) with `true_error`, n, and Spearman ρ with
    `mean_error` (the error without the sampling noise)."""
    rows = []
    for name in scores(df):
        x = df[name].to_numpy(np.float64)
        n, rho, p, r, pr = correlate(x, df["true_error"].to_numpy(np.float64))
        rho_mean = correlate(x, df["mean_error"].to_numpy(np.float64))[1]
        rows.append(
            {
                "penalty": name,
                "spearman_rho": rho,
                "spearman_p": p,
                "pearson_r": r,
                "pearson_p": pr,
                "n": n,
                "spearman_rho_mean_error": rho_mean,
            }
        )
    return pd.DataFrame(rows)


def correlations_by_h(df: pd.DataFrame) -> pd.DataFrame:
    """Spearman ρ of each penalty with `true_error` within each rollout step h (long format)."""
    rows = []
    for h, part in df.groupby("h", sort=True):
        for name in scores(df):
            n, rho, p, _, _ = correlate(
                part[name].to_numpy(np.float64), part["true_error"].to_numpy(np.float64)
            )
            rows.append({"penalty": name, "h": int(h), "spearman_rho": rho, "spearman_p": p, "n": n})
    return pd.DataFrame(rows)


def reward_stats(
    df: pd.DataFrame,
    reward: DynamicsReward,
    dataset: OfflineDataset,
    report: dict[str, Any],
    key: str | None,
    stride: int,
) -> dict[str, Any]:
    """Does r_D tell true from model transitions, and good model transitions from bad ones?"""
    data = dataset.data
    hold = torch.as_tensor(report["holdout_idx"], device=data.obs.device)
    r_data = reward(data.obs[hold], data.act[hold], data.next_obs[hold]).cpu().double().numpy()
    r_model = df[REWARD].to_numpy(np.float64)
    err = df["true_error"].to_numpy(np.float64)
    ok = np.isfinite(err)
    below = err[ok] <= np.median(err[ok]) if ok.any() else np.zeros(0, bool)
    n, rho, p, _, _ = correlate(r_model, err)
    return {
        "key": key,
        "stride": stride,
        "snapshots": reward.members,
        "n_holdout": len(r_data),
        "n_model": len(r_model),
        "auc_data_vs_model": auc(r_data, r_model),
        "auc_low_vs_high_error": auc(r_model[ok][below], r_model[ok][~below]),
        "spearman_true_error": rho,
        "spearman_p": p,
        "mean_data": float(r_data.mean()),
        "mean_model": float(np.nanmean(r_model)),
        "fit_report": {k: v for k, v in report.items() if k not in ("holdout_idx", "loss_history")},
    }
