"""Cases of run folders, config values, sizes, races and interrupts (issue 26's found classes).

The scratch root holds one finished BC run (`PREPARED`, `fault_catalogue._prepare`); the cases that damage
one of its files run in a private copy, and the commands name the run by its path relative to the root.
"""

from __future__ import annotations

from pathlib import Path

from fault_cases import Case

DS = "pendulum-medium-replay"
BC = ("train", "--algo", "bc", "--dataset", DS, "--steps", "20")
MOPO = ("train", "--algo", "mopo", "--dataset", DS, "--steps", "20")
TINY = ("--set", "log_every=10", "--set", "eval_every=10", "--set", "checkpoint_every=10")
# the prepared run's own command: rerunning it finds its folder
PREPARED = (*BC, *TINY, "--set", "eval_episodes=1", "--set", "final_eval_episodes=1")
# the run folder of the prepared run, relative to the scratch root (found by the code below)
RUN_GLOB = "results/bc/*/*"


def _damage(file: str, how: str) -> str:
    """Python that damages FILE of the prepared run: truncate it to half, fill it with garbage of its own
    size, empty it, write a JSON list where an object is, cut metrics.jsonl's last line in half."""
    return (
        "import glob, os, pathlib\n"
        f"run = pathlib.Path(sorted(glob.glob({RUN_GLOB!r}))[0])\n"
        f"p = run / {file!r}\n"
        "data = p.read_bytes()\n"
        f"how = {how!r}\n"
        "if how == 'truncated': p.write_bytes(data[: len(data) // 2])\n"
        "if how == 'garbage': p.write_bytes(os.urandom(len(data)))\n"
        "if how == 'empty': p.write_bytes(b'')\n"
        "if how == 'list': p.write_text('[1, 2, 3]')\n"
        "if how == 'last line': p.write_bytes(data[: len(data) - len(data.splitlines()[-1]) // 2 - 1])\n"
    )


def _unfinish(checkpoint: str) -> str:
    """Python that turns the prepared run into an unfinished one with a damaged checkpoint."""
    return (
        "import glob, os, pathlib\n"
        f"run = pathlib.Path(sorted(glob.glob({RUN_GLOB!r}))[0])\n"
        "(run / 'final.json').unlink(); (run / 'policy.pt').unlink()\n"
        f"(run / 'checkpoint.pt').write_bytes({checkpoint!r}.encode())\n"
    )


# after two identical trains: every metrics row once (no step written twice)
NO_DUPLICATE_ROWS = (
    "import glob, json, sys\n"
    "for m in glob.glob('results/bc/*/*/metrics.jsonl'):\n"
    "    steps = [json.loads(l)['step'] for l in open(m)]\n"
    "    if len(steps) != len(set(steps)): sys.exit(f'{m}: rows written twice')\n"
)
# after a command given a damaged run: the files it did not damage are still there
RUN_INTACT = (
    "import glob, sys\n"
    f"run = sorted(glob.glob({RUN_GLOB!r}))[0]\n"
    "import pathlib; names = {p.name for p in pathlib.Path(run).iterdir()}\n"
    "missing = {'config.json', 'metrics.jsonl'} - names\n"
    "if missing: sys.exit(f'{run}: {missing} removed')\n"
)


FIT = ("dynamics", "fit", "--dataset", DS, "--set", "dynamics.max_epochs=2", "--set", "dynamics.hidden=32,32",
       "--set", "dynamics.weight_decay=0,0,0")  # fmt: skip


