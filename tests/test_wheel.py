"""An install that works outside a checkout: the wheel carries the committed assets (behaviour policies,
MDP families, sweep spaces, paper tables) and every command runs from another directory, writing its state
there and nothing into the installed package or the source checkout.

The fresh virtualenv gets the wheel with `pip install --no-deps`; its dependencies are borrowed from the
test's own environment through a `.pth` line (installing torch and the rest again would add minutes and
test pip, not the suite). Only the site-packages folder is borrowed: the checkout's editable finder is not
on the path, and the test checks that `offline_mbrl` is imported from the fresh virtualenv.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in

TINY = [
    "--set", "eval_every=50",
    "--set", "log_every=50",
    "--set", "checkpoint_every=50",
    "--set", "eval_episodes=1",
    "--set", "final_eval_episodes=1",
    "--set", "dynamics.hidden=16,16",
    "--set", "dynamics.weight_decay=1e-5,1e-5,1e-5",
    "--set", "dynamics.max_epochs=2",
    "--set", "dynamics.steps_per_epoch=20",
    "--set", "algo.rollout_batch=32",
    "--set", "algo.sac.actor_hidden=32,32",
    "--set", "algo.sac.critic_hidden=32,32",
]  # fmt: skip


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_wheel_runs_the_smoke_flow_from_a_scratch_directory(tmp_path):
    dist, fresh, work = tmp_path / "dist", tmp_path / "fresh", tmp_path / "work"
    work.mkdir()
    # setuptools is here (torch depends on it): build offline; else let pip fetch it into an isolated build
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("offline_mbrl-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (purelib / "_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the borrowed site-packages holds the checkout's editable install, which pip must
    # neither take for this wheel nor uninstall
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        tmp_path,
        plain,
    )
    installed = purelib / "offline_mbrl"
    shipped = _files(installed)
    for asset in (
        "resources/datasets/behaviour/pendulum/medium.pt",
        "resources/datasets/families/pendulum-physics.toml",
        "resources/sweeps/mbpo.toml",
        "resources/tables/offlinerlkit_d4rl_v2.toml",
        "resources/published/offlinerlkit_readme_d4rl_v2.csv",
    ):
        assert asset in shipped, asset

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLINE_MBRL_", "PYTHON"))}
    env |= {
        "PATH": f"{fresh / 'bin'}:{env['PATH']}",
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"),
        "OFFLINE_MBRL_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    where = _run([str(python), "-c", "import offline_mbrl; print(offline_mbrl.__file__)"], work, env)
    assert Path(where.strip()).is_relative_to(installed), where
    checkout_before = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--ignored"], capture_output=True, text=True
    ).stdout

    exe = str(fresh / "bin" / "offline-mbrl")
    _run([exe, "datasets", "make", "pendulum-medium", "--size", "2000"], work, env)
    _run([exe, "datasets", "families", "pendulum-physics"], work, env)
    _run([exe, "train", "--algo", "mopo", "--dataset", "pendulum-medium", "--steps", "100", *TINY], work, env)
    _run(
        [exe, "sweep", "--algo", "mbpo", "--dataset", "pendulum-medium", "--trials", "1", "--steps", "100",
         "--study", "wheel", "--sampler", "random", *TINY],
        work, env,
    )  # fmt: skip
    shown = _run([exe, "sweep", "show", "wheel"], work, env)
    assert "trial 0" in shown
    _run([exe, "report", "results", "--out", "reports/wheel", "--reps", "200"], work, env)

    assert (work / "sweeps" / "wheel" / "journal.log").is_file()  # the study is the user's, here
    assert (work / "reports" / "wheel" / "report.html").is_file()
    table = pd.read_csv(work / "reports" / "wheel" / "results.csv")
    assert set(table["algorithm"]) == {"mopo", "mbpo"}
    assert _files(installed) == shipped  # nothing written into the installed package
    checkout_after = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--ignored"], capture_output=True, text=True
    ).stdout
    assert checkout_after == checkout_before  # nor into the source checkout
