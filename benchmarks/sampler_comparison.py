"""GP (Bayesian optimisation) vs TPE vs random search with the same trial budget, over several sweep seeds.

    python benchmarks/sampler_comparison.py --algo mopo --dataset pendulum-medium-replay --steps 4000

Each (sampler, sweep seed) is its own study (`samplers-<algo>-<dataset>-<steps>steps-<sampler>-s<seed>`)
over sweeps/<space>.toml (default: the algorithm's own space) at a CPU budget; the table gives the best
value after N trials per study and its mean over sweep seeds, and the best-so-far after each trial (how
fast each sampler finds a good configuration). Trials that land on the same config share one run in
results/. Written to benchmarks/results/samplers_<algo>_<dataset>_<steps>steps.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from offline_mbrl.sweep.results import load_study

BUDGET = [
    "algo.rollout_batch=2000",
    "algo.rollout_every=250",
    "log_every=250",
    "eval_every=500",
    "checkpoint_every=500",
    "eval_episodes=5",
    "final_eval_episodes=10",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pendulum-medium-replay")
    p.add_argument("--algo", default="mopo")
    p.add_argument("--space", default=None, help="space file under sweeps/ (default: the algorithm's own)")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--startup", type=int, default=2)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", default=["gp", "tpe", "random"])
    args = p.parse_args()
    space = args.space or args.algo
    best: dict[str, list[float]] = {}
    curves: dict[str, list[np.ndarray]] = {}
    guided: dict[str, list[float]] = {}  # the values of the trials after the random start-up ones
    for sampler in args.samplers:
        for seed in args.seeds:
            study = f"samplers-{args.algo}-{args.dataset}-{args.steps}steps-{sampler}-s{seed}"
            cmd = [
                sys.executable,
                "-m",
                "offline_mbrl.cli.main",
                "sweep",
                "--algo",
                args.algo,
                "--dataset",
                args.dataset,
                "--trials",
                str(args.trials),
                "--steps",
                str(args.steps),
                "--sampler",
                sampler,
                "--sampler-seed",
                str(seed),
                "--startup-trials",
                str(args.startup),
                "--pruner",
                "none",
                "--study",
                study,
                "--space",
                space,
                "--threads",
                "1",
            ]
            for item in BUDGET:
                cmd += ["--set", item]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            trials = sorted(load_study(study).trials, key=lambda t: t.number)[: args.trials]
            values = [t.value if t.value is not None else -np.inf for t in trials]
            best.setdefault(sampler, []).append(max(values))
            curves.setdefault(sampler, []).append(np.maximum.accumulate(values))
            guided.setdefault(sampler, []).extend(v for v in values[args.startup :] if np.isfinite(v))
            print(
                f"{sampler} sweep seed {seed}: best {max(values):.1f} after {len(values)} trials", flush=True
            )
    lines = [
        f"# {args.algo} on {args.dataset}: best final normalised score after {args.trials} trials",
        "",
        f"{args.steps} gradient steps per trial, {args.startup} random start-up trials, no pruning, "
        f"sweep seeds {args.seeds}; space sweeps/{space}.toml; settings {', '.join(BUDGET)}.",
        "A failed trial counts as -inf in the best-so-far.",
        "",
        "| sampler | mean best ± std | per sweep seed | trials after start-up: mean (min) |",
        "| --- | --- | --- | --- |",
    ]
    for sampler, values in best.items():
        per_seed = ", ".join(f"{v:.1f}" for v in values)
        after = guided.get(sampler) or [np.nan]
        lines.append(
            f"| {sampler} | {np.mean(values):.1f} ± {np.std(values):.1f} | {per_seed} "
            f"| {np.mean(after):.1f} ({np.min(after):.1f}) |"
        )
    lines += [
        "",
        "Best so far after each trial (mean over sweep seeds):",
        "",
        "| sampler | " + " | ".join(str(k + 1) for k in range(args.trials)) + " |",
        "| --- |" + " --- |" * args.trials,
    ]
    for sampler, runs in curves.items():
        mean = np.mean(np.stack(runs), axis=0)
        lines.append(f"| {sampler} | " + " | ".join(f"{v:.1f}" for v in mean) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / f"samplers_{args.algo}_{args.dataset}_{args.steps}steps.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
