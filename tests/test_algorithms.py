"""One contract battery over the algorithm registry: every algorithm trains end to end on a tiny dataset
and writes the run files; resume after a kill reaches the same result; divergence stops cleanly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from offline_mbrl.algorithms import algorithms, get_spec
from offline_mbrl.algorithms.morec.reward import REWARD_RANGE
from offline_mbrl.core.cache import artefact_path, cache_root
from offline_mbrl.core.errors import UserError
from offline_mbrl.launch import build_config, execute, load_run
from offline_mbrl.learning.evaluation import evaluate
from offline_mbrl.learning.run import DivergedError, eval_seed, run_dir_for

from .conftest import killed_at, synthetic_episode, write_minari

TINY = [
    "eval_every=30",
    "log_every=10",
    "checkpoint_every=30",
    "eval_episodes=2",
    "final_eval_episodes=2",
    "dynamics.hidden=16,16",
    "dynamics.weight_decay=1e-5,1e-5,1e-5",
    "dynamics.max_epochs=2",
]
# each algorithm brings its own tiny settings (AlgorithmSpec.test_settings), plugins included
PER_ALGO = {name: list(spec.test_settings) for name, spec in algorithms().items()}
MODEL_BASED = PER_ALGO["mopo"]


@pytest.mark.parametrize("algo", sorted(algorithms()))
def test_every_algorithm_trains_end_to_end_and_writes_its_files(algo, tiny_pendulum, tmp_path):
    overrides = [*TINY, *get_spec(algo).test_settings]
    cfg = build_config(algo, tiny_pendulum, seed=1, steps=60, overrides=overrides)
    final = execute(cfg, tmp_path, progress=False)
    run_dir = run_dir_for(cfg, tmp_path)
    assert (run_dir / "final.json").exists() and (run_dir / "policy.pt").exists()
    assert not (run_dir / "checkpoint.pt").exists()  # removed once the run is complete
    assert len(final["returns"]) == 2 and final["steps"] == 60 and final["seed"] == 1
    # the tiny dataset carries no reference returns, and Pendulum has no D4RL ones: raw returns, and why
    assert final["normalized_score"] is None and "no reference returns" in final["score_note"]
    assert len(final["lengths"]) == 2 and all(length == 200 for length in final["lengths"])
    config = json.loads((run_dir / "config.json").read_text())
    assert (
        config["config"]["algorithm"] == algo and config["dataset_fingerprint"]["dataset_id"] == tiny_pendulum
    )
    assert (config["dynamics_key"] is not None) == get_spec(algo).uses_dynamics
    assert config["versions"]["torch"] == torch.__version__  # and mujoco, gymnasium, numpy, ...
    # every cached artefact the run used is recorded by kind and key
    used = {"dynamics": config["dynamics_key"]} if get_spec(algo).uses_dynamics else {}
    if algo.startswith("morec-"):  # and MOREC's dynamics reward, a published entry of the store
        reward_key = config["artefacts"]["dynamics_reward"]
        assert (artefact_path("dynamics_reward", reward_key) / "reward.pt").is_file()
        used["dynamics_reward"] = reward_key
    if algo == "mbrcsl":  # and MBRCSL's behaviour policy and kept rollouts
        for kind, file in (("behaviour_policy", "policy.pt"), ("rollouts", "rollouts.pt")):
            used[kind] = config["artefacts"][kind]
            assert (artefact_path(kind, used[kind]) / file).is_file()
    assert config["artefacts"] == used
    every = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in every if "phase" not in r]  # the output policy's rows; earlier phases have their own
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    if algo == "mbrcsl":  # the behaviour fit's rows (30 steps), then the rollout phase's one summary row
        assert [(r["phase"], r["step"]) for r in every[:4]] == [("behaviour", s) for s in (10, 20, 30)] + [
            ("rollouts", 0)
        ]
        assert every[3]["rollouts/kept"] >= 4 and "rcsl/loss" in rows[0]
    assert "eval/score" in rows[2] and all(np.isfinite(v) for r in rows for v in r.values())
    if algo == "mopo":
        assert "rollout/penalty" in rows[0] and "rollout/raw_reward" in rows[0]
        assert rows[0]["rollout/reward"] < rows[0]["rollout/raw_reward"]  # the penalty lowers the reward
    if algo == "ravl":
        assert "critic_reg" in rows[0]
    if algo.startswith("morec-"):  # the filter's per-round log
        lo, hi = REWARD_RANGE
        assert 0.0 <= rows[0]["rollout/truncation_rate"] <= 1.0
        chosen, rejected = (
            rows[0]["rollout/dynamics_reward_chosen"],
            rows[0]["rollout/dynamics_reward_rejected"],
        )
        assert lo <= min(chosen, rejected) and max(chosen, rejected) <= hi
        if cfg.algo.filter.rule == "select":  # the softmax rule (morec-mobile's) may draw a lower candidate
            assert rejected <= chosen
    # a finished run is reused, not redone
    assert execute(cfg, tmp_path, progress=False) == final
    # its saved policy, reloaded, acts exactly as the one that was evaluated
    policy, loaded_cfg, dataset = load_run(run_dir)
    assert loaded_cfg == cfg
    again = evaluate(policy, dataset.spec, 2, seed=eval_seed(cfg.seed))
    assert again.returns.tolist() == final["returns"]


# every registered algorithm; COMBO with its Lagrange multiplier, a hook's state in the checkpoint
RESUME_EXTRA = {"combo": ["algo.lagrange=true", "algo.lagrange_lr=0.01"]}


@pytest.mark.parametrize("algo", sorted(algorithms()))
def test_resume_after_a_kill_reaches_the_same_result(algo, tiny_pendulum, tmp_path, monkeypatch):
    extra = RESUME_EXTRA.get(algo, [])
    cfg = build_config(algo, tiny_pendulum, seed=2, steps=60, overrides=[*TINY, *PER_ALGO[algo], *extra])
    straight = execute(cfg, tmp_path / "a", progress=False)

    with killed_at(50, monkeypatch), pytest.raises(KeyboardInterrupt):
        execute(cfg, tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="pass --resume to continue it"):
        execute(cfg, tmp_path / "b", progress=False)
    resumed = execute(cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed["returns"] == straight["returns"]
    a = torch.load(run_dir_for(cfg, tmp_path / "a") / "policy.pt")
    b = torch.load(run_dir_for(cfg, tmp_path / "b") / "policy.pt")
    weights = lambda state: state.get("actor", state)  # noqa: E731  (SAC's actor, or the whole policy)
    assert all(torch.equal(weights(a)[k], weights(b)[k]) for k in weights(a))
    rows_a = (run_dir_for(cfg, tmp_path / "a") / "metrics.jsonl").read_text().splitlines()
    rows_b = (run_dir_for(cfg, tmp_path / "b") / "metrics.jsonl").read_text().splitlines()
    # run b reuses the behaviour policy run a cached (MBRCSL), so it has no rows of that phase
    strip = lambda rows: [  # noqa: E731
        {k: v for k, v in row.items() if k != "wall_time"}
        for row in map(json.loads, rows)
        if row.get("phase") != "behaviour"
    ]
    assert strip(rows_a) == strip(rows_b)


def test_divergence_stops_with_one_line_and_keeps_the_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 50, "trunc") for _ in range(2)]
    episodes[0][1][:] = 3e38  # finite actions whose squared error overflows float32
    write_minari("test/pendulum/huge-v0", "Pendulum-v1", episodes)
    cfg = build_config("bc", "test/pendulum/huge-v0", steps=60, overrides=[*TINY, *PER_ALGO["bc"]])
    with pytest.raises(DivergedError, match=r"training diverged near step 10: bc/loss = (nan|inf)"):
        execute(cfg, tmp_path, progress=False)


@pytest.mark.parametrize("field", [1, 2, 0])  # actions, rewards, observations
@pytest.mark.parametrize("algo", ["bc", "mopo"])
def test_a_dataset_with_nan_or_inf_is_refused_before_anything_is_fitted_or_written(field, algo, tmp_path):
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 50, "trunc") for _ in range(2)]
    episodes[1][field][7] = np.nan if field else np.inf
    write_minari("test/pendulum/nan-v0", "Pendulum-v1", episodes)
    cfg = build_config(algo, "test/pendulum/nan-v0", steps=60, overrides=[*TINY, *PER_ALGO[algo]])
    name = ("obs", "act", "rew")[field]
    with pytest.raises(UserError, match=f"holds non-finite values .1 transitions in {name}") as err:
        execute(cfg, tmp_path / "results", progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "results").exists()
    assert not (cache_root() / "dynamics").exists() or not any((cache_root() / "dynamics").iterdir())


def test_a_non_finite_dynamics_fit_is_never_cached(tiny_pendulum, monkeypatch):
    import offline_mbrl.models.dynamics as dyn
    from offline_mbrl.data.dataset import load_dataset

    real_fit = dyn.fit_dynamics

    def nan_fit(*args, **kwargs):
        model, report = real_fit(*args, **kwargs)
        return model, {**report, "holdout_mse": [float("nan")] * len(report["holdout_mse"])}

    monkeypatch.setattr(dyn, "fit_dynamics", nan_fit)
    ds = load_dataset(tiny_pendulum)
    cfg = dyn.DynamicsConfig(hidden=(8,), weight_decay=(0, 0), max_epochs=1)
    with pytest.raises(UserError, match="non-finite holdout error.*nothing was cached"):
        dyn.load_or_fit(ds, cfg, progress=False)
    assert not [p for p in (cache_root() / "dynamics").iterdir() if not p.name.endswith(".lock")]


def test_unknown_termination_is_reported_before_fitting(tmp_path):
    rng = np.random.default_rng(0)
    write_minari("test/mcc/x-v0", "MountainCarContinuous-v0", [synthetic_episode(rng, 2, 1, 20, "trunc")])
    cfg = build_config("mopo", "test/mcc/x-v0", steps=10, overrides=TINY)
    with pytest.raises(UserError, match="no termination function for environment MountainCarContinuous-v0"):
        execute(cfg, tmp_path, progress=False)


def test_a_damaged_checkpoint_gives_advice_that_works(tiny_pendulum, tmp_path):
    cfg = build_config("mopo", tiny_pendulum, seed=2, steps=60, overrides=[*TINY, *PER_ALGO["mopo"]])
    out = run_dir_for(cfg, tmp_path)
    out.mkdir(parents=True)
    (out / "metrics.jsonl").write_text('{"step": 10}\n')
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="start the run over with --force") as err:
        execute(cfg, tmp_path, resume=True, progress=False)
    assert "\n" not in str(err.value)
    final = execute(cfg, tmp_path, force=True, progress=False)  # the advice: it runs, and finishes
    assert final["steps"] == 60 and not (out / "checkpoint.pt").exists()
