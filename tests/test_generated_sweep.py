"""Generated cases for sweeps (issue 26): search-space files and damaged study journals drawn by Hypothesis.

Each drawn case has one allowed outcome. A space file validates (and a configuration proposed from it
passes the config's own validation) or is refused by a one-line UserError naming the file and the key. A
damaged journal opens and reads whole, or is refused in one line naming the file, the line and
`sweep repair`; after the repair it opens and holds every trial its undamaged part held, and the repaired
journal plus its side file are the damaged bytes exactly (nothing dropped).

`OFFLINE_MBRL_HYPOTHESIS_EXAMPLES` sets the examples per test (default 25, the CI profile); the longer run
is `OFFLINE_MBRL_HYPOTHESIS_EXAMPLES=500 python -m pytest tests/test_generated_sweep.py`. Found cases stay
in tests/hypothesis-examples/ and are replayed first.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline_mbrl.config import flat_keys
from offline_mbrl.core.errors import UserError
from offline_mbrl.launch import build_config
from offline_mbrl.sweep.grid import load_grid
from offline_mbrl.sweep.results import load_study
from offline_mbrl.sweep.space import DERIVED, RESERVED, load_space, validate
from offline_mbrl.sweep.storage import JournalHeartbeat, check_journal, open_storage, repair_journal
from tests.generated import SETTINGS as GENERATED

ROOT = Path(__file__).resolve().parents[1]
STUDY = "gen"
ALGOS = ("mbpo", "mopo", "ravl", "mobile", "combo")
DATASET = "hopper-medium"  # build_config does not need it present

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- search-space files ---------------------------------------------------------------------------------
@cache
def config_keys(algo: str) -> dict[str, Any]:
    return flat_keys(build_config(algo, DATASET))


def toml_value(value: Any) -> str:
    """TOML text of a drawn value (strings through JSON's escapes, which TOML shares for these)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


CHARS = st.characters(blacklist_categories=("Cs",))  # TOML strings hold no lone surrogates


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest literal."""
    escaped = "".join(
        "\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text
    )
    return f'"{escaped}"'


scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-5, 60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0),
    st.booleans(),
    st.text(alphabet=CHARS, max_size=8),
    st.sampled_from(["llv", "max_aleatoric", "200,200", "elites", "true", "1e-3", ""]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(alphabet=CHARS, max_size=4), scalars, max_size=2),
)


@st.composite
def param_key(draw, algo: str) -> str:
    keys = config_keys(algo)
    other = config_keys("combo" if algo != "combo" else "ravl")
    typed = sorted(k for k, tp in keys.items() if tp in (int, float, bool))
    return draw(
        st.one_of(
            st.sampled_from(typed),
            st.sampled_from(typed),
            st.sampled_from(typed),
            st.sampled_from(sorted(keys)),
            st.sampled_from(sorted(set(other) - set(keys)) or ["algo.beta"]),
            st.sampled_from([*DERIVED, "seed", "dataset", "algorithm", "steps", "algo.horizn", "algo"]),
            st.text(alphabet=CHARS, min_size=1, max_size=12),
        )
    )


@st.composite
def good_spec(draw, tp: Any) -> dict:
    """A spec of the key's own type, in a plausible range: the draws that can validate."""
    if tp is bool:
        return {
            "type": "categorical",
            "choices": draw(st.lists(st.booleans(), min_size=1, max_size=2, unique=True)),
        }
    if tp is int:
        low = draw(st.integers(0, 20))
        spec = {"type": "int", "low": low, "high": low + draw(st.integers(1, 20))}
        if draw(st.booleans()):
            spec["log"] = low > 0 and draw(st.booleans())
        return spec
    low = draw(st.floats(0.0, 1.0))
    high = draw(st.floats(low, 2.0))
    spec = {"type": "float", "low": low, "high": high}
    if draw(st.booleans()):
        spec["log"] = draw(st.booleans())
    return spec


@st.composite
def any_spec(draw) -> Any:
    kind = draw(st.sampled_from(["float", "int", "categorical"] if draw(st.integers(0, 5)) else ["cat", 3]))
    spec: dict[str, Any] = {"type": kind}
    for field in draw(st.lists(st.sampled_from(["low", "high", "log", "step", "choices", "hi"]), max_size=4)):
        spec[field] = draw(st.lists(scalars, max_size=3) if field == "choices" else scalars)
    return spec if draw(st.integers(0, 4)) else draw(values)


@st.composite
def space_document(draw) -> tuple[str, str, list[str]]:
    """(TOML text, the --algo it is checked for, the keys it names): mostly a plausible file with some
    keys of the algorithm's own types, else one broken part (a field of the wrong type, a missing table,
    an unknown field, a truncated or empty file)."""
    algo = draw(st.sampled_from(ALGOS))
    keys = config_keys(algo)
    params: dict[str, Any] = {}
    typed = sorted(k for k, tp in keys.items() if tp in (int, float, bool) and k not in RESERVED)
    plausible = draw(st.booleans())  # every key the algorithm's own, each spec of its type
    for _ in range(draw(st.integers(1, 4)) if draw(st.integers(0, 9)) else 0):
        key = draw(st.sampled_from(typed) if plausible else param_key(algo))
        tp = keys.get(key)
        good = tp in (int, float, bool) and (plausible or draw(st.integers(0, 3)) > 0)
        params[key] = draw(good_spec(tp)) if good else draw(any_spec())
    broken = draw(st.integers(0, 29))  # 0-6: one part of the file broken
    fixed = draw(st.dictionaries(param_key(algo), values, min_size=1, max_size=2)) if broken == 1 else {}
    claimed = draw(st.sampled_from(["ravl", None, 5])) if broken == 2 else algo
    lines = [] if claimed is None else [f"algorithm = {toml_value(claimed)}"]
    if draw(st.booleans()):
        text = draw(st.one_of(st.text(alphabet=CHARS, max_size=10), scalars)) if broken == 3 else "a space"
        lines.append(f"description = {toml_value(text)}")
    if broken == 4:
        lines.append(f"colour = {toml_value(draw(scalars))}")
    if fixed:
        lines.append("[fixed]")
        lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in fixed.items()]
    if broken != 5:
        lines.append("[params]")
        lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in params.items()]
    text = "\n".join(lines) + "\n"
    if broken == 6:
        text = draw(st.sampled_from(["", text[: draw(st.integers(0, len(text)))], text + "\n= x"]))
    return text, algo, [*params, *fixed]


