"""Learning parity of `--precision bf16` against fp32: the same runs (3 seeds, batched) in both precisions.

    python benchmarks/precision_parity.py --results /tmp/parity --out benchmarks/results/precision_parity.md

Each case is an algorithm on a dataset at the `small` budget's settings (its networks, rollout batch and
10-epoch dynamics) with fewer gradient steps (`--steps-scale` of the case's steps), trained as
`offline-mbrl train --seeds 3 --precision P` would train it. For every case the table gives each seed's
final normalised score in both precisions (the runs' dynamics: the fp32 fit of their seed), the
probability that a bf16 seed beats an fp32 seed with its
95% bootstrap interval (rliable, 2,000 repetitions), the critics' mean Q over the last logged steps and the
largest |mean Q| over training, whether any logged value is NaN, and the dynamics ensembles' elite
holdout MSE of each seed's fit in fp32 and in bf16 (`dynamics.precision`), and of the fp32 fit's forward
in both precisions (a bf16 run's rollouts run the fp32 fit in bf16). Finished runs and fitted ensembles
are reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from offline_mbrl.experiments.cells import BUDGETS, _budget_overrides
from offline_mbrl.launch import build_config, execute_seeds
from offline_mbrl.learning.run import run_dir_for


@dataclass(frozen=True)
class Case:
    algo: str
    dataset: str
    steps: int
    extra: tuple[str, ...] = ()


CASES = [
    Case("mopo", "pendulum-medium-replay", 10_000),
    Case("ravl", "pendulum-medium-replay", 3_000),
    # Pendulum's rewards are all negative: MOBILE's target clamp at 0 would zero every target
    Case("mobile", "pendulum-medium-replay", 3_000, ("algo.sac.target_min=none",)),
    Case("mopo", "hopper-medium-replay", 5_000),
    Case("ravl", "hopper-medium-replay", 2_000),
]
SEEDS = (0, 1, 2)


def overrides(case: Case, precision: str, steps: int) -> list[str]:
    small = [o for o in _budget_overrides(BUDGETS["small"], case.algo) if not o.startswith("steps=")]
    every = max(steps // 1000 * 100, 100)  # about 10 evaluations, a multiple of log_every
    cadence = [f"eval_every={every}", f"checkpoint_every={every}", "log_every=100"]
    return [*small, *case.extra, *cadence, f"precision={precision}"]


def run_case(case: Case, precision: str, steps: int, results: Path) -> dict:
    cfgs = [
        build_config(case.algo, case.dataset, s, steps, "cpu", overrides(case, precision, steps))
        for s in SEEDS
    ]
    finals = execute_seeds(cfgs, results, resume="auto", progress=False)
    wall = max(f["wall_time"] for f in finals)  # the batch's (a reused run's too)
    q_last, q_peak, nan = [], [], False
    for cfg in cfgs:
        rows = [json.loads(line) for line in (run_dir_for(cfg, results) / "metrics.jsonl").open()]
        qs = [r["q_mean"] for r in rows if "q_mean" in r]
        nan |= any(isinstance(v, float) and math.isnan(v) for r in rows for v in r.values())
        q_last.append(float(np.mean(qs[-5:])))
        q_peak.append(float(np.max(np.abs(qs))))
    scores = [f["normalized_score"] for f in finals]
    return {"scores": scores, "q_last": q_last, "q_peak": q_peak, "nan": nan, "wall": wall}


def dynamics_parity(dataset: str, results: Path) -> dict:
    """The elite holdout MSE of the small budget's fit in fp32 and in bf16 (`dynamics.precision`) per seed,
    and of the fp32 fit's forward in bf16 (what a bf16 run's rollouts use) on 20,000 dataset rows."""
    import copy
    import dataclasses

    from offline_mbrl.core.precision import apply_precision
    from offline_mbrl.data.dataset import load_dataset
    from offline_mbrl.models.dynamics import holdout_scores, load_or_fit

    ds = load_dataset(dataset)
    d = ds.data
    rows = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:20_000]
    inputs = torch.cat([d.obs[rows], d.act[rows]], -1)
    targets = torch.cat([d.next_obs[rows] - d.obs[rows], d.rew[rows, None]], -1)
    out: dict[str, list[float]] = {"fit_fp32": [], "fit_bf16": [], "forward_fp32": [], "forward_bf16": []}
    for seed in SEEDS:
        base = build_config("mopo", dataset, seed, 100, "cpu", overrides(CASES[0], "fp32", 100)).dynamics
        for p in ("fp32", "bf16"):
            model, report, _ = load_or_fit(ds, dataclasses.replace(base, precision=p), progress=False)
            out[f"fit_{p}"].append(report["elite_mse"])
            if p == "fp32":
                for q in ("fp32", "bf16"):
                    m = apply_precision(copy.deepcopy(model), q)
                    out[f"forward_{q}"].append(
                        float(holdout_scores(m, inputs, targets)[0][model.elites].mean())
                    )
    return out


def improvement(bf16: list[float], fp32: list[float]) -> tuple[float, float, float]:
    from rliable import library, metrics

    x, y = np.asarray(bf16)[:, None], np.asarray(fp32)[:, None]
    np.random.seed(0)
    points, intervals = library.get_interval_estimates(
        {"p": [x, y]}, metrics.probability_of_improvement, reps=2000
    )
    low, high = np.ravel(intervals["p"])
    return float(np.ravel(points["p"])[0]), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=Path("results/precision-parity"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision_parity.md"))
    parser.add_argument("--steps-scale", type=float, default=1.0, help="scale every case's steps")
    parser.add_argument("--only", default=None, help="comma-separated ALGO:DATASET cases")
    args = parser.parse_args()
    cases = [c for c in CASES if args.only is None or f"{c.algo}:{c.dataset}" in args.only.split(",")]
    rows = []
    fits = {}
    for dataset in dict.fromkeys(c.dataset for c in cases):
        fits[dataset] = dynamics_parity(dataset, args.results)
        print(dataset, fits[dataset], flush=True)
    for case in cases:
        steps = max(int(case.steps * args.steps_scale), 100)
        got = {p: run_case(case, p, steps, args.results) for p in ("fp32", "bf16")}
        poi = improvement(got["bf16"]["scores"], got["fp32"]["scores"])
        rows.append((case, steps, got, poi))
        print(case.algo, case.dataset, {p: [round(s, 1) for s in g["scores"]] for p, g in got.items()}, poi)
        print(got, flush=True)
    load = os.getloadavg()[0]
    lines = [
        "# bf16 against fp32: learning parity",
        "",
        f"`python benchmarks/precision_parity.py` at {time.strftime('%Y-%m-%d %H:%M')} on "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), load average {load:.2f} at the end. Seeds {SEEDS} batched "
        "in one process per precision; the `small` budget's settings with the steps below.",
        "",
        "| algorithm | dataset | steps | fp32 scores (seeds 0, 1, 2) | bf16 scores | P(bf16 > fp32) [95% CI] "
        "| mean Q, last 500 steps: fp32 / bf16 | peak abs mean Q: fp32 / bf16 | NaN | wall s fp32 / bf16 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case, steps, got, (p, lo, hi) in rows:
        f, b = got["fp32"], got["bf16"]

        def fmt(xs: list[float], d: int = 1) -> str:
            return ", ".join(f"{x:.{d}f}" for x in xs)

        lines.append(
            f"| {case.algo} | {case.dataset} | {steps:,} | {fmt(f['scores'])} | {fmt(b['scores'])} | "
            f"{p:.2f} [{lo:.2f}, {hi:.2f}] | {np.mean(f['q_last']):.1f} / {np.mean(b['q_last']):.1f} | "
            f"{max(f['q_peak']):.1f} / {max(b['q_peak']):.1f} | {'yes' if f['nan'] or b['nan'] else 'no'} | "
            f"{f['wall']:.0f} / {b['wall']:.0f} |"
        )
    lines += [
        "",
        "Dynamics (the small budget's 10-epoch fit, elite holdout MSE per seed; the forward of the fp32 fit "
        "in each precision on 20,000 dataset rows, as a bf16 run's rollouts use it):",
        "",
        "| dataset | fit fp32 | fit bf16 | bf16 / fp32 | fp32 fit: forward fp32 | forward bf16 "
        "| bf16 / fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset, v in fits.items():

        def seeds(xs: list[float]) -> str:
            return ", ".join(f"{x:.5f}" for x in xs)

        def ratios(a: list[float], b: list[float]) -> str:
            return ", ".join(f"{y / x:.3f}" for x, y in zip(a, b, strict=True))

        lines.append(
            f"| {dataset} | {seeds(v['fit_fp32'])} | {seeds(v['fit_bf16'])} | "
            f"{ratios(v['fit_fp32'], v['fit_bf16'])} | {seeds(v['forward_fp32'])} | "
            f"{seeds(v['forward_bf16'])} | {ratios(v['forward_fp32'], v['forward_bf16'])} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
