"""The command line: help, listing, importing, and one-line errors (exit 2, no traceback) on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from minari.storage import get_dataset_path

from offline_mbrl.cli.main import main
from offline_mbrl.data import minari_io
from offline_mbrl.data.d4rl_import import import_d4rl

from .conftest import synthetic_episode, write_minari
from .test_d4rl_import import d4rl_file


def run_cli(capsys, *args):
    """Run `offline-mbrl ARGS` in-process; return (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["offline-mbrl", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_the_commands():
    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "offline_mbrl.cli.main", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "datasets" in out


def test_console_script_reports_unknown_dataset_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "offline_mbrl.cli.main", "datasets", "info", "hoper-medium"],
        capture_output=True,
        text=True,
    )
    assert_one_line_error(
        proc.returncode, proc.stderr, "unknown dataset name 'hoper-medium'", "hopper-medium"
    )


def test_list_shows_names_resolution_presence_and_provenance(capsys, tmp_path):
    d4rl_file(tmp_path / "h.hdf5")
    code, out, err = run_cli(
        capsys, "datasets", "import-d4rl", str(tmp_path / "h.hdf5"), "--name", "hopper-medium-v2"
    )
    assert code == 0, err
    assert "imported 12 transitions in 3 episodes (2 terminals, 1 time-outs)" in out
    rng = np.random.default_rng(0)
    write_minari("mujoco/pendulum/extra-v0", "Pendulum-v1", [synthetic_episode(rng, 3, 1, 5, "trunc")])
    code, out, _ = run_cli(capsys, "datasets", "list")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "d4rl-import/hopper/medium-v2" in rows["hopper-medium"] and "yes" in rows["hopper-medium"]
    assert "imported D4RL" in rows["hopper-medium"] and "12" in rows["hopper-medium"]
    assert "offline-mbrl/walker2d/expert-v0" in rows["walker2d-expert"] and " no " in rows["walker2d-expert"]
    assert (
        "Minari" in rows["mujoco/pendulum/extra-v0"]
    )  # local datasets outside the short names are listed too
    assert "offline-mbrl/point2d/partial-v0" in rows["point2d-partial"]  # the task datasets are listed too
    assert len([r for r in rows if r != "name"]) == 28  # 5 x 5 ENV-TIER, 2 task datasets, the extra one


def test_info_prints_return_distribution_and_scores(capsys, tmp_path):
    d4rl_file(tmp_path / "h.hdf5")
    import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    code, out, err = run_cli(capsys, "datasets", "info", "hopper-medium")
    assert code == 0, err
    assert "transitions: 12" in out and "terminals: 2" in out and "time-outs: 1" in out
    assert "normalised score" in out and "dataset metadata" in out


def test_missing_dataset_prints_the_command_that_makes_it(capsys):
    code, _, err = run_cli(capsys, "datasets", "info", "walker2d-medium-replay")
    assert_one_line_error(
        code,
        err,
        "offline-mbrl datasets make walker2d-medium-replay",
        "import-d4rl FILE.hdf5 --name walker2d-medium-replay-v2",
    )
    code, _, err = run_cli(capsys, "datasets", "info", "mujoco/hopper/medium-v0")
    assert_one_line_error(code, err, "minari download mujoco/hopper/medium-v0")


def test_corrupted_and_partial_datasets_are_reported(capsys, hopper_episodes):
    write_minari("mujoco/hopper/broken-v0", "Hopper-v5", hopper_episodes)
    main_file = Path(get_dataset_path("mujoco/hopper/broken-v0")) / "data" / "main_data.hdf5"
    main_file.write_bytes(main_file.read_bytes()[:500])
    code, _, err = run_cli(capsys, "datasets", "info", "mujoco/hopper/broken-v0")
    assert_one_line_error(code, err, "corrupted or partial")

    write_minari("mujoco/hopper/partial-v0", "Hopper-v5", hopper_episodes)
    (Path(get_dataset_path("mujoco/hopper/partial-v0")) / "data" / "metadata.json").unlink()
    code, _, err = run_cli(capsys, "datasets", "info", "mujoco/hopper/partial-v0")
    assert_one_line_error(code, err, "incomplete")


def test_dataset_whose_spaces_do_not_match_its_environment(capsys):
    import gymnasium as gym

    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 5, 3, 4, "term")]
    write_minari(
        "mujoco/hopper/wrong-v0",
        "Hopper-v5",
        episodes,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (5,)),
    )
    code, _, err = run_cli(capsys, "datasets", "info", "mujoco/hopper/wrong-v0")
    assert_one_line_error(code, err, "does not match environment 'Hopper-v5'", "observations 5 vs 11")


def test_import_errors_are_one_line(capsys, tmp_path):
    import h5py

    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f["observations"] = np.zeros((3, 11), dtype=np.float32)
    code, _, err = run_cli(
        capsys, "datasets", "import-d4rl", str(tmp_path / "bad.hdf5"), "--name", "hopper-medium-v2"
    )
    assert_one_line_error(code, err, "not a D4RL dataset", "terminals")


def test_failed_publish_leaves_nothing_half_written(tmp_path, monkeypatch):
    d4rl_file(tmp_path / "h.hdf5")

    def crash_midway(*args, **kwargs):
        root = Path(get_dataset_path())  # the staging root Minari was pointed at
        (root / "d4rl-import" / "hopper" / "medium-v2" / "data").mkdir(parents=True)
        (root / "d4rl-import" / "hopper" / "medium-v2" / "data" / "main_data.hdf5").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(minari_io, "create_dataset_from_buffers", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    root = Path(get_dataset_path())
    assert not (root / "d4rl-import" / "hopper" / "medium-v2").exists()
    assert [p.name for p in root.iterdir()] == []  # the staging folder is gone too


def test_missing_cuda_and_bad_devices_are_one_line_errors(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    for args in (
        ("dynamics", "fit", "--dataset", "pendulum-medium-replay", "--device", "cuda"),
        ("train", "--algo", "bc", "--dataset", "pendulum-medium-replay", "--device", "cuda:0"),
    ):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.startswith("error: --device cuda") and "no CUDA device" in err, err
    code, _, err = run_cli(
        capsys, "train", "--algo", "bc", "--dataset", "pendulum-medium-replay", "--device", "tpu"
    )
    assert code == 2 and "is not a torch device" in err and err.count("\n") == 1


def test_minari_path_pointing_at_a_file_is_one_line(capsys, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "afile"))
    code, _, err = run_cli(capsys, "datasets", "list")
    assert code == 2 and "is a file, not a folder" in err and err.count("\n") == 1
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--algo", "bc", "--dataset", "x", "--steps", "abc"], "Invalid value for '--steps'"),
        (["trian"], "No such command 'trian'. Did you mean 'train'?"),
        (["train", "--bogus", "1"], "No such option: --bogus; see `offline-mbrl train --help`"),
        (["sweep", "--algo", "mbpo", "--dataset", "x", "--trials", "many"], "Invalid value for '--trials'"),
    ],
)
def test_command_line_usage_errors_are_one_line_not_a_box(args, message):
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from offline_mbrl.cli.main import main; sys.argv[0] = 'offline-mbrl'; main()",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
