"""Minutes per run of the `small` budget, for every registered algorithm (docs/reports.md's table).

The budget promises at most 20 minutes per run on a 2-core CPU. A whole small run of every algorithm is
hours of measuring, so each algorithm runs a measured prefix of its run and the rest is projected from
what the prefix measured, by parts:

- the dynamics fit at the budget's settings, timed once (`dynamics fit`; every model-based run of one seed
  shares it, and a run that fits its own pays it once);
- the prefix: `compare --algo A --dataset D --budget small --seeds 1 --steps P` (P = `--fraction` of the
  algorithm's small steps, periodic evaluations moved past its end), with the dynamics cached, timed as a
  user runs it (dataset load, MOREC's reward fit, training, the final evaluation of 10 episodes, report);
- its training rate: gradient steps per second between the run's first and last metrics rows (rollouts
  and checkpoints included);
- one final evaluation's seconds (final.json's wall time less the last row's), from which the budget's 10
  periodic evaluations (5 episodes each, half a final one) are projected.

projected = fit + prefix + (S - P) / rate + 10 x eval / 2. MBRCSL's run is not a number of SAC steps (a
behaviour fit, rollouts, then an output policy trained to patience): its whole small cell is timed instead.

    python benchmarks/small_cells.py --out benchmarks/results/small_cells.md
    python benchmarks/small_cells.py --algos mopo ravl --fraction 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dated import cpu_model, publish

BUDGET_S = 20 * 60.0
WHOLE = {"mbrcsl": "pointmaze-stitch"}  # algorithm -> its own task; its whole small cell is timed
DYNAMICS = ["--set", "dynamics.max_epochs=10", "--set", "dynamics.steps_per_epoch=400"]


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def run_folder(folder: Path, algo: str) -> Path:
    (final,) = (folder / "results" / algo).rglob("final.json")
    return final.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algos", nargs="*", help="default: every registered algorithm")
    parser.add_argument("--dataset", default="hopper-medium-replay")
    parser.add_argument("--fraction", type=float, default=0.15, help="the prefix's share of the small steps")
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()
    from offline_mbrl.algorithms import algorithms, get_spec
    from offline_mbrl.experiments.cells import BUDGETS, cell_config

    algos = args.algos or algorithms()
    scratch = Path(tempfile.mkdtemp(prefix="offline-mbrl-small-"))
    env = {**os.environ, "OFFLINE_MBRL_CACHE": str(scratch / "cache")}
    cli = [sys.executable, "-m", "offline_mbrl.cli"]
    for name in sorted({args.dataset, *(WHOLE[a] for a in algos if a in WHOLE)}):  # outside the timing
        subprocess.run([*cli, "datasets", "make", name, "--if-missing"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    load = os.getloadavg()[0]
    fit_s, done = timed([*cli, "dynamics", "fit", "--dataset", args.dataset, *DYNAMICS], scratch, env)
    if done.returncode:
        sys.exit(f"dynamics fit failed: {done.stderr.strip()[-300:]}")
    print(f"dynamics fit on {args.dataset}: {fit_s:.1f} s", flush=True)
    rows = []
    for algo in algos:
        folder = scratch / algo
        folder.mkdir()
        dataset = WHOLE.get(algo, args.dataset)
        steps = cell_config(algo, dataset, 0, BUDGETS["small"], [], "cpu", None).steps
        cmd = [*cli, "compare", "--algo", algo, "--dataset", dataset, "--budget", "small", "--seeds", "1"]
        cmd += ["--reps", "200"]
        if algo in WHOLE:
            took, done = timed(cmd, folder, {**env, "OFFLINE_MBRL_CACHE": str(folder / "cache")})
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
            rows.append((algo, dataset, steps, "whole", took, None, None, took, None, status))
            print(f"{algo:>14}: whole cell {took:.1f} s {status}", flush=True)
            continue
        prefix = max(1000, int(steps * args.fraction) // 100 * 100)
        cmd += ["--steps", str(prefix), "--set", f"eval_every={100 * steps}"]
        took, done = timed(cmd, folder, env)
        if done.returncode:
            status = f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
            rows.append((algo, dataset, steps, prefix, took, None, None, None, None, status))
            print(f"{algo:>14}: {status}", flush=True)
            continue
        run = run_folder(folder, algo)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        main_rows = [r for r in metrics if "phase" not in r and "wall_time" in r]
        first, last = main_rows[0], main_rows[-1]
        rate = (last["step"] - first["step"]) / (last["wall_time"] - first["wall_time"])
        final = json.loads((run / "final.json").read_text())
        eval_s = final["wall_time"] - last["wall_time"]
        fit = fit_s if get_spec(algo).uses_dynamics else 0.0
        projected = fit + took + (steps - prefix) / rate + 10 * eval_s / 2
        room = BUDGET_S - fit - took - 10 * eval_s / 2
        most = prefix + max(room, 0.0) * rate
        rows.append((algo, dataset, steps, prefix, took, rate, eval_s, projected, most, "ok"))
        print(
            f"{algo:>14}: prefix {prefix} steps in {took:.1f} s, {rate:.1f} steps/s, eval {eval_s:.1f} s, "
            f"projected {projected / 60:.1f} min for {steps} steps (at most {most:,.0f} in 20 min)",
            flush=True,
        )
    lines = [
        f"small budget, one run per algorithm on {args.dataset} (prefix {args.fraction:.0%} of its steps, "
        f"the rest projected; the dynamics fit timed once: {fit_s:.1f} s), {os.cpu_count()} cores "
        f"({cpu_model()}), threads default, load average {load:.2f} at the start",
        "",
        "| algorithm | dataset | small steps | prefix steps | prefix s | steps/s | final eval s | projected "
        "min | within 20 min | most steps in 20 min | status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for algo, dataset, steps, prefix, took, rate, eval_s, projected, most, status in rows:
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        within = "" if projected is None else ("yes" if projected <= BUDGET_S else "no")
        lines.append(
            f"| {algo} | {dataset} | {steps:,} | {prefix if isinstance(prefix, str) else f'{prefix:,}'} | "
            f"{took:.1f} | {fmt(rate, '.1f')} | {fmt(eval_s, '.1f')} | "
            f"{fmt(None if projected is None else projected / 60, '.1f')} | {within} | {fmt(most, ',.0f')} | "
            f"{status} |"
        )
    publish(lines, args.out)


if __name__ == "__main__":
    main()
