"""`diagnose`: the whole diagnosis, from the dataset and the cached ensemble to the published folder."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline_mbrl.algorithms.morec.reward import DynamicsRewardConfig
from offline_mbrl.algorithms.morec.reward_fit import load_or_fit_reward
from offline_mbrl.config import dynamics_config_from_overrides
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import code_version
from offline_mbrl.core.ranges import check_option, check_value
from offline_mbrl.core.run_files import check_finished_run
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.experiments.diagnose.oracle import oracle_check
from offline_mbrl.experiments.diagnose.output import DiagnoseResult, check_out, default_out, write_outputs
from offline_mbrl.experiments.diagnose.policy import bc_policy, check_finished, run_policy, run_record
from offline_mbrl.experiments.diagnose.rollouts import PENALTY_MEMBERS, REWARD, model_transitions
from offline_mbrl.experiments.diagnose.stats import correlations, correlations_by_h, reward_stats
from offline_mbrl.launch import check_device
from offline_mbrl.learning.penalties import PENALTIES
from offline_mbrl.models.dynamics import load_or_fit
from offline_mbrl.models.fit_plan import fit_plan
from offline_mbrl.models.oracle import simulator
from offline_mbrl.models.termination import termination_fn

COLUMNS = {  # meta.json's description of transitions.csv
    "h": "rollout step (0 = from the dataset state)",
    "rollout": "rollout index",
    "start_index": "dataset transition the rollout started from",
    "member": "ensemble member the transition was sampled from",
    "true_error": "||sampled next state - simulator next state||_2 from the same (s, a)",
    "mean_error": "||elites' mean next state - simulator next state||_2",
    "reward_error": "|sampled model reward - simulator reward|",
    **{name: f"penalties.{name} over the elites" for name in PENALTIES},
    REWARD: "MOREC's dynamics reward r_D of the transition (with --reward)",
    "policy": "bc (fitted here) or run (--run)",
}


def diagnose(
    dataset: str,
    run_dir: Path | None = None,
    seed: int = 0,
    overrides: Sequence[str] = (),
    starts: int = 2000,
    horizon: int = 5,
    out: Path | None = None,
    device: str = "cpu",
    bc_steps: int = 3000,
    oracle_transitions: int = 1000,
    progress: bool = True,
    reward: DynamicsRewardConfig | None = None,
    reward_stride: int = 10,
    log: Callable[[str], None] = print,
) -> DiagnoseResult:
    """The whole diagnosis; every bad input is a UserError raised before anything is written."""
    started = time.perf_counter()
    for label, value, high in (
        ("--starts", starts, 10**7),
        ("--horizon", horizon, 100_000),
        ("--bc-steps", bc_steps, 10**9),
        ("--reward-stride", reward_stride, 10**6),
        ("oracle transitions", oracle_transitions, 10**7),
    ):
        check_option(label, value, 1, high)
    check_value("seed", seed)
    if starts * horizon > 10**8:
        raise UserError(
            f"--starts {starts} x --horizon {horizon} = {starts * horizon:,} recorded transitions, more than "
            "10^8: lower one of them"
        )
    out = Path(out) if out is not None else default_out(dataset, seed)
    check_out(out)
    cfg = dynamics_config_from_overrides(seed, list(overrides))
    if cfg.kind != "ensemble":
        raise UserError("diagnose measures the learned ensemble's error: leave dynamics.kind at ensemble")
    check_device(device)
    if run_dir is not None:
        run_dir = Path(run_dir)
        check_finished(run_dir)
        check_finished_run(run_dir)  # damaged files: one line now, not after the fit
    ds = load_dataset(dataset, device=device)
    spec = ds.spec
    sim = simulator(spec.env, spec.gym_id)
    if (sim.obs_dim, sim.act_dim) != (spec.obs_dim, spec.act_dim):
        raise UserError(
            f"{spec.gym_id}'s simulator has obs_dim {sim.obs_dim} and act_dim {sim.act_dim}, the dataset "
            f"{spec.obs_dim} and {spec.act_dim}"
        )
    termination_fn(spec.env, spec.gym_id)
    record = run_record(run_dir, ds) if run_dir is not None else None
    times: dict[str, float] = {}
    policy_plan = f"the policy of {run_dir}" if run_dir is not None else f"a BC policy ({bc_steps:,} steps)"
    log(
        f"plan: diagnose {ds.name} (dynamics seed {seed}): the ensemble, {policy_plan}, {starts:,} rollouts "
        f"x {horizon} steps = {starts * horizon:,} model transitions each checked in the simulator"
        + (", MOREC's dynamics reward" if reward is not None else "")
        + f", {oracle_transitions:,} dataset transitions to check the simulator; into {out}"
    )
    for line in fit_plan(ds, cfg):
        log(line)

    tick = time.perf_counter()
    model, report, key = load_or_fit(ds, cfg, device=device, progress=progress)
    model.eval()
    times["dynamics"] = time.perf_counter() - tick
    r_d, r_key = None, None
    r_report: dict[str, Any] = {}
    if reward is not None:
        tick = time.perf_counter()
        full, r_report, r_key = load_or_fit_reward(ds, model, key, reward, progress)
        r_d = full.select(reward_stride)
        times["dynamics_reward"] = time.perf_counter() - tick

    tick = time.perf_counter()
    if run_dir is not None:
        assert record is not None
        policy, policy_meta = run_policy(run_dir, record, key, device)
    else:
        policy, policy_meta = bc_policy(ds, bc_steps, seed, progress)
    times["policy"] = time.perf_counter() - tick

    tick = time.perf_counter()
    df, rejected = model_transitions(model, policy, ds, sim, starts, horizon, seed, progress, r_d)
    df["policy"] = policy_meta["kind"]
    times["rollouts"] = time.perf_counter() - tick

    tick = time.perf_counter()
    check = oracle_check(ds, sim, oracle_transitions, seed)
    times["oracle_check"] = time.perf_counter() - tick
    corr, by_h = correlations(df), correlations_by_h(df)

    meta: dict[str, Any] = {
        "dataset": ds.name,
        "dataset_id": ds.dataset_id,
        "fingerprint": ds.fingerprint.key,
        "gym_id": spec.gym_id,
        "seed": seed,
        "policy": policy_meta,
        "starts": starts,
        "horizon": horizon,
        "n_transitions": len(df),
        "simulator_rejected": rejected,
        "penalty_members": PENALTY_MEMBERS,
        "penalties": list(PENALTIES),
        "dynamics_key": key,
        "dynamics_config": dataclasses.asdict(model.cfg),
        "dynamics_summary": (
            f"{report.get('epochs')} epochs ({report.get('stopped')}), elite holdout MSE "
            f"{report.get('elite_mse', math.nan):.4g}"
        ),
        "overrides": list(overrides),
        "oracle_check": check,
        **({"reward": reward_stats(df, r_d, ds, r_report, r_key, reward_stride)} if r_d is not None else {}),
        "correlations": corr.to_dict(orient="records"),
        "correlations_by_h": by_h.to_dict(orient="records"),
        "columns": COLUMNS,
        "device": device,
        "code_version": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    subtitle = (
        f"{ds.name}, dynamics seed {seed}, {policy_meta['kind']} policy, N={starts}, H={horizon}, "
        f"{len(df)} model transitions"
    )
    times["total"] = time.perf_counter() - started  # up to writing the files (figures take a few s more)
    meta["wall_time"] = times  # seconds per stage
    write_outputs(out, df, corr, by_h, meta, subtitle)
    return DiagnoseResult(out, df, corr, meta)
