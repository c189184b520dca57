"""MBRCSL's rollout phase: whole rollouts of the behaviour policy in the learned model, kept when their
model return beats a quantile of the data's episode returns; a cached artefact (kind `rollouts`)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from offline_mbrl.algorithms.mbrcsl.behaviour import BehaviourPolicy
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.cache import load_or_build, stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.progress import stage
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.rollout import rollout
from offline_mbrl.learning.run import Run
from offline_mbrl.models.dynamics import Dynamics, hashed_fields
from offline_mbrl.models.termination import termination_fn

if TYPE_CHECKING:
    from offline_mbrl.algorithms.mbrcsl.algorithm import MBRCSLConfig

ROLLOUTS = "rollouts"  # the artefact kind of the kept rollouts


FORMAT_VERSION = 1


@dataclass(frozen=True)
class KeptRollouts:
    """The kept rollouts' steps, flattened rollout by rollout: `(N, ...)`."""

    obs: torch.Tensor  # (N, obs_dim)
    act: torch.Tensor  # (N, act_dim)
    rew: torch.Tensor  # (N,)
    rtg: torch.Tensor  # (N,) the model return from this step on, its own reward included
    traj: torch.Tensor  # (N,) long: which kept rollout the step belongs to, 0..K-1
    returns: torch.Tensor  # (K,) each kept rollout's model return
    report: dict[str, Any]  # tried, batches, threshold, pass rate, ...

    def to(self, device: torch.device | str) -> KeptRollouts:
        tensors = {
            f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self) if f.name != "report"
        }
        return KeptRollouts(**tensors, report=self.report)


def returns_to_go(rew: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """(H, B) rewards and validity -> (H, B) the sum of valid rewards from each step to the end."""
    r = rew * stored
    return r.flip(0).cumsum(0).flip(0)


def threshold_return(dataset: OfflineDataset, quantile: float) -> float:
    """The model return a rollout must exceed: a quantile of the dataset's episode returns (1.0: best)."""
    return float(np.quantile(dataset.episode_returns, quantile))


def collect_rollouts(
    dataset: OfflineDataset,
    dynamics: Dynamics,
    behaviour: BehaviourPolicy,
    a: MBRCSLConfig,
    seed: int,
    progress: bool = True,
) -> KeptRollouts:
    """Roll the behaviour policy out in the model, batch by batch, keeping what beats the threshold."""
    spec = dataset.spec
    horizon = rollout_horizon(dataset, a)
    terminated = termination_fn(spec.env, spec.gym_id)
    threshold = threshold_return(dataset, a.return_quantile)
    starts = dataset.start_obs  # (n_episodes, obs_dim)
    device = starts.device
    generator = torch.Generator(device=device).manual_seed(seed)
    kept: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "act", "rew", "rtg", "stored", "returns")}
    n_kept, tried, best_model = 0, 0, -math.inf
    started = time.time()
    with stage("rollouts", a.max_batches, "rollouts (batches)", enabled=progress) as collecting:
        batches = 0
        for batches in range(1, a.max_batches + 1):
            idx = torch.randint(0, starts.shape[0], (a.rollout_batch,), generator=generator, device=device)
            r = rollout(
                dynamics,
                lambda obs: behaviour.sample(obs, generator),
                starts[idx],
                horizon,
                terminated,
                generator=generator,
            )
            stored = r.stored  # (H, B)
            ret = r.returns()  # (B,)
            passed = torch.isfinite(ret) & (ret > threshold)  # (B,)
            n_passed, top = torch.stack([passed.sum().float(), torch.nan_to_num(ret, -1e30).max()]).tolist()
            n_new = int(n_passed)  # one host sync per batch of whole episodes
            best_model = max(best_model, top)
            tried += a.rollout_batch
            if n_new:
                cols = passed.nonzero().squeeze(-1)
                rtg = returns_to_go(r.rew, stored)
                for k, v in (
                    ("obs", r.obs),
                    ("act", r.act),
                    ("rew", r.rew),
                    ("rtg", rtg),
                    ("stored", stored),
                ):
                    kept[k].append(v[:, cols].transpose(0, 1))  # (K_new, H, ...)
                kept["returns"].append(ret[cols])
                n_kept += n_new
            collecting.advance(batches, f"kept {n_kept} of {a.keep}")
            if n_kept >= a.keep:
                break
    report = {
        "tried": tried,
        "batches": batches,
        "kept": n_kept,
        "threshold": threshold,
        "best_data_return": float(dataset.episode_returns.max()),
        "best_model_return": best_model,
        "horizon": horizon,
        "seconds": round(time.time() - started, 2),
    }
    if n_kept == 0:
        raise UserError(
            f"MBRCSL: none of {tried:,} model rollouts ({batches} batches of {a.rollout_batch}) of the "
            f"behaviour policy beat the dataset's return threshold {threshold:.2f} (their best: "
            f"{best_model:.2f}); nothing to train on: fit the behaviour policy or dynamics longer, raise "
            "algo.max_batches, or lower algo.return_quantile"
        )
    if n_kept < a.keep:
        print(
            f"MBRCSL: only {n_kept} of the {a.keep} rollouts asked for beat {threshold:.2f} in "
            f"{batches} batches; training on those",
            file=sys.stderr,
        )
    cat = {k: torch.cat(v) for k, v in kept.items()}  # (K, H, ...) and (K,)
    mask = cat["stored"]  # (K, H)
    traj = torch.arange(mask.shape[0], device=device).unsqueeze(-1).expand_as(mask)
    return KeptRollouts(
        obs=cat["obs"][mask],
        act=cat["act"][mask],
        rew=cat["rew"][mask],
        rtg=cat["rtg"][mask],
        traj=traj[mask],
        returns=cat["returns"],
        report=report,
    )


