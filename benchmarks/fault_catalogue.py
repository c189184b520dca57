"""The bad-input and fault catalogue: every case a new user meets, run as that user would, on a scratch root.

    python benchmarks/fault_catalogue.py [--out benchmarks/results/fault_catalogue.md] [--only SUBSTRING]

Each case is one `offline-mbrl` command in a fresh scratch folder (its own Minari root, cache and results;
a small made dataset, a dataset holding NaN, one finished run, a folder and a file of the user's). A case
expecting an error passes when the command exits with status 2 (130 for an interrupt), prints exactly one
line `error: ...` holding the expected words on stderr, no traceback, and leaves every file of the scratch
root as it was (nothing written, nothing removed). A case expecting success passes on exit status 0 and,
where given, the expected words in its output. The table of results is written as Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    expect: str  # words the one-line error (or, for "ok" cases, the output) must hold
    ok: bool = False  # the command must succeed
    env: tuple[tuple[str, str], ...] = ()


BC = ("train", "--algo", "bc", "--dataset", "pendulum-medium-replay", "--steps", "20")
TINY = ("--set", "log_every=10", "--set", "eval_every=10", "--set", "checkpoint_every=10")
MOPO = ("train", "--algo", "mopo", "--dataset", "pendulum-medium-replay", "--steps", "20")


def cases(scratch: Path) -> list[Case]:
    run = str(next((scratch / "results").glob("bc/*/*")))
    return [
        # --- datasets -------------------------------------------------------------------------------
        Case("unknown dataset", ("datasets", "info", "nope-medium"), "nope-medium"),
        Case("misspelt dataset", ("datasets", "info", "hopper-mediun"), "hopper-medium"),
        Case("make: unknown tier", ("datasets", "make", "pendulum-great"), "cannot make 'pendulum-great'"),
        Case(
            "make: size 0", ("datasets", "make", "pendulum-medium", "--size", "0"), "--size must be positive"
        ),
        Case(
            "make: negative size",
            ("datasets", "make", "pendulum-medium", "--size", "-5"),
            "--size must be positive",
        ),
        Case("make: exists", ("datasets", "make", "pendulum-medium-replay"), "already exists"),
        Case(
            "make: size not a number",
            ("datasets", "make", "pendulum-medium", "--size", "ten"),
            "Invalid value for '--size'",
        ),
        Case(
            "import: missing file",
            ("datasets", "import-d4rl", "missing.hdf5", "--name", "hopper-medium-v2"),
            "missing.hdf5",
        ),
        Case(
            "import: not HDF5",
            ("datasets", "import-d4rl", "notes.txt", "--name", "hopper-medium-v2"),
            "notes.txt",
        ),
        Case("import: bad name", ("datasets", "import-d4rl", "notes.txt", "--name", "bogus"), "bogus"),
        Case("unknown family", ("datasets", "families", "nope"), "nope"),
        Case(
            "NaN dataset is shown", ("datasets", "info", "test/pendulum/nan-v0"), "non-finite values", ok=True
        ),
        # --- train: names, types, ranges ----------------------------------------------------------
        Case(
            "unknown algorithm",
            ("train", "--algo", "mopp", "--dataset", "pendulum-medium-replay"),
            "unknown algorithm 'mopp'",
        ),
        Case("train: unknown dataset", ("train", "--algo", "bc", "--dataset", "nope-medium"), "nope-medium"),
        Case("steps 0", (*BC[:5], "--steps", "0"), "steps must be positive"),
        Case("steps negative", (*BC[:5], "--steps", "-1"), "steps must be positive"),
        Case("steps not a number", (*BC[:5], "--steps", "abc"), "Invalid value for '--steps'"),
        Case("unknown --set key", (*MOPO, "--set", "algo.penalty_cof=1"), "algo.penalty_coef"),
        Case("--set without =", (*MOPO, "--set", "algo.horizon"), "algo.horizon"),
        Case("horizon negative", (*MOPO, "--set", "algo.horizon=-3"), "horizon"),
        Case("horizon zero", (*MOPO, "--set", "algo.horizon=0"), "horizon"),
        Case("real_ratio above 1", (*MOPO, "--set", "algo.real_ratio=1.5"), "real_ratio"),
        Case("real_ratio NaN", (*MOPO, "--set", "algo.real_ratio=nan"), "real_ratio"),
        Case("no real rows", (*MOPO, "--set", "algo.real_ratio=0.001"), "real"),
        Case("zero eval episodes", (*BC, "--set", "eval_episodes=0"), "eval_episodes"),
        Case("penalty NaN", (*MOPO, "--set", "algo.penalty_coef=nan"), "penalty_coef"),
        Case("penalty negative", (*MOPO, "--set", "algo.penalty_coef=-1"), "penalty_coef"),
        Case("unknown penalty", (*MOPO, "--set", "algo.penalty=bogus"), "max_aleatoric"),
        Case("int of wrong type", (*MOPO, "--set", "algo.sac.critics=many"), "not a valid int"),
        Case("log_every 0", (*BC, "--set", "log_every=0"), "log_every"),
        Case("eval_every not a multiple", (*BC, "--set", "eval_every=7"), "multiples of log_every"),
        Case("dynamics members 0", (*MOPO, "--set", "dynamics.members=0"), "dynamics"),
        Case("more elites than members", (*MOPO, "--set", "dynamics.elites=9"), "elites"),
        Case("device cuda without CUDA", (*BC, "--device", "cuda"), "cuda"),
        Case("unknown device", (*BC, "--device", "tpu"), "tpu"),
        Case("unknown preset", (*MOPO, "--preset", "fast"), "unknown preset 'fast'"),
        Case("no paper preset for the task", (*MOPO, "--preset", "paper"), "no paper preset"),
        Case("missing config file", (*BC, "--config", "missing.json"), "missing.json"),
        Case("config file not JSON", (*BC, "--config", "notes.txt"), "notes.txt"),
        Case(
            "NaN dataset refused",
            ("train", "--algo", "bc", "--dataset", "test/pendulum/nan-v0", "--steps", "20"),
            "non-finite",
        ),
        Case("results under a file", (*BC, *TINY, "--results", "notes.txt/results"), "cannot"),
        Case(
            "MINARI path is a file",
            ("datasets", "list"),
            "is a file",
            env=(("MINARI_DATASETS_PATH", "notes.txt"),),
        ),
        Case("unknown option", ("train", "--bogus", "1"), "No such option: --bogus"),
        Case("unknown command", ("trian",), "No such command 'trian'"),
        # --- algorithm settings ---------------------------------------------------------------------
        Case(
            "MBRCSL unknown behaviour",
            (
                "train",
                "--algo",
                "mbrcsl",
                "--dataset",
                "pendulum-medium-replay",
                "--set",
                "algo.behaviour.kind=unet",
            ),
            "choose from diffusion, gaussian",
        ),
        Case(
            "MBRCSL quantile 2",
            (
                "train",
                "--algo",
                "mbrcsl",
                "--dataset",
                "pendulum-medium-replay",
                "--set",
                "algo.return_quantile=2",
            ),
            "return_quantile",
        ),
        Case(
            "MOREC threshold outside r_D",
            (
                "train",
                "--algo",
                "morec-mopo",
                "--dataset",
                "pendulum-medium-replay",
                "--set",
                "algo.filter.threshold=5",
            ),
            "threshold",
        ),
        Case("%BC fraction 0", (*BC, "--set", "algo.top_fraction=0"), "top_fraction"),
        Case(
            "RAVL critics 0",
            ("train", "--algo", "ravl", "--dataset", "pendulum-medium-replay", "--set", "algo.sac.critics=0"),
            "critics",
        ),
        Case(
            "COMBO weight NaN",
            (
                "train",
                "--algo",
                "combo",
                "--dataset",
                "pendulum-medium-replay",
                "--set",
                "algo.cql_weight=nan",
            ),
            "cql_weight",
        ),
        # --- dynamics, cache, diagnostics ---------------------------------------------------------
        Case("fit: unknown dataset", ("dynamics", "fit", "--dataset", "nope-medium"), "nope-medium"),
        Case(
            "fit: cuda without CUDA",
            ("dynamics", "fit", "--dataset", "pendulum-medium-replay", "--device", "cuda"),
            "cuda",
        ),
        Case(
            "fit: negative lr",
            ("dynamics", "fit", "--dataset", "pendulum-medium-replay", "--set", "dynamics.lr=-1"),
            "lr",
        ),
        Case(
            "fit: reward keys without --reward",
            ("dynamics", "fit", "--dataset", "pendulum-medium-replay", "--set", "algo.reward.updates=10"),
            "--reward",
        ),
        Case("cache: unknown kind", ("cache", "ls", "--kind", "nope"), "unknown artefact kind 'nope'"),
        Case(
            "cache clear: unknown kind", ("cache", "clear", "--kind", "nope"), "unknown artefact kind 'nope'"
        ),
        Case("diagnose: unknown dataset", ("diagnose", "--dataset", "nope-medium"), "nope-medium"),
        Case(
            "diagnose: not a run",
            ("diagnose", "--dataset", "pendulum-medium-replay", "--run", "user-folder"),
            "user-folder",
        ),
        # --- reports ---------------------------------------------------------------------------------
        Case("report: no results", ("report", "user-folder", "--out", "reports/r"), "no finished run"),
        Case("report: --out .", ("report", "results", "--out", "."), "--out"),
        Case(
            "report: --out a user's folder",
            ("report", "results", "--out", "user-folder"),
            "not an offline-mbrl report",
        ),
        Case("report: --out a file", ("report", "results", "--out", "notes.txt"), "a file"),
        Case(
            "report: unknown algorithm",
            ("report", "results", "--algo", "nope", "--out", "reports/r"),
            "no results for algorithm",
        ),
        Case(
            "evaluate: not a run", ("evaluate", "user-folder", "--family", "pendulum-physics"), "user-folder"
        ),
        Case("evaluate: unknown family", ("evaluate", run, "--family", "nope"), "nope"),
        Case(
            "compare: unknown budget",
            ("compare", "--algo", "bc", "--dataset", "pendulum-medium-replay", "--budget", "huge"),
            "unknown budget 'huge'",
        ),
        Case(
            "compare: zero seeds",
            ("compare", "--algo", "bc", "--dataset", "pendulum-medium-replay", "--seeds", "0"),
            "--seeds",
        ),
        Case("reproduce: unknown table", ("reproduce", "nope-table"), "nope-table"),
        # --- sweeps ------------------------------------------------------------------------------------
        Case(
            "sweep: unknown dataset", ("sweep", "--algo", "mbpo", "--dataset", "nope-medium"), "nope-medium"
        ),
        Case(
            "sweep: unknown space",
            ("sweep", "--algo", "mbpo", "--dataset", "pendulum-medium-replay", "--space", "nope"),
            "no search space 'nope'",
        ),
        Case(
            "sweep: unknown budget",
            ("sweep", "--algo", "mbpo", "--dataset", "pendulum-medium-replay", "--budget", "huge"),
            "unknown --budget 'huge'",
        ),
        Case(
            "sweep: zero workers",
            ("sweep", "--algo", "mbpo", "--dataset", "pendulum-medium-replay", "--workers", "0"),
            "--workers",
        ),
        Case(
            "sweep: cuda without CUDA",
            ("sweep", "--algo", "mbpo", "--dataset", "pendulum-medium-replay", "--device", "cuda"),
            "cuda",
        ),
        Case(
            "sweep: unreachable server",
            (
                "sweep",
                "--algo",
                "mbpo",
                "--dataset",
                "pendulum-medium-replay",
                "--storage",
                "postgresql://user@127.0.0.1:1/x",
            ),
            "127.0.0.1",
        ),
        Case("sweep show: unknown study", ("sweep", "show", "nope-study"), "nope-study"),
        Case("sweep report: unknown study", ("sweep", "report", "nope-study"), "nope-study"),
        Case("threads 0", (*BC, "--threads", "0"), "--threads must be at least 1"),
        Case("threads not a number", (*BC, "--threads", "many"), "Invalid value for '--threads'"),
    ]


def _tree(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its content (what a failed command must leave alone)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(".lock"):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return out


def _prepare(scratch: Path, env: dict[str, str]) -> None:
    """A made dataset, a dataset with NaN, one finished BC run, a user's folder and file."""
    cli = [sys.executable, "-m", "offline_mbrl.cli"]
    subprocess.run(
        [*cli, "datasets", "make", "pendulum-medium-replay"],
        env=env,
        cwd=scratch,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*cli, *BC, *TINY, "--set", "eval_episodes=1", "--set", "final_eval_episodes=1"],
        env=env,
        cwd=scratch,
        check=True,
        capture_output=True,
    )
    code = (
        "import numpy as np, minari\n"
        "from minari.data_collector import EpisodeBuffer\n"
        "rng = np.random.default_rng(0)\n"
        "obs = rng.normal(size=(31, 3)).astype(np.float32); obs[5, 0] = np.nan\n"
        "act = rng.uniform(-1, 1, (30, 1)).astype(np.float32)\n"
        "end = np.r_[np.zeros(29, bool), True]\n"
        "ep = EpisodeBuffer(id=0, observations=obs, actions=act, rewards=rng.normal(size=30),\n"
        "    terminations=np.zeros(30, bool), truncations=end, infos={})\n"
        "minari.create_dataset_from_buffers(dataset_id='test/pendulum/nan-v0', buffer=[ep],\n"
        "    env='Pendulum-v1', algorithm_name='x')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=scratch, check=True, capture_output=True)
    (scratch / "user-folder").mkdir()
    (scratch / "user-folder" / "mine.txt").write_text("the user's own file\n")
    (scratch / "notes.txt").write_text("not a dataset, not JSON\n")


def run_case(case: Case, scratch: Path, env: dict[str, str]) -> dict:
    before = _tree(scratch)
    case_env = {**env, **{k: str(scratch / v) for k, v in case.env}}
    started = time.time()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "offline_mbrl.cli", *case.args],
            env=case_env, cwd=scratch, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        code, out, err = done.returncode, done.stdout, done.stderr.strip()
    except subprocess.TimeoutExpired:
        code, out, err = None, "", "(ran past 300 s)"
    changed = sorted(set(before.items()) ^ set(_tree(scratch).items()))
    lines = err.splitlines()
    if case.ok:
        passed = code == 0 and case.expect in out + err
        why = "" if passed else f"exit {code}"
    else:
        problems = []
        if code != 2:
            problems.append(f"exit {code}")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"{len(lines)} stderr lines")
        if "Traceback" in err:
            problems.append("traceback")
        if case.expect not in err:
            problems.append(f"no '{case.expect}'")
        if changed:
            problems.append(f"files changed: {', '.join(sorted({c[0] for c in changed}))[:200]}")
        passed, why = not problems, "; ".join(problems)
    return {
        "case": case.name,
        "command": "offline-mbrl " + " ".join(case.args).replace(str(scratch) + "/", ""),
        "exit": code,
        "message": (lines[0] if lines else "")[:240],
        "passed": passed,
        "why": why,
        "seconds": round(time.time() - started, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fault_catalogue.md")
    p.add_argument("--only", default=None, help="run the cases whose name holds this")
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fault-catalogue-"))
    env = {
        **os.environ,
        "MINARI_DATASETS_PATH": str(scratch / "minari"),
        "OFFLINE_MBRL_CACHE": str(scratch / "cache"),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # a machine without CUDA, also where there is a GPU
    }
    _prepare(scratch, env)
    results = []
    for case in cases(scratch):
        if args.only and args.only not in case.name:
            continue
        r = run_case(case, scratch, env)
        results.append(r)
        print(f"{'pass' if r['passed'] else 'FAIL'}  {r['case']}: {r['message'] or r['why']}", flush=True)
    passed = sum(r["passed"] for r in results)
    lines = [
        "# Fault catalogue",
        "",
        f"`python benchmarks/fault_catalogue.py`: {passed} of {len(results)} cases pass "
        f"({time.strftime('%Y-%m-%d %H:%M')}, code {json.dumps(_version())}).",
        "",
        "| case | command | exit | stderr (first line) | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        message = r["message"].replace("|", "\\|")
        verdict = "pass" if r["passed"] else f"FAIL: {r['why']}"
        lines.append(f"| {r['case']} | `{r['command']}` | {r['exit']} | {message} | {verdict} |")
    if not args.only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"{passed} of {len(results)} pass; table: {args.out}")
    sys.exit(0 if passed == len(results) else 1)


def _version() -> str:
    from offline_mbrl.core.paths import code_version

    return code_version()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
