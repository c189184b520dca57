"""The dataset layer: one Minari loading path, correct transitions at episode ends, names, scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offline_mbrl.core.cache import cache_root
from offline_mbrl.core.errors import UserError
from offline_mbrl.data import dataset as data_module
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.data.envs import d4rl_reference_scores
from offline_mbrl.data.names import resolve

from .conftest import synthetic_episode, write_minari


def test_official_layout_dataset_loads_with_correct_episode_ends(hopper_episodes):
    write_minari("mujoco/hopper/tiny-v0", "Hopper-v5", hopper_episodes)
    ds = load_dataset("mujoco/hopper/tiny-v0")

    lengths = [len(ep[2]) for ep in hopper_episodes]
    assert len(ds) == sum(lengths) == 16
    assert ds.episode_lengths.tolist() == lengths
    assert ds.episode_starts.tolist() == [0, 7, 12]
    assert ds.data.obs.shape == (16, 11) and ds.data.act.shape == (16, 3)
    assert ds.data.rew.shape == (16,) and ds.data.term.shape == (16,)
    for start, (obs, act, rew, _term, _trunc) in zip(ds.episode_starts, hopper_episodes, strict=True):
        n = len(rew)
        sl = slice(start, start + n)
        np.testing.assert_allclose(ds.data.obs[sl].numpy(), obs[:-1])
        # next_obs of the last step is the episode's own final observation, never the next episode's first
        np.testing.assert_allclose(ds.data.next_obs[sl].numpy(), obs[1:])
        np.testing.assert_allclose(ds.data.act[sl].numpy(), act)
    # true terminals only at the ends of episodes 0 and 2; the truncation of episode 1 is a time-out
    assert torch.nonzero(ds.data.term).flatten().tolist() == [6, 15]
    assert torch.nonzero(ds.timeout).flatten().tolist() == [11]
    assert not torch.any(ds.timeout & ds.data.term.bool())
    np.testing.assert_allclose(
        ds.episode_returns, [ep[2].astype(np.float64).sum() for ep in hopper_episodes], rtol=1e-6
    )
    np.testing.assert_allclose(ds.start_obs.numpy(), np.stack([ep[0][0] for ep in hopper_episodes]))


def test_episode_cut_by_end_of_data_counts_as_timeout():
    rng = np.random.default_rng(1)
    write_minari("mujoco/hopper/cut-v0", "Hopper-v5", [synthetic_episode(rng, 11, 3, 6, "none")])
    ds = load_dataset("mujoco/hopper/cut-v0")
    assert ds.timeout.tolist() == [False] * 5 + [True]
    assert ds.data.term.sum() == 0


def test_second_load_comes_from_the_flat_cache(hopper_episodes, monkeypatch):
    write_minari("mujoco/hopper/tiny-v0", "Hopper-v5", hopper_episodes)
    first = load_dataset("mujoco/hopper/tiny-v0")
    assert len(list((cache_root() / "datasets").glob("*.npz"))) == 1

    def no_minari(*args, **kwargs):
        raise AssertionError("a cached load must not read the Minari files again")

    monkeypatch.setattr(data_module, "_flatten_minari", no_minari)
    second = load_dataset("mujoco/hopper/tiny-v0")
    assert torch.equal(first.data.next_obs, second.data.next_obs)
    assert first.fingerprint == second.fingerprint


def test_fingerprint_follows_content(hopper_episodes):
    write_minari("mujoco/hopper/a-v0", "Hopper-v5", hopper_episodes)
    write_minari("mujoco/hopper/b-v0", "Hopper-v5", hopper_episodes[:2])
    a, b = load_dataset("mujoco/hopper/a-v0"), load_dataset("mujoco/hopper/b-v0")
    assert a.fingerprint.content_hash != b.fingerprint.content_hash
    assert a.fingerprint.dataset_id == "mujoco/hopper/a-v0" and a.fingerprint.version == 0


def test_normalised_score_uses_d4rl_reference_returns_when_metadata_has_none(hopper_episodes):
    write_minari("mujoco/hopper/tiny-v0", "Hopper-v5", hopper_episodes)
    spec = load_dataset("mujoco/hopper/tiny-v0").spec
    ref = d4rl_reference_scores()["hopper"]
    assert spec.env == "hopper" and spec.gym_id == "Hopper-v5"
    assert (spec.ref_min, spec.ref_max) == (ref.ref_min, ref.ref_max) == (-20.272305, 3234.3)
    assert "D4RL" in spec.ref_source
    np.testing.assert_allclose(
        spec.normalize([ref.ref_min, ref.ref_max, 1607.0139]), [0.0, 100.0, 50.0], atol=1e-4
    )


def test_normalised_score_prefers_dataset_metadata(hopper_episodes):
    write_minari(
        "mujoco/hopper/ref-v0",
        "Hopper-v5",
        hopper_episodes,
        eval_env="Hopper-v5",
        ref_min_score=10.0,
        ref_max_score=110.0,
    )
    spec = load_dataset("mujoco/hopper/ref-v0").spec
    assert spec.ref_source == "dataset metadata"
    assert spec.normalize(60.0) == pytest.approx(50.0)


def test_unknown_environment_reports_raw_returns_and_says_why():
    rng = np.random.default_rng(2)
    write_minari("other/mcc/x-v0", "MountainCarContinuous-v0", [synthetic_episode(rng, 2, 1, 5, "trunc")])
    spec = load_dataset("other/mcc/x-v0").spec
    assert spec.env is None
    assert spec.normalize(np.array([1.0, 2.0])) is None
    assert "no reference returns" in spec.ref_source and "MountainCarContinuous-v0" in spec.ref_source


def test_sample_is_seeded_and_on_the_dataset_device(hopper_episodes):
    write_minari("mujoco/hopper/tiny-v0", "Hopper-v5", hopper_episodes)
    ds = load_dataset("mujoco/hopper/tiny-v0")
    a = ds.sample(32, torch.Generator().manual_seed(3))
    b = ds.sample(32, torch.Generator().manual_seed(3))
    assert torch.equal(a.obs, b.obs) and a.obs.shape == (32, 11) and a.rew.shape == (32,)


def test_short_name_resolution_order(hopper_episodes):
    assert resolve("hopper-medium").dataset_id == "offline-mbrl/hopper/medium-v0"
    assert resolve("mujoco/hopper/medium-v0").dataset_id == "mujoco/hopper/medium-v0"
    write_minari("offline-mbrl/hopper/medium-v0", "Hopper-v5", hopper_episodes)
    assert resolve("hopper-medium").present
    write_minari("d4rl-import/hopper/medium-v2", "Hopper-v5", hopper_episodes[:1])
    res = resolve("hopper-medium")  # an imported D4RL dataset wins over the suite's own
    assert (res.dataset_id, res.provenance) == ("d4rl-import/hopper/medium-v2", "imported D4RL")
    assert len(load_dataset("hopper-medium")) == 7
    assert resolve("hopper-medium-v2").dataset_id == "d4rl-import/hopper/medium-v2"
    assert resolve("inverted-double-pendulum-medium-replay").dataset_id == (
        "offline-mbrl/inverted-double-pendulum/medium-replay-v0"
    )


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UserError, match="did you mean hopper-medium"):
        resolve("hopper-medum")
    with pytest.raises(UserError, match="datasets list"):
        resolve("zzz")