def propose(space, base, seed: int) -> dict[str, Any]:
    """A configuration the sweep's sampler could propose: one trial of a seeded random sampler."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask()
        return {p.key: p.suggest(trial) for p in space.params}


@GENERATED
@given(document=space_document(), seed=st.integers(0, 2**16))
def test_a_drawn_space_validates_or_is_refused_in_one_line_naming_the_key(tmp_path, document, seed):
    text, algo, keys = document
    path = tmp_path / "space.toml"
    path.write_text(text)
    try:
        space = load_space(path)
        base = validate(space, algo, DATASET, 40, [])
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert str(path) in message, message
        whole_file = (
            "cannot read",
            "`algorithm`",
            "[params]",
            "[fixed] or --set",  # the config's own message names the key
            "unknown field",
            "description",
            "a search space for",
            "lowest values",
            "highest values",
        )
        named = any(repr(k) in message or json.dumps(k) in message or k in message for k in keys)
        assert named or any(w in message for w in whole_file), message
        assert not (tmp_path / "sweeps").exists()  # nothing written
        return
    values = propose(space, base, seed)
    build_config(algo, DATASET, steps=40, overrides=space.overrides(values, base))  # must not raise


def test_the_cases_the_generator_found_stay_fixed(tmp_path):
    """Draws that once got through: unquoted dotted keys read as nested tables, a middle value that fails
    (3 divides neither cadence, 1 and 5 do: the random sampler proposed it), non-finite or huge bounds, a
    wrong [fixed] type, a key holding a line break, a sweep-owned key in [fixed]."""
    path = tmp_path / "s.toml"
    path.write_text('algorithm = "mopo"\n[params]\nalgo.horizon = { type = "int", low = 1, high = 5 }\n')
    assert [p.key for p in load_space(path).params] == ["algo.horizon"]
    H = '"algo.horizon" = { type = "int", low = 1, high = 5 }'
    cases = {
        '[params]\n"algo.horizon" = { type = "categorical", choices = [1, -5, 3] }': "'algo.horizon' = '-5'",
        '[params]\n"algo.penalty_coef" = { type = "float", low = 0.0, high = inf }': "finite",
        '[params]\n"algo.penalty_coef" = { type = "float", low = nan, high = 1.0 }': "finite",
        '[params]\n"algo.horizon" = { type = "int", low = 1, high = 9223372036854775807 }': "finite",
        f"fixed = 3\n[params]\n{H}": "[fixed] must be a table",
        '[params]\n"algo.\\nhorizon" = { type = "int", low = 1, high = 5 }': '"algo.\\nhorizon"',
        f"[fixed]\nseed = 3\n[params]\n{H}": "--seeds",
        '[params]\n"algo.horizon" = { type = "int", low = 1, high = 5, log = "yes" }': "log must be",
        '[params]\n"algo.horizon" = { low = 1, high = 5 }': "needs a table with type",
        '[params]\n"log_every" = { type = "int", low = 1, high = 5 }': "'log_every' = '3' with the lowest",
    }
    for body, words in cases.items():
        path.write_text(f'algorithm = "mopo"\n{body}\n')
        with pytest.raises(UserError) as err:
            validate(load_space(path), "mopo", DATASET, 40, [])
        assert words in str(err.value) and "\n" not in str(err.value), (body, str(err.value))


# --- damaged journals -----------------------------------------------------------------------------------
def tiny_journal(path: Path) -> None:
    """A real study in the suite's journal storage: a sweep's attributes, trials complete, failed, pruned
    and running (with heartbeats), float, int and categorical parameters, intermediate values."""
    storage = JournalHeartbeat(str(path), 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
        for key, value in {
            "algorithm": "mbpo",
            "datasets": ["hopper-medium"],
            "steps": 40,
            "seeds": 1,
        }.items():
            study.set_user_attr(key, value)
        for i in range(5):
            trial = study.ask()
            x = trial.suggest_float("algo.real_ratio", 0.05, 1.0)
            trial.suggest_int("algo.horizon", 1, 5)
            trial.suggest_categorical("algo.penalty", ["llv", "max_aleatoric"])
            storage.record_heartbeat(trial._trial_id)
            trial.report(x / 2, 10)
            if i == 4:
                break  # left running
            state = [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL][i % 2]
            if i == 3:
                state = optuna.trial.TrialState.PRUNED
            trial.set_user_attr("fail_reason" if state.name == "FAIL" else "worker", "x")
            study.tell(trial, x if state.name == "COMPLETE" else None, state=state)


@pytest.fixture(scope="module")
def journal_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("journal") / "journal.log"
    tiny_journal(path)
    return path.read_bytes()


def trials_of(path: Path) -> dict[int, tuple]:
    study = optuna.load_study(study_name=STUDY, storage=JournalHeartbeat(str(path), 60))
    return {t.number: (t.state, t.params, t.values) for t in study.get_trials(deepcopy=False)}


wrong_json = st.one_of(
    st.sampled_from(["[1, 2]", "42", '"text"', "null", "true", "{}", '{"op_code": "4"}', '{"op_code": 99}']),
    st.sampled_from(['{"op_code": 4}', '{"op_code": 6, "trial_id": 0}', '{"op_code": 5, "trial_id": 99}']),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=7), inner, max_size=3),
        max_leaves=6,
    ).map(json.dumps),
)


@st.composite
def damage(draw, good: bytes) -> bytes:
    lines = good.splitlines(keepends=True)
    kind = draw(st.sampled_from(["truncate", "garbage", "wrong type", "empty", "cut middle", "appended op"]))
    if kind == "truncate":  # a killed writer, a full disk
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "garbage":
        return good + draw(st.binary(min_size=1, max_size=64))
    if kind == "wrong type":
        i = draw(st.integers(0, len(lines) - 1))
        return b"".join([*lines[:i], draw(wrong_json).encode() + b"\n", *lines[i + 1 :]])
    if kind == "empty":
        return b""
    if kind == "cut middle":  # a half line, then the next writer's complete lines: the poisoned state
        i = draw(st.integers(0, len(lines) - 2))
        cut = draw(st.integers(1, len(lines[i]) - 1))
        return b"".join([*lines[:i], lines[i][:cut], *lines[i + 1 :]])
    return good[: draw(st.integers(0, len(good) - 1))] + lines[-1]


def undamaged_prefix(good: bytes, damaged: bytes) -> bytes:
    """The original's complete lines that the damaged file still starts with."""
    kept = b""
    for line in good.splitlines(keepends=True):
        if not damaged.startswith(kept + line):
            break
        kept += line
    return kept


