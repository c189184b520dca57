"""Cases of sweeps: damaged study journals, repeated options, bad search-space files (issue 26).

`prepare` runs a real two-trial sweep (`STUDY`, about 15 s) in the scratch root, so the journal cases
damage a study's real journal, `sweeps/cat/journal.log`, in their private copy. A refused command must
leave the journal as it found it (the catalogue compares every file); `after` checks that the study is
not poisoned: `sweep repair` mends it, `sweep show` reads it, and the journal plus its side file are the
damaged bytes exactly. Space files are written by `before` and given with `--space FILE`; each is refused
before anything is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fault_cases import Case

DS = "pendulum-medium-replay"
STUDY = "cat"
JOURNAL = f"sweeps/{STUDY}/journal.log"
SETS = (
    "log_every=10",
    "eval_every=10",
    "checkpoint_every=10",
    "eval_episodes=1",
    "final_eval_episodes=1",
    "dynamics.max_epochs=1",
    "dynamics.hidden=16,16",
    "dynamics.weight_decay=1e-5,1e-5,1e-5",
    "algo.rollout_batch=32",
    "algo.rollout_every=10",
)
SWEEP = ("sweep", "--algo", "mbpo", "--dataset", DS, "--steps", "20", "--sampler", "random")
TINY = tuple(x for s in SETS for x in ("--set", s))


def prepare(scratch: Path, env: dict) -> None:
    """A real study of two tiny trials: `sweeps/cat/journal.log` and its runs in results/."""
    subprocess.run(
        [sys.executable, "-m", "offline_mbrl.cli", *SWEEP, "--study", STUDY, "--trials", "2", *TINY],
        env=env,
        cwd=scratch,
        check=True,
        capture_output=True,
        timeout=300,
    )


def _damage(how: str) -> str:
    """Python that damages the study's journal and keeps the damaged bytes in damaged.bin (for `after`)."""
    return (
        "import os, pathlib\n"
        f"p = pathlib.Path({JOURNAL!r})\n"
        "data = p.read_bytes(); lines = data.splitlines(keepends=True)\n"
        f"how = {how!r}\n"
        "if how == 'last line':  # a writer SIGKILLed mid-line: half a line, its lock left\n"
        "    data = data[: len(data) - len(lines[-1]) // 2]; os.symlink(p.name, str(p) + '.lock')\n"
        "if how == 'garbage': data = data + b'\\x00\\xffnot json at all\\n'\n"
        "if how == 'middle': data = b''.join([*lines[:3], lines[3][:20], *lines[4:]])\n"
        "if how == 'type': data = b''.join([*lines[:3], b'[1, 2, 3]\\n', *lines[4:]])\n"
        "if how == 'empty': data = b''\n"
        "if how == 'noise': data = os.urandom(len(data))\n"
        "p.write_bytes(data); pathlib.Path('damaged.bin').write_bytes(data)\n"
    )


def _repairs(shown: str) -> str:
    """Python run after a refused command: the journal is unchanged; `sweep repair` keeps its complete
    operations and moves the rest aside (journal + side file == the damaged bytes); then `sweep show`
    reads the study and holds `shown` ("2 trials": every trial before the damage; "no study": nothing
    was complete)."""
    return (
        "import glob, pathlib, subprocess, sys\n"
        f"p = pathlib.Path({JOURNAL!r})\n"
        "damaged = pathlib.Path('damaged.bin').read_bytes()\n"
        "if p.read_bytes() != damaged: sys.exit('the refused command changed the journal')\n"
        "cli = [sys.executable, '-m', 'offline_mbrl.cli', 'sweep']\n"
        f"r = subprocess.run([*cli, 'repair', {STUDY!r}], capture_output=True, text=True)\n"
        "if r.returncode != 0: sys.exit('repair failed: ' + r.stderr.strip()[-200:])\n"
        "side = b''.join(pathlib.Path(f).read_bytes() for f in sorted(glob.glob(str(p) + '.damaged-*')))\n"
        "if p.read_bytes() + side != damaged: sys.exit('repair dropped bytes')\n"
        f"r = subprocess.run([*cli, 'show', {STUDY!r}], capture_output=True, text=True)\n"
        f"if {shown!r} not in r.stdout + r.stderr:\n"
        "    sys.exit('after repair: ' + (r.stderr or r.stdout)[-200:])\n"
    )


# after `sweep repair` itself: the same checks, the study already mended
REPAIRED = (
    "import glob, pathlib, subprocess, sys\n"
    f"p = pathlib.Path({JOURNAL!r})\n"
    "damaged = pathlib.Path('damaged.bin').read_bytes()\n"
    "side = b''.join(pathlib.Path(f).read_bytes() for f in sorted(glob.glob(str(p) + '.damaged-*')))\n"
    "if p.read_bytes() + side != damaged: sys.exit('repair dropped bytes')\n"
    f"r = subprocess.run([sys.executable, '-m', 'offline_mbrl.cli', 'sweep', 'show', {STUDY!r}],\n"
    "                   capture_output=True, text=True)\n"
    "if r.returncode != 0 or '2 trials' not in r.stdout: sys.exit('not readable after repair')\n"
)


# after the repeated --dataset: a study of one dataset (the single-dataset command's study) with its trial
ONE_DATASET = (
    "import json, pathlib, sys\n"
    "ops = [json.loads(l) for l in pathlib.Path('sweeps/twice/journal.log').read_text().splitlines()]\n"
    "attrs = {k: v for o in ops if o['op_code'] == 2 for k, v in o['user_attr'].items()}\n"
    f"if attrs.get('datasets') != [{DS!r}]: sys.exit(f'datasets {{attrs.get(\"datasets\")}}')\n"
    "if not any(o['op_code'] == 6 and o['state'] == 1 for o in ops): sys.exit('no complete trial')\n"
)


