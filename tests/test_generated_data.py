"""Generated cases for the data side (issue 26): D4RL files, damaged Minari folders, the read cache.

Hypothesis draws the inputs; every case asserts one outcome only. A drawn D4RL file either imports and
loads with the transitions it holds, or is refused with a one-line UserError and nothing written under the
Minari root or the cache (a good dataset already there, replaced with `--overwrite`, stays byte for byte).
A drawn damage to a dataset folder either leaves a dataset that loads with its own arrays, or ends in a
one-line UserError naming the damaged file and the command that writes it again; the listing still shows
every other dataset. A damaged read cache is rebuilt, never a failure.

    OFFLINE_MBRL_HYPOTHESIS_EXAMPLES=500 python -m pytest tests/test_generated_data.py   # the long run

The example database (tests/hypothesis-examples) keeps every failing case found, so it stays found.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from minari.storage import get_dataset_path

from offline_mbrl.core.cache import cache_root
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.catalog import catalog
from offline_mbrl.data.d4rl_import import import_d4rl
from offline_mbrl.data.dataset import _read_flat, clear_read_cache, load_dataset
from offline_mbrl.data.make.collect import make_dataset
from offline_mbrl.data.minari_io import STAGING_MARKER, _staging_root, remove_stale_staging
from tests.conftest import synthetic_episode, write_minari
from tests.generated import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
NAME = "pendulum-medium-v0"  # Pendulum-v1: 3 observations, 1 action in [-2, 2]
IMPORT_ID = "d4rl-import/pendulum/medium-v0"
OBS_DIM, ACT_DIM, ACT_HIGH = 3, 1, 2.0


def tree(*roots: Path) -> dict[str, str]:
    """Every file under the roots with a hash of its content."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def fresh_roots(base: Path) -> Iterator[tuple[Path, Path]]:
    """A Minari root and a cache of their own for one generated example."""
    where = Path(tempfile.mkdtemp(dir=base))
    saved = {k: os.environ.get(k) for k in ("MINARI_DATASETS_PATH", "OFFLINE_MBRL_CACHE")}
    os.environ["MINARI_DATASETS_PATH"] = str(where / "minari")
    os.environ["OFFLINE_MBRL_CACHE"] = str(where / "cache")
    try:
        yield where / "minari", where / "cache"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(where, ignore_errors=True)


def assert_one_line(err: BaseException, *fragments: str) -> None:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    for fragment in fragments:
        assert fragment in text, text


# ---- D4RL files ----------------------------------------------------------------------------------------


@dataclass
class D4RLFile:
    """A drawn D4RL-like file: what each key holds, and whether a correct importer must take it."""

    arrays: dict[str, object] = field(default_factory=dict)  # key -> ndarray, "group" or a scalar
    valid: bool = True
    transitions: int = 0  # what a valid file imports
    garbage: bytes | None = None  # not hdf5 at all

    def write(self, path: Path) -> None:
        if self.garbage is not None:
            path.write_bytes(self.garbage)
            return
        with h5py.File(path, "w") as f:
            for key, value in self.arrays.items():
                if isinstance(value, str) and value == "group":
                    f.create_group(key).create_dataset("x", data=np.zeros(3))
                else:
                    f[key] = value


DAMAGES = (
    "none",
    "missing",
    "group",
    "scalar",
    "rows",
    "dim",
    "strings",
    "varlen strings",
    "complex",
    "int",
    "bool",
    "nan",
    "inf",
    "huge",
    "large",
    "outside",
    "not 0 or 1",
    "column",
)


