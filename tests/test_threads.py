"""Torch's CPU threads follow the cores the process may use (affinity, cgroup quota), or `--threads`."""

from __future__ import annotations

import os

import pytest
import torch

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.threads import _cgroup_quota, configure_threads, usable_cores


def test_cgroup_quotas_v2_and_v1_are_read_in_cores(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_quota(v1) == 0.5
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _cgroup_quota(v1) is None
    assert _cgroup_quota(tmp_path / "none") is None


def test_usable_cores_is_the_affinity_capped_by_the_quota_and_at_least_one(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == affinity  # no quota files: the affinity set
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert usable_cores(tmp_path) == 1  # a one-core quota on any machine
    (tmp_path / "cpu.max").write_text("20000 100000\n")
    assert usable_cores(tmp_path) == 1  # a fifth of a core still runs one thread
    (tmp_path / "cpu.max").write_text(f"{(affinity + 4) * 100000} 100000\n")
    assert usable_cores(tmp_path) == affinity  # a quota above the pinned cores changes nothing


def test_configure_threads_sets_torch_and_refuses_zero():
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        n = configure_threads(None)  # the usable cores less those busy now: machine load decides
        assert 1 <= n <= usable_cores() and n == torch.get_num_threads()
        with pytest.raises(UserError, match="--threads must be at least 1"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_train_threads_option_reaches_the_run(tiny_pendulum, tmp_path, capsys):
    import json
    import sys

    from offline_mbrl.cli.main import main

    before = torch.get_num_threads()
    argv = [
        "offline-mbrl",
        "train",
        "--algo",
        "bc",
        "--dataset",
        tiny_pendulum,
        "--steps",
        "10",
        "--threads",
        "1",
    ]
    argv += ["--set", "log_every=10", "--set", "eval_every=10", "--set", "checkpoint_every=10"]
    argv += ["--set", "final_eval_episodes=1", "--results", str(tmp_path)]
    old, sys.argv = sys.argv, argv
    try:
        main()
    finally:
        sys.argv = old
        torch.set_num_threads(before)
    final = json.loads(next(tmp_path.rglob("final.json")).read_text())
    assert final["device"].endswith("1 threads)")


def test_idle_cores_reads_the_idle_share_of_proc_stat(tmp_path, monkeypatch):
    from offline_mbrl.core.threads import idle_cores

    stat = tmp_path / "stat"
    # two cores; between the samples 100 jiffies pass, 50 of them idle (and 10 iowait): 1.2 cores idle
    stat.write_text("cpu  100 0 100 800 0 0 0\ncpu0 50 0 50 400 0\ncpu1 50 0 50 400 0\n")

    def later(seconds):
        stat.write_text("cpu  130 0 110 850 10 0 0\ncpu0 65 0 55 425 5\ncpu1 65 0 55 425 5\n")

    monkeypatch.setattr("time.sleep", later)
    assert idle_cores(stat=stat) == pytest.approx(2 * 60 / 100)
    assert idle_cores(stat=tmp_path / "missing") is None


def test_default_threads_leave_out_a_core_a_busy_process_takes():
    import subprocess
    import sys
    import time

    from offline_mbrl.core.threads import default_threads

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert default_threads() <= max(1, usable_cores() - 1)
    finally:
        busy.kill()
        busy.wait()