def _space(body: str) -> str:
    """Python that writes the search-space file bad.toml."""
    return f"import pathlib\npathlib.Path('bad.toml').write_text({body!r})\n"


MBPO = 'algorithm = "mbpo"\n[params]\n'
HORIZON = '"algo.horizon" = { type = "int", low = 1, high = 3 }\n'
NOTHING_WRITTEN = (
    "import pathlib, sys\n"
    "if list(pathlib.Path('sweeps').glob('*/journal.log')) != [pathlib.Path('sweeps/cat/journal.log')]:\n"
    "    sys.exit('a study was created')\n"
)


def cases(scratch: Path) -> list[Case]:
    space = (*SWEEP, "--space", "bad.toml", "--study", "bad")
    show = ("sweep", "show", STUDY)
    # (name, command, words of the one-line error, damage, what `sweep show` holds after the repair)
    journals = [
        ("half-written last line, show", show, "is half-written (no line end", "last line", "2 trials"),
        (
            "half-written last line, continue the sweep (appended to it: poisoned)",
            (*SWEEP, "--study", STUDY, "--trials", "3", *TINY),
            f"`offline-mbrl sweep repair {STUDY}`",
            "last line",
            "2 trials",
        ),
        (
            "garbage appended, report",
            ("sweep", "report", STUDY),
            "is not JSON; repair it with",
            "garbage",
            "2 trials",
        ),
        (
            "half a line in the middle, export",
            ("sweep", "export", STUDY),
            f"{JOURNAL} line 4 of",
            "middle",
            "0 trials",
        ),
        (
            "a line of the wrong JSON type, show",
            show,
            "is not an Optuna operation (a JSON list",
            "type",
            "0 trials",
        ),
        ("random bytes of its own size, show", show, f"{JOURNAL} line 1 of", "noise", f"no study '{STUDY}'"),
    ]
    out = [
        # --- damaged journals: refused in one line naming the file, the line and the repair ----------
        *(
            Case(f"journal: {name}", args, expect, before=_damage(how), after=_repairs(shown))
            for name, args, expect, how, shown in journals
        ),
        Case(
            "journal: empty, show",
            ("sweep", "show", STUDY),
            f"no study '{STUDY}' in {JOURNAL}",
            before=_damage("empty"),
        ),
        Case(
            "sweep repair: keeps every complete operation, moves the half line aside",
            ("sweep", "repair", STUDY),
            "moved lines",
            ok=True,
            before=_damage("last line"),
            after=REPAIRED,
            harm="lost",
        ),
        Case(
            "sweep repair: a user's file that is not a journal is left alone",
            ("sweep", "repair", STUDY, "--storage", "notes.txt"),
            "is not an Optuna journal",
        ),
        Case(
            "sweep show: a user's file as --storage",
            ("sweep", "show", STUDY, "--storage", "notes.txt"),
            "notes.txt line 1 of 1 is not JSON: it is not an Optuna journal",
        ),
        # --- repeated options ------------------------------------------------------------------------
        Case(
            "sweep: the same dataset twice (was trained twice a trial; issue 26 saw it hang)",
            (*SWEEP, "--dataset", DS, "--study", "twice", "--trials", "1", *TINY),
            f"note: --dataset '{DS}' given twice: it counts once",
            ok=True,
            after=ONE_DATASET,
            timeout=120,
        ),
        Case(
            "sweep: one --set key with two values",
            (*SWEEP, "--set", "algo.batch_size=64", "--set", "algo.batch_size=128"),
            "--set algo.batch_size is given twice",
        ),
        Case("sweep: --set seed", (*SWEEP, "--set", "seed=3"), "--set 'seed': set by the sweep's --seeds"),
        # --- bad search-space files, refused before any study or run folder --------------------------
        Case(
            "space: not TOML",
            space,
            "cannot read search space bad.toml",
            before=_space("x = ["),
            after=NOTHING_WRITTEN,
        ),
        Case(
            "space: empty",
            space,
            "bad.toml: needs `algorithm` (a string) and [params]",
            before=_space(""),
            after=NOTHING_WRITTEN,
        ),
        Case(
            "space: log range with low 0",
            space,
            "'algo.real_ratio': a log range needs low > 0",
            before=_space(
                MBPO + '"algo.real_ratio" = { type = "float", low = 0.0, high = 1.0, log = true }\n'
            ),
            after=NOTHING_WRITTEN,
        ),
        Case(
            "space: an infinite bound",
            space,
            "'algo.real_ratio': low, high (and step) must be finite",
            before=_space(MBPO + '"algo.real_ratio" = { type = "float", low = 0.1, high = inf }\n'),
            after=NOTHING_WRITTEN,
        ),
        Case(
            "space: a key of another algorithm",
            space,
            "unknown key 'algo.penalty_coef' for mbpo",
            before=_space(MBPO + '"algo.penalty_coef" = { type = "float", low = 0.1, high = 1.0 }\n'),
            after=NOTHING_WRITTEN,
        ),
        Case(
            "space: [fixed] not a table (was a traceback)",
            space,
            "bad.toml: [fixed] must be a table",
            before=_space(f'algorithm = "mbpo"\nfixed = 3\n[params]\n{HORIZON}'),
            after=NOTHING_WRITTEN,
        ),
        Case(
            "space: a range whose middle value is invalid (was accepted; its trials failed)",
            space,
            "'log_every' = '3' with the lowest values",
            before=_space(
                'algorithm = "mbpo"\n[params]\n"log_every" = { type = "int", low = 1, high = 5 }\n'
            ),
            after=NOTHING_WRITTEN,
        ),
    ]
    return out


if __name__ == "__main__":  # list the cases
    for case in cases(Path(os.getcwd())):
        print(case.name)
