"""Today's hot loops against an older commit's, measured side by side in one run so the machine's noise
cancels: each measure runs alternately under both checkouts (`benchmarks/hot_loops.py` in a fresh process,
one torch thread), `--pairs` times, and the table gives the medians and their ratio.

    git worktree add /tmp/base 7208652
    python benchmarks/side_by_side.py --baseline /tmp/base --pairs 3 \\
        --out benchmarks/results/side_by_side_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEASURES = [
    "ravl_update",
    "mopo_update",
    "rollout_50k_h5",
    "dynamics_step",
    "mopo_e2e_1000",
    "ravl_e2e_1000",
    "matmul_512",
]


def commit(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def once(checkout: Path, measure: str, repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(HERE / "hot_loops.py"),
        "--only",
        measure,
        "--repeats",
        str(repeats),
        "--rounds",
        "1",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])[measure]["rate"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, required=True, help="a checkout of the older commit")
    p.add_argument("--current", type=Path, default=HERE.parent, help="today's checkout (default: this one)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20, help="calls per measurement (rollouts: a tenth)")
    p.add_argument("--only", action="append", choices=MEASURES)
    p.add_argument("--out", type=Path, required=True, help="the Markdown table (a .json beside it)")
    args = p.parse_args()
    units = {
        "ravl_update": "updates/s",
        "mopo_update": "updates/s",
        "rollout_50k_h5": "transitions/s",
        "dynamics_step": "samples/s",
        "mopo_e2e_1000": "steps/s",
        "ravl_e2e_1000": "steps/s",
        "matmul_512": "GFLOP/s",
    }
    base_id, cur_id = commit(args.baseline), commit(args.current)
    rows, raw = [], {}
    load_before = os.getloadavg()
    started = time.time()
    for measure in args.only or MEASURES:
        base, cur = [], []
        for _ in range(args.pairs):  # alternate, so a slow spell hits both
            base.append(once(args.baseline, measure, args.repeats))
            cur.append(once(args.current, measure, args.repeats))
        raw[measure] = {"baseline": base, "current": cur}
        b, c = statistics.median(base), statistics.median(cur)
        rows.append(f"| {measure} | {units[measure]} | {b:,.4g} | {c:,.4g} | {c / b:.2f}x |")
        print(rows[-1], flush=True)
    load_after = os.getloadavg()
    lines = [
        f"# Hot loops side by side: {base_id} vs {cur_id}",
        "",
        f"CPU, 1 torch thread per process, {args.pairs} alternating pairs per measure, medians; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{time.time() - started:.0f} s. "
        f"`python benchmarks/side_by_side.py --baseline CHECKOUT --pairs {args.pairs}`.",
        "",
        f"| measure | unit | {base_id} | {cur_id} | ratio |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"baseline": base_id, "current": cur_id, "raw": raw}, indent=2) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
