"""`offline-mbrl diagnose`: model-error diagnostics on a tiny dataset of real Pendulum-v1 transitions, with
real components (a fitted ensemble, the true simulator, a BC policy or a finished run)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from offline_mbrl.algorithms.mopo import penalty_hook as mopo_penalty_hook
from offline_mbrl.algorithms.morec.algorithm import TEST_REWARD
from offline_mbrl.core.errors import UserError
from offline_mbrl.experiments.diagnose import MARKER, diagnose, penalty_hook
from offline_mbrl.launch import build_config, execute
from offline_mbrl.learning.penalties import PENALTIES
from offline_mbrl.learning.rollout import Step
from offline_mbrl.learning.run import run_dir_for
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble

from .conftest import synthetic_episode, write_minari
from .test_cli import run_cli

DYN = ["dynamics.hidden=16,16", "dynamics.weight_decay=1e-5,1e-5,1e-5", "dynamics.max_epochs=2"]
STARTS, HORIZON = 40, 3
FILES = (
    "transitions.csv",
    "transitions.parquet",
    "correlations.csv",
    "correlations_by_h.csv",
    "summary.md",
    "meta.json",
    MARKER,
)


def _pendulum_episodes(seed: int, episodes: int = 2, steps: int = 100) -> list[tuple]:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 100 + ep)
        o, a, r = [obs], [], []
        for _ in range(steps):
            act = rng.uniform(-2, 2, size=1).astype(np.float32)
            obs, rew, *_ = env.step(act)
            o.append(obs), a.append(act), r.append(rew)
        trunc = np.zeros(steps, bool)
        trunc[-1] = True
        out.append(
            (
                np.array(o, np.float32),
                np.array(a, np.float32),
                np.array(r, np.float32),
                np.zeros(steps, bool),
                trunc,
            )
        )
    env.close()
    return out


@pytest.fixture
def real_pendulum():
    """200 transitions of the real Pendulum-v1 (random actions), so the oracle check is ~1e-7."""
    write_minari("test/pendulum/real-v0", "Pendulum-v1", _pendulum_episodes(0))
    return "test/pendulum/real-v0"


def _cli_args(dataset: str, out, *extra: str) -> list[str]:
    sets = [x for item in DYN for x in ("--set", item)]
    return [
        "diagnose",
        "--dataset",
        dataset,
        *sets,
        "--starts",
        str(STARTS),
        "--horizon",
        str(HORIZON),
        "--bc-steps",
        "50",
        "--out",
        str(out),
        *extra,
    ]


def _check_outputs(out, starts: int = STARTS, horizon: int = HORIZON) -> tuple[pd.DataFrame, dict]:
    for name in FILES:
        assert (out / name).is_file(), name
    scores = list(PENALTIES) + (
        ["dynamics_reward"] if "reward" in json.loads((out / "meta.json").read_text()) else []
    )
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        [f"{p}.png" for p in scores] + ["overview.png"]
    )
    df = pd.read_csv(out / "transitions.csv")
    parquet = pd.read_parquet(out / "transitions.parquet")
    pd.testing.assert_frame_equal(df, parquet, check_dtype=False)
    meta = json.loads((out / "meta.json").read_text())
    # Pendulum never terminates: every rollout step is a valid model transition.
    assert len(df) == starts * horizon == meta["n_transitions"]
    assert sorted(df["h"].unique()) == list(range(horizon))
    assert (df.groupby("rollout").size() == horizon).all()
    for name in PENALTIES:
        assert np.isfinite(df[name]).all() and (df[name] >= 0).all(), name
    assert (df["true_error"] >= 0).all() and (df["reward_error"] >= 0).all() and (df["mean_error"] >= 0).all()
    assert np.isfinite(df["true_error"]).all()
    corr = pd.read_csv(out / "correlations.csv")
    assert list(corr["penalty"]) == scores
    assert corr["spearman_rho"].between(-1, 1).all() and corr["pearson_r"].between(-1, 1).all()
    assert (corr["n"] == len(df)).all()
    by_h = pd.read_csv(out / "correlations_by_h.csv")
    assert len(by_h) == len(scores) * horizon and by_h["spearman_rho"].between(-1, 1).all()
    assert (by_h.groupby("h")["n"].max() == starts).all()
    check = meta["oracle_check"]
    assert check["transitions"] == 200 and check["clipped_velocity"] == 0
    assert check["max_abs_next_obs_error"] < 1e-4 and check["max_abs_reward_error"] < 1e-4
    assert check["line"].startswith("oracle check: max |Δs'| ")
    stored = json.loads(pq.read_schema(out / "transitions.parquet").metadata[b"offline_mbrl.diagnose"])
    assert stored["policy"] == meta["policy"] and stored["dynamics_key"] == meta["dynamics_key"]
    summary = (out / "summary.md").read_text()
    assert meta["dynamics_key"] in summary and meta["policy"]["description"] in summary
    return df, meta


def test_penalty_hook_matches_mopos_penalty_on_the_same_step():
    """The stored penalties are MOPO's `u` on the rollout's own prediction and sampled transition."""
    torch.manual_seed(0)
    model = DynamicsEnsemble(3, 1, DynamicsConfig(hidden=(8, 8), weight_decay=(0, 0, 0)))
    obs, act = torch.randn(6, 3), torch.rand(6, 1) * 4 - 2
    with torch.no_grad():
        pred = model.predict(obs, act)
    g = torch.Generator().manual_seed(1)
    next_obs, rew, member = pred.sample(g)
    step = Step(2, obs, act, pred, next_obs, rew, torch.zeros(6, dtype=torch.bool), member, g)
    ours = penalty_hook(step)
    assert torch.equal(ours.rew, rew) and torch.equal(ours.next_obs, next_obs)  # the rollout is untouched
    assert torch.equal(ours.extras["h"], torch.full((6,), 2.0))
    for name in PENALTIES:
        theirs = mopo_penalty_hook(name, 1.0, "elites")(replace(step, extras={}))  # type: ignore[arg-type]
        assert torch.equal(ours.extras[f"penalty/{name}"], theirs.extras["penalty"]), name


def test_diagnose_writes_tidy_transitions_correlations_and_figures(real_pendulum, tmp_path):
    out = tmp_path / "diag"
    said: list[str] = []
    result = diagnose(
        real_pendulum,
        seed=0,
        overrides=DYN,
        starts=STARTS,
        horizon=HORIZON,
        out=out,
        bc_steps=50,
        progress=False,
        log=said.append,
    )
    # the plan comes first: what runs, then the dynamics stage with its time per epoch measured here
    assert said[0].startswith(f"plan: diagnose {real_pendulum} (dynamics seed 0): the ensemble, a BC policy")
    assert f"{STARTS:,} rollouts x {HORIZON} steps" in said[0] and said[1].startswith("dynamics: fit ")
    assert said[2].startswith("estimate: dynamics about ")
    df, meta = _check_outputs(out)
    assert meta["policy"]["kind"] == "bc" and "behaviour cloning" in meta["policy"]["description"]
    assert (df["policy"] == "bc").all() and meta["starts"] == STARTS and meta["horizon"] == HORIZON
    assert result.oracle_line == meta["oracle_check"]["line"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    # A diagnose output is replaced by the next diagnosis, never mixed with it.
    again = diagnose(
        real_pendulum, seed=0, overrides=DYN, starts=10, horizon=2, out=out, bc_steps=20, progress=False
    )
    assert len(pd.read_csv(out / "transitions.csv")) == 20 == len(again.transitions)


def test_cli_prints_the_table_and_one_oracle_check_line(real_pendulum, tmp_path, capsys):
    out = tmp_path / "cli"
    code, stdout, err = run_cli(capsys, *_cli_args(real_pendulum, out))
    assert code == 0, err
    _check_outputs(out)
    lines = [line for line in stdout.splitlines() if line.startswith("oracle check:")]
    assert len(lines) == 1 and "over 200 dataset transitions of test/pendulum/real-v0" in lines[0]
    ds_err, r_err = (float(x) for x in re.findall(r"max \|Δ[s'r]+\| ([0-9.e+-]+)", lines[0]))
    assert ds_err < 1e-4 and r_err < 1e-4
    for name in PENALTIES:
        assert name in stdout
    assert "Spearman" in stdout and f"written to {out}" in stdout and "policy: behaviour cloning" in stdout


def test_a_finished_runs_policy_is_rolled_out(real_pendulum, tmp_path, capsys):
    settings = [
        "eval_every=20",
        "log_every=10",
        "checkpoint_every=20",
        "eval_episodes=1",
        "final_eval_episodes=1",
        "algo.rollout_batch=32",
        "algo.rollout_every=10",
        "algo.horizon=2",
        "algo.sac.actor_hidden=16,16",
        "algo.sac.critic_hidden=16,16",
        *DYN,
    ]
    cfg = build_config("mbpo", real_pendulum, steps=20, overrides=settings)
    execute(cfg, tmp_path / "results", progress=False)
    run = run_dir_for(cfg, tmp_path / "results")
    out = tmp_path / "with-run"
    code, stdout, err = run_cli(capsys, *_cli_args(real_pendulum, out, "--run", str(run)))
    assert code == 0, err
    df, meta = _check_outputs(out)
    policy = meta["policy"]
    assert policy["kind"] == "run" and policy["run_dir"] == str(run) and policy["algorithm"] == "mbpo"
    assert policy["same_ensemble_as_run"] is True  # same dataset, dynamics config and seed: one cache entry
    assert (df["policy"] == "run").all() and f"policy: the finished run {run}" in stdout


def _assert_one_line_error(code, err, fragment):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]


def test_bad_inputs_are_one_line_errors_and_write_nothing(real_pendulum, tmp_path, capsys, isolated_roots):
    out = tmp_path / "never"
    # A finished run of another dataset (bc: no dynamics), and an unfinished one.
    write_minari("test/pendulum/other-v0", "Pendulum-v1", _pendulum_episodes(1, episodes=1, steps=50))
    bc = build_config(
        "bc",
        "test/pendulum/other-v0",
        steps=20,
        overrides=[
            "algo.hidden=16,16",
            "eval_every=20",
            "log_every=10",
            "checkpoint_every=20",
            "eval_episodes=1",
            "final_eval_episodes=1",
        ],
    )
    execute(bc, tmp_path / "results", progress=False)
    other_run = run_dir_for(bc, tmp_path / "results")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    rng = np.random.default_rng(0)
    write_minari("test/mcc/x-v0", "MountainCarContinuous-v0", [synthetic_episode(rng, 2, 1, 30, "trunc")])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        (["--dataset", "hoper-medium"], "unknown dataset name 'hoper-medium'"),
        (["--dataset", real_pendulum, "--run", str(tmp_path / "absent")], "is not a finished run"),
        (["--dataset", real_pendulum, "--run", str(unfinished)], "is not a finished run"),
        (["--dataset", real_pendulum, "--run", str(other_run)], "was trained on test/pendulum/other-v0"),
        (["--dataset", real_pendulum, "--starts", "0"], "--starts must be positive"),
        (["--dataset", real_pendulum, "--horizon", "-1"], "--horizon must be positive"),
        (["--dataset", "test/mcc/x-v0"], "no true simulator for environment MountainCarContinuous-v0"),
        (["--dataset", real_pendulum, "--set", "dynamics.hidden=oops"], "dynamics.hidden"),
    ]
    for args, fragment in cases:
        code, _, err = run_cli(capsys, "diagnose", *args, "--out", str(out))
        _assert_one_line_error(code, err, fragment)
        assert not out.exists()
    code, _, err = run_cli(capsys, "diagnose", "--dataset", real_pendulum, "--out", str(foreign))
    _assert_one_line_error(code, err, "is not a diagnose output")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert not (isolated_roots / "cache" / "dynamics").exists() or not any(
        (isolated_roots / "cache" / "dynamics").iterdir()
    )  # nothing was fitted either
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]
    with pytest.raises(UserError, match="leave dynamics.kind at ensemble"):
        diagnose(real_pendulum, overrides=["dynamics.kind=oracle"], out=out, progress=False)


# MOREC's tiny reward of the contract battery (its filter keys do not apply to diagnose)
REWARD = [item for item in TEST_REWARD if item.startswith("algo.reward.")]


def test_reward_is_scored_beside_the_penalties(real_pendulum, tmp_path, capsys):
    out = tmp_path / "reward"
    args = [*_cli_args(real_pendulum, out), "--reward", "--reward-stride", "4"]
    for item in REWARD:
        args += ["--set", item]
    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    df, meta = _check_outputs(out)
    rw = meta["reward"]
    assert rw["snapshots"] == 3 and rw["stride"] == 4  # 5 kept, every 2nd from the newest
    assert rw["n_model"] == len(df) and rw["n_holdout"] == 20  # 10% of the 200 transitions
    assert 0.0 <= rw["auc_data_vs_model"] <= 1.0 and 0.0 <= rw["auc_low_vs_high_error"] <= 1.0
    assert df["dynamics_reward"].between(0.313, 1.314).all()
    corr = pd.read_csv(out / "correlations.csv").set_index("penalty")
    assert corr.loc["dynamics_reward", "n"] == len(df) and (out / "figures" / "dynamics_reward.png").is_file()
    assert "dynamics reward r_D: ROC AUC" in stdout and "r_D" in (out / "summary.md").read_text()
    # reward settings without --reward are refused
    code, _, err = run_cli(capsys, *_cli_args(real_pendulum, tmp_path / "x"), "--set", REWARD[0])
    assert code == 2 and "add --reward" in err and not (tmp_path / "x").exists()
