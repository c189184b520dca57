"""MOBILE's Bellman-inconsistency penalty, COMBO's conservative term, the SAC options they use (update
order, α clamp, target clamp) and both on the true-simulator dynamics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from offline_mbrl.algorithms.combo import COMBOConfig, ConservativeTerm
from offline_mbrl.algorithms.mobile import BellmanInconsistency, bellman_inconsistency
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import Batch
from offline_mbrl.launch import build_config, execute
from offline_mbrl.learning.rollout import mix, model_rows
from offline_mbrl.learning.sac import SAC, SACConfig
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble
from offline_mbrl.models.oracle import OracleDynamics

from .conftest import real_pendulum_episodes, synthetic_episode, write_minari

OBS, ACT = 3, 1


def _sac(**kw) -> SAC:
    torch.manual_seed(0)
    cfg = SACConfig(actor_hidden=(16, 16), critic_hidden=(16, 16), **kw)
    return SAC(OBS, ACT, [-2.0], [2.0], cfg)


def _batch(n_real: int = 4, n_model: int = 12, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)

    def part(n: int) -> Batch:
        obs = torch.randn(n, OBS, generator=g)
        obs[:, :2] = obs[:, :2] / obs[:, :2].norm(dim=1, keepdim=True)
        nxt = torch.randn(n, OBS, generator=g)
        nxt[:, :2] = nxt[:, :2] / nxt[:, :2].norm(dim=1, keepdim=True)
        return Batch(
            obs, torch.rand(n, ACT, generator=g) * 4 - 2, -torch.rand(n, generator=g), nxt, torch.zeros(n)
        )

    return mix(part(n_real), part(n_model), model_rows(n_real, n_model, "cpu"))


def _ensemble(seed: int = 0) -> DynamicsEnsemble:
    torch.manual_seed(seed)
    return DynamicsEnsemble(OBS, ACT, DynamicsConfig(hidden=(8, 8), weight_decay=(0, 0, 0)))


# ---- MOBILE ------------------------------------------------------------------------------------------


def test_bellman_inconsistency_is_the_std_across_elites_of_each_elites_mean_target_value():
    sac, model, batch = _sac(), _ensemble(), _batch()
    u = bellman_inconsistency(model, sac, batch.obs, batch.act, 4, torch.Generator().manual_seed(3))
    # by hand, with the same draws: candidates (K·n), then one policy action per candidate
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        cand = model.predict(batch.obs, batch.act).candidates(4, g)
        k = len(model.elites)
        per_elite = torch.zeros(k, len(batch))
        for c in range(k * 4):
            a, _ = sac.actor(cand.next_obs[c], generator=g)
            per_elite[c // 4] += sac.target_critics(cand.next_obs[c], a).min(0).values / 4
    # the batched version draws all candidates' actions in one call: the same numbers in another order,
    # so compare distributions through a fixed-action check below and magnitudes here
    assert u.shape == (len(batch),) and (u > 0).all() and torch.isfinite(u).all()
    assert u.mean().item() == pytest.approx(per_elite.std(0).mean().item(), rel=0.5)


def test_bellman_inconsistency_matches_a_loop_when_the_policy_is_deterministic():
    sac, model, batch = _sac(log_std_min=-20.0, log_std_max=-20.0), _ensemble(), _batch()
    u = bellman_inconsistency(model, sac, batch.obs, batch.act, 3, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        cand = model.predict(batch.obs, batch.act).candidates(3, g)
        q = torch.stack(
            [sac.target_critics(s, sac.actor(s, deterministic=True)[0]).min(0).values for s in cand.next_obs]
        )  # (K·n, B)
    expected = q.reshape(len(model.elites), 3, len(batch)).mean(1).std(0)
    torch.testing.assert_close(u, expected, rtol=1e-4, atol=1e-6)


def test_mobile_penalty_is_zero_on_real_rows_and_on_the_true_simulator():
    sac, batch = _sac(), _batch(n_real=5, n_model=11)
    penalty, metrics = BellmanInconsistency(_ensemble(), 2.0, 10)(
        sac, batch, torch.Generator().manual_seed(0)
    )
    assert (penalty[:5] == 0).all() and (penalty[5:] > 0).all()
    assert metrics["mobile_u"].item() == pytest.approx(penalty.mean().item() / 2.0)
    oracle = OracleDynamics("pendulum", "Pendulum-v1", OBS, ACT)
    u = bellman_inconsistency(oracle, sac, batch.obs, batch.act.clamp(-2, 2), 10, torch.Generator())
    assert (u == 0).all()  # one true next state: no inconsistency, exactly


def test_alpha_clamp_target_clamp_and_deterministic_backup():
    sac = _sac(alpha_max=1.0, init_alpha=5.0, target_min=0.0, deterministic_backup=True)
    batch = _batch()  # every reward negative
    metrics = sac.update(batch, generator=torch.Generator().manual_seed(0))
    assert metrics["alpha"].item() == 1.0  # exp(log α) ≈ 5 before clamping
    assert sac.log_alpha.exp().item() > 4.0
    # the target r + γ V with r < 0 and V ≈ 0 at init would be negative: clamped at 0
    assert metrics["target_mean"].item() >= 0.0


@pytest.mark.parametrize(
    ("order", "actor_moved", "alpha_moved"),
    [
        ("alpha_actor_critic", True, True),
        ("critic_actor_alpha", False, False),
        ("actor_alpha_critic", True, True),
    ],
)
def test_update_order_decides_what_the_critic_step_sees(order, actor_moved, alpha_moved):
    sac = _sac(update_order=order)
    actor0 = [p.detach().clone() for p in sac.actor.parameters()]
    alpha0 = sac.log_alpha.detach().clone()
    seen = {}

    def spy(learner, batch, generator):
        seen["actor"] = any(
            not torch.equal(p, q) for p, q in zip(learner.actor.parameters(), actor0, strict=True)
        )
        seen["alpha"] = not torch.equal(learner.log_alpha.detach(), alpha0)
        return torch.zeros(()), {}

    sac.update(_batch(), critic_reg=spy, generator=torch.Generator().manual_seed(0))
    assert seen == {"actor": actor_moved, "alpha": alpha_moved}
    assert not torch.equal(sac.log_alpha.detach(), alpha0)  # every order updates α in the end


def test_default_update_order_is_unchanged_by_the_order_option():
    a, b = _sac(), _sac(update_order="alpha_actor_critic")
    for step in range(3):
        batch = _batch(seed=step)
        ma = a.update(batch, generator=torch.Generator().manual_seed(step))
        mb = b.update(batch, generator=torch.Generator().manual_seed(step))
        assert {k: float(v) for k, v in ma.items()} == {k: float(v) for k, v in mb.items()}


# ---- COMBO -------------------------------------------------------------------------------------------


def _term(**kw) -> ConservativeTerm:
    cfg = dataclasses.replace(COMBOConfig(), **kw)
    return ConservativeTerm(cfg, torch.tensor([-2.0]), torch.tensor([2.0]), torch.device("cpu"))


def test_conservative_term_matches_the_formula_per_critic():
    sac, batch = _sac(critics=3), _batch()
    term = _term(cql_weight=2.0, temperature=0.5, repeats=4)
    value, metrics = term(sac, batch, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    b, r = len(batch), 4
    obs_r = batch.obs.repeat(r, 1)
    with torch.no_grad():
        unif = -2.0 + 4.0 * torch.rand((r * b, ACT), generator=g)
        a1, lp1 = sac.actor(obs_r, generator=g)
        a2, lp2 = sac.actor(batch.next_obs.repeat(r, 1), generator=g)
        total = 0.0
        for i in range(3):
            q = lambda a, i=i: sac.critics(obs_r, a)[i].reshape(r, b)  # noqa: E731
            cat = torch.cat([q(a1) - lp1.reshape(r, b), q(a2) - lp2.reshape(r, b), q(unif) + math.log(4.0)])
            lse = 0.5 * torch.logsumexp(cat / 0.5, dim=0)  # over the 3R proposals of each state
            q_real = sac.critics(batch.obs[:4], batch.act[:4])[i].mean()
            total += 2.0 * (lse.mean() - q_real)
    assert value.item() == pytest.approx(float(total), rel=1e-5)
    assert "combo_gap" in metrics


def test_conservative_term_lowers_out_of_data_values():
    """After a few hundred critic steps with the term, Q at uniform actions sits below Q at the data's
    actions; without it, it does not."""

    def gap(weight: float) -> float:
        sac = _sac(critics=2, critic_lr=3e-3)
        term = _term(cql_weight=weight, repeats=4)
        g = torch.Generator().manual_seed(0)
        batch = _batch(n_real=32, n_model=32)
        batch = dataclasses.replace(batch, act=torch.full_like(batch.act, 1.5))  # the data's action
        for _ in range(300):
            sac.update(batch, critic_reg=term if weight else None, generator=g)
        with torch.no_grad():
            q_data = sac.critics(batch.obs, batch.act).min(0).values.mean()
            q_other = sac.critics(batch.obs, torch.full_like(batch.act, -1.5)).min(0).values.mean()
        return float(q_other - q_data)

    assert gap(5.0) < -1.0 < gap(0.0) + 1.0


def test_lagrange_multiplier_moves_and_round_trips_through_its_state():
    sac, batch = _sac(), _batch()
    term = _term(lagrange=True, lagrange_threshold=-100.0, lagrange_lr=0.1)  # the gap is far above it
    for step in range(5):
        _, metrics = term(sac, batch, torch.Generator().manual_seed(step))
    assert term.log_alpha_prime.item() > 0.3  # α' grew: the term is above its threshold
    assert metrics["combo_alpha_prime"].item() > 1.0
    other = _term(lagrange=True, lagrange_threshold=-100.0, lagrange_lr=0.1)
    other.load_state_dict(term.state_dict())
    assert other.log_alpha_prime.item() == term.log_alpha_prime.item()
    assert other.optim is not None and other.optim.state_dict()["state"][0]["step"] == 5


def test_non_finite_or_out_of_range_coefficients_are_refused_at_config_time():
    for algo, key in (
        ("combo", "algo.cql_weight=nan"),
        ("combo", "algo.temperature=0"),
        ("mobile", "algo.penalty_coef=inf"),
        ("mobile", "algo.penalty_coef=-1"),
    ):
        with pytest.raises(UserError, match=key.split("=")[0].rpartition(".")[2]):
            build_config(algo, "pendulum-medium-replay", overrides=[key])


def test_combo_without_real_rows_is_refused_at_config_time():
    with pytest.raises(UserError, match="COMBO needs real rows"):
        build_config("combo", "pendulum-medium-replay", overrides=["algo.real_ratio=0"])
    with pytest.raises(UserError, match="model rows with rho_s=model"):
        build_config("combo", "pendulum-medium-replay", overrides=["algo.real_ratio=1", "algo.rho_s=model"])


# ---- the true simulator as a run's dynamics ----------------------------------------------------------

TINY = [
    "eval_every=20",
    "log_every=10",
    "checkpoint_every=20",
    "eval_episodes=1",
    "final_eval_episodes=1",
    "dynamics.hidden=16,16",
    "dynamics.weight_decay=1e-5,1e-5,1e-5",
    "dynamics.max_epochs=2",
    "algo.rollout_batch=32",
    "algo.rollout_every=10",
    "algo.horizon=2",
    "algo.sac.actor_hidden=16,16",
    "algo.sac.critic_hidden=16,16",
]


@pytest.fixture
def real_pendulum():
    """Transitions of the real Pendulum-v1, so the oracle's model data can be compared with them."""
    episodes = real_pendulum_episodes(2, 60)
    write_minari("test/pendulum/real-v0", "Pendulum-v1", episodes)
    return "test/pendulum/real-v0"


