"""MOREC: the learned dynamics reward (fit, cache, damage recovery), the reward-consistency filter and its
configuration errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from offline_mbrl.algorithms.morec import reward as dr
from offline_mbrl.algorithms.morec import reward_fit as rf
from offline_mbrl.algorithms.morec.algorithm import FilterConfig, round_metrics
from offline_mbrl.algorithms.morec.filter import RewardConsistencyFilter
from offline_mbrl.algorithms.morec.reward import REWARD_RANGE, DynamicsRewardConfig
from offline_mbrl.algorithms.morec.reward_fit import auc, load_or_fit_reward
from offline_mbrl.core.cache import artefact_path
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.launch import build_config
from offline_mbrl.learning.rollout import rollout
from offline_mbrl.models.dynamics import DynamicsConfig, Prediction, load_or_fit
from tests.conftest import real_pendulum_episodes, write_minari

SMALL = DynamicsRewardConfig(
    hidden=(64, 64),
    head_hidden=(64,),
    updates=600,
    snapshot_every=5,
    stored_every=4,
    max_snapshots=40,
    holdout=400,
    refresh_every=100,
    replay_steps=5,
)


@pytest.fixture
def pendulum_data():
    """3,000 transitions of the real Pendulum-v1 under random actions (15 episodes of 200 steps)."""
    episodes = real_pendulum_episodes(15, 200)
    write_minari("test/pendulum/random-v0", "Pendulum-v1", episodes)
    return load_dataset("test/pendulum/random-v0")


@pytest.fixture
def rough_model(pendulum_data):
    """A deliberately rough ensemble (3 epochs of small members): its samples are visibly wrong."""
    cfg = DynamicsConfig(members=4, elites=3, hidden=(32, 32), weight_decay=(0, 0, 0), max_epochs=3)
    model, _, key = load_or_fit(pendulum_data, cfg, progress=False)
    return model, key


def test_reward_range_and_logit_mapping():
    lo, hi = REWARD_RANGE
    assert lo == pytest.approx(-math.log(1 - 1 / (1 + math.e)), abs=1e-12)
    assert (round(lo, 3), round(hi, 3)) == (0.313, 1.313)
    reward = dr.new_reward(2, 3, 1, SMALL)
    reward.expert.copy_(torch.tensor([2.0, 4.0]))
    reward.learner.copy_(torch.tensor([-2.0, 0.0]))
    # each snapshot's own [learner, expert] maps to [-1, 1]: its expert value gives p = σ(1)
    at_top = reward.reward_from_logits(torch.tensor([[2.0], [4.0]]))
    at_bottom = reward.reward_from_logits(torch.tensor([[-9.0], [-3.0]]))  # clamped below
    middle = reward.reward_from_logits(torch.tensor([[0.0], [2.0]]))
    assert at_top.item() == pytest.approx(hi, abs=1e-6) and at_bottom.item() == pytest.approx(lo, abs=1e-6)
    assert middle.item() == pytest.approx(-math.log(0.5), abs=1e-6)  # p = 0.5 in both


def test_select_keeps_every_kth_snapshot_counted_from_the_newest():
    reward = dr.new_reward(10, 3, 1, SMALL)
    reward.expert.copy_(torch.arange(10.0))
    picked = reward.select(3 * SMALL.stored_every)
    assert picked.members == 4 and picked.expert.tolist() == [0.0, 3.0, 6.0, 9.0]
    w = reward.disc.state_encoder.layers[0].weight
    assert torch.equal(picked.disc.state_encoder.layers[0].weight, w[[0, 3, 6, 9]])
    with pytest.raises(UserError, match="multiple of its stored_every"):
        reward.select(SMALL.stored_every + 1)


def test_the_reward_separates_data_from_a_rough_model_and_is_reused(pendulum_data, rough_model, monkeypatch):
    model, key = rough_model
    reward, report, rkey = load_or_fit_reward(pendulum_data, model, key, SMALL, progress=False)
    assert report["snapshots"] == SMALL.kept and reward.members == SMALL.kept
    # better than chance on held-out data against the model's own one-step samples; clearly so against
    # gross perturbations
    assert report["auc_one_step"] > 0.8 and report["auc_replay"] > 0.8, report
    assert report["auc_perturbed_1"] > 0.7, report
    data = pendulum_data.data
    r = reward(data.obs[:50], data.act[:50], data.next_obs[:50])
    assert r.shape == (50,) and bool(((r >= REWARD_RANGE[0]) & (r <= REWARD_RANGE[1])).all())
    # candidates (C, B, obs) give (C, B), each the same as scoring that candidate alone
    cand = torch.stack([data.next_obs[:50], data.next_obs[:50] + 0.3])
    rc = reward(data.obs[:50], data.act[:50], cand)
    assert rc.shape == (2, 50) and torch.allclose(rc[0], r, atol=1e-6)

    def no_refit(*args, **kwargs):
        raise AssertionError("a cached reward was fitted again")

    monkeypatch.setattr(rf, "fit_dynamics_reward", no_refit)
    again, _, key2 = load_or_fit_reward(pendulum_data, model, key, SMALL, progress=False)
    assert key2 == rkey and torch.equal(again(data.obs[:50], data.act[:50], data.next_obs[:50]), r)


def test_one_seed_gives_one_reward_and_the_key_follows_config_and_seed(pendulum_data, rough_model):
    model, key = rough_model
    cfg = dataclasses.replace(SMALL, updates=80, snapshot_every=4, stored_every=2, max_snapshots=10)
    a, rep_a = rf.fit_dynamics_reward(pendulum_data, model, cfg, seed=3, progress=False)
    b, rep_b = rf.fit_dynamics_reward(pendulum_data, model, cfg, seed=3, progress=False)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert rep_a["holdout_idx"] == rep_b["holdout_idx"]
    fp = pendulum_data.fingerprint.key
    k = rf.reward_key(fp, key, cfg, 3)
    assert k != rf.reward_key(fp, key, cfg, 4) and k != rf.reward_key(fp, "other", cfg, 3)
    assert k != rf.reward_key(fp, key, dataclasses.replace(cfg, lr=1e-3), 3)


def test_a_damaged_cached_reward_is_refitted_with_a_message(pendulum_data, rough_model, capsys):
    model, key = rough_model
    cfg = dataclasses.replace(SMALL, updates=40, snapshot_every=4, stored_every=2, max_snapshots=10)
    _, _, rkey = load_or_fit_reward(pendulum_data, model, key, cfg, progress=False)
    weights = artefact_path("dynamics_reward", rkey) / "reward.pt"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    reward, _, again = load_or_fit_reward(pendulum_data, model, key, cfg, progress=False)
    err = capsys.readouterr().err
    assert again == rkey and "damaged" in err and "fitting the reward again" in err
    assert weights.stat().st_size > 100 and reward.members == cfg.kept


def _prediction(obs: torch.Tensor, spread: float) -> Prediction:
    """Three elites whose means differ: elite i predicts obs + (i + 1)·spread (reward i)."""
    b, o = obs.shape
    mean = torch.stack(
        [torch.cat([obs + (i + 1) * spread, torch.full((b, 1), float(i))], 1) for i in range(3)]
    )
    return Prediction(mean=mean, std=torch.full_like(mean, 1e-3), elites=torch.arange(3))


class _Model:
    obs_dim, act_dim = 3, 1

    def __init__(self, spread: float):
        self.spread = spread

    def predict(self, obs, act):
        return _prediction(obs, self.spread)


def test_filter_picks_the_best_candidate_and_cuts_rows_below_the_threshold(pendulum_data, rough_model):
    model, key = rough_model
    reward, _, _ = load_or_fit_reward(pendulum_data, model, key, SMALL, progress=False)
    data = pendulum_data.data
    obs, act = data.obs[:64], data.act[:64]
    never = lambda o, a, n: torch.zeros(len(o), dtype=torch.bool)  # noqa: E731
    lo = REWARD_RANGE[0]
    gen = torch.Generator().manual_seed(0)

    # "select": the chosen candidate is the one of highest r_D among the 3 elites x 2 samples
    cfg = FilterConfig(samples=2, threshold=lo + 1e-3)
    ro = rollout(
        _Model(0.2), lambda o: act[: len(o)], obs, 1, never, RewardConsistencyFilter(reward, cfg, never), gen
    )
    # the same draws: the rollout drew one sample (B·D normals from its generator) before the hook
    gen2 = torch.Generator().manual_seed(0)
    _prediction(obs, 0.2).sample(gen2)
    cand = _prediction(obs, 0.2).candidates(2, gen2)
    scores = reward(obs, act, cand.next_obs)  # (6, B)
    best = scores.argmax(0)
    assert torch.equal(ro.next_obs[0], cand.next_obs[best, torch.arange(64)])
    assert torch.allclose(ro.extras["dynamics_reward"][0], scores.max(0).values)
    assert bool((ro.extras["dynamics_reward"][0] >= ro.extras["dynamics_reward_rejected"][0]).all())
    assert bool(ro.stored.all()) and not bool(ro.term.any())  # nothing is below the lowest possible r_D

    # a threshold at the median chosen r_D: exactly the rows below it are cut at step 0 (same draws)
    thr = float(ro.extras["dynamics_reward"][0].median())

    def run(cfg: FilterConfig):
        hook = RewardConsistencyFilter(reward, cfg, never)
        return rollout(
            _Model(0.2), lambda o: act[: len(o)], obs, 5, never, hook, torch.Generator().manual_seed(0)
        )

    ro = run(FilterConfig(samples=2, threshold=thr, cut="drop"))
    low = ro.extras["dynamics_reward"][0] < thr
    assert 0 < int(low.sum()) < 64
    assert ro.keep is not None and torch.equal(ro.keep[0], ~low)  # cut transitions are not stored
    assert not bool(ro.alive[1][low].any()) and bool(ro.alive[1][~low].all())  # and their rows stop
    assert round_metrics(ro)["rollout/truncation_rate"].item() >= low.float().mean().item()
    assert len(ro.transitions()[0]) == int(ro.lengths().sum()) < 5 * 64
    # the default (the reference's behaviour): cut transitions are stored, as terminals, and rows stop
    ro = run(FilterConfig(samples=2, threshold=thr))
    assert ro.stored[0].all() and torch.equal(ro.term[0], low)
    assert not bool(ro.alive[1][low].any()) and bool(ro.alive[1][~low].all())
    # min_length: no cut before that step
    ro = run(FilterConfig(samples=2, threshold=thr, min_length=3))
    assert bool((ro.lengths() >= 3).all()) and not bool(ro.term[:3].any())


def test_softmax_rule_draws_by_reward(pendulum_data, rough_model):
    model, key = rough_model
    reward, _, _ = load_or_fit_reward(pendulum_data, model, key, SMALL, progress=False)
    data = pendulum_data.data
    obs, act = data.obs[:2000], data.act[:2000]
    never = lambda o, a, n: torch.zeros(len(o), dtype=torch.bool)  # noqa: E731
    gen = torch.Generator().manual_seed(1)
    hook = RewardConsistencyFilter(
        reward, FilterConfig(rule="softmax", threshold=0.4, temperature=0.1), never
    )
    ro = rollout(_Model(0.2), lambda o: act[: len(o)], obs, 1, never, hook, gen)
    chosen, rejected = ro.extras["dynamics_reward"][0], ro.extras["dynamics_reward_rejected"][0]
    # a draw, not the argmax: not always the best, but better than the rest on average
    assert chosen.mean() > rejected.mean()
    hot = RewardConsistencyFilter(reward, FilterConfig(rule="softmax", threshold=0.4, temperature=1e3), never)
    ro_hot = rollout(_Model(0.2), lambda o: act[: len(o)], obs, 1, never, hot, gen)
    gap_hot = (ro_hot.extras["dynamics_reward"][0] - ro_hot.extras["dynamics_reward_rejected"][0]).mean()
    assert gap_hot.abs() < (chosen - rejected).mean()  # near-uniform at a high temperature


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo.filter.rule=best", "not one of select, softmax"),
        ("algo.filter.threshold=0.2", "inside the dynamics reward's range"),
        ("algo.filter.threshold=nan", "algo.filter.threshold: nan is not a finite number"),
        ("algo.filter.temperature=0", "temperature must be a positive number"),
        ("algo.filter.snapshot_stride=15", "must be a multiple of algo.reward.stored_every"),
        ("algo.reward.updates=0", "algo.reward.updates: 0 is outside its allowed range"),
        ("algo.reward.perturbed_share=1.5", "algo.reward.perturbed_share: 1.5 is outside its allowed range"),
        ("algo.penalty_coef=-1", "penalty_coef"),
    ],
)
def test_bad_morec_settings_are_one_line_errors(override, message, tmp_path):
    algo = "morec-mobile" if "penalty_coef" in override else "morec-mopo"
    with pytest.raises(UserError, match=message) as err:
        build_config(algo, "pendulum-medium-replay", overrides=[override])
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_auc_is_the_probability_a_positive_outscores_a_negative():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auc(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5


def test_dynamics_fit_reward_cli_fits_once_then_reuses(pendulum_data, capsys):
    from tests.test_cli import run_cli

    args = [
        "dynamics", "fit", "--dataset", "test/pendulum/random-v0", "--reward",
        "--set", "dynamics.hidden=16,16", "--set", "dynamics.weight_decay=0,0,0",
        "--set", "dynamics.max_epochs=2",
        "--set", "algo.reward.updates=40", "--set", "algo.reward.snapshot_every=2",
        "--set", "algo.reward.stored_every=2", "--set", "algo.reward.max_snapshots=10",
    ]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("dynamics reward ") and "snapshots" in x)
    assert "5 snapshots" in line and "held-out AUC" in line
    code, out2, err = run_cli(capsys, *args)
    assert code == 0 and line.split(":")[0] in out2  # the same key, loaded
    code, _, err = run_cli(
        capsys, "dynamics", "fit", "--dataset", "test/pendulum/random-v0", "--set", "algo.reward.lr=1"
    )
    assert code == 2 and "add --reward" in err


def test_paper_presets_cover_the_12_d4rl_tasks_with_the_references_coefficients():
    from offline_mbrl.algorithms import get_spec

    tasks = {
        f"{e}-{t}"
        for e in ("halfcheetah", "hopper", "walker2d")
        for t in ("random", "medium", "medium-replay", "medium-expert")
    }
    assert set(get_spec("morec-mopo").presets) == tasks == set(get_spec("morec-mobile").presets)
    cfg = build_config("morec-mopo", "hopper-medium", preset="paper")
    assert (cfg.algo.penalty_coef, cfg.algo.penalty_members, cfg.algo.horizon) == (15.0, "all", 100)
    assert cfg.algo.filter.snapshot_stride == 10 and cfg.algo.rollout_batch == 2000
    mob = build_config("morec-mobile", "walker2d-medium-replay", preset="paper")
    assert (mob.algo.penalty_coef, mob.algo.filter.snapshot_stride, mob.dynamics.max_epochs) == (
        0.1,
        40,
        None,
    )
