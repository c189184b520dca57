"""A researcher's own algorithm, in its own installed package, joins the suite without a fork: the README's
worked example (examples/rewclip) is installed with pip and used like a built-in; a broken, clashing or
mistyped plugin is a one-line error naming its package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from offline_mbrl.algorithms import algorithms
from offline_mbrl.core.errors import UserError

from .conftest import synthetic_episode, write_minari
from .test_algorithms import TINY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rewclip"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example package installed by pip (into a folder put on PYTHONPATH, so the test venv's own
    site-packages stays as it was)."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, work / "src")  # pip builds in the source tree: not in the repo's
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(source)],
        check=True,
    )
    assert list(target.glob("offline_mbrl_rewclip-*.dist-info"))
    return target


def run(args, site, env_roots, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **env_roots}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, cwd=kwargs.get("cwd", ROOT)
    )


def test_the_example_plugin_trains_configures_reports_and_passes_the_contract_battery(site, tmp_path):
    rng = np.random.default_rng(0)
    write_minari("test/pendulum/tiny-v0", "Pendulum-v1", [synthetic_episode(rng, 3, 1, 100, "trunc")] * 4)
    roots = {k: os.environ[k] for k in ("MINARI_DATASETS_PATH", "OFFLINE_MBRL_CACHE")}
    settings = [*TINY, "algo.rollout_batch=32", "algo.rollout_every=20", "algo.horizon=2"]
    settings += ["algo.sac.actor_hidden=32,32", "algo.sac.critic_hidden=32,32", "algo.margin=0.5"]
    cli = ["-m", "offline_mbrl.cli"]
    train = [*cli, "train", "--algo", "rewclip", "--dataset", "test/pendulum/tiny-v0", "--steps", "60"]
    train += [x for s in settings for x in ("--set", s)] + ["--results", str(tmp_path / "results")]
    done = run(train, site, roots)
    assert done.returncode == 0, done.stderr
    assert "rewclip on test/pendulum/tiny-v0 seed 0" in done.stdout
    runs = list((tmp_path / "results" / "rewclip").rglob("final.json"))
    assert len(runs) == 1
    metrics = (runs[0].parent / "metrics.jsonl").read_text()
    assert "rollout/clipped_share" in metrics  # the plugin's own hook ran inside the shared loop

    shown = run([*cli, "config", "--algo", "rewclip"], site, roots)
    assert (
        shown.returncode == 0 and "algo.margin" in shown.stdout and "widen the data's reward" in shown.stdout
    )

    report = run([*cli, "report", str(tmp_path / "results"), "--out", str(tmp_path / "rep")], site, roots)
    assert report.returncode == 0, report.stderr
    assert "rewclip" in (tmp_path / "rep" / "report.md").read_text()

    # the contract battery, run as it is, picks the installed plugin up like a built-in: end to end and
    # resume after a kill
    battery = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_algorithms.py", "-k", "rewclip"],
        site,
        {},
    )
    assert battery.returncode == 0, battery.stdout[-2000:]
    assert "2 passed" in battery.stdout


def fake_package(root: Path, package: str, entry: str, module: str, source: str) -> None:
    """An installed distribution as importlib.metadata sees one: a dist-info with its entry points."""
    info = root / f"{package}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[offline_mbrl.algorithms]\n{entry} = {module}:SPEC\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD_SPEC = """
    from offline_mbrl import AlgorithmSpec
    from offline_mbrl.algorithms.bc import BCConfig, load_policy, train
    SPEC = AlgorithmSpec({name!r}, BCConfig, train, load_policy, "t", uses_dynamics=False{extra})
"""


@pytest.mark.parametrize(
    "entry, source, message",
    [
        ("mopo", GOOD_SPEC.format(name="mopo", extra=""), "the name 'mopo' is already taken by a built-in"),
        (
            "broken",
            "raise ImportError('no module named torchrl')\n",
            "failed to load: ImportError: no module",
        ),
        ("notspec", "SPEC = {'name': 'notspec'}\n", "is a dict, not an offline_mbrl.AlgorithmSpec"),
        (
            "other",
            GOOD_SPEC.format(name="mine", extra=""),
            "entry point is named 'other' but its spec 'mine'",
        ),
        (
            "typo",
            GOOD_SPEC.format(name="typo", extra=", test_settings=('algo.hiden=8',)"),
            "names key\\(s\\) its config lacks: algo.hiden",
        ),
    ],
)
def test_a_bad_plugin_is_a_one_line_error_naming_its_package(entry, source, message, tmp_path, monkeypatch):
    fake_package(tmp_path, "acme-rl", entry, f"acme_{entry}", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    algorithms.cache_clear()
    try:
        with pytest.raises(UserError, match=message) as err:
            algorithms()
        assert "from package acme-rl" in str(err.value) and "\n" not in str(err.value)
    finally:
        algorithms.cache_clear()


def test_the_cli_says_so_in_one_line_and_exits_2(tmp_path):
    fake_package(tmp_path, "acme-rl", "broken", "acme_broken", "raise RuntimeError('boom')\n")
    done = run(["-m", "offline_mbrl.cli", "config", "--algo", "mopo"], tmp_path, {})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: algorithm plugin 'broken' (acme_broken:SPEC) from package acme-rl failed to load: "
        "RuntimeError: boom"
    ]


def test_the_docs_point_to_the_example_instead_of_copying_it():
    """The example is taught from its files (docs/algorithms.md links them), never from a pasted copy that
    can go stale; it teaches the one form: config and hooks through `model_based_spec`."""
    page = (ROOT / "docs" / "algorithms.md").read_text()
    for name in ("pyproject.toml", "rewclip.py"):
        assert f"examples/rewclip/{name}" in page
    source = (EXAMPLE / "rewclip.py").read_text()
    assert "def hooks(" in source and "model_based_spec(" in source and "train_model_based" not in source
    assert source not in page