@st.composite
def d4rl_files(draw) -> D4RLFile:
    if draw(st.integers(0, 19)) == 0:
        return D4RLFile(valid=False, garbage=draw(st.binary(min_size=0, max_size=600)))
    n = draw(st.sampled_from([0, 1, 2, 3, 17, 120, 300]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ends = np.zeros(n, dtype=bool)
    if n:
        ends[draw(st.lists(st.integers(0, n - 1), max_size=6))] = True
    terminal_share = rng.random(n) < 0.5
    arrays: dict[str, object] = {
        "observations": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-ACT_HIGH, ACT_HIGH, size=(n, ACT_DIM)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": ends & terminal_share,
        "timeouts": ends & ~terminal_share,
    }
    with_next = draw(st.booleans())
    if with_next:
        arrays["next_observations"] = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    valid = n > 0
    broken: set[str] = set()  # keys already made invalid: a second damage there would test nothing new
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(arrays)))
        damage = draw(st.sampled_from(DAMAGES))
        value = arrays[key]
        if damage == "missing":
            del arrays[key]
            valid &= key == "next_observations"
            with_next &= key != "next_observations"
            continue
        if key in broken or not isinstance(value, np.ndarray):
            continue
        was_valid, valid = valid, True
        flags = key in ("terminals", "timeouts")
        if damage == "group":
            arrays[key], valid = "group", False
        elif damage == "scalar":
            arrays[key], valid = np.float32(1.0), False
        elif damage == "rows":
            extra = draw(st.sampled_from([-1, 1, 5]))
            if n + extra >= 0:
                arrays[key] = np.resize(value, (n + extra, *value.shape[1:]))
                valid = False
        elif damage == "dim" and not flags and key != "rewards":
            arrays[key], valid = (
                np.zeros((n, value.shape[1] + draw(st.sampled_from([-1, 1, 2]))), value.dtype),
                False,
            )
        elif damage == "dim" and key == "rewards":
            arrays[key], valid = np.zeros((n, 2), np.float32), False
        elif damage == "strings":
            arrays[key], valid = np.full(value.shape, b"x"), False
        elif damage == "varlen strings" and value.ndim == 1:
            arrays[key] = np.array(["abc"] * n, dtype=h5py.string_dtype())
            valid = False
        elif damage == "complex":
            arrays[key], valid = value.astype(np.complex64), False
        elif damage == "int":
            arrays[key] = value.astype(np.int64)  # integers are numbers: still a valid file
        elif damage == "bool" and (flags or key != "actions"):
            arrays[key] = value.astype(bool)  # 0/1 observations or rewards are odd but numbers
        elif damage in ("nan", "inf", "huge") and not flags and n:
            row = draw(st.integers(0, n - 1))
            bad = np.array(value, dtype=np.float64)
            bad.reshape(n, -1)[row, 0] = {"nan": np.nan, "inf": -np.inf, "huge": 1e300}[damage]
            arrays[key], valid = bad, False
        elif damage == "large" and key in ("observations", "rewards", "next_observations") and n:
            big = np.array(value, dtype=np.float64)
            big.reshape(n, -1)[draw(st.integers(0, n - 1)), 0] = 1e30  # finite in float32: imported
            arrays[key] = big
        elif damage == "outside" and key == "actions" and n:
            out = value.astype(np.float64)  # an integer array would round 2.5 back inside the box
            out[draw(st.integers(0, n - 1)), 0] = draw(st.sampled_from([2.5, -3.0, 1e6]))
            arrays[key], valid = out, False
        elif damage == "not 0 or 1" and flags and n:
            arrays[key], valid = np.full(n, 2, dtype=np.int64), False
        elif damage == "column" and key == "rewards":
            arrays[key] = value.reshape(n, 1)  # (n, 1) rewards, as some D4RL files store them
        if not valid:
            broken.add(key)
        valid &= was_valid
    if valid:
        cuts = np.asarray(arrays["terminals"], bool) | np.asarray(arrays["timeouts"], bool)
        episodes = int(cuts[:-1].sum()) + 1  # the trailing steps after the last end form one more
        transitions = n if with_next else n - episodes
        valid = transitions > 0
    else:
        transitions = 0
    return D4RLFile(arrays, valid, transitions)


