"""`datasets import-d4rl` on tiny D4RL-format hdf5 files written by the test."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from offline_mbrl.core.errors import UserError
from offline_mbrl.data.d4rl_import import import_d4rl
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.data.names import resolve


def d4rl_file(path, with_next=True, obs_dim=11, act_dim=3):
    """Three episodes in D4RL's flat layout: terminal after 4 steps, time-out after 3, terminal after 5.

    As in D4RL, `observations[i + 1]` at an episode end is the NEXT episode's reset state; the true
    final observation exists only in `next_observations`.
    """
    rng = np.random.default_rng(0)
    lengths, ends = [4, 3, 5], ["term", "timeout", "term"]
    n = sum(lengths)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    next_obs = np.roll(obs, -1, axis=0)
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    true_final = {}
    start = 0
    for length, end in zip(lengths, ends, strict=True):
        last = start + length - 1
        next_obs[last] = 100.0 + rng.normal(size=obs_dim)  # the real final observation, not obs[last + 1]
        true_final[last] = next_obs[last].copy()
        (terminals if end == "term" else timeouts)[last] = True
        start += length
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"] = terminals
        f["timeouts"] = timeouts
        if with_next:
            f["next_observations"] = next_obs
    return obs, next_obs, true_final


def test_import_with_next_observations_keeps_true_final_states(tmp_path):
    obs, next_obs, true_final = d4rl_file(tmp_path / "h.hdf5")
    summary = import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    assert summary.dataset_id == "d4rl-import/hopper/medium-v2"
    assert (summary.episodes, summary.transitions, summary.terminals, summary.timeouts, summary.dropped) == (
        3,
        12,
        2,
        1,
        0,
    )
    ds = load_dataset("hopper-medium-v2")
    assert resolve("hopper-medium").dataset_id == "d4rl-import/hopper/medium-v2"
    np.testing.assert_allclose(ds.data.obs.numpy(), obs)
    np.testing.assert_allclose(ds.data.next_obs.numpy(), next_obs)
    for last, final in true_final.items():
        np.testing.assert_allclose(ds.data.next_obs[last].numpy(), final)
        assert not np.allclose(ds.data.next_obs[last].numpy(), obs[(last + 1) % len(obs)])
    assert torch.nonzero(ds.data.term).flatten().tolist() == [3, 11]
    assert torch.nonzero(ds.timeout).flatten().tolist() == [6]
    assert ds.episode_lengths.tolist() == [4, 3, 5]
    assert ds.spec.ref_source == "dataset metadata"
    assert (ds.spec.ref_min, ds.spec.ref_max) == (-20.272305, 3234.3)
    assert ds.metadata["algorithm_name"] == "D4RL (imported)"


def test_import_without_next_observations_drops_unrecorded_final_steps(tmp_path):
    obs, _, _ = d4rl_file(tmp_path / "h.hdf5", with_next=False)
    summary = import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    assert (summary.transitions, summary.dropped, summary.terminals) == (9, 3, 0)
    ds = load_dataset("hopper-medium-v2")
    assert ds.episode_lengths.tolist() == [3, 2, 4]
    # every kept next_obs is the episode's own next row; no episode borrows the next one's reset state
    np.testing.assert_allclose(ds.data.next_obs[:3].numpy(), obs[1:4])
    np.testing.assert_allclose(ds.data.next_obs[3:5].numpy(), obs[5:7])
    np.testing.assert_allclose(ds.data.next_obs[5:].numpy(), obs[8:12])
    assert ds.timeout.tolist() == [False, False, True, False, True, False, False, False, True]


def test_import_refuses_to_overwrite_unless_asked(tmp_path):
    d4rl_file(tmp_path / "h.hdf5")
    import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    with pytest.raises(UserError, match="already exists.*--overwrite"):
        import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2", overwrite=True)
    assert len(load_dataset("hopper-medium-v2")) == 12


def test_import_rejects_files_without_d4rl_keys(tmp_path):
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f["observations"] = np.zeros((3, 11), dtype=np.float32)
    with pytest.raises(UserError, match="missing key\\(s\\) actions, rewards, terminals, timeouts"):
        import_d4rl(tmp_path / "bad.hdf5", "hopper-medium-v2")


def test_import_rejects_non_hdf5_and_mismatched_spaces_and_bad_names(tmp_path):
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(UserError, match="cannot read .* as hdf5"):
        import_d4rl(tmp_path / "text.hdf5", "hopper-medium-v2")
    d4rl_file(tmp_path / "h.hdf5", obs_dim=17, act_dim=6)
    with pytest.raises(UserError, match="does not match Hopper-v5"):
        import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    with pytest.raises(UserError, match="version suffix is required"):
        import_d4rl(tmp_path / "h.hdf5", "hopper-medium")
    with pytest.raises(UserError, match="no such file"):
        import_d4rl(tmp_path / "missing.hdf5", "hopper-medium-v2")


@pytest.mark.parametrize("field", ["observations", "actions", "rewards"])
def test_import_refuses_nan_or_inf_and_writes_nothing(tmp_path, field):
    d4rl_file(tmp_path / "h.hdf5")
    with h5py.File(tmp_path / "h.hdf5", "r+") as f:
        data = f[field][...]
        data[5] = np.nan if field != "rewards" else np.inf
        del f[field]
        f[field] = data
    with pytest.raises(UserError, match=f"non-finite values .1 rows of {field}") as err:
        import_d4rl(tmp_path / "h.hdf5", "hopper-medium-v2")
    assert "\n" not in str(err.value)
    assert not resolve("hopper-medium").present  # the name was not taken over


def test_datasets_info_reports_non_finite_values(tmp_path, capsys):
    from tests.conftest import synthetic_episode, write_minari
    from tests.test_cli import run_cli

    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 20, "trunc")]
    episodes[0][2][3] = np.nan  # one reward
    write_minari("test/pendulum/nan-v0", "Pendulum-v1", episodes)
    code, out, err = run_cli(capsys, "datasets", "info", "test/pendulum/nan-v0")
    assert code == 0, err
    assert "non-finite values (NaN or inf): 1 transitions in rew" in out
