"""rliable statistics on a complete score table (a `report.Scope`).

Every interval is rliable's percentile stratified bootstrap (`library.get_interval_estimates`): runs are
resampled with replacement within each task. Aggregates (IQM, median, mean, optimality gap; Agarwal et al.,
NeurIPS 2021) are computed on normalised score / 100, so 1.0 is D4RL's expert and the optimality gap is
the mean shortfall below 1.0. Probability of improvement is a per-task Mann-Whitney statistic, invariant
to any increasing transformation of the scores, so it is computed on raw returns and includes tasks that
have no reference returns.

rliable draws its bootstrap indices from numpy's global generator (`np.random.choice`, not the
`random_state` it accepts), so each call here runs under `seeded(seed)`, which seeds and then restores
the global state: the same scores, seed and reps give the same intervals as a direct rliable call
preceded by `np.random.seed(seed)`.

Family evaluation (Jayawardana et al., NeurIPS 2022, "The Impact of Task Underspecification in Evaluating
Deep RL"): the family-weighted mean is sum_k w_k * score_k over the K members. The members are i.i.d.
draws from the family's distribution, so w_k = 1/K (a Monte Carlo estimate of the expectation over the
family); with equal weights it is rliable's `aggregate_mean` on the `(runs, members)` matrix.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rliable import library, metrics
from scipy import stats

from offline_mbrl.core.errors import UserError
from offline_mbrl.report.table import NOMINAL, SCORE_SCALE, Scope

METRICS = ("IQM", "Median", "Mean", "Optimality gap")
PAIR_REPS = 2000  # rliable's choice for profiles and probability of improvement (Mann-Whitney is slow)


def aggregate_metrics(scores: np.ndarray) -> np.ndarray:
    """The four aggregates in METRICS order, for one `(runs, tasks)` matrix."""
    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% interval; no interval (None) when a single run makes one impossible."""

    point: float
    low: float | None = None
    high: float | None = None

    @property
    def has_ci(self) -> bool:
        return self.low is not None

    def contains(self, value: float) -> bool | None:
        if self.low is None:  # not self.has_ci
            return None
        if self.high is None:  # what `low <= value <= None` raises
            raise TypeError("'<=' not supported between instances of 'float' and 'NoneType'")
        return bool(self.low <= value <= self.high)

    def fmt(self, digits: int = 2) -> str:
        if not self.has_ci:
            return f"{self.point:.{digits}f}"
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_dict(self) -> dict:
        return {"point": self.point, "low": self.low, "high": self.high}


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (which rliable's bootstrap uses) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class Bootstrap:
    """rliable interval estimates with a fixed seed and a progress bar over the bootstrap jobs."""

    def __init__(self, reps: int, seed: int = 0, progress: bool = True):
        if reps < 10:
            raise UserError(f"--reps must be at least 10, got {reps}")
        self.reps, self.seed = reps, seed
        self.pair_reps = min(reps, PAIR_REPS)
        self._bar = Progress(
            TextColumn("bootstrap {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not progress,
        )
        self._task: TaskID | None = None  # set on entering

    def __enter__(self) -> Bootstrap:
        self._bar.__enter__()
        self._task = self._bar.add_task("", total=0)
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def plan(self, jobs: int) -> None:
        total = cast(float, self._bar.tasks[0].total)  # the one task, created with total=0
        self._bar.update(self._entered_task(), total=total + jobs)

    def step(self, label: str) -> None:
        self._bar.update(self._entered_task(), description=label, advance=1)

    def _entered_task(self) -> TaskID:
        if self._task is None:  # used outside `with`: the KeyError rich raises for an unknown task
            raise KeyError(None)
        return self._task

    def interval(self, scores, func: Callable, reps: int, label: str) -> np.ndarray:
        """`(3, ...)`: point, low, high of `func` on `scores` (an array, or a list for paired metrics)."""
        with seeded(self.seed):
            points, intervals = library.get_interval_estimates({"x": scores}, func, reps=reps)
        self.step(label)
        return np.vstack([np.atleast_1d(points["x"]), np.atleast_2d(intervals["x"])])


@dataclass
class ScopeStats:
    scope: Scope
    aggregates: dict[str, dict[str, Interval]]  # method -> metric -> interval (empty: no normalised task)
    improvement: dict[tuple[str, str], Interval]  # (X, Y) -> P(X > Y), both orders
    task_means: dict[tuple[str, str], Interval]  # (method, task) -> mean over runs (x100 or raw return)
    profile_tau: np.ndarray | None = None
    profiles: dict[str, np.ndarray] = field(default_factory=dict)
    profile_cis: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "scope": self.scope.name,
            "methods": self.scope.methods,
            "tasks": self.scope.tasks,
            "normalised_tasks": self.scope.norm_tasks,
            "runs": {m: len(r) for m, r in self.scope.runs.items()},
            "aggregates": {m: {k: v.to_dict() for k, v in a.items()} for m, a in self.aggregates.items()},
            "probability_of_improvement": {
                f"{x} > {y}": v.to_dict() for (x, y), v in self.improvement.items()
            },
            "task_means": {f"{m} | {t}": v.to_dict() for (m, t), v in self.task_means.items()},
        }


def scope_stats(scope: Scope, boot: Bootstrap) -> ScopeStats:
    """Aggregates, performance profiles, pairwise probability of improvement and per-task means."""
    methods, norm = scope.methods, bool(scope.norm_tasks)
    pairs = list(itertools.combinations(methods, 2))
    boot.plan(len(methods) * (1 + norm) + norm + len(pairs))
    aggregates = {}
    if norm:
        for m in methods:
            scores = scope.matrix(m)
            if scope.single_run(m):
                aggregates[m] = {
                    k: Interval(float(v)) for k, v in zip(METRICS, aggregate_metrics(scores), strict=True)
                }
                boot.step(f"{scope.name}: {m} (one run: no interval)")
                continue
            est = boot.interval(scores, aggregate_metrics, boot.reps, f"{scope.name}: aggregates of {m}")
            aggregates[m] = {k: Interval(*map(float, est[:, i])) for i, k in enumerate(METRICS)}
    improvement = {}
    for x, y in pairs:
        sx, sy = scope.matrix(x, "raw"), scope.matrix(y, "raw")
        if scope.single_run(x) or scope.single_run(y):
            p = Interval(float(metrics.probability_of_improvement(sx, sy)))
            boot.step(f"{scope.name}: P({x} > {y}) (one run: no interval)")
        else:
            est = boot.interval([sx, sy], metrics.probability_of_improvement, boot.pair_reps, f"P({x} > {y})")
            p = Interval(*map(float, est[:, 0]))
        improvement[(x, y)] = p
        # P(Y > X) = 1 - P(X > Y) exactly: Mann-Whitney's U counts ties as one half on both sides.
        # p.has_ci, spelled out for mypy: p has both bounds or neither (made just above)
        flipped = (1 - p.high, 1 - p.low) if p.low is not None and p.high is not None else ()
        improvement[(y, x)] = Interval(1 - p.point, *flipped)
    result = ScopeStats(scope, aggregates, improvement, task_means(scope, boot))
    if norm:
        tau, profiles, cis = performance_profiles(scope, boot)
        result.profile_tau, result.profiles, result.profile_cis = tau, profiles, cis
    return result


def task_means(scope: Scope, boot: Bootstrap) -> dict[tuple[str, str], Interval]:
    """Each method's mean over runs on each task: normalised score (0-100) or, without references, return."""
    out = {}
    for m in scope.methods:
        score = scope.matrix(m, "score") * SCORE_SCALE if scope.norm_tasks else None
        raw = scope.matrix(m, "raw")
        for j, task in enumerate(scope.tasks):
            if score is not None and task in scope.norm_tasks:  # score is None only without normalised tasks
                column = score[:, [scope.norm_tasks.index(task)]]
            else:
                column = raw[:, [j]]
            out[(m, task)] = mean_interval(column, boot.pair_reps, boot.seed)
        boot.step(f"{scope.name}: per-task means of {m}")
    return out


def mean_interval(values: npt.ArrayLike, reps: int, seed: int = 0) -> Interval:
    """The mean of `values` (runs, or `(runs, tasks)`) with its stratified-bootstrap 95% interval."""
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[0] < 2:
        return Interval(float(x.mean()))
    with seeded(seed):
        points, cis = library.get_interval_estimates({"x": x}, metrics.aggregate_mean, reps=reps)
    low, high = np.ravel(cis["x"])
    return Interval(float(points["x"]), float(low), float(high))


def performance_profiles(scope: Scope, boot: Bootstrap):
    """Score distributions (fraction of runs with normalised score > tau) with bootstrap bands."""
    matrices = {m: scope.matrix(m) for m in scope.methods}
    lo = min(0.0, min(float(x.min()) for x in matrices.values()))
    hi = max(1.0, max(float(x.max()) for x in matrices.values()))
    tau = np.linspace(lo, hi * 1.02, 81)
    with seeded(boot.seed):
        profiles, cis = library.create_performance_profile(matrices, tau, reps=boot.pair_reps)
    boot.step(f"{scope.name}: performance profiles")
    cis = {m: ci for m, ci in cis.items() if not scope.single_run(m)}
    return tau, profiles, cis


@dataclass
class FamilySummary:
    """One family on one dataset: nominal vs family-weighted performance and where the ranking changes."""

    family: str
    dataset: str
    members: int
    unit: str  # "normalised score" or "raw return"
    member_params: list[dict]
    nominal: dict[str, Interval]
    family_mean: dict[str, Interval]
    member_means: dict[str, np.ndarray]  # method -> (members,)
    nominal_rank: list[str]
    family_rank: list[str]
    flips: list[tuple[str, str]]  # (a, b): a above b on the nominal MDP, below it over the family
    kendall_tau: float | None

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "dataset": self.dataset,
            "members": self.members,
            "unit": self.unit,
            "weights": "uniform, 1/K",
            "nominal": {m: v.to_dict() for m, v in self.nominal.items()},
            "family_weighted_mean": {m: v.to_dict() for m, v in self.family_mean.items()},
            "member_means": {m: v.tolist() for m, v in self.member_means.items()},
            "nominal_rank": self.nominal_rank,
            "family_rank": self.family_rank,
            "flips": [list(f) for f in self.flips],
            "kendall_tau": self.kendall_tau,
        }


