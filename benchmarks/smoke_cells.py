"""Seconds per cell of the `smoke` budget, for every registered algorithm (docs/reports.md's table).

Each algorithm runs one cell as a user runs it: `offline-mbrl compare --algo A --dataset D --budget smoke
--seeds 1` in a scratch directory of its own with an empty artefact cache (so its dynamics fit is
included), one after another on an otherwise idle machine. The dataset is made first (outside the timing)
at the smoke budget's size; MBRCSL runs on its own task, pointmaze-stitch. The budget promises at most 60 s
per cell on a 2-core CPU.

    python benchmarks/smoke_cells.py                           # every algorithm, hopper-medium
    python benchmarks/smoke_cells.py --algos mopo ravl --threads 1 --out benchmarks/results/smoke_cells.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dated import cpu_model, publish

OWN_TASK = {"mbrcsl": "pointmaze-stitch", "percent-bc": None}  # None: the default dataset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algos", nargs="*", help="default: every registered algorithm")
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument(
        "--threads", type=int, default=None, help="--threads of each cell (default: the suite's)"
    )
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()
    from offline_mbrl.algorithms import algorithms

    algos = args.algos or algorithms()
    scratch = Path(tempfile.mkdtemp(prefix="offline-mbrl-smoke-"))
    env = {
        **os.environ,
        "MINARI_DATASETS_PATH": os.environ.get("MINARI_DATASETS_PATH", str(scratch / "minari")),
    }
    cli = [sys.executable, "-m", "offline_mbrl.cli"]
    datasets = {a: OWN_TASK.get(a) or args.dataset for a in algos}
    for name in sorted(set(datasets.values())):
        subprocess.run([*cli, "datasets", "make", name, "--size", "20000", "--if-missing"], env=env,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    rows = []
    load = os.getloadavg()[0]
    for algo in algos:
        folder = scratch / algo
        folder.mkdir()
        cmd = [
            *cli,
            "compare",
            "--algo",
            algo,
            "--dataset",
            datasets[algo],
            "--budget",
            "smoke",
            "--seeds",
            "1",
        ]
        cmd += ["--reps", "200"] + (["--threads", str(args.threads)] if args.threads else [])
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=folder, env={**env, "OFFLINE_MBRL_CACHE": str(folder / "cache")},
                              capture_output=True, text=True)  # fmt: skip
        took = time.perf_counter() - start
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
        rows.append((algo, datasets[algo], took, status))
        print(f"{algo:>14} on {datasets[algo]}: {took:6.1f} s  {status}", flush=True)
    cpu = cpu_model()
    lines = [
        "smoke budget, one cell per algorithm (compare --budget smoke --seeds 1, empty cache), "
        f"{os.cpu_count()} cores ({cpu}), threads {args.threads or 'default'}, "
        f"load average {load:.2f} at the start",
        "",
        "| algorithm | dataset | seconds | within 60 s | status |",
        "| --- | --- | ---: | --- | --- |",
    ]
    lines += [f"| {a} | {d} | {t:.1f} | {'yes' if t <= 60 else 'no'} | {s} |" for a, d, t, s in rows]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