def good_file(path: Path, n: int = 200) -> None:
    rng = np.random.default_rng(1)
    ends = np.zeros(n, bool)
    ends[99::100] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
        f["actions"] = rng.uniform(-ACT_HIGH, ACT_HIGH, size=(n, ACT_DIM)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = ends
        f["next_observations"] = rng.normal(size=(n, OBS_DIM)).astype(np.float32)


@SETTINGS
@given(drawn=d4rl_files(), overwrite=st.booleans())
def test_generated_d4rl_file_imports_whole_or_writes_nothing(tmp_path, drawn, overwrite):
    with fresh_roots(tmp_path) as (minari_root, cache):
        file = minari_root.parent / "drawn.hdf5"
        drawn.write(file)
        if overwrite:  # a good dataset of that name is already there
            good_file(minari_root.parent / "good.hdf5")
            import_d4rl(minari_root.parent / "good.hdf5", NAME)
            before_len = len(load_dataset(NAME))
        before = tree(minari_root, cache)
        try:
            summary = import_d4rl(file, NAME, overwrite=overwrite)
        except UserError as err:
            event("refused: " + str(err).split(": ", 1)[-1][:30])
            assert not drawn.valid, f"a valid file was refused: {err}"
            assert_one_line(err)
            assert tree(minari_root, cache) == before  # nothing written, nothing removed
            if overwrite:
                assert len(load_dataset(NAME)) == before_len  # the good dataset is intact
            return
        event("imported")
        assert drawn.valid, f"an invalid file was imported: {drawn.arrays.keys()}"
        assert summary.transitions == drawn.transitions
        ds = load_dataset(NAME)
        assert len(ds) == drawn.transitions
        assert not ds.non_finite()
        assert np.abs(ds.data.act.numpy()).max() <= ACT_HIGH + 1e-5
        assert not any(p.name.startswith(".") for p in minari_root.iterdir())  # no staging left


# ---- damaged Minari dataset folders --------------------------------------------------------------------


def pendulum_episodes(seed: int, count: int = 3, steps: int = 40) -> list:
    rng = np.random.default_rng(seed)
    return [synthetic_episode(rng, OBS_DIM, ACT_DIM, steps, "trunc") for _ in range(count)]


DATASETS = (
    "offline-mbrl/pendulum/medium-replay-v0",
    "d4rl-import/pendulum/expert-v2",
    "test/pendulum/other-v0",
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A Minari root with three healthy datasets, written once and copied into each example's root."""
    root = tmp_path_factory.mktemp("generated-data-template")
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        for i, dataset_id in enumerate(DATASETS):
            write_minari(dataset_id, "Pendulum-v1", pendulum_episodes(i))
    finally:
        if saved is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved
    return root


def wrong_json_types():
    return st.one_of(
        st.lists(st.integers(), max_size=3),
        st.text(max_size=10),
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
    )


@st.composite
def folder_damages(draw):
    """(dataset index, file name, damage, argument)."""
    which = draw(st.integers(0, len(DATASETS) - 1))
    name = draw(st.sampled_from(["metadata.json", "main_data.hdf5"]))
    kinds = ["truncate", "empty", "garbage", "delete", "prefix garbage"]
    if name == "metadata.json":
        kinds += ["wrong JSON type", "wrong field type"]
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        arg = draw(st.floats(0, 1))
    elif kind in ("wrong JSON type",):
        arg = draw(wrong_json_types())
    elif kind == "wrong field type":
        key = draw(
            st.sampled_from(
                ["total_episodes", "total_steps", "ref_min_score", "eval_env_spec", "data_format"]
            )
        )
        arg = (key, draw(wrong_json_types()))
    else:
        arg = draw(st.integers(0, 2**32))
    return which, name, kind, arg


def damage_file(path: Path, kind: str, arg) -> None:
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(arg * len(data))])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(arg).bytes(len(data)))
    elif kind == "prefix garbage":  # the first 512 bytes overwritten: the header of either file
        path.write_bytes(np.random.default_rng(arg).bytes(min(512, len(data))) + data[512:])
    elif kind == "delete":
        path.unlink()
    elif kind == "wrong JSON type":
        path.write_text(json.dumps(arg))
    elif kind == "wrong field type":
        meta = json.loads(data)
        meta[arg[0]] = arg[1]
        path.write_text(json.dumps(meta))


