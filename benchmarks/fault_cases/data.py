"""Cases of datasets (issue 26's data side): D4RL files that must not be imported, damaged Minari folders,
a damaged read cache, absurd sizes, staging folders left by a killed make.

The scratch root holds the made `pendulum-medium-replay` (offline-mbrl/pendulum/medium-replay-v0, 12,288
transitions, loaded once by the prepared run, so its read cache and hash memo exist) and
`test/pendulum/nan-v0`. Each case that writes an input or damages a file runs in a private copy; its
`after` exits non-zero when a good dataset was lost or a later load is broken.
"""

from __future__ import annotations

from pathlib import Path

from fault_cases import Case

MADE = "pendulum-medium-replay"
MADE_ID = "offline-mbrl/pendulum/medium-replay-v0"
MADE_DATA = f"minari/{MADE_ID}/data"
IMPORTED = "pendulum-medium-v0"  # an import of the good file below: 297 transitions (3 episodes of 100 rows,
IMPORTED_STEPS = 297  # each losing its last step: the file has no next_observations)


def _d4rl_file(path: str, tweak: str = "") -> str:
    """Python that writes a D4RL-layout file for Pendulum-v1 (300 rows), after `tweak` changed the dict
    `a` of arrays (a value None is written as a group)."""
    return (
        "import h5py, numpy as np\n"
        "rng = np.random.default_rng(0); n = 300\n"
        "a = {'observations': rng.normal(size=(n, 3)).astype(np.float32),\n"
        "     'actions': rng.uniform(-2, 2, (n, 1)).astype(np.float32),\n"
        "     'rewards': rng.normal(size=n).astype(np.float32),\n"
        "     'terminals': np.zeros(n, bool), 'timeouts': np.arange(n) % 100 == 99}\n"
        f"{tweak}\n"
        f"with h5py.File({path!r}, 'w') as f:\n"
        "    for k, v in a.items():\n"
        "        f.create_group(k) if v is None else f.create_dataset(k, data=v)\n"
    )


IMPORT_GOOD = _d4rl_file("good.hdf5") + (
    f"from offline_mbrl.data.d4rl_import import import_d4rl\nimport_d4rl('good.hdf5', {IMPORTED!r})\n"
)


def _loads(name: str, transitions: int) -> str:
    """Python that exits non-zero unless dataset `name` loads with `transitions` transitions."""
    return (
        "import sys\nfrom offline_mbrl.data.dataset import load_dataset\n"
        f"n = len(load_dataset({name!r}))\n"
        f"if n != {transitions}: sys.exit('{name} holds ' + str(n) + ' transitions, not {transitions}')\n"
    )


def _damage(file: str, how: str, *, where: str = "") -> str:
    """Python that damages `file` (or the file the expression `where` finds): truncate it to half, empty
    it, fill it with garbage of its own size, write a JSON list where an object is."""
    return (
        "import os, pathlib\n"
        f"p = {where or f'pathlib.Path({file!r})'}\n"
        "data = p.read_bytes()\n"
        f"how = {how!r}\n"
        "if how == 'truncated': p.write_bytes(data[: len(data) // 2])\n"
        "if how == 'empty': p.write_bytes(b'')\n"
        "if how == 'garbage': p.write_bytes(os.urandom(len(data)))\n"
        "if how == 'list': p.write_text('[1, 2, 3]')\n"
    )


# the read cache and hash memo of the made dataset, as the prepared run left them
READ_CACHE = "next(pathlib.Path('cache/datasets').glob('*.npz'))"
# the memo is keyed by the files' paths: load once in the private copy, then damage every memo
DAMAGE_MEMOS = (
    f"from offline_mbrl.data.dataset import load_dataset\nload_dataset({MADE!r})\n"
    "import os, pathlib\n"
    "for p in pathlib.Path('cache/hashes').glob('*.txt'):\n"
    "    p.write_bytes(os.urandom(p.stat().st_size))\n"
)