def rollout_horizon(dataset: OfflineDataset, a: MBRCSLConfig) -> int:
    if a.horizon is not None:
        return a.horizon
    return int(dataset.spec.max_episode_steps or dataset.episode_lengths.max())


def rollouts_key(
    dataset: OfflineDataset, cfg: TrainConfig[MBRCSLConfig], behaviour_key: str, seed: int
) -> str:
    """What determines the kept rollouts: data, dynamics (their whole config), behaviour policy, the
    rollout settings and seed."""
    a = cfg.algo
    fields = {
        "rollout_batch": a.rollout_batch,
        "keep": a.keep,
        "max_batches": a.max_batches,
        "horizon": rollout_horizon(dataset, a),
        "return_quantile": a.return_quantile,
        "seed": seed,
    }
    return stable_hash(
        {
            "dataset": dataset.fingerprint.key,
            "dynamics": hashed_fields(cfg.resolved().dynamics),
            "behaviour": behaviour_key,
            "rollouts": fields,
            "format": FORMAT_VERSION,
        }
    )


def load_or_collect_rollouts(
    cfg: TrainConfig[MBRCSLConfig],
    dataset: OfflineDataset,
    dynamics: Dynamics,
    behaviour: BehaviourPolicy,
    behaviour_key: str,
    run: Run,
) -> KeptRollouts:
    """The cached kept rollouts (collected and published on a miss), recorded in the run's config.json."""
    a = cfg.algo
    seed = cfg.seed if a.rollout_seed is None else a.rollout_seed
    key = rollouts_key(dataset, cfg, behaviour_key, seed)
    device = dataset.data.obs.device

    def build(folder: Path) -> dict:
        kept = collect_rollouts(dataset, dynamics, behaviour, a, seed, run.progress_enabled)
        tensors = {f.name: getattr(kept, f.name) for f in dataclasses.fields(kept) if f.name != "report"}
        torch.save({k: v.cpu() for k, v in tensors.items()}, folder / "rollouts.pt")
        (folder / "report.json").write_text(json.dumps(kept.report, indent=2, sort_keys=True) + "\n")
        r = kept.report
        return {
            "dataset_id": dataset.fingerprint.dataset_id,
            "dataset_name": dataset.name,
            "behaviour_key": behaviour_key,
            "summary": f"{r['kept']} of {r['tried']:,} rollouts beat {r['threshold']:.2f}",
        }

    def load(entry: Path) -> KeptRollouts:
        tensors = torch.load(entry / "rollouts.pt", map_location=device)
        return KeptRollouts(**tensors, report=json.loads((entry / "report.json").read_text()))

    kept = load_or_build(ROLLOUTS, key, build, load, "collecting again", verbose=run.progress_enabled)
    run.use_artefact(ROLLOUTS, key)
    return kept
