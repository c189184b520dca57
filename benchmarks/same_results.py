"""Same results before and after a change: fixed-seed runs of every algorithm from two revisions, compared.

Each revision is checked out in its own `git worktree` and run through its own CLI (`python -m
offline_mbrl.cli train`, with that tree first on PYTHONPATH) on pendulum-medium-replay with the same seed
and settings, one after the other, each with an empty artefact cache of its own (so each fits its own
dynamics model). The final.json scores and returns and every metrics.jsonl row (times aside) must be
equal; the table goes to benchmarks/results/same_results_<before>_<after>.md.

    python benchmarks/same_results.py --before 7208652              # against the working tree's HEAD
    python benchmarks/same_results.py --before 7208652 --after HEAD --steps 3000
    python benchmarks/same_results.py --before 3ae18c4 --algos mobile combo --keep /tmp/same

--keep DIR keeps each revision's runs under DIR and reuses those already finished there, so the "before"
side of a refactor is trained once. Each algorithm adds its own small settings (ALGO_SETTINGS) to the
shared ones, on both sides alike.

The dataset is made (from the committed behaviour policies) into a scratch Minari root if absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = "pendulum-medium-replay"
SETTINGS = [
    "dynamics.max_epochs=5",
    "eval_every=1000",
    "log_every=100",
    "checkpoint_every=1000",
    "eval_episodes=2",
    "final_eval_episodes=5",
]
_NETS = ["algo.sac.actor_hidden=64,64", "algo.sac.critic_hidden=64,64", "algo.rollout_batch=500"]
# (the settings of each algorithm below come after the shared ones: a later --set of a key wins)
_MOREC = [
    "algo.rollout_batch=200",
    "algo.horizon=10",
    "algo.reward.updates=200",
    "algo.reward.max_snapshots=10",
    "algo.reward.snapshot_every=20",
    "algo.reward.holdout=200",
    "algo.reward.stored_every=2",
    "algo.filter.snapshot_stride=4",
]
ALGO_SETTINGS: dict[str, list[str]] = {
    "mbpo": ["algo.rollout_batch=2000"],
    "mopo": ["algo.rollout_batch=2000"],
    "ravl": ["algo.rollout_batch=2000"],
    # Pendulum's rewards are all negative: MOBILE's clamp of targets at 0 would zero them (docs/fidelity.md)
    "mobile": [*_NETS, "algo.sac.target_min=none"],
    "combo": _NETS,
    "morec-mopo": _MOREC,
    "morec-mobile": [*_MOREC, *_NETS[:2], "algo.sac.target_min=none"],
    "mbrcsl": [
        "algo.behaviour.hidden=64,64",
        "algo.behaviour.steps=300",
        "algo.rollout_batch=50",
        "algo.keep=10",
        "algo.max_batches=5",
        "algo.return_quantile=0",
        "algo.hidden=64,64",
        "algo.epochs=20",
        "algo.find_best_start=0",
    ],
    "bc": ["algo.hidden=64,64"],
}


def sh(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> str:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def train_all(
    tree: Path, scratch: Path, tag: str, seed: int, steps: int, algos: list[str]
) -> dict[str, Path]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "MINARI_DATASETS_PATH": str(scratch / "minari"),
        "OFFLINE_MBRL_CACHE": str(scratch / f"cache-{tag}"),
    }
    cli = [sys.executable, "-m", "offline_mbrl.cli"]
    sh([*cli, "datasets", "make", DATASET, "--if-missing"], env, cwd=tree)
    out = {}
    for algo in algos:
        results = scratch / f"results-{tag}"
        done = sorted((results / algo / DATASET).glob("*/final.json"), key=lambda p: p.stat().st_mtime)
        if done:
            out[algo] = done[-1].parent
            print(f"{tag} {algo}: {out[algo]} (kept)", flush=True)
            continue
        args = [
            *cli,
            "train",
            "--algo",
            algo,
            "--dataset",
            DATASET,
            "--seed",
            str(seed),
            "--steps",
            str(steps),
            # one thread on both sides: the default follows the machine's idle cores at start, and a
            # matrix product's rounding depends on its thread count
            "--threads",
            "1",
        ]
        settings = [*SETTINGS, *ALGO_SETTINGS[algo]]
        sh([*args, *(x for s in settings for x in ("--set", s)), "--results", str(results)], env, cwd=tree)
        # the run just finished (an earlier failed attempt with other settings may have left a folder)
        finished = (results / algo / DATASET).glob("*/final.json")
        out[algo] = max(finished, key=lambda p: p.stat().st_mtime).parent
        run_dir = out[algo]
        print(f"{tag} {algo}: {run_dir}", flush=True)
    return out


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    # times are measurements, not results: the wall clock and a stage's seconds (MBRCSL's rollouts/seconds)
    timed = ("wall_time", "seconds")
    return [{k: v for k, v in json.loads(x).items() if not k.endswith(timed)} for x in lines]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="git revision before the change")
    parser.add_argument("--after", default="HEAD", help="git revision after the change (default HEAD)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--algos", nargs="+", default=list(ALGO_SETTINGS), choices=list(ALGO_SETTINGS))
    parser.add_argument("--keep", type=Path, help="keep (and reuse) each revision's runs under this folder")
    args = parser.parse_args()
    revs = {
        tag: sh(["git", "rev-parse", "--short", rev]).strip()
        for tag, rev in (("before", args.before), ("after", args.after))
    }
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="same-results-"))
    try:
        scratch.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        sys.exit(f"error: cannot create --keep folder {scratch} ({exc.strerror}): choose a writable one")
    runs = {}
    for tag, rev in revs.items():
        tree = scratch / f"tree-{tag}-{rev}"
        sh(["git", "worktree", "add", "--detach", str(tree), rev])
        try:
            runs[tag] = train_all(tree, scratch, rev, args.seed, args.steps, args.algos)
        finally:
            sh(["git", "worktree", "remove", "--force", str(tree)])
    lines = [
        f"# Same results: {revs['before']} vs {revs['after']}",
        "",
        f"`python benchmarks/same_results.py --before {args.before} --after {args.after} "
        f"--steps {args.steps} --seed {args.seed}`: {DATASET}, seed {args.seed}, {args.steps} steps, "
        f"`--set` {' '.join(SETTINGS)} and each algorithm's ALGO_SETTINGS.",
        "",
        "| algo | score before | score after | returns equal | metrics rows equal (of) | run folder equal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    same = True
    for algo in args.algos:
        a, b = runs["before"][algo], runs["after"][algo]
        fa, fb = (json.loads((d / "final.json").read_text()) for d in (a, b))
        ra, rb = rows(a), rows(b)
        equal_rows = sum(x == y for x, y in zip(ra, rb, strict=False))
        ok = fa["returns"] == fb["returns"] and ra == rb
        same &= ok
        lines.append(
            f"| {algo} | {fa['normalized_score']:.4f} | {fb['normalized_score']:.4f} | "
            f"{fa['returns'] == fb['returns']} | {equal_rows} ({len(ra)} vs {len(rb)}) | {a.name == b.name} |"
        )
    lines += ["", "Equal." if same else "NOT equal."]
    out = ROOT / "benchmarks" / "results" / f"same_results_{revs['before']}_{revs['after']}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {out}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
