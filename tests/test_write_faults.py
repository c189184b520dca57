"""Disk faults while writing: a full disk (ENOSPC, or torch's zip writer failing under it), a folder that
cannot be created; one line, nothing half-written, and other errors are not disguised as disk faults."""

from __future__ import annotations

import errno

import pytest
import torch

from offline_mbrl.cache import atomic_path
from offline_mbrl.errors import EnvironmentFault


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    final = tmp_path / "model.pt"
    with pytest.raises(
        EnvironmentFault, match=r"cannot write .*model.pt \(No space left on device; .* MiB free"
    ):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_torchs_writer_failing_on_a_full_disk_is_a_disk_fault(tmp_path, monkeypatch):
    def full(obj, f, *args, **kwargs):  # what torch.save raises when the disk fills mid-write
        open(f, "wb").write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6400 vs 6288")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(EnvironmentFault, match="the write failed"):
        with atomic_path(tmp_path / "ckpt.pt") as tmp:
            torch.save({}, tmp)
    assert list(tmp_path.iterdir()) == []


def test_other_errors_inside_a_write_are_not_disguised(tmp_path):
    with pytest.raises(RuntimeError, match="a bug"):
        with atomic_path(tmp_path / "x") as tmp:
            tmp.write_text("x")
            raise RuntimeError("a bug")
    with pytest.raises(OSError, match="not a disk fault"):
        with atomic_path(tmp_path / "y"):
            raise OSError(errno.ENOENT, "not a disk fault")
    assert list(tmp_path.iterdir()) == []


def test_a_results_folder_that_cannot_be_created_is_one_line(tmp_path, capsys):
    import numpy as np

    from tests.conftest import synthetic_episode, write_minari
    from tests.test_cli import run_cli

    write_minari(
        "test/pendulum/w-v0", "Pendulum-v1", [synthetic_episode(np.random.default_rng(0), 3, 1, 30, "trunc")]
    )
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(
        capsys, "train", "--algo", "bc", "--dataset", "test/pendulum/w-v0", "--steps", "10",
        "--results", str(tmp_path / "file" / "results"),
    )  # fmt: skip
    assert code == 2 and err.startswith("error: cannot") and err.count("\n") == 1, err
    assert (tmp_path / "file").read_text() == "x"


def test_sigterm_is_handled_like_ctrl_c_one_line_and_exit_130(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import time\n"
        "from offline_mbrl.console import run_app\n"
        "def work():\n"
        "    open(r'%s', 'w').write('started')\n"
        "    time.sleep(60)\n"
        "run_app(work)\n"
    ) % (tmp_path / "started")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    for _ in range(200):  # wait until the command runs (imports take a moment)
        if (tmp_path / "started").exists():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert (
        err.strip().startswith("interrupted: ") and "rerun the same command" in err and err.count("\n") == 1
    )
