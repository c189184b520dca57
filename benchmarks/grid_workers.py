"""Wall time of one 12-cell grid drained by 1 and by 3 workers (docs/cluster.md's table).

The grid: `compare --algo bc --algo mbpo --dataset pendulum-medium --dataset pendulum-medium-replay
--seeds 3` at small settings (GRID_ARGS), each worker a separate `offline-mbrl compare ... --storage URL
--study NAME` process with its own working directory and artefact cache and `--threads 1`, as separate
machines would run it. The datasets are made (2,000 transitions each, from the committed behaviour
policies) into a scratch Minari root first and shared, as a dataset folder on a cluster's shared disk is.

    python benchmarks/grid_workers.py --storage postgresql://USER:PASS@HOST:5432/DB
    python benchmarks/grid_workers.py                       # a journal file: one machine only
    python benchmarks/grid_workers.py --workers 1 2 3 --out benchmarks/results/grid_workers.md

Each worker count runs a fresh study (a new name), so nothing is reused between counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dated import cpu_model, publish

DATASETS = ("pendulum-medium", "pendulum-medium-replay")
GRID_ARGS = [
    "--algo", "bc", "--algo", "mbpo", "--seeds", "3", "--steps", "1000", "--budget", "smoke", "--reps", "500",
    "--threads", "1",
    "--set", "eval_every=250", "--set", "log_every=50", "--set", "checkpoint_every=500",
    "--set", "eval_episodes=2", "--set", "final_eval_episodes=5",
    "--set", "mbpo:dynamics.max_epochs=5", "--set", "mbpo:algo.rollout_batch=500",
    "--set", "mbpo:algo.sac.actor_hidden=64,64", "--set", "mbpo:algo.sac.critic_hidden=64,64",
    "--set", "bc:algo.hidden=64,64",
]  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "offline_mbrl.cli", *args]


def drain(workers: int, storage: str | None, scratch: Path, env: dict) -> float:
    study = f"grid-bench-{workers}w-{uuid.uuid4().hex[:6]}"
    where = ["--study", study, "--heartbeat", "10"] + (["--storage", storage] if storage else [])
    if storage is None:  # one journal file for every worker of this count
        where += ["--storage", str(scratch / f"{study}.log")]
    datasets = [x for d in DATASETS for x in ("--dataset", d)]
    procs = []
    start = time.perf_counter()
    for i in range(workers):
        folder = scratch / study / f"worker{i}"
        folder.mkdir(parents=True)
        worker_env = {**env, "OFFLINE_MBRL_CACHE": str(folder / "cache")}
        log = (folder / "out.log").open("w")
        cmd = _cli("compare", *GRID_ARGS, *datasets, *where, "--out", "reports/grid")
        procs.append(subprocess.Popen(cmd, cwd=folder, env=worker_env, stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    took = time.perf_counter() - start
    if any(codes):
        sys.exit(f"a worker failed (exit {codes}); see {scratch / study}/worker*/out.log")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storage", help="postgresql://... (default: a journal file, one machine)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="offline-mbrl-grid-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MINARI_DATASETS_PATH": str(scratch / "minari")}
    for name in DATASETS:
        subprocess.run(_cli("datasets", "make", name, "--size", "2000"), env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    load = os.getloadavg()[0]
    rows = [(n, drain(n, args.storage, scratch, env)) for n in args.workers]
    cpu = cpu_model()
    storage = "PostgreSQL" if args.storage and args.storage.startswith("postgresql") else "journal file"
    lines = [
        f"12-cell grid (bc, mbpo x {', '.join(DATASETS)} x 3 seeds, 1,000 steps), {storage}, "
        f"{os.cpu_count()} cores ({cpu}), load average {load:.2f} before the first count",
        "",
        "| workers | wall time (s) | speed-up |",
        "| ---: | ---: | ---: |",
    ]
    lines += [f"| {n} | {t:.1f} | {rows[0][1] / t:.2f}x |" for n, t in rows]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