def read_or_refuse(path: Path) -> tuple[dict | None, str]:
    try:
        study = load_study(STUDY, str(path))
    except UserError as exc:
        return None, str(exc)
    return {t.number: (t.state, t.params, t.values) for t in study.get_trials(deepcopy=False)}, ""


@GENERATED
@given(data=st.data())
def test_a_damaged_journal_is_refused_in_one_line_and_repair_keeps_every_complete_trial(
    tmp_path, journal_bytes, data
):
    damaged = data.draw(damage(journal_bytes))
    folder = tmp_path / f"j{os.urandom(4).hex()}"
    folder.mkdir()
    path = folder / "journal.log"
    path.write_bytes(damaged)
    read, message = read_or_refuse(path)
    assert path.read_bytes() == damaged  # opening writes nothing
    found = check_journal(path)
    if read is None:
        assert "\n" not in message and str(path) in message, message
        if found.bad_line:
            assert (
                f"line {found.bad_line} " in message and f"sweep repair {STUDY} --storage {path}" in message
            )
        else:
            assert "no study" in message  # a whole journal without the study (cut before its first line)
    else:
        assert not found.bad_line
    kept = undamaged_prefix(journal_bytes, damaged)
    expected_path = folder / "expected.log"
    expected_path.write_bytes(kept)
    expected = trials_of(expected_path) if kept else {}

    _, side, _ = repair_journal(STUDY, str(path))
    repaired = path.read_bytes()
    assert repaired + (side.read_bytes() if side else b"") == damaged  # nothing dropped
    assert not check_journal(path).bad_line
    after, message = read_or_refuse(path)
    if after is None:
        assert not expected and "no study" in message, message
        return
    for number, (state, params, values) in expected.items():
        assert after[number][1] == params
        if state.is_finished():
            assert after[number] == (state, params, values)
    # and the study takes new writes
    study = optuna.load_study(study_name=STUDY, storage=open_storage(STUDY, str(path))[0])
    study.add_trial(optuna.trial.create_trial(value=1.0))
    assert len(trials_of(path)) == len(after) + 1 and not check_journal(path).bad_line