@SETTINGS
@given(damage=folder_damages())
def test_generated_damage_to_a_dataset_folder(tmp_path, template, damage):
    which, name, kind, arg = damage
    with fresh_roots(tmp_path) as (minari_root, cache):
        shutil.copytree(template, minari_root)
        originals = {d: load_dataset(d).data.obs.numpy() for d in DATASETS}
        target = DATASETS[which]
        damage_file(Path(get_dataset_path(target)) / "data" / name, kind, arg)
        try:
            ds = load_dataset(target)
        except UserError as err:
            event(f"refused: {name} {kind}")
            assert_one_line(err, "write it again with `")
            assert "metadata.json" in str(err) or "main_data.hdf5" in str(err), str(err)
        else:  # the damage left a readable dataset: it must hold its own data
            event(f"loaded: {name} {kind}")
            np.testing.assert_array_equal(ds.data.obs.numpy(), originals[target])
        listed = {e.dataset_id: e for e in catalog()}
        for other in DATASETS:
            if other != target:
                assert listed[other].present and not listed[other].damaged
                np.testing.assert_array_equal(load_dataset(other).data.obs.numpy(), originals[other])
        if listed[target].damaged:
            assert listed[target].repair and "\n" not in (listed[target].damage or "")


@st.composite
def cache_damages(draw):
    what = draw(st.sampled_from(["read cache", "hash memo"]))
    kind = draw(st.sampled_from(["truncate", "empty", "garbage", "prefix garbage", "missing array", "rows"]))
    return what, kind, draw(st.floats(0, 1)), draw(st.integers(0, 2**32))


@SETTINGS
@given(damage=cache_damages())
def test_generated_damage_to_the_read_cache_is_rebuilt(tmp_path, template, damage):
    what, kind, share, seed = damage
    with fresh_roots(tmp_path) as (minari_root, cache):
        shutil.copytree(template, minari_root)
        first = load_dataset(DATASETS[0])
        folder = cache / ("datasets" if what == "read cache" else "hashes")
        (file,) = list(folder.iterdir())
        if kind in ("missing array", "rows") and what == "read cache":
            with np.load(file) as npz:
                arrays = dict(npz)
            if kind == "missing array":
                del arrays["next_obs"]
            else:
                arrays["obs"] = arrays["obs"][:-1]
            with open(file, "wb") as f:
                np.savez(f, **arrays)
        else:
            kind = {"missing array": "garbage", "rows": "truncate"}.get(kind, kind)
            damage_file(file, kind, share if kind == "truncate" else seed)
        again = load_dataset(DATASETS[0])
        np.testing.assert_array_equal(again.data.obs.numpy(), first.data.obs.numpy())
        assert again.fingerprint == first.fingerprint
        assert _read_flat(next((cache / "datasets").iterdir())) is not None  # rebuilt whole


# ---- fixed cases the generators grew from --------------------------------------------------------------


def test_empty_import_with_overwrite_keeps_the_good_dataset(tmp_path):
    good_file(tmp_path / "good.hdf5")
    import_d4rl(tmp_path / "good.hdf5", NAME)
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            f[key] = np.zeros((0, 3) if key == "observations" else (0, 1) if key == "actions" else (0,))
    before = tree(tmp_path / "minari")
    with pytest.raises(UserError, match="no transitions") as err:
        import_d4rl(tmp_path / "empty.hdf5", NAME, overwrite=True)
    assert_one_line(err.value)
    assert tree(tmp_path / "minari") == before
    assert len(load_dataset("pendulum-medium")) == 200


