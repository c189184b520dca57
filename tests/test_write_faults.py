"""Disk faults while writing: a full disk (ENOSPC, or torch's zip writer failing under it), a folder that
cannot be created; one line, nothing half-written, and other errors are not disguised as disk faults."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from offline_mbrl.core.cache import atomic_path
from offline_mbrl.core.errors import EnvironmentFault


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
        "from offline_mbrl.core.console import run_app\n"
        "def work(**_):  # run_app passes typer's standalone_mode\n"
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
    said = err.strip()
    assert said.startswith("interrupted: ") and "continue with: offline-mbrl" in said and err.count("\n") == 1


def _as_unprivileged(cmd: list[str]) -> list[str]:
    """Root ignores folder permissions: run the command as `nobody` then (setpriv), else as we are."""
    import os
    import shutil

    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made read-only for us")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


@pytest.mark.parametrize("target", ["results", "report"])
def test_a_read_only_results_or_report_folder_is_one_line_and_left_as_it_was(
    target, monkeypatch, request_cleanup
):
    """A real read-only folder (mode 0555; the command runs unprivileged), for a run's results and for a
    report's parent folder."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import numpy as np

    from tests.conftest import synthetic_episode, write_minari

    # pytest's tmp_path sits under a root-only folder: the unprivileged command gets a world-open one
    base = Path(tempfile.mkdtemp(prefix="offline-mbrl-ro-"))
    base.chmod(0o777)
    request_cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
    tmp_path = base
    shared = tmp_path / "shared"  # what the unprivileged command may read and write: data and cache
    shared.mkdir()
    env = {
        **os.environ,
        "MINARI_DATASETS_PATH": str(shared / "minari"),
        "OFFLINE_MBRL_CACHE": str(shared / "cache"),
        "HOME": str(shared),
        "MPLCONFIGDIR": str(shared / "mpl"),
    }
    monkeypatch.setenv("MINARI_DATASETS_PATH", env["MINARI_DATASETS_PATH"])
    write_minari(
        "test/pendulum/ro-v0", "Pendulum-v1", [synthetic_episode(np.random.default_rng(0), 3, 1, 30, "trunc")]
    )
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "mine.txt").write_text("keep")
    cli = [sys.executable, "-m", "offline_mbrl.cli"]
    train = [*cli, "train", "--algo", "bc", "--dataset", "test/pendulum/ro-v0", "--steps", "10"]
    if target == "report":  # a finished run to report on, written while the folder is still writable
        from .conftest import TINY_LOOP

        sets = [x for item in TINY_LOOP for x in ("--set", item)]
        done = subprocess.run(
            [*train, *sets, "--results", str(shared / "results")], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        cmd = [*cli, "report", str(shared / "results"), "--out", str(locked / "r"), "--reps", "100"]
    else:
        cmd = [*train, "--results", str(locked / "results")]
    for path in (tmp_path, shared, *shared.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)
    locked.chmod(0o555)
    try:
        done = subprocess.run(_as_unprivileged(cmd), env=env, capture_output=True, text=True, timeout=300)
    finally:
        locked.chmod(0o755)
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("error: cannot") and "\n" not in err, err
    assert "Permission denied" in err
    assert (
        sorted(p.name for p in locked.iterdir()) == ["mine.txt"]
        and (locked / "mine.txt").read_text() == "keep"
    )


@pytest.fixture
def request_cleanup():
    """Callbacks run after the test (for folders made outside pytest's tmp_path)."""
    todo: list = []
    yield todo
    for fn in todo:
        fn()


def test_an_unreadable_minari_folder_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    (tmp_path / "minari").mkdir()
    cmd = _as_unprivileged([sys.executable, "-m", "offline_mbrl.cli", "datasets", "list"])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)  # tmp_path: root-only
    if os.geteuid() != 0:
        pytest.skip("only root's tmp_path is unreadable to the command")
    err = done.stderr.strip()
    assert done.returncode == 2 and "cannot be read (permission denied)" in err and "\n" not in err, err


def test_an_interrupt_python_would_ignore_in_a_callback_still_ends_the_command_with_its_line(tmp_path):
    """Ctrl-C that lands while Python runs a `__del__` or weakref callback is printed by Python as "Exception
    ignored" and lost; the command must still stop with its one `interrupted:` line, no traceback."""
    code = (
        "import time\n"
        "from offline_mbrl.core.console import run_app\n"
        "class Dropped:\n"
        "    def __del__(self):\n"
        "        raise KeyboardInterrupt  # as the signal handler raises it inside a callback\n"
        "def work(**_):\n"
        "    Dropped()\n"
        "    time.sleep(5)\n"
        "    print('went on')\n"
        "run_app(work)\n"
    )
    import signal
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a terminal's disposition
    )
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "went on" not in proc.stdout and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("interrupted: "), proc.stderr


def test_a_full_disk_while_a_dataset_is_staged_is_one_line_and_the_old_dataset_stays(monkeypatch):
    import errno

    import numpy as np

    import offline_mbrl.data.minari_io as minari_io
    from offline_mbrl.core.errors import EnvironmentFault
    from offline_mbrl.data.dataset import load_dataset

    from .conftest import synthetic_episode, write_minari

    rng = np.random.default_rng(0)
    write_minari("test/pendulum/kept-v0", "Pendulum-v1", [synthetic_episode(rng, 3, 1, 30, "trunc")])
    before = len(load_dataset("test/pendulum/kept-v0"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(minari_io, "create_dataset_from_buffers", full)
    obs, act, rew, term, trunc = synthetic_episode(rng, 3, 1, 30, "trunc")
    episode = minari_io.Episode(obs=obs, act=act, rew=rew, term=term, trunc=trunc)
    with pytest.raises(EnvironmentFault, match="No space left on device") as err:
        minari_io.publish_dataset(
            "test/pendulum/kept-v0", [episode], eval_env="Pendulum-v1", observation_space=None,
            action_space=None, ref_min=None, ref_max=None, algorithm_name="x", description="x",
            code_permalink="x", overwrite=True,
        )  # fmt: skip
    assert "\n" not in str(err.value)
    assert len(load_dataset("test/pendulum/kept-v0")) == before


def test_a_dataset_a_killed_swap_left_hidden_is_put_back_by_the_next_load(monkeypatch):
    """A process killed between the two renames of a dataset's swap (`--overwrite`) leaves the old
    dataset as `.NAME.old-XXXXXXXX`: the next load puts it back instead of calling the dataset missing; a
    swap that may still be running (renamed less than a minute ago) is left alone."""
    import os
    from pathlib import Path

    import numpy as np
    from minari.storage import get_dataset_path

    import offline_mbrl.data.minari_io as minari_io
    from offline_mbrl.data.dataset import load_dataset

    from .conftest import synthetic_episode, write_minari

    rng = np.random.default_rng(0)
    write_minari("test/pendulum/swapped-v0", "Pendulum-v1", [synthetic_episode(rng, 3, 1, 30, "trunc")])
    final = Path(get_dataset_path("test/pendulum/swapped-v0"))
    hidden = final.parent / f".{final.name}.old-0123abcd"
    os.replace(final, hidden)  # the kill came after the first rename
    assert not minari_io.restore_swapped_out(final)  # renamed just now: maybe a live swap
    monkeypatch.setattr(minari_io, "SWAP_S", -1.0)  # as if a minute had passed
    assert len(load_dataset("test/pendulum/swapped-v0")) == 30
    assert (final / "data").is_dir() and not hidden.exists()
