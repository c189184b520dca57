"""Third-party noise does not reach the user: Gymnasium's half_cheetah.xml uses a compiler attribute MuJoCo 4
deprecates, and MuJoCo printed one blank-padded warning per environment made (dozens in a reproduce run);
any other MuJoCo warning still reaches stderr (core/console.py)."""

from __future__ import annotations

import os
import subprocess
import sys

CLI = [sys.executable, "-m", "offline_mbrl.cli"]


def test_gymnasiums_own_mujoco_deprecation_does_not_reach_the_user_and_other_warnings_do(
    tmp_path, capfd, monkeypatch
):
    from offline_mbrl.core.console import mujoco_warning

    monkeypatch.chdir(tmp_path)  # restored after the test
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    made = subprocess.run([*CLI, "datasets", "make", "halfcheetah-medium", "--size", "300"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "settotalmass" not in made.stdout + made.stderr and "WARNING" not in made.stderr
    mujoco_warning("compiler attribute 'settotalmass' is deprecated and will be removed")
    mujoco_warning("Nan, Inf or huge value in QACC at DOF 0")
    assert capfd.readouterr().err == "WARNING: Nan, Inf or huge value in QACC at DOF 0\n"


def test_commands_do_not_import_mujoco_to_quiet_it_and_the_handler_is_set_once_it_is_imported():
    probe = (
        "import sys; from offline_mbrl.core.console import quiet_known_mujoco_warnings, mujoco_warning; "
        "quiet_known_mujoco_warnings(); before = 'mujoco' in sys.modules; import mujoco; "
        "print(before, mujoco.get_mju_user_warning() is mujoco_warning)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stderr
