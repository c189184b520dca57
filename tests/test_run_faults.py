"""Run folders under faults: one process per run folder, damaged files named in one line with their repair,
sizes this machine cannot hold refused before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offline_mbrl.core.errors import EnvironmentFault, UserError
from offline_mbrl.core.run_files import read_config, read_final, read_metrics
from offline_mbrl.launch import build_config, check_memory, execute, plan_seeds
from offline_mbrl.learning.run import run_dir_for

from .conftest import TINY_LOOP, synthetic_episode, write_minari

DS = "test/pendulum/tiny-v0"
TINY = TINY_LOOP
CLI = [sys.executable, "-m", "offline_mbrl.cli"]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    write_minari(DS, "Pendulum-v1", [synthetic_episode(rng, 3, 1, 50, "trunc") for _ in range(3)])
    return tmp_path


def test_a_run_folder_held_by_another_process_is_one_line_naming_it_before_anything_is_written(tiny):
    cfg = build_config("bc", DS, steps=20, overrides=[*TINY, "algo.hidden=16,16"])
    out = run_dir_for(cfg, tiny / "results")
    out.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, sys, time\n"
            f"h = open({str(out.parent / f'.{out.name}.lock')!r}, 'a+')\n"
            "fcntl.flock(h, fcntl.LOCK_EX); h.write('pid 4242 (offline-mbrl train)'); h.flush()\n"
            "print('held', flush=True); time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=r"in use by pid 4242 \(offline-mbrl train\)") as err:
            execute(cfg, tiny / "results", progress=False)
        assert "\n" not in str(err.value)
        assert not out.exists()  # no run folder: nothing written
        out.mkdir()  # the holder has started writing: still "in use", not "pass --resume"
        (out / "metrics.jsonl").write_text('{"step": 10}\n')
        with pytest.raises(UserError, match=r"in use by pid 4242"):
            execute(cfg, tiny / "results", progress=False)
        (out / "metrics.jsonl").unlink()
        out.rmdir()
    finally:
        holder.kill()
        holder.wait()
    final = execute(cfg, tiny / "results", progress=False)  # released: the run trains
    assert final["steps"] == 20


def test_two_identical_train_commands_at_once_train_the_run_once(tiny):
    args = ["train", "--algo", "bc", "--dataset", DS, "--steps", "3000", "--set", "algo.hidden=16,16"]
    args += ["--set", "log_every=100", "--set", "eval_every=1000", "--set", "checkpoint_every=1000"]
    args += ["--set", "eval_episodes=1", "--set", "final_eval_episodes=1", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ]
    time.sleep(0.3)
    procs.append(
        subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    )
    ends = [(p.wait(timeout=300), p.stderr.read()) for p in procs if p.stderr is not None]
    codes = sorted(code for code, _ in ends)
    assert codes in ([0, 0], [0, 2]), ends
    for code, err in ends:
        if code == 2:
            assert err.count("\n") == 1 and "is in use by pid" in err, err
    metrics = next(Path("results").glob("bc/*/*/metrics.jsonl"))
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert len(steps) == len(set(steps)) == 30  # every row once


@pytest.fixture
def finished(tiny):
    cfg = build_config("bc", DS, steps=20, overrides=[*TINY, "algo.hidden=16,16"])
    execute(cfg, tiny / "results", progress=False)
    return run_dir_for(cfg, tiny / "results")


@pytest.mark.parametrize(
    ("file", "content", "reader", "said"),
    [
        ("final.json", b'{"algorithm": "bc"', read_final, "final.json is damaged (not valid JSON"),
        ("final.json", b"[1, 2]", read_final, "final.json is damaged (a JSON list, not an object)"),
        ("final.json", b'{"algorithm": "bc"}', read_final, "final.json is damaged (no dataset, seed, steps"),
        ("config.json", b"\xff\xfe\x00garbage", read_config, "config.json is damaged (not valid JSON"),
        ("config.json", b'{"config": 3}', read_config, "its config entry is not a run's config"),
        ("config.json", b'{"config": {"algorithm": "bc"}}', read_config, "its config entry is not a run's"),
        ("metrics.jsonl", b'{"step": 10}\n{"step": 2', read_metrics, "line 2 of 2 is not a metrics row"),
    ],
)
def test_a_damaged_run_file_is_one_line_naming_it_and_the_command_that_trains_the_run_again(
    finished, file, content, reader, said
):
    intact = read_config(finished)
    (finished / file).write_bytes(content)
    with pytest.raises(UserError) as err:
        reader(finished)
    message = str(err.value)
    assert said in message and "\n" not in message, message
    if file != "config.json":  # config.json intact: the exact command, from it
        assert f"train it again with: offline-mbrl train --config {finished}/config.json --algo bc" in message
        assert f"--dataset {intact['dataset']} --seed 0 --device cpu" in message and message.endswith(
            "--force"
        )


def test_an_unfinished_runs_cut_short_last_metrics_line_is_left_out_not_an_error(finished):
    (finished / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20, "lo')
    assert read_metrics(finished, finished=False) == [{"step": 10}]
    with pytest.raises(UserError, match="line 2 of 2"):
        read_metrics(finished)


def test_seeds_and_memory_beyond_the_machine_are_refused_in_one_line():
    with pytest.raises(UserError, match="--seeds must be between 1 and 100, got 10000"):
        plan_seeds(0, 10_000)
    with pytest.raises(UserError, match="passes the largest seed 2147483647"):
        plan_seeds(2**31 - 2, 5)
    plan_seeds(0, 100)
    huge = build_config(
        "mopo", "hopper-medium", overrides=["algo.rollout_batch=100000000", "algo.horizon=1000"]
    )
    with pytest.raises(EnvironmentFault, match=r"need at least [\d,.]+ GiB of memory .*model buffer") as err:
        check_memory([huge])
    assert "\n" not in str(err.value)
    check_memory([build_config("mopo", "hopper-medium")])  # the paper's settings fit


def test_cache_clear_also_removes_the_datasets_read_caches_and_only_those(tiny):
    from offline_mbrl.data.dataset import load_dataset

    load_dataset(DS)
    cache = Path(os.environ["OFFLINE_MBRL_CACHE"])
    own = sorted(p.name for p in (cache / "datasets").iterdir())
    assert own and all(p.endswith(".npz") for p in own)
    (cache / "datasets" / "mine.txt").write_text("a user's file")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*CLI, "cache", "clear"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "read-cache file" in done.stdout
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["mine.txt"]
    assert load_dataset(DS).fingerprint.content_hash  # rebuilt on the next load
