"""Model-error diagnostics after Lu et al. (ICLR 2022, "Revisiting Design Choices in Offline Model-Based
RL"): how closely does each uncertainty penalty track the learned model's true one-step error?

`diagnose(dataset, ...)` loads the cached learned ensemble of dynamics seed S (fitting it on a miss, with
the `dynamics.KEY=V` overrides `dynamics fit` takes), takes a policy (a finished run's, or a behaviour-
cloned one fitted on the spot), rolls it out in the ensemble from N dataset states drawn uniformly over
the transitions (horizon H, the dataset's termination function, one random elite sampled per step as in
every algorithm's rollouts) and, for every valid model transition (s, a, ŝ', r̂):

    true_error    ‖ŝ' − s'‖₂, ŝ' the sampled next state the rollout used, s' the true simulator's
                  (`offline_mbrl.models.oracle.simulator`) from the same (s, a)
    mean_error    ‖mean of the elites' means − s'‖₂ (the error without the sampling noise)
    reward_error  |r̂ − r|
    one column per penalty of `learning.penalties.PENALTIES` (members "elites"), evaluated by a step
    hook on the same `Prediction` and sampled transition the rollout used, exactly as MOPO's penalty hook

then the Spearman (and Pearson) correlation of each penalty with `true_error`. The oracle's own check
replays N random dataset transitions through the simulator: `oracle check: ...`, one line.

Output folder (default `reports/diagnose/<dataset>-seed<S>/`), written in a staging folder and renamed
into place, so it is never half-written; a folder is only ever replaced if it carries the marker file
`.offline-mbrl-diagnose` (written by this module):

    transitions.csv, transitions.parquet   one row per model transition (the parquet's schema metadata
                                           holds meta.json under "offline_mbrl.diagnose")
    correlations.csv                       per penalty: Spearman ρ and p, Pearson r and p, n
    correlations_by_h.csv                  per penalty and rollout step h: Spearman ρ, p, n
    figures/<penalty>.png, overview.png    penalty vs true error, log-log where the values are positive
    summary.md, meta.json

Actions are deterministic: a run's policy acts as in its evaluation (the mean action), the BC policy is
a deterministic MLP (`algorithms.bc.BCPolicy`). Limits: a state with a velocity clipped at ±10 in the
observation (hopper, walker2d, inverted-double-pendulum) is simulated at the clipped value, so the
oracle's next state from it is not the recorded one (the oracle check counts those); a state the
simulator rejects (non-finite or beyond MuJoCo's bound, from a diverging model) gets a NaN true error
and is left out of the correlations (`meta.json`: `simulator_rejected`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from offline_mbrl.algorithms.bc import BCConfig, BCPolicy
from offline_mbrl.algorithms.morec.reward import DynamicsReward, DynamicsRewardConfig, auc, load_or_fit_reward
from offline_mbrl.config import dynamics_config_from_overrides
from offline_mbrl.core.cache import replace_dir, temp_dir_beside
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import code_version
from offline_mbrl.data.dataset import OfflineDataset, load_dataset
from offline_mbrl.learning.evaluation import Policy
from offline_mbrl.learning.penalties import PENALTIES, Members, uncertainty
from offline_mbrl.learning.rollout import Step, rollout, with_extras
from offline_mbrl.models.dynamics import DynamicsEnsemble, load_or_fit
from offline_mbrl.models.oracle import (
    VELOCITY_CLIP,
    InvertedDoublePendulumSimulator,
    LocomotionSimulator,
    Simulator,
    simulator,
)
from offline_mbrl.models.termination import termination_fn

MARKER = ".offline-mbrl-diagnose"  # marks a folder this module wrote: the only kind it replaces
PENALTY_MEMBERS: Members = "elites"
CHUNK = 500  # rollout start states per batch (progress granularity; bounds the simulator's batch)
BC_BATCH = 256
PARQUET_META_KEY = b"offline_mbrl.diagnose"


@dataclass(frozen=True)
class DiagnoseResult:
    out: Path
    transitions: pd.DataFrame
    correlations: pd.DataFrame
    meta: dict[str, Any]

    @property
    def oracle_line(self) -> str:
        return self.meta["oracle_check"]["line"]


def default_out(dataset: str, seed: int) -> Path:
    return Path("reports") / "diagnose" / f"{dataset.strip().replace('/', '_')}-seed{seed}"


def check_out(out: Path) -> None:
    """An --out that exists must be a folder this module wrote (it carries the marker file)."""
    if out.exists() and not (out.is_dir() and (out / MARKER).is_file()):
        raise UserError(
            f"--out {out} exists and is not a diagnose output (no {MARKER} marker in it); "
            "choose another --out or remove it"
        )


# ---- the policy --------------------------------------------------------------------------------------


def fit_bc_policy(
    dataset: OfflineDataset, steps: int, seed: int, progress: bool = True
) -> tuple[BCPolicy, float]:
    """`algorithms.bc`'s deterministic tanh-MLP policy, fitted with MSE on the dataset's (obs, act) for
    `steps` Adam steps; returns it and the mean loss of the last 100 steps. The global RNG is untouched."""
    data = dataset.data
    device = data.obs.device
    cfg = BCConfig()
    obs_mean, obs_std = data.obs.mean(0), data.obs.std(0) + 1e-3  # as algorithms.bc.train
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BCPolicy(dataset.spec, cfg, obs_mean, obs_std).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator(device=device).manual_seed(seed)
    window: list[torch.Tensor] = []
    last = math.nan
    columns = (TextColumn("BC policy"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("bc", total=steps, info="")
        for step in range(steps):
            batch = dataset.sample(BC_BATCH, generator)
            loss = (model(batch.obs) - batch.act).square().mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            window.append(loss.detach())
            if len(window) == 100 or step == steps - 1:
                last = torch.stack(window).mean().item()  # one host sync per 100 steps
                window.clear()
                bar.update(task, completed=step + 1, info=f"MSE {last:.4g}")
    model.eval()
    return model, last


class _RolloutPolicy:
    """A torch `obs -> act` callable for `rollout` over either policy; a run's `Policy` (numpy) also gets
    the previous model reward, as evaluation gives it (return-conditioned policies use it)."""

    def __init__(self, bc: BCPolicy | None, run_policy: Policy | None):
        self.bc, self.run_policy = bc, run_policy
        self.last_rew: np.ndarray | None = None

    def reset(self, n: int) -> None:
        self.last_rew = None
        if self.run_policy is not None:
            self.run_policy.reset(n)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self.bc is not None:
            return self.bc(obs)
        assert self.run_policy is not None
        act = self.run_policy.act(obs.cpu().numpy(), self.last_rew)
        return torch.as_tensor(act, dtype=torch.float32, device=obs.device)

    def observe(self, step: Step) -> None:
        if self.run_policy is not None:
            self.last_rew = step.rew.cpu().numpy()


REWARD = "dynamics_reward"  # MOREC's r_D column (with --reward): higher is more plausible


def scores(df: pd.DataFrame) -> list[str]:
    """The score columns to correlate with the true error: every penalty, and r_D when it was computed."""
    return [*PENALTIES, *([REWARD] if REWARD in df.columns else [])]


# ---- model transitions -------------------------------------------------------------------------------


def penalty_hook(step: Step) -> Step:
    """Every penalty of the family on the step's own prediction and sampled transition (as MOPO's hook
    builds the sample), plus the rollout step h and the elites' mean next state."""
    sample = step.next_obs.new_empty(step.next_obs.shape[0], step.next_obs.shape[1] + 1)
    sample[:, :-1], sample[:, -1] = step.next_obs, step.rew
    values = {
        f"penalty/{name}": uncertainty(name, step.pred, sample, step.member, PENALTY_MEMBERS)
        for name in PENALTIES
    }
    elite_mean = step.pred.mean[step.pred.elites].mean(0)[:, :-1]  # (B, obs_dim)
    h = torch.full_like(step.rew, float(step.h))
    return with_extras(step, **values, h=h, member=step.member.float(), **_columns("mean_next", elite_mean))


