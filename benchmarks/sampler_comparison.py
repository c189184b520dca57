"""GP (Bayesian optimisation) vs TPE vs random search with the same trial budget, over several sweep seeds.

    python benchmarks/sampler_comparison.py --dataset pendulum-medium-replay --trials 6 --seeds 0 1 2

Each (sampler, sweep seed) is its own study (`samplers-<algo>-<dataset>-<steps>steps-<sampler>-s<seed>`)
over sweeps/mbpo.toml at a CPU budget; the table gives the best value after N trials per study, and its
mean over sweep seeds. Trials that land on the same config share one run in results/. Written to
benchmarks/results/samplers_<dataset>_<steps>steps.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna

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
    p.add_argument("--algo", default="mbpo")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--startup", type=int, default=2)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", default=["gp", "tpe", "random"])
    args = p.parse_args()
    best: dict[str, list[float]] = {}
    for sampler in args.samplers:
        for seed in args.seeds:
            study = f"samplers-{args.algo}-{args.dataset}-{args.steps}steps-{sampler}-s{seed}"
            cmd = [
                sys.executable,
                "-m",
                "offline_mbrl.cli",
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
            ]
            for item in BUDGET:
                cmd += ["--set", item]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            storage = optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(Path("sweeps") / study / "journal.log"))
            )
            values = [
                t.value
                for t in optuna.load_study(study_name=study, storage=storage).trials
                if t.value is not None
            ]
            best.setdefault(sampler, []).append(max(values))
            print(
                f"{sampler} sweep seed {seed}: best {max(values):.1f} after {len(values)} trials", flush=True
            )
    lines = [
        f"# {args.algo} on {args.dataset}: best final normalised score after {args.trials} trials",
        "",
        f"{args.steps} gradient steps per trial, {args.startup} random start-up trials, no pruning, "
        f"sweep seeds {args.seeds}; space sweeps/{args.algo}.toml; settings {', '.join(BUDGET)}.",
        "",
        "| sampler | mean best ± std | per sweep seed |",
        "| --- | --- | --- |",
    ]
    for sampler, values in best.items():
        per_seed = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {sampler} | {np.mean(values):.1f} ± {np.std(values):.1f} | {per_seed} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / f"samplers_{args.dataset}_{args.steps}steps.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