def prepare(scratch: Path, env: dict[str, str]) -> None:
    """A small cached dynamics ensemble (the artefact-cache cases damage it)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "offline_mbrl.cli", *FIT], env=env, cwd=scratch, check=True,
                   capture_output=True)  # fmt: skip


def _damage_cache(how: str) -> str:
    """Python that damages the largest file of the cached dynamics entry: cut it in half, or garbage."""
    return (
        "import os, pathlib\n"
        "files = [p for p in pathlib.Path('cache', 'dynamics').glob('*/*.pt')]\n"
        "p = max(files, key=lambda f: f.stat().st_size)\n"
        "data = p.read_bytes()\n"
        f"p.write_bytes(data[: len(data) // 2] if {how!r} == 'truncated' else os.urandom(len(data)))\n"
    )


def cases(scratch: Path) -> list[Case]:
    run = str(next(p for p in (scratch / "results").glob("bc/*/*") if p.is_dir()).relative_to(scratch))
    fam = ("evaluate", run, "--family", "pendulum-physics")
    diag = ("diagnose", "--dataset", DS, "--run", run, "--starts", "64")
    report = ("report", "results", "--out", "reports/r")
    out = [
        # --- sizes that hang or exhaust the machine -------------------------------------------------
        Case("--seeds 10000", (*BC, "--seeds", "10000"), "--seeds", timeout=120),
        Case("--threads 999", (*BC, "--threads", "999"), "--threads", timeout=120),
        Case("hidden layers of 10^8", (*BC, "--set", "algo.hidden=100000000,100000000"), "hidden"),
        Case("batch of 10^9 rows", (*BC, "--set", "algo.batch_size=1000000000"), "batch_size"),
        Case("10^5 critics", (*MOPO, "--set", "algo.sac.critics=100000"), "critics", timeout=120),
        Case("10^5 dynamics members", (*MOPO, "--set", "dynamics.members=100000"), "members", timeout=120),
        Case(
            "rollout buffer beyond memory",
            (*MOPO, "--set", "algo.rollout_batch=100000000", "--set", "algo.horizon=1000"),
            "memory",
            timeout=120,
        ),
        # --- --set values ----------------------------------------------------------------------------
        Case("eval_every 0", (*BC, "--set", "eval_every=0"), "eval_every"),
        Case("checkpoint_every 0", (*BC, "--set", "checkpoint_every=0"), "checkpoint_every"),
        Case("log_every overflows", (*BC, "--set", "log_every=1e400"), "log_every"),
        Case("steps of 10^23", (*BC[:5], "--set", "steps=99999999999999999999999"), "steps"),
        Case("a float string for an int", (*MOPO, "--set", "algo.horizon=2.5e0"), "horizon"),
        Case("a learning rate of inf", (*MOPO, "--set", "algo.sac.actor_lr=inf"), "actor_lr"),
        Case("eval_episodes of 10^9", (*BC, "--set", "eval_episodes=1e9"), "eval_episodes"),
        Case("--set dataset against --dataset", (*BC, "--set", "dataset=hopper-medium"), "--dataset"),
        Case("--set seed against --seed", (*BC, "--set", "seed=3"), "--seed"),
        Case("--set algorithm against --algo", (*BC, "--set", "algorithm=mopo"), "--algo"),
        Case("--set steps against --steps", (*BC, "--set", "steps=50"), "--steps"),
        Case("--seed -1", (*BC, "--seed", "-1"), "seed"),
        Case("--seed 2^32", (*BC, "--seed", "4294967296"), "seed"),
        Case("dynamics_seed 2^40", (*MOPO, "--set", "dynamics_seed=1099511627776"), "dynamics_seed"),
        # --- races -------------------------------------------------------------------------------------
        Case(
            "two identical trains at once",
            (
                *BC[:6],
                "3000",
                "--set",
                "log_every=100",
                "--set",
                "eval_every=1000",
                "--set",
                "checkpoint_every=1000",
                "--set",
                "eval_episodes=1",
            ),  # fmt: skip
            "in use",
            ok=True,
            concurrent=2,
            after=NO_DUPLICATE_ROWS,
        ),
        # --- damaged run folders -------------------------------------------------------------------
        Case(
            "rerun: final.json truncated",
            PREPARED,
            "final.json",
            before=_damage("final.json", "truncated"),
            after=RUN_INTACT,
        ),  # fmt: skip
        Case(
            "rerun: config.json a list",
            PREPARED,
            "config.json",
            before=_damage("config.json", "list"),
            after=RUN_INTACT,
        ),  # fmt: skip
        Case("report: final.json garbage", report, "final.json", before=_damage("final.json", "garbage")),
        Case("report: config.json empty", report, "config.json", before=_damage("config.json", "empty")),
        Case(
            "report: metrics.jsonl last line cut",
            report,
            "metrics.jsonl",
            before=_damage("metrics.jsonl", "last line"),
        ),
        Case(
            "evaluate: config.json truncated", fam, "config.json", before=_damage("config.json", "truncated")
        ),
        Case("evaluate: policy.pt garbage", fam, "policy.pt", before=_damage("policy.pt", "garbage")),
        Case("evaluate: final.json a list", fam, "final.json", before=_damage("final.json", "list")),
        Case("diagnose: policy.pt truncated", diag, "policy.pt", before=_damage("policy.pt", "truncated")),
        Case("diagnose: config.json garbage", diag, "config.json", before=_damage("config.json", "garbage")),
        Case(
            "resume: checkpoint.pt garbage",
            (*PREPARED, "--resume"),
            "checkpoint.pt",
            before=_unfinish("not a checkpoint"),
            after=RUN_INTACT,
        ),
        # --- the artefact cache ---------------------------------------------------------------------------
        Case(
            "cache ls: a truncated dynamics entry",
            ("cache", "ls"),
            "DAMAGED",
            ok=True,
            before=_damage_cache("truncated"),
        ),  # fmt: skip
        Case(
            "dynamics fit: a truncated entry is rebuilt",
            FIT,
            "dynamics",
            ok=True,
            before=_damage_cache("truncated"),
        ),  # fmt: skip
        Case(
            "dynamics fit: a garbage entry is rebuilt",
            FIT,
            "dynamics",
            ok=True,
            before=_damage_cache("garbage"),
        ),
        Case(
            "cache clear: the read caches too",
            ("cache", "clear"),
            "read-cache file",
            ok=True,
            after="import pathlib, sys\nsys.exit(any(pathlib.Path('cache', 'datasets').glob('*.npz')))\n",
        ),  # fmt: skip
        # --- interrupts through the real entry point ---------------------------------------------------
        Case(
            "Ctrl-C: dynamics fit",
            ("dynamics", "fit", "--dataset", DS),
            "continue with: offline-mbrl dynamics fit",
            interrupt=12.0,
        ),  # fmt: skip
        Case(
            "Ctrl-C: datasets make",
            ("datasets", "make", "pendulum-medium", "--size", "200000"),
            "continue with: offline-mbrl datasets make",
            interrupt=8.0,
        ),
        Case(
            "Ctrl-C: evaluate over a family",
            (*fam, "--episodes", "2000"),
            "continue with: offline-mbrl evaluate",
            interrupt=10.0,
        ),
        Case(
            "Ctrl-C: compare",
            (
                "compare",
                "--algo",
                "mbpo",  # long enough to be interrupted (bc can finish first)
                "--dataset",
                DS,
                "--budget",
                "smoke",
                "--seeds",
                "1",
                "--out",
                "reports/c2",
            ),  # fmt: skip
            "continue with: offline-mbrl compare",
            interrupt=10.0,
        ),
        Case("Ctrl-C: diagnose", diag, "continue with: offline-mbrl diagnose", interrupt=10.0),
    ]
    return [c if c.area != "catalogue" else _in_area(c) for c in out]


def _in_area(case: Case) -> Case:
    from dataclasses import replace

    return replace(case, area="runs")
