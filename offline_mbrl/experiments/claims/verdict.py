"""Verdicts: a statistic with its 95% interval against a claim's threshold, and a claim's parts combined.

A test states a direction:
- `above`: the claim needs the statistic above the threshold. It holds when the whole interval is above
  it, does not hold when the whole interval is at or below it, and is inconclusive when the interval
  straddles it.
- `at_least`: the same with equality allowed (the interval's low end may touch the threshold): "scores at
  least BC's" as a probability of improvement whose interval starts at 0.5 or higher.
- `below`: the mirror of `above`.
A statistic with no interval (one seed) or a non-finite one is inconclusive: one run cannot say.

A claim of several parts holds when every part holds, does not hold when any part does not hold, and is
inconclusive otherwise. The thresholds are the claims' (issue 24), never tuned to make a claim pass.

Intervals: rliable's stratified bootstrap (`report.stats`): the mean over seeds, and the probability of
improvement P(X > Y) over the seeds' scores (Agarwal et al., NeurIPS 2021), each with its percentile 95%
interval and a fixed bootstrap seed. With 3 seeds an interval is wide and coarse (the bootstrap resamples
three numbers): it is what 3 seeds can say, not more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from offline_mbrl.report.stats import Interval, mean_interval, seeded

Verdict = Literal["holds", "does not hold", "inconclusive"]
Direction = Literal["above", "at_least", "below"]
VERDICTS: tuple[Verdict, ...] = ("holds", "does not hold", "inconclusive")
DIVERGED = -np.inf  # the score of a run the suite stopped as diverged, in a probability of improvement
_SYMBOL = {"above": ">", "at_least": "≥", "below": "<"}


def judge(interval: Interval, threshold: float, direction: Direction) -> Verdict:
    """The verdict of one statistic's 95% interval against `threshold` (see the module docstring)."""
    low, high = interval.low, interval.high
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if direction == "above":
        return "holds" if low > threshold else "does not hold" if high <= threshold else "inconclusive"
    if direction == "at_least":
        return "holds" if low >= threshold else "does not hold" if high < threshold else "inconclusive"
    return "holds" if high < threshold else "does not hold" if low >= threshold else "inconclusive"


def combine(verdicts: list[Verdict]) -> Verdict:
    """Every part holds: holds; any part does not hold: does not hold; else inconclusive (also: no part)."""
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    return "does not hold" if "does not hold" in verdicts else "inconclusive"


@dataclass(frozen=True)
class Test:
    """One part of a claim: what is measured, its value with its 95% interval, and the threshold."""

    name: str  # "MBPO diverges"
    statistic: str  # "largest Q / largest achievable return (mean over seeds)"
    interval: Interval
    threshold: float
    direction: Direction

    @property
    def verdict(self) -> Verdict:
        return judge(self.interval, self.threshold, self.direction)

    def line(self) -> str:
        return (
            f"{self.name}: {self.verdict} ({self.statistic} = {fmt_interval(self.interval)}; needs "
            f"{_SYMBOL[self.direction]} {self.threshold:g})"
        )

    def row(self) -> dict:
        iv = self.interval
        return {
            "test": self.name,
            "statistic": self.statistic,
            "value": iv.point,
            "low": iv.low,
            "high": iv.high,
            "threshold": self.threshold,
            "direction": self.direction,
            "verdict": self.verdict,
        }


def fmt_interval(iv: Interval, digits: int = 3) -> str:
    def f(x: float) -> str:
        return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"

    if iv.low is None or iv.high is None:
        return f"{f(iv.point)} (no interval: one seed)"
    return f"{f(iv.point)} [{f(iv.low)}, {f(iv.high)}]"


def mean_ci(values: npt.ArrayLike, reps: int = 2_000, seed: int = 0) -> Interval:
    """The mean over seeds with its stratified-bootstrap 95% interval (no interval for one value; NaN for
    none or a non-finite value, which is inconclusive)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        return Interval(math.nan, math.nan, math.nan)
    return mean_interval(x, reps, seed)


def poi_ci(x: npt.ArrayLike, y: npt.ArrayLike, reps: int = 2_000, seed: int = 0) -> Interval:
    """P(X > Y) (ties count half) between two methods' per-seed scores on one task, with rliable's
    bootstrap 95% interval (each method's seeds resampled). A run that diverged scores -inf (`DIVERGED`):
    the statistic is rank-based, so it counts as worse than any finished run."""
    from rliable import library, metrics

    a = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    b = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    if a.size == 0 or b.size == 0 or np.isnan(a).any() or np.isnan(b).any():
        return Interval(math.nan, math.nan, math.nan)
    point = float(metrics.probability_of_improvement(a, b))
    if min(a.size, b.size) < 2:
        return Interval(point)
    with seeded(seed):
        _, cis = library.get_interval_estimates({"x": [a, b]}, metrics.probability_of_improvement, reps=reps)
    low, high = np.ravel(cis["x"])
    return Interval(point, float(low), float(high))
