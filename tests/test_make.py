"""`datasets make`: determinism, metadata, tier composition, MDP-family collection, bad input.

The behaviour policies here are small random networks written by the test into a scratch asset folder,
so these tests exercise the mechanics without depending on the committed checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from minari.storage import get_dataset_path

from offline_mbrl.cli.main import main
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.data.make import collect as make_module
from offline_mbrl.data.make.collect import make_dataset
from offline_mbrl.data.make.policy import GaussianPolicy

ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def assets(tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(REPO / "datasets" / "families", root / "datasets" / "families")
    beh = root / "datasets" / "behaviour" / "pendulum"
    beh.mkdir(parents=True)

    def policy(seed):
        torch.manual_seed(seed)
        return GaussianPolicy(3, 1, [-2.0], [2.0]).checkpoint()

    torch.save(policy(1), beh / "medium.pt")
    torch.save(policy(2), beh / "expert.pt")
    torch.save(
        [
            {"steps": 100 * (k + 1), "collected": c, "state": policy(10 + k)}
            for k, c in enumerate([100, 200, 100])
        ],
        beh / "replay.pt",
    )
    for tier, ret in (("random", -1200.0), ("medium", -700.0), ("expert", -200.0)):
        manifest = {"mean_return": ret, "std_return": 10.0, "training_steps": 1000, "command": "test"}
        (beh / f"{tier}.json").write_text(json.dumps(manifest))
    (beh / "replay.json").write_text(json.dumps({"collected_steps": 400}))
    monkeypatch.setenv("OFFLINE_MBRL_ROOT", str(root))
    return beh


def main_file(dataset_id):
    return Path(get_dataset_path(dataset_id)) / "data" / "main_data.hdf5"


def test_same_seed_same_dataset_bit_for_bit(assets, tmp_path, monkeypatch):
    first = make_dataset("pendulum-medium", size=700, seed=0)
    bytes_first = main_file(first.dataset_id).read_bytes()
    a = load_dataset("pendulum-medium")
    make_dataset("pendulum-medium", size=700, seed=0, overwrite=True)
    assert main_file(first.dataset_id).read_bytes() == bytes_first
    b = load_dataset("pendulum-medium")
    assert torch.equal(a.data.obs, b.data.obs) and torch.equal(a.data.act, b.data.act)
    make_dataset("pendulum-medium", size=700, seed=1, overwrite=True)
    c = load_dataset("pendulum-medium")
    assert not torch.equal(a.data.obs, c.data.obs)


def test_exact_size_and_cut_last_episode(assets):
    s = make_dataset("pendulum-expert", size=450, seed=0)
    ds = load_dataset("pendulum-expert")
    assert s.transitions == len(ds) == 450
    assert ds.episode_lengths.tolist() == [200, 200, 50]
    assert ds.timeout.sum() == 3 and ds.data.term.sum() == 0  # Pendulum only times out
    assert bool(ds.timeout[-1])


def test_metadata_records_references_policy_and_provenance(assets):
    make_dataset("pendulum-medium", size=400, seed=3)
    ds = load_dataset("pendulum-medium")
    meta = ds.metadata
    assert (ds.spec.ref_min, ds.spec.ref_max) == (-1200.0, -200.0)  # the suite's random and expert returns
    assert json.loads(meta["eval_env_spec"])["id"] == "Pendulum-v1"
    assert "medium checkpoint" in meta["algorithm_name"] and "-700.0" in meta["algorithm_name"]
    assert meta["code_permalink"].startswith("offline_mbrl.data.make.collect @ ")
    info = meta["offline_mbrl"]
    assert info["tier"] == "medium" and info["seed"] == 3 and info["size"] == 400
    assert info["behaviour_policies"]["expert"]["mean_return"] == -200.0


def test_hopper_datasets_use_d4rl_reference_returns(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLINE_MBRL_ROOT", str(tmp_path))
    make_dataset("hopper-random", size=300, seed=0)
    ds = load_dataset("hopper-random")
    assert (ds.spec.ref_min, ds.spec.ref_max) == (-20.272305, 3234.3)
    act = ds.data.act.numpy()
    assert act.min() >= -1 and act.max() <= 1 and abs(act.mean()) < 0.1  # uniform over the action box
    assert ds.data.term.sum() > 0  # random hopper falls: true terminals


def test_medium_expert_is_medium_and_expert_concatenated(assets):
    make_dataset("pendulum-medium", size=400, seed=5)
    make_dataset("pendulum-expert", size=400, seed=5)
    make_dataset("pendulum-medium-expert", size=800, seed=5)
    m, e, me = (load_dataset(f"pendulum-{t}") for t in ("medium", "expert", "medium-expert"))
    assert torch.equal(me.data.obs, torch.cat([m.data.obs, e.data.obs]))
    assert torch.equal(me.data.act, torch.cat([m.data.act, e.data.act]))


def test_medium_expert_reuses_made_halves_bit_for_bit(assets, monkeypatch):
    collected = make_dataset("pendulum-medium-expert", size=800, seed=5)  # no halves yet: collects both
    fresh = main_file(collected.dataset_id).read_bytes()
    make_dataset("pendulum-medium", size=400, seed=5)
    make_dataset("pendulum-expert", size=400, seed=5)
    calls = []
    real_collect = make_module.collect
    monkeypatch.setattr(make_module, "collect", lambda *a, **k: calls.append(a) or real_collect(*a, **k))
    make_dataset("pendulum-medium-expert", size=800, seed=5, overwrite=True)
    assert calls == []  # both halves read back from the made tiers
    assert main_file(collected.dataset_id).read_bytes() == fresh
    make_dataset("pendulum-expert", size=400, seed=6, overwrite=True)  # another seed: not this half
    calls.clear()
    make_dataset("pendulum-medium-expert", size=800, seed=5, overwrite=True)
    assert len(calls) == 1 and main_file(collected.dataset_id).read_bytes() == fresh
    manifest = assets / "medium.json"  # a retrained medium policy: its old dataset is not reused
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "mean_return": -650.0}))
    calls.clear()
    make_dataset("pendulum-medium-expert", size=800, seed=5, overwrite=True)
    assert len(calls) == 2


def test_medium_replay_mixes_checkpoints_in_proportion(assets):
    make_dataset("pendulum-medium-replay", seed=0)  # default size: the steps collected up to medium
    ds = load_dataset("pendulum-medium-replay")
    sources = ds.metadata["offline_mbrl"]["sources"]
    assert len(ds) == 400
    assert [s["transitions"] for s in sources] == [100, 200, 100]
    assert all("training checkpoint" in s["label"] for s in sources)


def test_family_dataset_mixes_member_dynamics(assets):
    nominal = make_dataset("pendulum-random", size=400, seed=0)
    mixed = make_dataset("pendulum-random", size=400, seed=0, family="pendulum-physics")
    assert mixed.dataset_id == "offline-mbrl/pendulum/random-pendulum-physics-v0"
    a, b = load_dataset(nominal.dataset_id), load_dataset(mixed.dataset_id)
    assert torch.equal(a.data.obs[0], b.data.obs[0]) and torch.equal(a.data.act, b.data.act)
    assert not torch.allclose(a.data.next_obs, b.data.next_obs)  # same actions, other physics
    assert len(b.metadata["offline_mbrl"]["family"]["members"]) == 8


def test_bad_input(assets, capsys):
    with pytest.raises(UserError, match="cannot make 'pendulum-great'"):
        make_dataset("pendulum-great")
    with pytest.raises(UserError, match="cannot make 'cartpole-medium'"):
        make_dataset("cartpole-medium")
    (assets / "expert.pt").unlink()
    with pytest.raises(UserError, match="expert.pt is missing.*train-behaviour"):
        make_dataset("pendulum-expert", size=100)
    make_dataset("pendulum-medium", size=100)
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        make_dataset("pendulum-medium", size=100)
    with pytest.raises(UserError, match="is for Hopper-v5, not Pendulum-v1"):
        make_dataset("pendulum-medium", size=100, family="hopper-physics", overwrite=True)
    import sys

    capsys.readouterr()  # the makes above print their progress lines (off a terminal)
    sys.argv = ["offline-mbrl", "datasets", "make", "walker2d-expert", "--size", "10"]
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_interrupted_make_leaves_no_dataset(assets, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(make_module, "collect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_dataset("pendulum-medium", size=100)
    assert not Path(get_dataset_path("offline-mbrl/pendulum/medium-v0")).exists()


def test_a_made_dataset_matches_the_committed_table_bit_for_bit_and_records_its_stack(capsys, monkeypatch):
    """datasets/README.md's row of pendulum-medium-replay (the smallest made dataset, 3 s) is what this
    install makes from seed 0: the physics stack is pinned (pyproject.toml) and recorded in the metadata."""
    import sys

    from offline_mbrl.core.paths import stack_versions

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from dataset_stats import row  # the script that wrote the table

    table = (ROOT / "datasets" / "README.md").read_text()
    committed = next(line for line in table.splitlines() if line.startswith("| pendulum-medium-replay |"))
    make_dataset("pendulum-medium-replay", seed=0)
    assert committed.startswith(row("pendulum-medium-replay"))  # the table's make-time column follows
    meta = load_dataset("pendulum-medium-replay").metadata["offline_mbrl"]
    assert meta["versions"] == stack_versions() and set(meta["versions"]) >= {"mujoco", "gymnasium", "numpy"}
    monkeypatch.setattr(sys, "argv", ["offline-mbrl", "datasets", "info", "pendulum-medium-replay"])
    main()  # returns: exit status 0
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        f"made with: mujoco {meta['versions']['mujoco']}, gymnasium {meta['versions']['gymnasium']}" in shown
    )
    assert "installed now" not in shown
