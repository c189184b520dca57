"""The small tier's evidence: does `compare --budget small` tell its six methods apart?

Runs (or reuses) the small tier, `offline-mbrl compare --budget small` with its defaults (BC, MOPO, MOBILE,
COMBO, RAVL and MOREC-MOPO on pendulum-random, inverted-double-pendulum-medium-replay and point2d-partial,
3 seeds; `experiments/cells.py` TIERS), then writes the per-seed table and the two checks of issue 24:

- separation by rliable: every ordered pair (X, Y) whose probability of improvement P(X > Y) over the
  tier (stratified bootstrap over the seeds of each task) has a 95% interval that excludes 0.5;
- no dataset where every method lies within one seed standard deviation of the others: per dataset, the
  pairs whose means differ by more than the larger of their two seed standard deviations (ddof 1).

Also the minutes of each run (final.json's wall time; a batch of seeds reports the batch's, split evenly;
the dynamics fit, a cached artefact made before the run, is not in it; MOREC's reward fit, made on a cache
miss inside the run, is), from which resources/rates.toml's `[cpu.small]` seconds per run come.

    python benchmarks/small_tier.py --results results --threads 1 --out benchmarks/results/small_tier.md

Finished runs under --results are reused (same config, same run folder), so a second invocation only
reads them; interrupted ones resume.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from dated import cpu_model, publish


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--report", type=Path, default=Path("reports/small-tier"))  # compare's own default
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/small_tier.md"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reps", type=int, default=50_000)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from offline_mbrl.algorithms import get_spec
    from offline_mbrl.experiments.cells import TIER_ALGORITHMS, TIERS, compare

    started = time.time()
    load = os.getloadavg()[0]
    result = compare(
        [], [], seeds=3, budget="small", results_root=args.results, out=args.report, reps=args.reps
    )
    rows = []
    for c in result.cells:
        final = c.final or {}
        rows.append(
            {
                "dataset": c.dataset,
                "method": c.algorithm,
                "seed": c.seed,
                "score": final.get("normalized_score", final.get("return_mean")),
                "steps": final.get("steps"),
                "wall_s": final.get("wall_time"),
                "status": c.status,
            }
        )
    df = pd.DataFrame(rows)
    lines = [
        f"small tier, `compare --budget small` defaults ({', '.join(TIER_ALGORITHMS)} on "
        f"{', '.join(TIERS['small'])}, 3 seeds), {cpu_model()}, threads "
        f"{torch.get_num_threads()}, load average {load:.2f} at the start; this invocation "
        f"{time.time() - started:.0f} s (finished runs reused)",
        "",
        "Final normalised score per seed (10 episodes; mean and seed standard deviation, ddof 1):",
        "",
        "| dataset | method | steps | seed 0 | seed 1 | seed 2 | mean ± std | minutes per run |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdict = []
    for ds, part in df.groupby("dataset", sort=False):
        stats = {}
        for method, m in part.groupby("method", sort=False):
            s = m.sort_values("seed")["score"].to_numpy(dtype=float)
            stats[method] = (np.nanmean(s), np.nanstd(s, ddof=1) if len(s) > 1 else np.nan)
            cells = " | ".join(f"{v:.1f}" for v in s)
            # a batch of seeds writes the batch's time into each run's final.json
            share = len(m) if get_spec(method).train_seeds is not None else 1
            minutes = m["wall_s"].astype(float).mean() / share / 60
            lines.append(
                f"| {ds} | {method} | {int(m['steps'].max()):,} | {cells} | "
                f"{stats[method][0]:.1f} ± {stats[method][1]:.1f} | {minutes:.1f} |"
            )
        apart = [
            f"{a} vs {b}"
            for a, b in combinations(stats, 2)
            if abs(stats[a][0] - stats[b][0]) > max(stats[a][1], stats[b][1])
        ]
        verdict.append(
            f"- {ds}: {len(apart)} of {len(list(combinations(stats, 2)))} method pairs differ by more than "
            f"one seed standard deviation" + (f" ({', '.join(apart)})" if apart else " (every method alike)")
        )
    lines += ["", "Per dataset, pairs whose means differ by more than the larger seed std:", "", *verdict]
    datasets = list(dict.fromkeys(df["dataset"]))
    lines += [
        "",
        "The README's table (per seed: seed 0 / seed 1 / seed 2, then the mean):",
        "",
        "| method | " + " | ".join(datasets) + " |",
        "| --- | " + " | ".join("---:" for _ in datasets) + " |",
    ]
    for method in dict.fromkeys(df["method"]):
        row = []
        for ds in datasets:
            s = df[(df.method == method) & (df.dataset == ds)].sort_values("seed")["score"].astype(float)
            row.append(" / ".join(f"{v:.0f}" for v in s) + f" ({s.mean():.1f})")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    report = result.report
    excluded = []
    if report is not None:
        improvement = report.nominal.improvement  # type: ignore[attr-defined]
        for (x, y), p in sorted(improvement.items(), key=lambda kv: -kv[1].point):
            if p.has_ci and (p.low > 0.5 or p.high < 0.5) and p.point > 0.5:
                excluded.append(f"- P({x} > {y}) = {p.fmt(2)}")
    lines += [
        "",
        f"rliable probability of improvement over the tier ({args.reps:,} stratified bootstrap "
        f"repetitions): {len(excluded)} pairs whose 95% interval excludes 0.5 (each pair once, the "
        "direction above 0.5):",
        "",
        *excluded,
        "",
        f"report: {args.report}; runs under {args.results}",
    ]
    publish(lines, args.out)
    df.to_csv(args.out.with_suffix(".csv"), index=False)
    print(json.dumps({"pairs_excluding_half": len(excluded)}))


if __name__ == "__main__":
    main()