def _columns(prefix: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{i}": x[:, i] for i in range(x.shape[1])}  # extras are (B,) each


def model_transitions(
    dynamics: DynamicsEnsemble,
    policy: _RolloutPolicy,
    dataset: OfflineDataset,
    sim: Simulator,
    starts: int,
    horizon: int,
    seed: int,
    progress: bool = True,
    reward: DynamicsReward | None = None,
) -> tuple[pd.DataFrame, int]:
    """Roll `policy` out in `dynamics` from `starts` dataset states; one row per valid model transition
    with its true errors and every penalty (and MOREC's r_D with `reward`). Also returns how many the
    simulator rejected (NaN error)."""
    data = dataset.data
    device = data.obs.device
    terminated = termination_fn(dataset.spec.env, dataset.spec.gym_id)
    generator = torch.Generator(device=device).manual_seed(seed)
    start_idx = torch.randint(len(dataset), (starts,), device=device, generator=generator)
    obs_dim = dataset.spec.obs_dim

    def hook(step: Step) -> Step:
        step = penalty_hook(step)
        if reward is not None:
            step = with_extras(step, **{REWARD: reward(step.obs, step.act, step.next_obs)})
        policy.observe(step)
        return step

    frames, rejected = [], 0
    columns = (TextColumn("rollouts"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("rollouts", total=starts)
        for lo in range(0, starts, CHUNK):
            idx = start_idx[lo : lo + CHUNK]
            policy.reset(len(idx))
            r = rollout(dynamics, policy, data.obs[idx], horizon, terminated, hook, generator)
            mask = r.alive  # (H, B): the valid transitions
            rollout_id = (torch.arange(len(idx), device=device) + lo).expand_as(mask)[mask]
            obs, act = r.obs[mask].double().cpu().numpy(), r.act[mask].double().cpu().numpy()
            next_model = r.next_obs[mask].double().cpu().numpy()
            rew_model = r.rew[mask].double().cpu().numpy()
            ex = {k: v[mask].double().cpu().numpy() for k, v in r.extras.items()}
            mean_next = np.stack([ex[f"mean_next/{i}"] for i in range(obs_dim)], axis=1)
            with np.errstate(invalid="ignore", over="ignore"):
                next_true, rew_true = sim.step(obs, act)
                bad = ~np.isfinite(next_true).all(axis=1) | ~np.isfinite(rew_true)
                rejected += int(bad.sum())
                frame = {
                    "h": ex["h"].astype(np.int64),
                    "rollout": rollout_id.cpu().numpy().astype(np.int64),
                    "start_index": idx.cpu().numpy()[rollout_id.cpu().numpy() - lo].astype(np.int64),
                    "member": ex["member"].astype(np.int64),
                    "true_error": np.linalg.norm(next_model - next_true, axis=1),
                    "mean_error": np.linalg.norm(mean_next - next_true, axis=1),
                    "reward_error": np.abs(rew_model - rew_true),
                    **{name: ex[f"penalty/{name}"] for name in PENALTIES},
                    **({REWARD: ex[REWARD]} if reward is not None else {}),
                }
            frames.append(pd.DataFrame(frame))
            bar.advance(task, len(idx))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["rollout", "h"], ignore_index=True), rejected


# ---- statistics ----------------------------------------------------------------------------------------


def _correlate(x: np.ndarray, y: np.ndarray) -> tuple[int, float, float, float, float]:
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
        n, rho, p, r, pr = _correlate(x, df["true_error"].to_numpy(np.float64))
        rho_mean = _correlate(x, df["mean_error"].to_numpy(np.float64))[1]
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
            n, rho, p, _, _ = _correlate(
                part[name].to_numpy(np.float64), part["true_error"].to_numpy(np.float64)
            )
            rows.append({"penalty": name, "h": int(h), "spearman_rho": rho, "spearman_p": p, "n": n})
    return pd.DataFrame(rows)


def _velocities(sim: Simulator) -> slice | None:
    """Where the observation holds the velocities the env clips at ±10 (None: it clips none)."""
    if isinstance(sim, LocomotionSimulator):  # hopper, walker2d: obs = [qpos[1:], qvel]; halfcheetah: no clip
        return slice(sim.nq - 1, None) if sim.task.clip_velocity else None
    if isinstance(sim, InvertedDoublePendulumSimulator):  # [x, sin, cos, qvel, constraint (not state)]
        start = 1 + 2 * (sim.nq - 1)
        return slice(start, start + sim.nv)
    return None  # pendulum


def oracle_check(dataset: OfflineDataset, sim: Simulator, n: int, seed: int) -> dict[str, Any]:
    """Replay `n` random dataset transitions (all of them if fewer) through the simulator."""
    n = min(n, len(dataset))
    idx = np.sort(np.random.default_rng(seed).choice(len(dataset), n, replace=False))
    data = dataset.data
    as64 = [t.detach().cpu().numpy()[idx].astype(np.float64) for t in (data.obs, data.act, data.next_obs)]
    obs, act, next_obs = as64
    rew = data.rew.detach().cpu().numpy()[idx].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        next_true, rew_true = sim.step(obs, act)
    ds_err = np.abs(next_true - next_obs).max(axis=1)
    r_err = np.abs(rew_true - rew)
    velocities = _velocities(sim)
    clipped: np.ndarray = np.zeros(n, dtype=bool)
    if velocities is not None:  # a recorded velocity at the clip: the true state is lost
        clipped = np.asarray((np.abs(obs[:, velocities]) >= VELOCITY_CLIP).any(axis=1))
    rest = ~clipped

    def top(x: np.ndarray) -> float:
        return float(np.nanmax(x)) if len(x) else math.nan

    check: dict[str, Any] = {
        "transitions": n,
        "max_abs_next_obs_error": top(ds_err),
        "max_abs_reward_error": top(r_err),
        "clipped_velocity": int(clipped.sum()),
        "unclipped": int(rest.sum()),
        "max_abs_next_obs_error_unclipped": top(ds_err[rest]),
        "max_abs_reward_error_unclipped": top(r_err[rest]),
        "simulator": getattr(sim, "name", type(sim).__name__),
    }
    line = (
        f"oracle check: max |Δs'| {check['max_abs_next_obs_error']:.1e}, max |Δr| "
        f"{check['max_abs_reward_error']:.1e} over {n} dataset transitions of {dataset.name}"
    )
    if velocities is None:
        line += f" ({check['simulator']} observations are not clipped)"
    elif check["clipped_velocity"] == 0:
        line += "; none has a velocity clipped at ±10 in s"
    else:
        line += (
            f"; {check['clipped_velocity']} have a velocity clipped at ±10 in s (not recoverable), over "
            f"the other {check['unclipped']}: max |Δs'| {check['max_abs_next_obs_error_unclipped']:.1e}, "
            f"max |Δr| {check['max_abs_reward_error_unclipped']:.1e}"
        )
    check["line"] = line
    return check


# ---- figures and files -----------------------------------------------------------------------------------


def _plt():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # headless, unless a caller already chose a backend
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    ax.set_title(f"{name}: ρ = {_fmt(rho)}" if short else f"{name}: Spearman ρ = {_fmt(rho)} (n = {n})")
    ax.grid(True, which="major", alpha=0.3)
    return points


def _colorbar(fig, points, horizon: int, **kw) -> None:
    bar = fig.colorbar(points, label="rollout step h", ticks=range(horizon), **kw)
    bar.solids.set_alpha(1.0)


def write_figures(
    df: pd.DataFrame, corr: pd.DataFrame, folder: Path, horizon: int, subtitle: str
) -> list[str]:
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    stats = corr.set_index("penalty")
    names = []
    for name in scores(df):
        rho, n = float(stats.loc[name, "spearman_rho"]), int(stats.loc[name, "n"])
        fig, ax = plt.subplots(figsize=(5.5, 4.4))
        points = _scatter(ax, df, name, rho, n, horizon)
        _colorbar(fig, points, horizon, ax=ax)
        fig.suptitle(subtitle, fontsize=8, y=0.995)
        fig.savefig(folder / f"{name}.png", dpi=120, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        names.append(f"{name}.png")
    cols = 3 if len(scores(df)) <= 6 else 4
    fig, axes = plt.subplots(2, cols, figsize=(5 * cols, 9), layout="constrained")
    for ax in axes.flat[len(scores(df)) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, scores(df), strict=False):
        rho, n = float(stats.loc[name, "spearman_rho"]), int(stats.loc[name, "n"])
        points = _scatter(ax, df, name, rho, n, horizon, short=True)
    _colorbar(fig, points, horizon, ax=axes, shrink=0.6)
    fig.suptitle(f"Spearman ρ of each score with the true one-step error; {subtitle}")
    fig.savefig(folder / "overview.png", dpi=100, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return [*names, "overview.png"]


def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def summary_markdown(corr: pd.DataFrame, by_h: pd.DataFrame, meta: dict[str, Any]) -> str:
    lines = [
        f"# Model-error diagnostics: {meta['dataset']} (dynamics seed {meta['seed']})",
        "",
        "How closely each uncertainty penalty tracks the learned ensemble's true one-step error (after Lu "
        "et al., ICLR 2022).",
        "",
        f"- dataset: {meta['dataset']} ({meta['dataset_id']}, fingerprint {meta['fingerprint']})",
        f"- dynamics: cached ensemble {meta['dynamics_key']} ({meta['dynamics_summary']})",
        f"- policy: {meta['policy']['description']}",
        f"- rollouts: N = {meta['starts']} dataset start states, horizon H = {meta['horizon']}, "
        f"{meta['n_transitions']} valid model transitions ({meta['simulator_rejected']} rejected by the "
        "simulator, left out of the correlations)",
        f"- penalties over the {PENALTY_MEMBERS}, on the rollout's own prediction and sampled transition",
        "- true_error: ‖ŝ′ − s′‖₂, ŝ′ the sampled next state the rollout used, s′ the true simulator's from "
        "the same (s, a); mean_error: the same for the elites' mean prediction",
        f"- {meta['oracle_check']['line']}",
        "",
        "| penalty | Spearman ρ | p | Pearson r | p | n | Spearman ρ vs mean_error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in corr.itertuples(index=False):
        lines.append(
            f"| {row.penalty} | {_fmt(row.spearman_rho)} | {_fmt(row.spearman_p, '.2g')} | "
            f"{_fmt(row.pearson_r)} | {_fmt(row.pearson_p, '.2g')} | {row.n} | "
            f"{_fmt(row.spearman_rho_mean_error)} |"
        )
    steps = sorted(by_h["h"].unique())
    wide = by_h.pivot(index="penalty", columns="h", values="spearman_rho")
    counts = by_h.groupby("h")["n"].max()
    lines += [
        "",
        "Spearman ρ within each rollout step h (n per step: "
        + ", ".join(f"h={h}: {counts[h]}" for h in steps)
        + "):",
        "",
        "| penalty | " + " | ".join(f"h={h}" for h in steps) + " |",
        "| --- | " + " | ".join("---:" for _ in steps) + " |",
    ]
    names = list(corr["penalty"])
    lines += [f"| {name} | " + " | ".join(_fmt(wide.loc[name, h]) for h in steps) + " |" for name in names]
    if "reward" in meta:
        rw = meta["reward"]
        lines += [
            "",
            f"MOREC's dynamics reward r_D (cached {rw['key']}, every {rw['stride']}th snapshot, "
            f"{rw['snapshots']} averaged; higher = more plausible, so a useful r_D correlates negatively "
            "with the error):",
            "",
            f"- ROC AUC, held-out dataset transitions ({rw['n_holdout']}) vs these model transitions "
            f"({rw['n_model']}): **{_fmt(rw['auc_data_vs_model'])}** (0.5 = chance)",
            f"- ROC AUC, model transitions below vs above the median true error: "
            f"**{_fmt(rw['auc_low_vs_high_error'])}**",
            f"- Spearman ρ of r_D with the true error: **{_fmt(rw['spearman_true_error'])}** "
            f"(p {_fmt(rw['spearman_p'], '.2g')})",
            f"- mean r_D: held-out data {_fmt(rw['mean_data'])}, model {_fmt(rw['mean_model'])}",
        ]
    lines += ["", "![all scores](figures/overview.png)", ""]
    lines += [f"- [{name}](figures/{name}.png)" for name in names]
    lines += ["", f"Written {meta['created']} by offline-mbrl diagnose (code {meta['code_version']}).", ""]
    return "\n".join(lines)


def write_outputs(
    out: Path, df: pd.DataFrame, corr: pd.DataFrame, by_h: pd.DataFrame, meta: dict[str, Any], subtitle: str
) -> None:
    """Everything into a staging folder beside `out`, then one rename (replacing a previous output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    staging = temp_dir_beside(out.parent)
    staging.chmod(0o755)  # mkdtemp's 0700 would become the published folder's mode
    try:
        df.to_csv(staging / "transitions.csv", index=False)
        table = pa.Table.from_pandas(df, preserve_index=False)
        schema_meta = {**(table.schema.metadata or {}), PARQUET_META_KEY: json.dumps(meta).encode()}
        pq.write_table(table.replace_schema_metadata(schema_meta), staging / "transitions.parquet")
        corr.to_csv(staging / "correlations.csv", index=False)
        by_h.to_csv(staging / "correlations_by_h.csv", index=False)
        meta["figures"] = write_figures(df, corr, staging / "figures", meta["horizon"], subtitle)
        (staging / "summary.md").write_text(summary_markdown(corr, by_h, meta))
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        (staging / MARKER).write_text("written by offline-mbrl diagnose; it may replace this folder\n")
        check_out(out)  # again: something else may have appeared there meanwhile
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---- the whole diagnosis -------------------------------------------------------------------------------


def _run_record(run_dir: Path, dataset: OfflineDataset) -> dict[str, Any]:
    """The finished run's config.json; refuses a run that is absent, unfinished or on another dataset."""
    if not (run_dir / "final.json").is_file() or not (run_dir / "policy.pt").is_file():
        raise UserError(f"--run {run_dir} is not a finished run (needs final.json and policy.pt)")
    try:
        record = json.loads((run_dir / "config.json").read_text())
        trained_on = record["dataset_fingerprint"]
        name = record["config"]["dataset"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--run {run_dir}: cannot read its config.json ({type(exc).__name__})") from None
    mine = dataset.fingerprint
    if (trained_on.get("dataset_id"), trained_on.get("content_hash")) != (mine.dataset_id, mine.content_hash):
        raise UserError(
            f"--run {run_dir} was trained on {name} ({trained_on.get('dataset_id')}), not on "
            f"{dataset.name} ({mine.dataset_id}): pass a run of the same dataset"
        )
    return record


def diagnose(
    dataset: str,
    run_dir: Path | None = None,
    seed: int = 0,
    overrides: Sequence[str] = (),
    starts: int = 2000,
    horizon: int = 5,
    out: Path | None = None,
    device: str = "cpu",
    bc_steps: int = 3000,
    oracle_transitions: int = 1000,
    progress: bool = True,
    reward: DynamicsRewardConfig | None = None,
    reward_stride: int = 10,
) -> DiagnoseResult:
    """The whole diagnosis; every bad input is a UserError raised before anything is written."""
    started = time.perf_counter()
    for label, value in (
        ("--starts", starts),
        ("--horizon", horizon),
        ("--bc-steps", bc_steps),
        ("oracle transitions", oracle_transitions),
    ):
        if value < 1:
            raise UserError(f"{label} must be positive, got {value}")
    out = Path(out) if out is not None else default_out(dataset, seed)
    check_out(out)
    cfg = dynamics_config_from_overrides(seed, list(overrides))
    if cfg.kind != "ensemble":
        raise UserError("diagnose measures the learned ensemble's error: leave dynamics.kind at ensemble")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not (run_dir / "final.json").is_file() or not (run_dir / "policy.pt").is_file():
            raise UserError(f"--run {run_dir} is not a finished run (needs final.json and policy.pt)")
    ds = load_dataset(dataset, device=device)
    spec = ds.spec
    sim = simulator(spec.env, spec.gym_id)
    if (sim.obs_dim, sim.act_dim) != (spec.obs_dim, spec.act_dim):
        raise UserError(
            f"{spec.gym_id}'s simulator has obs_dim {sim.obs_dim} and act_dim {sim.act_dim}, the dataset "
            f"{spec.obs_dim} and {spec.act_dim}"
        )
    termination_fn(spec.env, spec.gym_id)
    record = _run_record(run_dir, ds) if run_dir is not None else None
    times: dict[str, float] = {}

    tick = time.perf_counter()
    model, report, key = load_or_fit(ds, cfg, device=device, progress=progress)
    model.eval()
    times["dynamics"] = time.perf_counter() - tick
    r_d, r_key = None, None
    r_report: dict[str, Any] = {}
    if reward is not None:
        tick = time.perf_counter()
        full, r_report, r_key = load_or_fit_reward(ds, model, key, reward, progress)
        r_d = full.select(reward_stride)
        times["dynamics_reward"] = time.perf_counter() - tick

    tick = time.perf_counter()
    policy_meta: dict[str, Any]
    if run_dir is not None:
        from offline_mbrl.launch import load_run

        assert record is not None
        run_policy, run_cfg, _ = load_run(run_dir, device)
        policy = _RolloutPolicy(None, run_policy)
        policy_meta = {
            "kind": "run",
            "run_dir": str(run_dir),
            "algorithm": run_cfg.algorithm,
            "run_seed": run_cfg.seed,
            "actions": "deterministic (the policy's evaluation action)",
            "run_dynamics_key": record.get("dynamics_key"),
            "same_ensemble_as_run": record.get("dynamics_key") == key,
            "description": (
                f"the finished run {run_dir} ({run_cfg.algorithm}, seed {run_cfg.seed}), "
                "deterministic actions"
            ),
        }
    else:
        bc, loss = fit_bc_policy(ds, bc_steps, seed, progress)
        policy = _RolloutPolicy(bc, None)
        hidden = "x".join(map(str, BCConfig().hidden))
        policy_meta = {
            "kind": "bc",
            "steps": bc_steps,
            "batch_size": BC_BATCH,
            "hidden": list(BCConfig().hidden),
            "seed": seed,
            "final_mse": loss,
            "actions": "deterministic (tanh MLP onto the action box)",
            "description": (
                f"behaviour cloning fitted here (algorithms.bc.BCPolicy, {hidden} tanh MLP, {bc_steps} Adam "
                f"steps of MSE on the dataset's (obs, act), seed {seed}, final MSE {loss:.4g}), "
                "deterministic actions"
            ),
        }
    times["policy"] = time.perf_counter() - tick

    tick = time.perf_counter()
    df, rejected = model_transitions(model, policy, ds, sim, starts, horizon, seed, progress, r_d)
    df["policy"] = policy_meta["kind"]
    times["rollouts"] = time.perf_counter() - tick

    tick = time.perf_counter()
    check = oracle_check(ds, sim, oracle_transitions, seed)
    times["oracle_check"] = time.perf_counter() - tick
    corr, by_h = correlations(df), correlations_by_h(df)

    meta: dict[str, Any] = {
        "dataset": ds.name,
        "dataset_id": ds.dataset_id,
        "fingerprint": ds.fingerprint.key,
        "gym_id": spec.gym_id,
        "seed": seed,
        "policy": policy_meta,
        "starts": starts,
        "horizon": horizon,
        "n_transitions": len(df),
        "simulator_rejected": rejected,
        "penalty_members": PENALTY_MEMBERS,
        "penalties": list(PENALTIES),
        "dynamics_key": key,
        "dynamics_config": dataclasses.asdict(model.cfg),
        "dynamics_summary": (
            f"{report.get('epochs')} epochs ({report.get('stopped')}), elite holdout MSE "
            f"{report.get('elite_mse', math.nan):.4g}"
        ),
        "overrides": list(overrides),
        "oracle_check": check,
        **({"reward": reward_stats(df, r_d, ds, r_report, r_key, reward_stride)} if r_d is not None else {}),
        "correlations": corr.to_dict(orient="records"),
        "correlations_by_h": by_h.to_dict(orient="records"),
        "columns": {
            "h": "rollout step (0 = from the dataset state)",
            "rollout": "rollout index",
            "start_index": "dataset transition the rollout started from",
            "member": "ensemble member the transition was sampled from",
            "true_error": "||sampled next state - simulator next state||_2 from the same (s, a)",
            "mean_error": "||elites' mean next state - simulator next state||_2",
            "reward_error": "|sampled model reward - simulator reward|",
            **{name: f"penalties.{name} over the elites" for name in PENALTIES},
            REWARD: "MOREC's dynamics reward r_D of the transition (with --reward)",
            "policy": "bc (fitted here) or run (--run)",
        },
        "device": device,
        "code_version": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    subtitle = (
        f"{ds.name}, dynamics seed {seed}, {policy_meta['kind']} policy, N={starts}, H={horizon}, "
        f"{len(df)} model transitions"
    )
    times["total"] = time.perf_counter() - started  # up to writing the files (figures take a few s more)
    meta["wall_time"] = times  # seconds per stage
    write_outputs(out, df, corr, by_h, meta, subtitle)
    return DiagnoseResult(out, df, corr, meta)


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
    n, rho, p, _, _ = _correlate(r_model, err)
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


def print_result(result: DiagnoseResult, echo: Callable[[str], None] | None = None) -> None:
    """The correlation table, the oracle check line and where the files are (the CLI's output)."""
    from rich.table import Table

    from offline_mbrl.core.console import console

    meta = result.meta
    table = Table(
        title=(
            f"{meta['dataset']}: Spearman correlation of each penalty with the true one-step error "
            f"({meta['n_transitions']} model transitions, N={meta['starts']}, H={meta['horizon']})"
        )
    )
    for col in ("penalty", "Spearman ρ", "p", "Pearson r", "n", "ρ vs mean error"):
        table.add_column(col, justify="left" if col == "penalty" else "right")
    for row in result.correlations.itertuples(index=False):
        table.add_row(
            str(row.penalty),
            _fmt(row.spearman_rho),
            _fmt(row.spearman_p, ".2g"),
            _fmt(row.pearson_r),
            str(row.n),
            _fmt(row.spearman_rho_mean_error),
        )
    console.print(table)
    say = echo or print
    say(f"policy: {meta['policy']['description']}")
    say(f"dynamics: {meta['dynamics_key']} ({meta['dynamics_summary']})")
    say(result.oracle_line)
    if "reward" in meta:
        rw = meta["reward"]
        say(
            "dynamics reward r_D: ROC AUC held-out data vs model transitions "
            f"{_fmt(rw['auc_data_vs_model'])}, "
            f"low vs high true error {_fmt(rw['auc_low_vs_high_error'])}; Spearman ρ with the true error "
            f"{_fmt(rw['spearman_true_error'])}"
        )
    say(
        f"written to {result.out}: transitions.csv, transitions.parquet, correlations.csv, "
        f"correlations_by_h.csv, figures/ ({len(meta['figures'])} PNGs), summary.md, meta.json"
    )
