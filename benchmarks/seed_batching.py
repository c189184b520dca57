"""K seeds trained as one computation against K lone runs: MOPO end to end through the real loop.

    python benchmarks/seed_batching.py --out benchmarks/results/seed_batching_cpu.md

The same K runs (seeds 0..K-1, MOPO's paper networks and rollout rounds of 50,000 starts x h 5 every
1,000 steps, periodic and final evaluations of 10 episodes) trained twice: one after another as lone runs
(`train --no-batch-seeds`), and as one batched computation (`train --seeds K`: one seed-batched learner,
the rollout rounds through the stacked ensembles, `rollout_seeds`). The dynamics ensembles are fitted
(or loaded) before the timing; each timing starts from empty results folders. Reports the aggregate
gradient steps per second of both and their ratio, with the load average and the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offline_mbrl.data.dataset import load_dataset  # noqa: E402
from offline_mbrl.launch import build_config, execute_seeds  # noqa: E402
from offline_mbrl.models.dynamics import load_or_fit  # noqa: E402

SETTINGS = [
    "algo.rollout_batch=50000",
    "algo.rollout_every=1000",
    "eval_every=1000",
    "checkpoint_every=1000",
    "eval_episodes=10",
    "final_eval_episodes=10",
    # a short fit: the model's quality does not change the cost of a rollout or an update
    "dynamics.max_epochs=2",
    "dynamics.steps_per_epoch=200",
]


def timed_runs(cfgs: list, batch: bool) -> float:
    root = Path(tempfile.mkdtemp(prefix="seed-batching-"))
    try:
        start = time.perf_counter()
        execute_seeds(cfgs, root, progress=False, batch=batch)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pendulum-medium-replay")
    p.add_argument("--algo", default="mopo")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/seed_batching_cpu.md"))
    args = p.parse_args()
    sets = [*SETTINGS, f"precision={args.precision}"]
    cfgs = [build_config(args.algo, args.dataset, s, args.steps, "cpu", sets) for s in range(args.seeds)]
    ds = load_dataset(args.dataset)
    for cfg in cfgs:  # fitted outside the timing
        load_or_fit(ds, cfg.dynamics, progress=False)
    load_before = os.getloadavg()[0]
    lone = timed_runs(cfgs, batch=False)
    batched = timed_runs(cfgs, batch=True)
    total = args.seeds * args.steps
    lines = [
        f"# {args.seeds} seeds batched against {args.seeds} lone runs: {args.algo} on {args.dataset}",
        "",
        f"`python benchmarks/seed_batching.py --seeds {args.seeds} --steps {args.steps} --precision "
        f"{args.precision}` at {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {load_before:.2f} "
        f"before and {os.getloadavg()[0]:.2f} after. Settings: {', '.join(sets)}.",
        "",
        "| runs | wall s | aggregate steps/s | ratio |",
        "| --- | --- | --- | --- |",
        f"| {args.seeds} lone runs, one after another | {lone:.1f} | {total / lone:.1f} | 1.00x |",
        f"| one batched run of {args.seeds} seeds | {batched:.1f} | {total / batched:.1f} | "
        f"{lone / batched:.2f}x |",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