def family_summaries(scope: Scope, nominal_rows: pd.DataFrame, boot: Bootstrap) -> list[FamilySummary]:
    """Per dataset of a family scope: nominal mean, family-weighted mean (with intervals), ranking flips."""
    assert scope.name != NOMINAL
    out = []
    datasets = sorted(scope.table["dataset"].unique())
    boot.plan(len(datasets) * len(scope.methods))
    for dataset in datasets:
        rows = scope.table[scope.table["dataset"] == dataset]
        members = sorted(int(k) for k in rows["member"].unique())
        tasks = [t for t in scope.tasks if t in set(rows["task"])]
        nominal = nominal_rows[nominal_rows["run_dir"].isin(set(rows["run_dir"]))]
        use_scores = set(tasks) <= set(scope.norm_tasks) and nominal["normalized_score"].notna().all()
        column, value = ("normalized_score", "score") if use_scores else ("raw_return", "raw")
        scale = SCORE_SCALE if use_scores else 1.0
        nom, fam, per_member = {}, {}, {}
        for m in scope.methods:
            x = scope.matrix(m, value, tasks) * scale  # (runs, members)
            fam[m] = mean_interval(x, boot.pair_reps, boot.seed)
            per_member[m] = x.mean(axis=0)
            nominal_runs = nominal[nominal["method"] == m][column].to_numpy(dtype=np.float64)
            nom[m] = mean_interval(nominal_runs, boot.pair_reps, boot.seed)
            boot.step(f"{scope.name} on {dataset}: {m}")
        params = rows.drop_duplicates("member").sort_values("member")["member_params"].tolist()
        nominal_rank = sorted(scope.methods, key=lambda m: -nom[m].point)
        family_rank = sorted(scope.methods, key=lambda m: -fam[m].point)
        flips = [
            (a, b)
            for a, b in itertools.permutations(scope.methods, 2)
            if nom[a].point > nom[b].point and fam[a].point < fam[b].point
        ]
        tau = None
        if len(scope.methods) > 1:
            value = stats.kendalltau(
                [nom[m].point for m in scope.methods], [fam[m].point for m in scope.methods]
            )
            tau = None if np.isnan(value.statistic) else float(value.statistic)
        out.append(
            FamilySummary(
                scope.name,
                dataset,
                len(members),
                "normalised score" if use_scores else "raw return",
                [json.loads(p) for p in params],
                nom,
                fam,
                per_member,
                nominal_rank,
                family_rank,
                flips,
                tau,
            )
        )
    return out
