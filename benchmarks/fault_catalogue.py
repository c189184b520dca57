"""The bad-input and fault catalogue: every case a new user meets, run as that user would, on a scratch root.

    python benchmarks/fault_catalogue.py [--out benchmarks/results/fault_catalogue.md] [--only NAME|AREA]
        [--code OTHER_CHECKOUT] [--json FILE] [--generated]

Each case is one `offline-mbrl` command in a scratch folder (its own Minari root, cache and results; a
small made dataset, a dataset holding NaN, one finished run, a folder and a file of the user's; each area
module may prepare more). The cases are this file's own (area "catalogue") and those of
benchmarks/fault_cases/{runs,data,sweep}.py; a case that damages a file, races or interrupts runs in a
private copy of the root (benchmarks/fault_cases/__init__.py says how a case is written and judged).

Every run ends in one outcome: "one-line error" (exit 2, exactly one `error: ...` line holding the expected
words, no traceback, every file of the root as it was), "correct" (a case expected to succeed, or an
interrupt that printed its one `interrupted:` line), or a failure: "traceback", "silent" (exit 0, or files
written, where an error was due), "hang" (past its timeout), "poisoned" or "lost" (the case's after-check
found later commands broken, or a user's data gone), "other" (an error of the wrong form). The table and the
counts per outcome are written as Markdown. `--code DIR` runs another checkout's package (a baseline: the
same cases, before a fix). `--generated` also runs the Hypothesis suites (tests/test_generated_*.py) and
reports their counts of generated cases.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fault_cases import OUTCOMES, Case

ROOT = Path(__file__).resolve().parents[1]
AREAS = ("runs", "data", "sweep")  # benchmarks/fault_cases/<area>.py, each with cases(scratch)


BC = ("train", "--algo", "bc", "--dataset", "pendulum-medium-replay", "--steps", "20")
TINY = ("--set", "log_every=10", "--set", "eval_every=10", "--set", "checkpoint_every=10")
MOPO = ("train", "--algo", "mopo", "--dataset", "pendulum-medium-replay", "--steps", "20")


def cases(scratch: Path) -> list[Case]:
    run = str(next(p for p in (scratch / "results").glob("bc/*/*") if p.is_dir()))
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
        Case("steps 0", (*BC[:5], "--steps", "0"), "steps: 0 is outside its allowed range"),
        Case("steps negative", (*BC[:5], "--steps", "-1"), "steps: -1 is outside"),
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


READ_CACHES = ("cache/datasets/", "cache/hashes/")  # derived from a dataset, rebuilt by any load of it


def _tree(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its content (what a failed command must leave alone), but for
    lock files and the datasets' read caches (a private copy of the root has the same datasets at another
    path, whose flattened arrays and content hashes any command loading them writes again)."""
    out = {}
    for path in sorted(root.rglob("*")):
        shown = str(path.relative_to(root))
        if path.is_file() and not path.name.endswith(".lock") and not shown.startswith(READ_CACHES):
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


def _copy(scratch: Path) -> Path:
    """A private copy of the scratch root for a case that changes it (links kept as links)."""
    private = Path(tempfile.mkdtemp(prefix="case-", dir=scratch.parent))
    shutil.copytree(scratch, private, symlinks=True, dirs_exist_ok=True)
    return private


def _start(case: Case, root: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "offline_mbrl.cli", *case.args],
        env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal starts it
    )  # fmt: skip


def _finish(proc: subprocess.Popen, case: Case, started: float) -> tuple[int | None, str, str]:
    if case.interrupt:
        time.sleep(max(0.0, started + case.interrupt - time.time()))
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=max(1.0, started + case.timeout - time.time()))
        return proc.returncode, out, err.strip()
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, (err.strip() + f"\n(ran past {case.timeout} s)").strip()


