"""Generated cases (Hypothesis) for every config key of every registered algorithm, `--config` files and
damaged run folders. One outcome only: a one-line error naming the key (or file) before anything is
written, or a valid config (every value of its type, finite, within its key's range) / a correct read.

Profiles and the committed example database: tests/generated.py; the longer run is in docs/faults.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_mbrl.algorithms import algorithms, get_spec
from offline_mbrl.config import TrainConfig, flat_keys, get_path, to_dict
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.ranges import RANGES, range_of
from offline_mbrl.launch import FLAG_KEYS, build_config
from tests.generated import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DS = "hopper-medium"  # build_config only names it: nothing is loaded


def _keys() -> list[tuple[str, str, object]]:
    out = []
    for algo, spec in sorted(algorithms().items()):
        cfg = TrainConfig(algorithm=algo, dataset=DS, algo=spec.config_type())
        out += [(algo, key, tp) for key, tp in flat_keys(cfg).items()]
    return out


KEYS = _keys()
NUMERIC = [(a, k, t) for a, k, t in KEYS if any(x in str(t) for x in ("int", "float"))]
SPECIAL = ["", " ", "abc", "nan", "-nan", "inf", "-inf", "1e400", "-1e400", "-1", "0", "1", "-0", "0.5",
           "2.5e0", "1e9", "1e10", "99999999999999999999999", "-99999999999999999999999", "true", "none",
           "null", ",", "1,2", "1,,2", "0,0", "256,nan", "[1]", "{}", "0x10", "1_000", "１"]  # fmt: skip


def _edges(key: str) -> list[str]:
    found = range_of(key)
    if found is None:
        return []
    lo, hi = found
    out = [lo, hi, lo - 1, hi + 1, lo - 0.5, hi + 0.5, (lo + hi) / 2]
    return [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in out]


def values(key: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPECIAL + _edges(key)),
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=6),
        st.lists(st.integers(-5, 300_000), max_size=5).map(lambda xs: ",".join(map(str, xs))),
    )


def test_every_numeric_key_of_every_algorithm_has_an_allowed_range():
    missing = sorted({k for _, k, _ in NUMERIC if range_of(k) is None})
    assert missing == [], f"no range in core/ranges.py for {missing}"
    assert all(lo <= hi for lo, hi in RANGES.values())


def _within(value: object, key: str) -> bool:
    if isinstance(value, tuple):
        return all(_within(v, key) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    lo, hi = range_of(key) or (-math.inf, math.inf)
    return math.isfinite(value) and lo <= value <= hi


@SETTINGS
@given(data=st.data())
def test_any_value_of_any_key_is_a_one_line_error_naming_it_or_a_valid_config(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    algo, key, _ = data.draw(st.sampled_from(KEYS), label="key")
    value = data.draw(values(key), label="value")
    try:
        cfg = build_config(algo, DS, overrides=[f"{key}={value}"])
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message
        named = FLAG_KEYS.get(key, key)
        assert named in message or key.rpartition(".")[2] in message, message
    else:
        got = get_path(cfg, key)
        assert _within(got, key), (key, value, got)
        if key in FLAG_KEYS:
            pytest.fail(f"--set {key} overrode its flag")
    assert list(tmp_path.iterdir()) == []


def _json_values() -> st.SearchStrategy[object]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
    )
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=5,
    )


def _paths(raw: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in raw.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


@SETTINGS
@given(data=st.data())
def test_any_damage_to_a_config_file_is_a_one_line_error_or_a_valid_config(data, tmp_path, monkeypatch):
    """A `--config` file: a run's config.json with one entry replaced, removed or renamed, or the whole
    document replaced; read as `train --config FILE` reads it."""
    monkeypatch.chdir(tmp_path)
    algo = data.draw(st.sampled_from(sorted(algorithms())), label="algo")
    raw = {"config": to_dict(build_config(algo, DS))}
    how = data.draw(st.sampled_from(["replace", "remove", "rename", "document"]), label="how")
    if how == "document":
        doc: object = data.draw(_json_values(), label="document")
    else:
        path = data.draw(st.sampled_from(_paths(raw["config"])), label="entry")
        parent = raw["config"]
        for part in path[:-1]:
            parent = parent[part]
        if how == "replace":
            parent[path[-1]] = data.draw(_json_values(), label="value")
        elif how == "remove":
            del parent[path[-1]]
        else:
            parent[path[-1] + "x"] = parent.pop(path[-1])
        doc = raw
    file = tmp_path / "given.json"
    file.write_text(json.dumps(doc))
    before = sorted(tmp_path.rglob("*"))
    try:
        cfg = build_config(algo, DS, config_file=file)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        for key in flat_keys(cfg):
            assert _within(get_path(cfg, key), key), key
    assert sorted(tmp_path.rglob("*")) == before


# ---- damaged run folders ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished BC run (20 steps) on a tiny dataset, made once for the module."""
    import numpy as np

    from offline_mbrl.launch import execute
    from tests.conftest import TINY_LOOP, synthetic_episode, write_minari

    base = tmp_path_factory.mktemp("finished")
    env = {"MINARI_DATASETS_PATH": str(base / "minari"), "OFFLINE_MBRL_CACHE": str(base / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        rng = np.random.default_rng(0)
        episodes = [synthetic_episode(rng, 3, 1, 50, "trunc") for _ in range(3)]
        write_minari("test/pendulum/tiny-v0", "Pendulum-v1", episodes)
        tiny = [*TINY_LOOP, "algo.hidden=16,16"]
        cfg = build_config("bc", "test/pendulum/tiny-v0", steps=20, overrides=tiny)
        execute(cfg, base / "results", progress=False)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return base, env


def _damage(path: Path, how: str, at: float) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: int(len(data) * at)])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(bytes((b * 7 + 13) % 256 for b in data))
    elif how == "list":
        path.write_text("[1, 2]")
    elif how == "remove":
        path.unlink()
    elif how == "last line cut":
        path.write_bytes(data[: max(0, len(data) - 5)])