@GENERATED
@given(data=st.data())
def test_a_write_after_a_half_written_line_moves_it_aside_and_never_continues_it(
    tmp_path, journal_bytes, data
):
    """The poisoned state: a live worker writes after a worker killed mid-line. Its write moves the half
    line into a side file first, so the journal stays whole and nothing is dropped."""
    lines = journal_bytes.splitlines(keepends=True)
    keep = data.draw(st.integers(1, len(lines) - 1))
    cut = data.draw(st.integers(1, len(lines[keep]) - 1))
    folder = tmp_path / f"w{os.urandom(4).hex()}"
    folder.mkdir()
    path = folder / "journal.log"
    path.write_bytes(b"".join(lines[:keep]) + lines[keep][:cut])
    storage = JournalHeartbeat(str(path), 60)  # a worker that opened the journal before the damage
    storage.set_study_user_attr(0, "note", "written after the damage")
    assert not check_journal(path).bad_line
    (side,) = folder.glob("journal.log.damaged-*")
    assert side.read_bytes() == lines[keep][:cut]
    assert optuna.load_study(study_name=STUDY, storage=open_storage(STUDY, str(path))[0]).user_attrs["note"]


def test_the_journals_the_generator_found_stay_fixed(tmp_path, journal_bytes):
    """A journal cut inside its first line, given as --storage, was taken for a user's file and refused
    without a repair; it is a journal (it starts as one) and repairs to an empty study file."""
    path = tmp_path / "journal.log"
    path.write_bytes(b"{")
    with pytest.raises(UserError, match=f"line 1 of 1 is half-written.*sweep repair {STUDY} --storage"):
        load_study(STUDY, str(path))
    found, side, _ = repair_journal(STUDY, str(path))
    assert found.good == 0 and path.read_bytes() == b"" and side is not None and side.read_bytes() == b"{"