CACHE_WHOLE = (
    "import pathlib, sys, numpy as np\n"
    "for p in pathlib.Path('cache/datasets').glob('*.npz'):\n"
    "    with np.load(p, allow_pickle=False) as z:\n"
    "        [z[k] for k in z.files]  # raises on a damaged file\n"
)
TRUE_FINGERPRINT = (
    "import sys\nfrom offline_mbrl.core.cache import hash_files\n"
    "from offline_mbrl.data.dataset import _data_files, load_dataset\n"
    "from offline_mbrl.data.names import resolve\n"
    f"ds, files = load_dataset({MADE!r}), _data_files(resolve({MADE!r}))\n"
    "if ds.fingerprint.content_hash != hash_files(files): sys.exit('fingerprint from a damaged memo')\n"
)
KILLED_STAGING = (
    "import os, subprocess, sys\n"
    "code = ('import os, signal\\nfrom pathlib import Path\\n'\n"
    "        'from offline_mbrl.data.minari_io import _staging_root\\n'\n"
    "        'with _staging_root(Path(\"minari\")) as s:\\n'\n"
    '        \'    (s / "half-written.hdf5").write_bytes(b"x" * 1000)\\n\'\n'
    "        '    os.kill(os.getpid(), signal.SIGKILL)\\n')\n"
    "subprocess.run([sys.executable, '-c', code])\n"
    "os.makedirs('minari/.staging-mine', exist_ok=True)  # a folder of the user's, not the suite's naming\n"
    "open('minari/.staging-mine/keep.txt', 'w').write('mine')\n"
)
NO_STAGING_LEFT = (
    "import pathlib, sys\n"
    "left = [p.name for p in pathlib.Path('minari').glob('.staging-*') if p.name != '.staging-mine']\n"
    "if left: sys.exit(f'staging left: {left}')\n"
    "if not pathlib.Path('minari/.staging-mine/keep.txt').is_file(): sys.exit('the user folder is gone')\n"
)
NPZ_COUNT_BEFORE = (
    "import pathlib\n"
    "open('npz-before.txt', 'w').write(str(len(list(pathlib.Path('cache/datasets').glob('*.npz')))))\n"
)
NO_NEW_NPZ = (
    "import pathlib, sys\n"
    "now = len(list(pathlib.Path('cache/datasets').glob('*.npz')))\n"
    "if now != int(open('npz-before.txt').read()): sys.exit('NaN data was cached')\n"
)
IMPORT = ("datasets", "import-d4rl")
BC = ("train", "--algo", "bc", "--dataset", MADE, "--steps", "20")
TINY = ("--set", "log_every=10", "--set", "eval_every=10", "--set", "checkpoint_every=10")