@SETTINGS
@given(
    file=st.sampled_from(["final.json", "config.json", "metrics.jsonl", "policy.pt"]),
    how=st.sampled_from(["truncate", "empty", "garbage", "list", "remove", "last line cut"]),
    at=st.floats(0, 1),
    reader=st.sampled_from(["reuse", "load_run", "report", "curves"]),
)
def test_a_damaged_run_folder_is_one_line_naming_the_file_or_read_correctly(
    finished_run, tmp_path, monkeypatch, file, how, at, reader
):
    base, env = finished_run
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    results = Path(tempfile.mkdtemp(dir=tmp_path)) / "results"  # one per example
    shutil.copytree(base / "results", results)
    run_dir = next(p for p in results.glob("bc/*/*") if p.is_dir())
    _damage(run_dir / file, how, at)
    before = {p: p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file() and p.suffix != ".lock"}
    from offline_mbrl.config import train_config_from_dict
    from offline_mbrl.launch import execute, load_run
    from offline_mbrl.report.curves import load_curves
    from offline_mbrl.report.table import load_results

    try:
        if reader == "reuse":  # train's rerun of the same command
            raw = json.loads((base / "results" / run_dir.relative_to(results) / "config.json").read_text())
            cfg = train_config_from_dict(raw["config"], get_spec("bc").config_type)
            execute(cfg, results, progress=False)
        elif reader == "load_run":  # evaluate, diagnose --run
            load_run(run_dir)
        else:
            df = load_results([results])
            if reader == "curves":
                load_curves(df)
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message
        assert file in message or str(run_dir) in message, message
    after = {p: p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file() and p.suffix != ".lock"}
    assert after == before  # nothing of the run rewritten or removed by a reader


# ---- damaged artefact-cache entries ------------------------------------------------------------------------
@SETTINGS
@given(
    how=st.sampled_from(["truncate", "empty", "garbage", "list", "remove"]),
    pick=st.integers(0, 10),
    at=st.floats(0, 1),
)
def test_a_damaged_dynamics_cache_entry_is_listed_as_damaged_and_rebuilt_or_one_line(
    tmp_path, monkeypatch, how, pick, at
):
    """Any file of a cached ensemble damaged: `cache ls` still lists every entry; loading rebuilds the entry
    (the same fit again) or says in one line what is damaged."""
    import numpy as np

    from offline_mbrl.config import dynamics_config_from_overrides
    from offline_mbrl.core.cache import list_artefacts
    from offline_mbrl.data.dataset import load_dataset
    from offline_mbrl.models.dynamics import load_or_fit
    from tests.conftest import synthetic_episode, write_minari

    root = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(root / "cache"))
    rng = np.random.default_rng(0)
    write_minari(
        "test/pendulum/tiny-v0", "Pendulum-v1", [synthetic_episode(rng, 3, 1, 50, "trunc") for _ in range(2)]
    )
    dataset = load_dataset("test/pendulum/tiny-v0")
    tiny = ["dynamics.hidden=8", "dynamics.weight_decay=0,0", "dynamics.max_epochs=1", "dynamics.members=2"]
    cfg = dynamics_config_from_overrides(0, [*tiny, "dynamics.elites=1"])
    load_or_fit(dataset, cfg, progress=False)
    (entry,) = [Path(p) for p in (root / "cache" / "dynamics").iterdir() if p.is_dir()]
    files = sorted(p for p in entry.iterdir() if p.is_file())
    _damage(files[pick % len(files)], how, at)
    rows = list_artefacts()
    assert len(rows) == 1 and rows[0]["key"] == entry.name
    try:
        model, _, key = load_or_fit(dataset, cfg, progress=False)
    except UserError as exc:
        assert "\n" not in str(exc) and "damaged" in str(exc), str(exc)
    else:
        assert key == entry.name and not list_artefacts()[0]["damaged"]