def test_actions_outside_the_box_are_named_with_rows_and_range(tmp_path):
    good_file(tmp_path / "good.hdf5")
    with h5py.File(tmp_path / "good.hdf5", "r+") as f:
        act = f["actions"][...]
        act[[3, 7]] = 5.0
        del f["actions"]
        f["actions"] = act
    with pytest.raises(UserError) as err:
        import_d4rl(tmp_path / "good.hdf5", NAME)
    assert_one_line(err.value, "'actions' has 2 of 200 rows outside Pendulum-v1's action range [-2, 2]")


def test_a_damaged_import_is_named_not_silently_replaced_by_the_made_dataset(tmp_path):
    write_minari("offline-mbrl/pendulum/medium-v0", "Pendulum-v1", pendulum_episodes(0))
    good_file(tmp_path / "good.hdf5")
    import_d4rl(tmp_path / "good.hdf5", NAME)
    (Path(get_dataset_path(IMPORT_ID)) / "data" / "main_data.hdf5").write_bytes(b"")
    with pytest.raises(UserError) as err:
        load_dataset("pendulum-medium")
    assert_one_line(
        err.value,
        "main_data.hdf5",
        "`offline-mbrl datasets import-d4rl good.hdf5 --name pendulum-medium-v0 --overwrite`",
        "--dataset offline-mbrl/pendulum/medium-v0",
    )
    listed = {e.dataset_id: e for e in catalog()}
    assert listed[IMPORT_ID].damaged and not listed["offline-mbrl/pendulum/medium-v0"].damaged
    assert len(load_dataset("offline-mbrl/pendulum/medium-v0")) == 120


def test_absurd_size_is_refused_before_any_work(tmp_path):
    started = time.time()
    with pytest.raises(UserError) as err:
        make_dataset("pendulum-medium", size=1_000_000_000_000)
    assert_one_line(err.value, "--size 1,000,000,000,000 needs", "memory", "available", "cannot hold it")
    assert time.time() - started < 5
    assert tree(tmp_path / "minari") == {}


def test_size_beyond_free_memory_is_refused(monkeypatch):
    from offline_mbrl.data.make import collect

    monkeypatch.setattr(collect, "available_bytes", lambda: 10 * 2**20)
    with pytest.raises(UserError) as err:
        make_dataset("pendulum-medium", size=1_000_000)
    assert_one_line(err.value, "of memory (10 MiB available)", "choose --size 95,325 or less")


