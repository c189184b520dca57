"""MBRCSL: the behaviour policy keeps the data's modes apart, the rollout filter keeps only what beats the
data and labels returns-to-go, the artefacts are reused, evaluation conditions on a falling RTG, %BC
clones the top episodes, and bad settings are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from offline_mbrl.algorithms.bc import top_rows
from offline_mbrl.algorithms.mbrcsl.algorithm import (
    TEST_SETTINGS,
    MBRCSLConfig,
    RCSLNet,
    ReturnConditionedPolicy,
)
from offline_mbrl.algorithms.mbrcsl.behaviour import BehaviourConfig, fit_behaviour
from offline_mbrl.algorithms.mbrcsl.rollouts import collect_rollouts, returns_to_go, threshold_return
from offline_mbrl.core.cache import list_artefacts
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.launch import build_config, execute
from offline_mbrl.learning.run import run_dir_for
from offline_mbrl.models.dynamics import DynamicsConfig, load_or_fit

from .conftest import synthetic_episode, write_minari
from .test_algorithms import TINY

TEST = [*TINY, *TEST_SETTINGS]


def test_returns_to_go_sum_the_valid_rewards_from_each_step_on():
    rew = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # (H=3, B=2)
    stored = torch.tensor([[True, True], [True, True], [True, False]])  # row 1 ended after 2 steps
    assert returns_to_go(rew, stored).tolist() == [[6.0, 30.0], [5.0, 20.0], [3.0, 0.0]]


@pytest.fixture
def bimodal():
    """One-dimensional observations; at every state half the actions are +0.8, half -0.8."""
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(8):
        obs, act, rew, term, trunc = synthetic_episode(rng, 3, 1, 100, "trunc")
        obs[:, :2] /= np.linalg.norm(obs[:, :2], axis=1, keepdims=True)
        act[:] = np.where(rng.random((100, 1)) < 0.5, 0.8, -0.8)
        episodes.append((obs, act, rew + 0.05 * i, term, trunc))  # returns grow by about 5 per episode
    write_minari("test/pendulum/bimodal-v0", "Pendulum-v1", episodes)
    return load_dataset("test/pendulum/bimodal-v0")


def _fit(dataset, kind: str, steps: int):
    cfg = BehaviourConfig(kind=kind, hidden=(64, 64), steps=steps, lr=1e-3, diffusion_steps=10)
    return fit_behaviour(dataset, cfg, 0, lambda state: range(steps), lambda metrics: None)


def test_the_diffusion_policy_keeps_both_modes_where_a_gaussian_averages_them(bimodal):
    obs = bimodal.data.obs[:500]
    g = torch.Generator().manual_seed(1)
    diffusion = _fit(bimodal, "diffusion", 1500).sample(obs, g).squeeze(-1)
    gaussian = _fit(bimodal, "gaussian", 1500).sample(obs, g).squeeze(-1)
    near_a_mode = ((diffusion.abs() - 0.8).abs() < 0.2).float().mean()
    assert near_a_mode > 0.7  # the diffusion samples sit at +-0.8 ...
    assert 0.3 < (diffusion > 0).float().mean() < 0.7  # ... and on both sides, about half each
    assert ((gaussian.abs() - 0.8).abs() < 0.2).float().mean() < 0.5  # a Gaussian spreads between them
    # sampling is a function of the generator's state: the same seed, the same actions
    fitted = _fit(bimodal, "diffusion", 20)
    a = fitted.sample(obs, torch.Generator().manual_seed(3))
    b = fitted.sample(obs, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= -2.0 and a.max() <= 2.0  # Pendulum's action box


def test_the_filter_keeps_only_rollouts_that_beat_the_data_and_labels_their_returns_to_go(bimodal):
    dyn_cfg = DynamicsConfig(hidden=(32, 32), weight_decay=(1e-5, 1e-5, 1e-5), max_epochs=3)
    dynamics, _, _ = load_or_fit(bimodal, dyn_cfg, progress=False)
    behaviour = _fit(bimodal, "gaussian", 50)
    a = MBRCSLConfig(rollout_batch=50, keep=10, max_batches=4, horizon=100, return_quantile=0.5)
    kept = collect_rollouts(bimodal, dynamics, behaviour, a, seed=0, progress=False)
    threshold = threshold_return(bimodal, 0.5)
    assert threshold == pytest.approx(float(np.median(bimodal.episode_returns)))
    k = kept.returns.shape[0]
    assert k >= 1 and (kept.returns > threshold).all()
    assert kept.report["kept"] == k and kept.report["tried"] == 50 * kept.report["batches"]
    assert kept.traj.tolist() == sorted(kept.traj.tolist()) and set(kept.traj.tolist()) == set(range(k))
    for i in range(k):  # per rollout: the RTG starts at its return and falls by each reward
        rows = kept.traj == i
        rtg, rew = kept.rtg[rows], kept.rew[rows]
        assert rows.sum() == 100  # Pendulum never terminates: whole rollouts
        assert rtg[0] == pytest.approx(float(kept.returns[i]), rel=1e-4)
        assert torch.allclose(rtg[:-1] - rtg[1:], rew[:-1], atol=1e-3) and rtg[-1] == pytest.approx(
            float(rew[-1])
        )
    # the same seed collects the same rollouts
    again = collect_rollouts(bimodal, dynamics, behaviour, a, seed=0, progress=False)
    assert torch.equal(again.obs, kept.obs) and torch.equal(again.returns, kept.returns)


def test_a_filter_nothing_passes_fails_the_run_in_one_line(tiny_pendulum, tmp_path):
    # quantile 1.0: the best of 4 100-step episodes (return 3.3, rewards ~ N(0, 1)); 2 batches of 5
    # one-step rollouts would each need a single model reward above 3.3
    one_step = ["algo.return_quantile=1.0", "algo.horizon=1", "algo.rollout_batch=5", "algo.max_batches=2"]
    cfg = build_config("mbrcsl", tiny_pendulum, seed=2, steps=60, overrides=[*TEST, *one_step])
    with pytest.raises(UserError) as err:
        execute(cfg, tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message and "none of 10 model rollouts (2 batches of 5)" in message
    assert "algo.return_quantile" in message
    assert not list_artefacts("rollouts")  # nothing was published
    assert not (run_dir_for(cfg, tmp_path) / "final.json").exists()


def test_the_behaviour_policy_and_rollouts_are_reused_by_a_rerun(tiny_pendulum, tmp_path):
    first = build_config("mbrcsl", tiny_pendulum, seed=1, steps=60, overrides=TEST)
    execute(first, tmp_path, progress=False)
    # another output-policy setting: a new run, the same behaviour policy and kept rollouts
    second = build_config("mbrcsl", tiny_pendulum, seed=1, steps=60, overrides=[*TEST, "algo.lr=1e-3"])
    execute(second, tmp_path, progress=False)
    configs = [json.loads((run_dir_for(c, tmp_path) / "config.json").read_text()) for c in (first, second)]
    for kind in ("behaviour_policy", "rollouts"):
        assert configs[0]["artefacts"][kind] == configs[1]["artefacts"][kind]
        assert len(list_artefacts(kind)) == 1
    rows = (run_dir_for(second, tmp_path) / "metrics.jsonl").read_text()
    assert '"phase": "behaviour"' not in rows  # nothing was fitted again ...
    assert '"phase": "rollouts"' in rows  # ... and the reused rollouts are still summarised
    # a different behaviour setting fits a new one
    third = build_config(
        "mbrcsl", tiny_pendulum, seed=1, steps=60, overrides=[*TEST, "algo.behaviour.lr=1e-3"]
    )
    execute(third, tmp_path, progress=False)
    assert len(list_artefacts("behaviour_policy")) == 2 and len(list_artefacts("rollouts")) == 2


def test_evaluation_starts_the_rtg_at_the_target_and_lowers_it_by_each_reward(tiny_pendulum):
    spec = load_dataset(tiny_pendulum).spec
    net = RCSLNet(spec, (8,), torch.zeros(3), torch.ones(3), 10.0, 50.0)
    policy = ReturnConditionedPolicy(net, torch.device("cpu"))
    policy.reset(2)
    obs = np.zeros((2, 3), dtype=np.float32)
    first = policy.act(obs, None)
    assert policy.rtg.tolist() == [50.0, 50.0]
    policy.act(obs, np.array([5.0, -1.0]))
    assert policy.rtg.tolist() == [45.0, 51.0]
    expected = net(torch.zeros(2, 3), torch.tensor([45.0, 51.0])).detach().numpy()
    assert np.allclose(policy.act(obs, np.array([0.0, 0.0])), expected)
    assert np.all(first >= -2.0) and np.all(first <= 2.0)


def test_percent_bc_clones_only_the_top_episodes(bimodal):
    rows = top_rows(bimodal, 0.25)  # 2 of 8 episodes: the two with the largest returns
    best = np.argsort(bimodal.episode_returns)[-2:]
    expected = np.concatenate(
        [
            np.arange(bimodal.episode_starts[e], bimodal.episode_starts[e] + bimodal.episode_lengths[e])
            for e in best
        ]
    )
    assert rows is not None and sorted(rows.tolist()) == sorted(expected.tolist())
    assert top_rows(bimodal, 1.0) is None
    assert len(top_rows(bimodal, 0.01)) == 100  # at least one episode


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo.behaviour.kind=unet", "unknown behaviour policy 'unet'; choose from diffusion, gaussian"),
        (
            "algo.behaviour.diffusion_steps=0",
            "algo.behaviour.diffusion_steps: 0 is outside its allowed range [1, 100000]",
        ),
        ("algo.behaviour.ema=1.0", "algo.behaviour.ema must lie in [0, 1)"),
        ("algo.return_quantile=1.5", "algo.return_quantile: 1.5 is outside its allowed range [0, 1]"),
        ("algo.return_quantile=nan", "algo.return_quantile: nan is not a finite number"),
        ("algo.keep=0", "algo.keep: 0 is outside its allowed range [1, 10^9]"),
        ("algo.holdout=1.0", "algo.holdout must lie in [0, 1)"),
        ("algo.lr=-1", "algo.lr: -1 is outside its allowed range [0, 10]"),
        ("algo.horizon=-3", "algo.horizon: -3 is outside its allowed range [1, 100000]"),
    ],
)
def test_bad_mbrcsl_settings_are_one_line_errors(override, message, tiny_pendulum):
    with pytest.raises(UserError) as err:
        build_config("mbrcsl", tiny_pendulum, seed=0, steps=60, overrides=[override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_top_fraction_is_a_one_line_error(tiny_pendulum):
    for value, said in (
        ("0", r"algo.top_fraction must lie in \(0, 1\]"),
        ("1.5", r"algo.top_fraction: 1.5 is outside its allowed range \[0, 1\]"),
        ("nan", "algo.top_fraction: nan is not a finite number"),
    ):
        with pytest.raises(UserError, match=said):
            build_config("bc", tiny_pendulum, seed=0, steps=60, overrides=[f"algo.top_fraction={value}"])


def test_an_absent_diffusers_is_a_one_line_error_naming_the_install_and_the_alternative(bimodal, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "diffusers.schedulers.scheduling_ddpm", None)  # import fails
    with pytest.raises(UserError) as err:
        _fit(bimodal, "diffusion", 1)
    assert "pip install 'diffusers>=0.30,<1'" in str(err.value) and "algo.behaviour.kind=gaussian" in str(
        err.value
    )
    assert "\n" not in str(err.value)
    _fit(bimodal, "gaussian", 1)  # the Gaussian behaviour policy does not need it


def test_holdout_early_stopping_ends_the_loop_and_final_json_says_where(tiny_pendulum, tmp_path):
    # every epoch after the first counts as no gain (min_improvement 1.0): a patience of 2 stops at epoch 3
    stop = ["algo.patience=2", "algo.min_improvement=1.0", "algo.batch_size=64", "log_every=1"]
    cfg = build_config("mbrcsl", tiny_pendulum, seed=1, steps=600, overrides=[*TEST, *stop])
    final = execute(cfg, tmp_path, progress=False)
    rows = [
        json.loads(line) for line in (run_dir_for(cfg, tmp_path) / "metrics.jsonl").read_text().splitlines()
    ]
    train = [r for r in rows if "phase" not in r]
    holdout = [r["step"] for r in train if "rcsl/holdout_loss" in r]  # one row per step: epoch ends
    assert final["steps"] == 600 and final["gradient_steps"] < 600
    assert len(holdout) == 3 and holdout == [holdout[0], 2 * holdout[0], 3 * holdout[0]]  # epochs 1-3
    assert final["gradient_steps"] == holdout[-1]
    assert train[-1]["step"] == final["gradient_steps"]  # the loop ended there, its last row flushed


def test_a_damaged_cached_behaviour_policy_or_rollouts_is_built_again_with_one_line(
    tiny_pendulum, tmp_path, capsys
):
    from offline_mbrl.core.cache import artefact_path

    first = build_config("mbrcsl", tiny_pendulum, seed=1, steps=60, overrides=TEST)
    execute(first, tmp_path, progress=False)
    used = json.loads((run_dir_for(first, tmp_path) / "config.json").read_text())["artefacts"]
    for kind, name in (("behaviour_policy", "policy.pt"), ("rollouts", "rollouts.pt")):
        file = artefact_path(kind, used[kind]) / name
        file.write_bytes(file.read_bytes()[:100])  # truncated
    capsys.readouterr()
    second = build_config("mbrcsl", tiny_pendulum, seed=1, steps=60, overrides=[*TEST, "algo.lr=1e-3"])
    execute(second, tmp_path, progress=False)
    err = capsys.readouterr().err
    assert "behaviour_policy cache entry" in err and "removing it and fitting it again" in err
    assert "rollouts cache entry" in err and "removing it and collecting again" in err
    again = json.loads((run_dir_for(second, tmp_path) / "config.json").read_text())["artefacts"]
    assert again == used  # the same keys, rebuilt
