"""The round-3 fidelity audit's fixes, one test each: every test here failed on the code before the audit.

Each value is the reference's as read in its released code (the file and line are in the algorithm's
`SOURCES` and presets; `offline-mbrl config --audit` prints them all, docs/fidelity.md is that table).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
import torch

from offline_mbrl.algorithms import algorithms, get_spec
from offline_mbrl.algorithms.mbrcsl.algorithm import MBRCSLConfig
from offline_mbrl.algorithms.morec.algorithm import FilterConfig
from offline_mbrl.algorithms.morec.filter import RewardConsistencyFilter
from offline_mbrl.data.dataset import Batch
from offline_mbrl.launch import build_config
from offline_mbrl.learning.rollout import rollout
from offline_mbrl.learning.run import Run
from offline_mbrl.learning.sac import SAC, SACConfig
from offline_mbrl.models.dynamics import (
    DynamicsConfig,
    DynamicsEnsemble,
    Prediction,
    fit_dynamics,
    holdout_split,
)

D4RL_TASKS = [f"{e}-{t}" for e in ("halfcheetah", "hopper", "walker2d") for t in ("medium", "medium-replay")]


# ---- MOREC -----------------------------------------------------------------------------------------------


class _TwoCandidates:
    """A model whose every elite predicts the same next state, so the filter's choice is the stub's."""

    obs_dim, act_dim = 2, 1

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> Prediction:
        mean = torch.cat([obs + 1.0, torch.ones(len(obs), 1)], dim=-1).expand(2, -1, -1)  # (E, B, o + 1)
        return Prediction(mean=mean, std=torch.full_like(mean, 1e-3), elites=torch.arange(2))


def test_morec_stores_a_cut_transition_as_terminal_and_stops_its_row_by_default():
    """The release ORs "r_D below the threshold" into `terminal` (its early-stop flag never reaches the
    step's info, so its drop branch never runs): the cut transition is stored, as a terminal, and its row
    stops. Before the audit the default dropped it."""
    low_rows = torch.tensor([True, False, True, False])
    reward = lambda obs, act, nxt: torch.where(low_rows, 0.1, 1.5).expand(nxt.shape[0], -1)  # noqa: E731
    never = lambda o, a, n: torch.zeros(len(o), dtype=torch.bool)  # noqa: E731
    hook = RewardConsistencyFilter(reward, FilterConfig(), never)  # type: ignore[arg-type]
    ro = rollout(_TwoCandidates(), lambda o: torch.zeros(len(o), 1), torch.zeros(4, 2), 3, never, hook,
                 torch.Generator().manual_seed(0))  # fmt: skip
    assert bool(ro.stored[0].all())  # the cut transitions are kept...
    assert torch.equal(ro.term[0], low_rows)  # ...as terminals (no bootstrap from them)
    assert torch.equal(ro.alive[1], ~low_rows)  # and their rows stop
    assert FilterConfig().cut == "terminal"


def test_morec_mobile_runs_the_references_learner():
    """The MOREC-MOBILE launcher: the entropy backup (deterministic only on hopper-random), softmax
    candidates on every task, the actor loss on the target critics, halfcheetah-medium-expert at real
    ratio 0.5, and no 30-epoch dynamics cap (both variants use one ensemble)."""
    cfg = build_config("morec-mobile", "hopper-medium")
    sac = cfg.algo.sac
    assert (sac.deterministic_backup, sac.actor_critics, cfg.algo.filter.rule) == (False, "target", "softmax")
    assert (sac.update_order, sac.alpha_max, sac.target_min) == ("critic_actor_alpha", 1.0, 0.0)  # MOBILE's
    assert build_config("morec-mobile", "hopper-random", preset="paper").algo.sac.deterministic_backup
    assert not build_config("morec-mobile", "hopper-medium", preset="paper").algo.sac.deterministic_backup
    assert build_config("morec-mobile", "halfcheetah-medium-expert", preset="paper").algo.real_ratio == 0.5
    for task in get_spec("morec-mobile").presets:
        assert build_config("morec-mobile", task, preset="paper").dynamics.max_epochs is None


@pytest.mark.parametrize(
    ("task", "rule"),
    [("hopper-medium-replay", "softmax"), ("halfcheetah-medium", "select"),
     ("walker2d-medium-replay", "select"),
     ("walker2d-random", "softmax")],
)  # fmt: skip
def test_morec_mopo_filter_rule_is_the_launchers_per_task_choice(task, rule):
    assert build_config("morec-mopo", task, preset="paper").algo.filter.rule == rule


# ---- the OfflineRL-Kit family: MOPO, MBPO, MOREC-MOPO ----------------------------------------------------


@pytest.mark.parametrize("algo", ["mopo", "mbpo", "morec-mopo"])
def test_mopo_family_updates_critic_actor_alpha_with_alpha_clamped_at_one(algo):
    sac = build_config(algo, "hopper-medium").algo.sac
    assert (sac.update_order, sac.alpha_max) == ("critic_actor_alpha", 1.0)


def test_alpha_is_clamped_at_one_where_the_reference_clamps_it():
    """α starts at 1 (log α = 0); an entropy target far above the policy's pushes log α up, and the α the
    losses use stays at 1."""
    cfg = SACConfig(update_order="critic_actor_alpha", alpha_max=1.0, target_entropy=50.0, alpha_lr=0.1)
    learner = SAC(3, 2, [-1.0] * 2, [1.0] * 2, cfg, compile=False)
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        torch.randn(8, 3), torch.rand(8, 2) * 2 - 1, torch.randn(8), torch.randn(8, 3), torch.zeros(8)
    )
    for _ in range(5):
        metrics = learner.update(batch, generator=g)
    assert float(learner.log_alpha.detach()) > 0.1 and float(metrics["alpha"]) == 1.0


def test_a_mixed_batch_has_int_batch_size_times_real_ratio_real_rows():
    """Every reference truncates: 256 x 0.05 = 12.8 -> 12 real rows (the suite rounded to 13)."""
    from offline_mbrl.learning.model_based import real_rows

    assert real_rows(256, 0.05) == 12
    assert real_rows(256, 0.5) == 128


@pytest.mark.parametrize("task", D4RL_TASKS)
def test_mopo_paper_preset_takes_the_penalty_over_all_seven_members(task):
    assert build_config("mopo", task, preset="paper").algo.penalty_members == "all"


def test_mopo_pointmaze_preset_trains_the_references_100k_steps():
    cfg = build_config("mopo", "pointmaze-stitch", preset="paper")
    assert (cfg.steps, cfg.algo.horizon, cfg.algo.penalty_coef, cfg.algo.penalty_members) == (
        100_000,
        1,
        2.5,
        "all",
    )


def test_the_actor_loss_can_read_the_target_critics():
    """`actor_critics=target` (MOREC-MOBILE's release): the actor loss is α·log π − min_j Q̄_j(s, a)."""
    torch.manual_seed(0)
    cfg = SACConfig(update_order="actor_alpha_critic", actor_critics="target")
    learner = SAC(3, 2, [-1.0] * 2, [1.0] * 2, cfg, compile=False)
    with torch.no_grad():
        for p in learner.target_critics.parameters():
            p.add_(0.5 * torch.randn_like(p))  # targets that differ from the online critics
    before = copy.deepcopy(learner)
    batch = Batch(
        torch.randn(8, 3), torch.rand(8, 2) * 2 - 1, torch.randn(8), torch.randn(8, 3), torch.zeros(8)
    )
    metrics = learner.update(batch, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        act, logp = before._sample(batch.obs, torch.Generator().manual_seed(1))
        on_target = (before.alpha() * logp - before.target_critics(batch.obs, act).min(0).values).mean()
        on_online = (before.alpha() * logp - before.critics(batch.obs, act).min(0).values).mean()
    assert math.isclose(float(metrics["actor_loss"]), float(on_target), rel_tol=1e-5, abs_tol=1e-6)
    assert not math.isclose(float(on_target), float(on_online), rel_tol=1e-3)


# ---- the dynamics ensemble -------------------------------------------------------------------------------


def test_dynamics_layers_start_as_the_references():
    """OfflineRL-Kit's EnsembleLinear (as MBPO's): weights ~ N(0, 1/(2·sqrt(fan_in))²) truncated at ±2,
    biases 0 (the suite drew both uniformly in ±1/sqrt(fan_in))."""
    model = DynamicsEnsemble(11, 3, DynamicsConfig())
    for layer in model.net.layers:
        assert bool((layer.bias == 0).all())
        std = float(layer.weight.detach().std())
        expected = 1.0 / (2.0 * math.sqrt(layer.in_features))
        assert abs(std - expected) < 0.05 * expected, (layer.in_features, std, expected)


def test_holdout_without_a_cap_holds_out_the_whole_ratio():
    """RAVL's reference holds out 20% of the data with no 1,000-row cap (`max_holdout=none`)."""
    g = torch.Generator().manual_seed(0)
    train, hold = holdout_split(10_000, DynamicsConfig(max_holdout=None), g)
    assert (len(hold), len(train)) == (2_000, 8_000)
    assert len(holdout_split(10_000, DynamicsConfig(), g)[1]) == 1_000


def test_the_plateau_lr_drop_happens_once_before_min_epochs():
    """RAVL's schedule: the first time patience runs out before `min_epochs`, the lr is multiplied by the
    factor and patience restarts; the fit then runs to `min_epochs` at least."""
    cfg = DynamicsConfig(
        members=3, elites=2, hidden=(16, 16), weight_decay=(0.0, 0.0, 0.0), patience=1, improvement=0.99,
        min_epochs=6, max_epochs=8, plateau_lr_factor=0.3, steps_per_epoch=5,
    )  # fmt: skip
    from tests.test_dynamics import make_dataset

    data = make_dataset()
    _, report = fit_dynamics(data, cfg, progress=False)
    assert report["lr_dropped_at"] is not None and report["lr_dropped_at"] < 6
    assert report["epochs"] >= 6
    _, plain = fit_dynamics(data, dataclasses.replace(cfg, plateau_lr_factor=None), progress=False)
    assert plain["lr_dropped_at"] is None


# ---- MBRCSL and BC -----------------------------------------------------------------------------------


def test_mbrcsl_chooses_its_best_epoch_from_epoch_80():
    assert MBRCSLConfig().find_best_start == 80


def test_bc_uses_corls_learning_rate():
    assert build_config("bc", "hopper-medium").algo.lr == 3e-4


# ---- what is reported ------------------------------------------------------------------------------------


def test_final_json_carries_the_references_last_10_statistic(tmp_path):
    """`last10_score`: the mean of the last 10 evaluations, the final one last (the references report
    `last_10_performance`, the mean of the last 10 per-epoch evaluations)."""
    rows = [{"step": 1000 * i, "eval/score": float(i)} for i in range(1, 15)]
    rows.insert(3, {"step": 3500, "critic_loss": 1.0})  # rows without an evaluation are skipped
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 15')
    scores = Run._last_scores(SimpleNamespace(dir=tmp_path), 100.0)  # type: ignore[arg-type]
    assert scores == {"last10_score": (sum(range(6, 15)) + 100.0) / 10, "last10_evaluations": 10}


def test_every_builtin_preset_value_names_its_source():
    from offline_mbrl.provenance import Sourced

    for name, spec in algorithms().items():
        for task, preset in spec.presets.items():
            for key, value in preset.items():
                assert isinstance(value, Sourced) and value.source.where, (name, task, key)


def test_offlinerl_kits_termination_rules_are_a_setting():
    """`algo.termination=offlinerl-kit`: the references' ±100 guards (halfcheetah, walker2d) and the
    one-sided hopper range test; Gymnasium's rules are the default."""
    from offline_mbrl.models.termination import termination_fn

    far = torch.zeros(3, 17)
    far[0, 3], far[1, 3] = 150.0, -150.0  # a diverged model state in either direction
    far[:, 0] = 1.2  # a healthy walker height
    assert termination_fn("halfcheetah", "HalfCheetah-v5", "offlinerl-kit")(far, far, far).tolist() == [
        True, True, False,
    ]  # fmt: skip
    assert not termination_fn("halfcheetah", "HalfCheetah-v5")(far, far, far).any()
    assert termination_fn("walker2d", "Walker2d-v5", "offlinerl-kit")(far, far, far).tolist() == [
        True,
        True,
        False,
    ]
    assert not termination_fn("walker2d", "Walker2d-v5")(far, far, far).any()
    hop = torch.zeros(2, 11)
    hop[:, 0], hop[0, 5], hop[1, 5] = 1.0, 150.0, -150.0
    assert termination_fn("hopper", "Hopper-v5", "offlinerl-kit")(hop, hop, hop).tolist() == [True, False]
    assert termination_fn("hopper", "Hopper-v5")(hop, hop, hop).tolist() == [True, True]
    assert build_config(
        "mopo", "hopper-medium", overrides=["algo.termination=offlinerl-kit"]
    ).algo.termination