def test_staging_left_by_a_killed_publish_is_removed_and_a_live_one_kept(tmp_path):
    root = Path(get_dataset_path())
    code = (
        "import os, signal, sys\nfrom pathlib import Path\n"
        "from offline_mbrl.data.minari_io import _staging_root\n"
        "with _staging_root(Path(sys.argv[1])) as s:\n"
        "    (s / 'half-written').write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    (killed,) = [p for p in root.iterdir() if p.name.startswith(".staging-")]
    assert (killed / STAGING_MARKER).is_file()
    mine = root / ".staging-user"  # not the suite's naming: never touched
    mine.mkdir()
    young = root / ".staging-abcd1234"  # the suite's naming without a marker, but recent
    young.mkdir()
    with _staging_root(root) as live:  # removes the killed one on its way in
        assert not killed.exists()
        assert remove_stale_staging(root) == 0
        assert live.is_dir()
    assert mine.is_dir() and young.is_dir()
    os.utime(young, (time.time() - 90_000, time.time() - 90_000))
    assert remove_stale_staging(root) == 1 and not young.exists() and mine.is_dir()


def test_a_staging_root_whose_empty_marker_is_not_yet_locked_is_left_alone_while_young():
    root = Path(get_dataset_path())
    root.mkdir(parents=True, exist_ok=True)
    starting = root / ".staging-0badc0de"  # a publish between creating its marker and locking it
    starting.mkdir()
    (starting / STAGING_MARKER).touch()
    assert remove_stale_staging(root) == 0 and starting.is_dir()
    old = time.time() - 120
    os.utime(starting / STAGING_MARKER, (old, old))
    assert remove_stale_staging(root) == 1 and not starting.exists()


def test_clear_read_cache_removes_only_the_suites_files(tmp_path):
    write_minari("test/pendulum/other-v0", "Pendulum-v1", pendulum_episodes(0))
    load_dataset("test/pendulum/other-v0")
    user = cache_root() / "datasets" / "notes.npz"
    user.write_text("the user's own")
    assert clear_read_cache() == 2  # one flattened dataset, one content-hash memo
    assert user.exists() and not list((cache_root() / "hashes").iterdir())
    assert len(load_dataset("test/pendulum/other-v0")) == 120  # and it builds again


def test_nan_data_is_never_cached():
    episodes = pendulum_episodes(0)
    episodes[0][0][5, 1] = np.nan
    write_minari("test/pendulum/nan-v0", "Pendulum-v1", episodes)
    assert load_dataset("test/pendulum/nan-v0").non_finite() == {"obs": 1, "next_obs": 1}
    assert not (cache_root() / "datasets").exists() or not list((cache_root() / "datasets").iterdir())


# ---- through the real CLI ------------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"),
        "OFFLINE_MBRL_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "offline_mbrl.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def assert_cli_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_empty_import_over_a_good_one_and_damaged_listing(tmp_path):
    good_file(tmp_path / "good.hdf5")
    assert cli(tmp_path, "datasets", "import-d4rl", "good.hdf5", "--name", NAME).returncode == 0
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f["observations"] = np.zeros((0, 3))
    before = tree(tmp_path / "minari", tmp_path / "cache")
    done = cli(tmp_path, "datasets", "import-d4rl", "empty.hdf5", "--name", NAME, "--overwrite")
    assert_cli_error(done, "missing key(s) actions")
    assert tree(tmp_path / "minari", tmp_path / "cache") == before
    write_minari("test/pendulum/other-v0", "Pendulum-v1", pendulum_episodes(0))
    (Path(get_dataset_path(IMPORT_ID)) / "data" / "metadata.json").write_text("[1, 2")
    listing = cli(tmp_path, "datasets", "list")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert "DAMAGED" in listing.stdout and "test/pendulum/other-v0" in listing.stdout
    assert_cli_error(
        cli(tmp_path, "datasets", "info", "pendulum-medium"), "metadata.json is not readable JSON"
    )
    assert_cli_error(
        cli(tmp_path, "datasets", "make", "pendulum-medium", "--size", "1000000000000"), "--size"
    )


def test_repair_commands_name_the_way_each_dataset_was_written(tmp_path):
    from offline_mbrl.data.minari_io import repair_command

    assert repair_command("offline-mbrl/hopper/medium-replay-v0") == (
        "offline-mbrl datasets make hopper-medium-replay --overwrite"
    )
    assert repair_command("offline-mbrl/pendulum/medium-expert-pendulum-physics-v0") == (
        "offline-mbrl datasets make pendulum-medium-expert --family pendulum-physics --overwrite"
    )
    assert repair_command("offline-mbrl/pointmaze/stitch-v0") == (
        "offline-mbrl datasets make pointmaze-stitch --overwrite"
    )
    assert repair_command("d4rl-import/hopper/medium-v2") == (
        "offline-mbrl datasets import-d4rl FILE.hdf5 --name hopper-medium-v2 --overwrite"
    )
    assert repair_command("mujoco/hopper/medium-v0") == "minari download mujoco/hopper/medium-v0 --force"


def test_a_failed_swap_puts_the_old_dataset_back(tmp_path, monkeypatch):
    from offline_mbrl.data import minari_io

    old, new = tmp_path / "final", tmp_path / "new"
    old.mkdir(), new.mkdir()
    (old / "data.txt").write_text("old")
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the new folder's rename fails
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(minari_io.os, "replace", replace)
    with pytest.raises(OSError):
        minari_io._swap_in(new, old)
    monkeypatch.setattr(minari_io.os, "replace", real)
    assert (old / "data.txt").read_text() == "old" and new.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final", "new"]