def _judge(case: Case, code: int | None, out: str, err: str, changed: list[str]) -> tuple[str, str]:
    """The outcome of one start of a case, and what went wrong (empty when nothing did)."""
    lines = err.splitlines()
    if code is None:
        return "hang", f"ran past {case.timeout} s"
    if "Traceback" in err or "internal error" in err:
        return "traceback", (lines[-1] if lines else "")[:200]
    if case.interrupt:
        said = [ln for ln in lines if ln.startswith("interrupted:")]
        if code in (130, -signal.SIGINT) and len(said) == 1 and case.expect in said[0]:
            return "correct", ""
        return ("silent" if not said else "other"), f"exit {code}, {len(said)} interrupted: line(s)"
    if case.ok:
        if code == 0 and (case.expect in out + err or case.concurrent > 1):  # a race's winner says its own
            return "correct", ""
        if code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and case.concurrent > 1:
            return ("one-line error", "") if case.expect in err else ("other", f"no '{case.expect}'")
        return "other", f"exit {code}"
    if code == 0:
        return "silent", "exit 0 where an error was due"
    problems = []
    if code != 2:
        problems.append(f"exit {code}")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"{len(lines)} stderr lines")
    if case.expect not in err:
        problems.append(f"no '{case.expect}'")
    if changed:
        return "silent", f"files changed: {', '.join(changed)[:200]}"
    return ("other", "; ".join(problems)) if problems else ("one-line error", "")


def run_case(case: Case, scratch: Path, env: dict[str, str]) -> dict:
    private = bool(case.before or case.after or case.concurrent > 1 or case.interrupt)
    root = _copy(scratch) if private else scratch
    case_env = {**env, **{k: str(root / v) for k, v in case.env}}
    if private:  # the copy's own Minari root, cache and results
        case_env["MINARI_DATASETS_PATH"] = str(root / "minari")
        case_env["OFFLINE_MBRL_CACHE"] = str(root / "cache")
    harmed = ""
    try:
        if case.before:
            subprocess.run([sys.executable, "-c", case.before], env=case_env, cwd=root, check=True,
                           capture_output=True, timeout=300)  # fmt: skip
        before = _tree(root)
        started = time.time()
        procs = [_start(case, root, case_env) for _ in range(case.concurrent)]
        ends = [_finish(p, case, started) for p in procs]
        changed = sorted({c[0] for c in set(before.items()) ^ set(_tree(root).items())})
        judged = [_judge(case, code, out, err, changed) for code, out, err in ends]
        if case.concurrent > 1 and not any(code == 0 for code, _, _ in ends):
            judged.append(("other", "no start succeeded"))
        if case.after:
            check = subprocess.run([sys.executable, "-c", case.after], env=case_env, cwd=root,
                                   capture_output=True, text=True, timeout=300)  # fmt: skip
            if check.returncode != 0:
                harmed = (check.stderr.strip().splitlines() or ["after-check failed"])[-1][:200]
    finally:
        if private:
            shutil.rmtree(root, ignore_errors=True)
    order = {o: i for i, o in enumerate(OUTCOMES)}
    outcome, why = max(judged, key=lambda j: order[j[0]])  # the worst start decides
    if harmed:
        outcome, why = case.harm, harmed
    code, out, err = ends[0]
    lines = err.splitlines()
    shown = next((ln for ln in lines if ln.startswith(("error:", "interrupted:"))), lines[0] if lines else "")
    return {
        "case": case.name,
        "area": case.area,
        "command": "offline-mbrl " + " ".join(case.args).replace(str(root) + "/", ""),
        "exit": code,
        "message": (shown or out.strip().splitlines()[-1:] and out.strip().splitlines()[-1] or "")[:240],
        "outcome": outcome,
        "passed": outcome in ("one-line error", "correct"),
        "why": why,
        "stderr": err[-2000:],
        "seconds": round(time.time() - started, 1),
    }


def all_cases(scratch: Path, env: dict[str, str]) -> list[Case]:
    """The catalogue's own cases, then each area module's (benchmarks/fault_cases/*.py), prepared."""
    found = list(cases(scratch))
    for module in AREAS:
        try:
            mod = importlib.import_module(f"fault_cases.{module}")
        except ModuleNotFoundError:
            continue
        if hasattr(mod, "prepare"):
            mod.prepare(scratch, env)
        found += [dataclasses.replace(c, area=module) for c in mod.cases(scratch)]
    return found