def test_oracle_runs_fit_no_model_and_every_penalty_is_zero(real_pendulum, tmp_path, capsys):
    import json

    from offline_mbrl.learning.run import run_dir_for

    for algo, extra in (("mopo", ["algo.penalty=llv"]), ("mobile", [])):
        cfg = build_config(algo, real_pendulum, steps=20, overrides=[*TINY, *extra, "dynamics.kind=oracle"])
        execute(cfg, tmp_path, progress=False)
        run = run_dir_for(cfg, tmp_path)
        config = json.loads((run / "config.json").read_text())
        assert "dynamics" not in config.get("artefacts", {})  # the simulator alone: nothing fitted
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        key = "rollout/penalty" if algo == "mopo" else "mobile_u"
        if algo == "mobile":  # Pendulum's rewards are negative: the target clamp at 0 is warned about
            assert "warning: MOBILE clamps its critic target at >= 0.0" in capsys.readouterr().err
        assert [row[key] for row in rows if key in row] and all(row[key] == 0 for row in rows if key in row)
    half = build_config(
        "mopo", real_pendulum, steps=20, overrides=[*TINY, "dynamics.kind=oracle", "dynamics.oracle_mix=0.5"]
    )
    execute(half, tmp_path, progress=False)
    config = json.loads((run_dir_for(half, tmp_path) / "config.json").read_text())
    assert config["artefacts"]["dynamics"]  # a mix needs the learned ensemble too


