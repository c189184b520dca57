"""Train several algorithms x seeds on one dataset at a small CPU budget and print a score table.

The evidence behind pendulum-medium-replay's score tables (docs/speed.md):

    python benchmarks/compare_small.py --dataset pendulum-medium-replay --seeds 0 1 2 --steps 20000

Runs go to results/ (finished runs are reused); the table (mean and per-seed final normalised scores,
the dataset's own mean behaviour score, wall time) is printed and written to
benchmarks/results/compare_<dataset>.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.launch import build_config, execute

EVAL = ["eval_every=5000", "checkpoint_every=5000", "eval_episodes=10", "final_eval_episodes=20"]
# 50 000 rollouts per round in the papers; 5 000 keeps a CPU run to minutes.
MODEL_BASED = [*EVAL, "algo.rollout_batch=5000"]
# RAVL's paper critics (10 x 3x256 with the EDAC term) run at ~5 updates/s on one CPU core: the CPU
# budget uses 5 critics of 2x128. GPU runs (and `train` by default) keep the paper sizes.
_CPU_NETS = ["algo.sac.actor_hidden=128,128", "algo.sac.critic_hidden=128,128"]
CPU_BUDGET = {
    "bc": EVAL,
    "mbpo": MODEL_BASED,
    "mopo": MODEL_BASED,
    "ravl": [
        *MODEL_BASED,
        "algo.sac.critics=5",
        "algo.sac.actor_hidden=128,128",
        "algo.sac.critic_hidden=128,128",
    ],
    # MOBILE's penalty runs actor and critics on 10 samples x 5 elites per row, COMBO's term the critics
    # on 30 proposals per row: at 256-wide nets (3x256 for COMBO) 5-7 updates/s on one core.
    # Pendulum's rewards are all negative: MOBILE's target clamp at 0 (its reference's assumption of
    # non-negative returns) would zero every target, so it is off here.
    "mobile": [*MODEL_BASED, *_CPU_NETS, "algo.sac.target_min=none"],
    "combo": [*MODEL_BASED, *_CPU_NETS],
    # MOREC's 2,000 starts x h 100 x 10 candidates x 40 snapshots is ~120 GFLOP of discriminator per
    # model step: the CPU budget starts 500 rollouts of h 50 (at most 25,000 transitions per round, as
    # MOPO's 5,000 x 5), fits the reward for 3,000 updates and averages every 4th kept snapshot.
    "morec-mopo": [
        *EVAL,
        "algo.rollout_batch=500",
        "algo.horizon=50",
        "algo.reward.updates=3000",
        "algo.filter.snapshot_stride=40",
    ],
    "morec-mobile": [
        *EVAL,
        *_CPU_NETS,
        "algo.sac.target_min=none",
        "algo.rollout_batch=500",
        "algo.horizon=50",
        "algo.reward.updates=3000",
    ],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pendulum-medium-replay")
    p.add_argument("--algos", nargs="+", default=["bc", "mbpo", "mopo", "ravl"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="overrides", nargs="*", default=[], help="more key=value for every run")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument(
        "--out", type=Path, help="the table's file (default benchmarks/results/compare_DATASET.md)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    behaviour = ds.spec.normalize(ds.episode_returns)
    rows = []
    for algo in args.algos:
        scores, times = [], []
        for seed in args.seeds:
            cfg = build_config(
                algo,
                args.dataset,
                seed=seed,
                steps=args.steps,
                overrides=[*CPU_BUDGET[algo], *args.overrides],
            )
            start = time.time()
            final = execute(cfg, args.results, progress=False)
            scores.append(final["normalized_score"])
            times.append(final["wall_time"])
            took = time.time() - start
            print(f"{algo} seed {seed}: {final['normalized_score']:.1f} ({took:.0f} s this call)", flush=True)
        rows.append((algo, scores, times))
    lines = [
        f"# {args.dataset}: final normalised score after {args.steps:,} gradient steps",
        "",
        f"Dataset behaviour score (mean over its episodes): {behaviour.mean():.1f}. "
        f"Seeds {args.seeds}; 20 evaluation episodes per run; torch threads {args.threads}"
        + (f"; more settings: {' '.join(args.overrides)}." if args.overrides else "."),
        "",
        "| algorithm | mean ± std | per seed | mean wall time (s) |",
        "| --- | --- | --- | --- |",
    ]
    for algo, scores, times in rows:
        per_seed = ", ".join(f"{s:.1f}" for s in scores)
        lines.append(
            f"| {algo} | {np.mean(scores):.1f} ± {np.std(scores):.1f} | {per_seed} | {np.mean(times):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or Path(__file__).parent / "results" / f"compare_{args.dataset}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