def generated_counts(examples: int | None) -> tuple[list[str], bool]:
    """Run the Hypothesis suites (tests/test_generated_*.py) with statistics: Markdown lines with each
    test's generated cases (passing, failing, invalid) and whether all passed."""
    import re

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if examples:
        env["OFFLINE_MBRL_HYPOTHESIS_EXAMPLES"] = str(examples)
    tests = sorted(str(p) for p in (ROOT / "tests").glob("test_generated_*.py"))
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"]
    done = subprocess.run([*pytest, *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    rows, test = [], None
    counts: dict[str, list[int]] = {}
    for line in done.stdout.splitlines():
        if line.startswith("tests/") and line.rstrip().endswith(":"):
            test = line.strip().rstrip(":").split("::")[-1]
        found = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", line)
        if found and test:
            total = counts.setdefault(test, [0, 0, 0])
            for i in range(3):
                total[i] += int(found.group(i + 1))
    for name, (ok, bad, invalid) in counts.items():
        rows.append(f"| {name} | {ok} | {bad} | {invalid} |")
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    lines = [
        "## Generated cases (Hypothesis)",
        "",
        f"`pytest --hypothesis-show-statistics tests/test_generated_*.py`"
        f" ({examples or 'the CI profile'} examples per test): {summary}",
        "",
        "| test | passing | failing | invalid |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]
    return lines, done.returncode == 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fault_catalogue.md")
    p.add_argument(
        "--only",
        default=None,
        help="run the cases whose name holds this, or of this area (comma-separated: several)",
    )
    p.add_argument("--code", type=Path, default=None, help="run another checkout's offline_mbrl (a baseline)")
    p.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    p.add_argument("--generated", action="store_true", help="also run the Hypothesis suites, with counts")
    p.add_argument("--examples", type=int, default=None, help="examples per generated test (default: CI's)")
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fault-catalogue-")) / "root"
    scratch.mkdir()
    env = {
        **os.environ,
        "MINARI_DATASETS_PATH": str(scratch / "minari"),
        "OFFLINE_MBRL_CACHE": str(scratch / "cache"),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # a machine without CUDA, also where there is a GPU
    }
    if args.code is not None:
        env["PYTHONPATH"] = str(args.code.resolve())
    _prepare(scratch, env)
    results = []
    for case in all_cases(scratch, env):
        if args.only and not any(w in case.name or w == case.area for w in args.only.split(",")):
            continue
        r = run_case(case, scratch, env)
        results.append(r)
        print(f"{r['outcome']:>14}  [{r['area']}] {r['case']}: {r['message'] or r['why']}", flush=True)
    passed = sum(r["passed"] for r in results)
    counts = {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES}
    lines = [
        "# Fault catalogue",
        "",
        f"`python benchmarks/fault_catalogue.py`: {passed} of {len(results)} cases pass "
        f"({time.strftime('%Y-%m-%d %H:%M')}, code {json.dumps(_version(args.code))}).",
        "",
        "Outcomes: " + ", ".join(f"{o} {n}" for o, n in counts.items()) + ".",
        "",
        "| area | case | command | exit | stderr (first line) | outcome |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        message = r["message"].replace("|", "\\|")
        verdict = r["outcome"] + (f": {r['why']}" if r["why"] and not r["passed"] else "")
        command = r["command"].replace("|", "\\|")
        lines.append(f"| {r['area']} | {r['case']} | `{command}` | {r['exit']} | {message} | {verdict} |")
    print("outcomes: " + ", ".join(f"{o} {n}" for o, n in counts.items()))
    generated_ok = True
    if args.generated:
        extra, generated_ok = generated_counts(args.examples)
        lines += ["", *extra]
        print("\n".join(extra))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"{passed} of {len(results)} pass; table: {args.out}")
    shutil.rmtree(scratch.parent, ignore_errors=True)
    sys.exit(0 if passed == len(results) and generated_ok else 1)


def _version(code: Path | None) -> str:
    where = ["-C", str(code)] if code is not None else ["-C", str(ROOT)]
    done = subprocess.run(["git", *where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