def test_oracle_on_an_environment_without_a_simulator_is_one_line(tmp_path):
    rng = np.random.default_rng(0)
    write_minari("test/mcc/x-v0", "MountainCarContinuous-v0", [synthetic_episode(rng, 2, 1, 20, "trunc")])
    cfg = build_config("mbpo", "test/mcc/x-v0", steps=10, overrides=[*TINY, "dynamics.kind=oracle"])
    with pytest.raises(UserError, match="no true simulator for environment MountainCarContinuous-v0"):
        execute(cfg, tmp_path, progress=False)
    with pytest.raises(UserError, match=r"dynamics.oracle_mix: \S+ is outside its allowed range \[0, 1\]"):
        build_config("mbpo", "test/mcc/x-v0", overrides=["dynamics.kind=oracle", "dynamics.oracle_mix=2"])


def test_cli_refuses_bad_oracle_settings_in_one_line(capsys, tmp_path):
    from .test_cli import assert_one_line_error, run_cli

    rng = np.random.default_rng(0)
    write_minari("test/mcc/y-v0", "MountainCarContinuous-v0", [synthetic_episode(rng, 2, 1, 20, "trunc")])
    res = str(tmp_path / "results")
    code, _, err = run_cli(
        capsys,
        "train",
        "--algo",
        "mopo",
        "--dataset",
        "test/mcc/y-v0",
        "--results",
        res,
        "--set",
        "dynamics.kind=oracle",
        "--set",
        "dynamics.oracle_mix=1.5",
    )
    assert_one_line_error(code, err, "dynamics.oracle_mix: 1.5 is outside its allowed range [0, 1]")
    code, _, err = run_cli(
        capsys,
        "train",
        "--algo",
        "mopo",
        "--dataset",
        "test/mcc/y-v0",
        "--results",
        res,
        "--steps",
        "10",
        "--set",
        "dynamics.kind=oracle",
    )
    assert_one_line_error(code, err, "no true simulator for environment MountainCarContinuous-v0")
    assert not (tmp_path / "results").exists()  # refused before a run folder was made