def cases(scratch: Path) -> list[Case]:
    made_intact = _loads(MADE, 12_288)
    return [
        # --- D4RL files that must not be imported ---------------------------------------------------
        Case(
            "import: empty file over a good import (--overwrite)",
            (*IMPORT, "empty.hdf5", "--name", IMPORTED, "--overwrite"),
            "no transitions",
            before=IMPORT_GOOD + _d4rl_file("empty.hdf5", "a = {k: v[:0] for k, v in a.items()}"),
            after=_loads(IMPORTED, IMPORTED_STEPS),
            harm="lost",
        ),
        Case(
            "import: empty file under the made dataset's short name",
            (*IMPORT, "empty.hdf5", "--name", f"{MADE}-v2"),
            "no transitions",
            before=_d4rl_file("empty.hdf5", "a = {k: v[:0] for k, v in a.items()}"),
            after=made_intact,  # `pendulum-medium-replay` still means the made dataset, and it loads
        ),
        Case(
            "import: actions outside the action space",
            (*IMPORT, "bad.hdf5", "--name", IMPORTED),
            "rows outside Pendulum-v1's action range [-2, 2]",
            before=_d4rl_file("bad.hdf5", "a['actions'][:7] = 5.0"),
        ),
        Case(
            "import: observations of another environment's dimension",
            (*IMPORT, "bad.hdf5", "--name", IMPORTED),
            "does not match Pendulum-v1",
            before=_d4rl_file("bad.hdf5", "a['observations'] = np.zeros((n, 11), np.float32)"),
        ),
        Case(
            "import: a group where an array is expected",
            (*IMPORT, "bad.hdf5", "--name", IMPORTED),
            "'rewards' is a Group",
            before=_d4rl_file("bad.hdf5", "a['rewards'] = None"),
        ),
        Case(
            "import: strings where numbers are expected",
            (*IMPORT, "bad.hdf5", "--name", IMPORTED),
            "not numbers",
            before=_d4rl_file("bad.hdf5", "a['terminals'] = np.full(n, b'no')"),
        ),
        Case(
            "import: a value beyond float32 (1e300)",
            (*IMPORT, "bad.hdf5", "--name", IMPORTED),
            "non-finite values",
            before=_d4rl_file("bad.hdf5", "a['rewards'] = a['rewards'].astype(np.float64) * 1e300"),
        ),
        Case(
            "import: keys of different lengths over a good import (--overwrite)",
            (*IMPORT, "bad.hdf5", "--name", IMPORTED, "--overwrite"),
            "do not have 300 rows",
            before=IMPORT_GOOD + _d4rl_file("bad.hdf5", "a['actions'] = a['actions'][:-1]"),
            after=_loads(IMPORTED, IMPORTED_STEPS),
            harm="lost",
        ),
        # --- damaged Minari dataset folders ------------------------------------------------------------
        Case(
            "metadata.json truncated: info",
            ("datasets", "info", MADE),
            "metadata.json is not readable JSON",
            before=_damage(f"{MADE_DATA}/metadata.json", "truncated"),
        ),
        Case(
            "metadata.json a JSON list: list shows it damaged",
            ("datasets", "list"),
            "DAMAGED",
            ok=True,
            before=_damage(f"{MADE_DATA}/metadata.json", "list"),
        ),
        Case(
            "metadata.json garbage of its own size: train",
            (*BC, *TINY),
            "metadata.json",
            before=_damage(f"{MADE_DATA}/metadata.json", "garbage"),
        ),
        Case(
            "main_data.hdf5 truncated: info names the repair",
            ("datasets", "info", MADE),
            f"`offline-mbrl datasets make {MADE} --size 12288 --overwrite`",
            before=_damage(f"{MADE_DATA}/main_data.hdf5", "truncated"),
        ),
        Case(
            "main_data.hdf5 empty: make --if-missing",
            ("datasets", "make", MADE, "--if-missing"),
            "main_data.hdf5 is not a readable hdf5 file (empty file)",
            before=_damage(f"{MADE_DATA}/main_data.hdf5", "empty"),
        ),
        Case(
            "main_data.hdf5 garbage: the repair command repairs it",
            ("datasets", "make", MADE, "--size", "12288", "--overwrite"),
            "made offline-mbrl/pendulum/medium-replay-v0",
            ok=True,
            before=_damage(f"{MADE_DATA}/main_data.hdf5", "garbage"),
            after=made_intact,
        ),
        Case(
            "damaged import named, not silently replaced by the made dataset",
            ("datasets", "info", "pendulum-medium"),
            "--dataset offline-mbrl/pendulum/medium-v0",
            before=(
                "import subprocess, sys\n"
                "make = ['datasets', 'make', 'pendulum-medium', '--size', '400']\n"
                "subprocess.run([sys.executable, '-m', 'offline_mbrl.cli', *make], check=True)\n"
                + IMPORT_GOOD
                + _damage("minari/d4rl-import/pendulum/medium-v0/data/main_data.hdf5", "truncated")
            ),
        ),
        # --- the read cache -----------------------------------------------------------------------------
        Case(
            "read cache truncated: info rebuilds it",
            ("datasets", "info", MADE),
            "transitions: 12,288",
            ok=True,
            before=_damage("", "truncated", where=READ_CACHE),
            after=CACHE_WHOLE + made_intact,
            harm="poisoned",
        ),
        Case(
            "read cache garbage of its own size: train",
            (*BC, *TINY, "--set", "eval_episodes=1", "--set", "final_eval_episodes=1", "--results", "mine"),
            "",
            ok=True,
            before=_damage("", "garbage", where=READ_CACHE),
            after=CACHE_WHOLE + made_intact,
        ),
        Case(
            "hash memo garbage: the fingerprint stays the content's",
            ("datasets", "info", MADE),
            "fingerprint: offline-mbrl/pendulum/medium-replay-v0@",
            ok=True,
            before=DAMAGE_MEMOS,
            after=TRUE_FINGERPRINT,
        ),
        Case(
            "NaN dataset: shown, never cached",
            ("datasets", "info", "test/pendulum/nan-v0"),
            "non-finite values",
            ok=True,
            before=NPZ_COUNT_BEFORE,
            after=NO_NEW_NPZ,
        ),
        # --- sizes and staging --------------------------------------------------------------------------
        Case(
            "make: --size 1000000000000",
            ("datasets", "make", "pendulum-medium", "--size", "1000000000000"),
            "cannot hold it",
            timeout=60,
        ),
        Case(
            "make: staging left by a killed make is removed",
            ("datasets", "make", "pendulum-random", "--size", "400"),
            "made offline-mbrl/pendulum/random-v0",
            ok=True,
            before=KILLED_STAGING,
            after=NO_STAGING_LEFT,
        ),
    ]