# --- through the real CLI -------------------------------------------------------------------------------
def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "offline_mbrl.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_cli_refuses_a_damaged_journal_in_one_line_and_repair_mends_it(tmp_path, journal_bytes):
    folder = tmp_path / "sweeps" / STUDY
    folder.mkdir(parents=True)
    path = folder / "journal.log"
    lines = journal_bytes.splitlines(keepends=True)
    damaged = b"".join(lines[:-1]) + lines[-1][:30]  # half-written last line
    path.write_bytes(damaged)
    os.symlink(path, str(path) + ".lock")  # and Optuna's lock, left by the writer SIGKILLed mid-line
    for command in (("sweep", "show", STUDY), ("sweep", "export", STUDY), ("sweep", "report", STUDY)):
        done = cli(tmp_path, *command)
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(err) == 1, (command, done.stderr)
        assert err[0].startswith(f"error: {path.relative_to(tmp_path)} line {len(lines)} of {len(lines)}")
        assert f"offline-mbrl sweep repair {STUDY}" in err[0] and "Traceback" not in done.stderr
        assert path.read_bytes() == damaged
    assert not (tmp_path / "results").exists() and not (tmp_path / "reports").exists()
    with pytest.raises(UserError, match=f"line {len(lines)} of {len(lines)} is half-written"):
        load_grid(STUDY, str(path))  # compare, reproduce and report --study check it the same way
    done = cli(tmp_path, "sweep", "repair", STUDY)
    assert done.returncode == 0 and f"kept the {len(lines) - 1} complete operations" in done.stdout, (
        done.stdout
    )
    assert "moved lines" in done.stdout
    assert path.read_bytes() == b"".join(lines[:-1]) and not os.path.lexists(str(path) + ".lock")
    done = cli(tmp_path, "sweep", "show", STUDY)
    assert done.returncode == 0 and "5 trials" in done.stdout, done.stdout + done.stderr
    done = cli(tmp_path, "sweep", "repair", STUDY)
    assert done.returncode == 0 and "nothing to repair" in done.stdout


def test_cli_refuses_a_file_that_is_not_a_journal_without_touching_it(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's notes\n")
    for command in (
        ("sweep", "show", STUDY, "--storage", "notes.txt"),
        ("sweep", "repair", STUDY, "--storage", "notes.txt"),
    ):
        done = cli(tmp_path, *command)
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(err) == 1 and "not an Optuna journal" in err[0], done.stderr
    assert notes.read_text() == "the user's notes\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]
    shutil.rmtree(tmp_path / "sweeps", ignore_errors=True)
