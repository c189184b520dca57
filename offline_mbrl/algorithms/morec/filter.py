"""MOREC's reward-consistency filter: at every model step, choose among the elites' candidate next states
by the learned dynamics reward r_D (`morec.reward`), and cut a rollout where even the chosen one scores
below the threshold. A rollout step hook of the shared model-based loop."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import torch

from offline_mbrl.algorithms.morec.reward import (
    REWARD_RANGE,
    DynamicsReward,
    DynamicsRewardConfig,
)
from offline_mbrl.algorithms.morec.reward_fit import load_or_fit_reward
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.rollout import Rollout, Step, Terminated, with_extras
from offline_mbrl.learning.run import Run
from offline_mbrl.models.dynamics import Dynamics, DynamicsEnsemble, dynamics_key
from offline_mbrl.models.termination import termination_fn

if TYPE_CHECKING:
    from offline_mbrl.algorithms.morec.algorithm import MORECMOBILEConfig, MORECMOPOConfig


@dataclass(frozen=True)
class FilterConfig:
    rule: Literal["select", "softmax"] = "select"  # keep the highest-r_D candidate, or draw by softmax
    temperature: float = 0.1  # the softmax rule's temperature (the reference's 0.1)
    threshold: float = 0.6  # cut the rollout where the chosen candidate's r_D is below this
    samples: int = 2  # candidate next states drawn from each elite (5 elites x 2 = 10 candidates)
    snapshot_stride: int = 10  # average every this-many-th discriminator snapshot (MOPO 10, MOBILE 40)
    # a cut transition: stored as terminal, its row stopped (the reference's behaviour), or dropped
    cut: Literal["drop", "terminal"] = "terminal"
    min_length: int = 0  # no cut before this rollout step (the reference's minimal_rollout_length)

    def __post_init__(self) -> None:
        lo, hi = REWARD_RANGE
        problems = []
        if not lo < self.threshold < hi:  # also refuses NaN
            problems.append(
                f"threshold must lie inside the dynamics reward's range ({lo:.3f}, {hi:.3f}), "
                f"got {self.threshold}"
            )
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            problems.append(f"temperature must be a positive number, got {self.temperature}")
        if self.samples < 1 or self.snapshot_stride < 1 or self.min_length < 0:
            problems.append("samples and snapshot_stride must be at least 1, min_length at least 0")
        if self.rule not in ("select", "softmax"):
            problems.append(f"rule must be select or softmax, got {self.rule!r}")
        if self.cut not in ("drop", "terminal"):
            problems.append(f"cut must be drop or terminal, got {self.cut!r}")
        if problems:
            raise UserError("invalid MOREC filter: " + "; ".join(problems))


def _check(filter_cfg: FilterConfig, reward: DynamicsRewardConfig) -> None:
    if filter_cfg.snapshot_stride % reward.stored_every:
        raise UserError(
            f"algo.filter.snapshot_stride ({filter_cfg.snapshot_stride}) must be a multiple of "
            f"algo.reward.stored_every ({reward.stored_every}): only every {reward.stored_every}th snapshot "
            "is stored"
        )


class RewardConsistencyFilter:
    """The rollout step hook: choose among `K·samples` candidates by r_D, cut where the choice is poor."""

    def __init__(self, reward: DynamicsReward, cfg: FilterConfig, terminated: Terminated):
        self.reward, self.cfg, self.terminated = reward, cfg, terminated

    def __call__(self, step: Step) -> Step:
        cfg = self.cfg
        cand = step.pred.candidates(cfg.samples, step.generator)  # next_obs (C, B, o), rew (C, B)
        r = self.reward(step.obs, step.act, cand.next_obs)  # (C, B)
        c, b = r.shape
        rows = torch.arange(b, device=r.device)
        if cfg.rule == "select":
            pick = r.argmax(0)  # (B,)
        else:
            probs = torch.softmax(r / cfg.temperature, dim=0).T  # (B, C)
            pick = torch.multinomial(probs, 1, generator=step.generator).squeeze(1)
        chosen = r[pick, rows]  # (B,)
        rejected = (r.sum(0) - chosen) / max(c - 1, 1)
        next_obs, rew = cand.next_obs[pick, rows], cand.rew[pick, rows]
        term = self.terminated(step.obs, step.act, next_obs)
        low = chosen < cfg.threshold
        if step.h < cfg.min_length:
            low = torch.zeros_like(low)
        cut = low & ~term
        keep = ~cut if cfg.cut == "drop" else None
        out = replace(step, next_obs=next_obs, rew=rew, member=cand.member[pick], term=term | cut, keep=keep)
        return with_extras(out, dynamics_reward=chosen, dynamics_reward_rejected=rejected, cut=cut.float())


def round_metrics(ro: Rollout) -> dict[str, torch.Tensor]:
    """A round's truncation rate and the mean r_D of chosen vs rejected candidates over live rows."""
    live = ro.alive.float()  # (H, B)
    n = live.sum().clamp_min(1.0)
    cut = ro.extras["cut"] * live
    return {
        "rollout/truncation_rate": cut.amax(0).mean(),
        "rollout/dynamics_reward_chosen": (ro.extras["dynamics_reward"] * live).sum() / n,
        "rollout/dynamics_reward_rejected": (ro.extras["dynamics_reward_rejected"] * live).sum() / n,
    }


def dynamics_reward(
    cfg: TrainConfig[MORECMOPOConfig] | TrainConfig[MORECMOBILEConfig],
    dataset: OfflineDataset,
    dynamics: Dynamics,
    run: Run,
) -> DynamicsReward:
    """The cached r_D of the run's ensemble (fitted on a miss), averaged at the filter's stride; the
    run's config.json records its key."""
    if not isinstance(dynamics, DynamicsEnsemble):
        raise UserError(
            "MOREC's dynamics reward is learned against the learned ensemble; dynamics.kind=oracle is not "
            "supported for morec-* runs"
        )
    a = cfg.algo
    key = dynamics_key(dataset.fingerprint.key, cfg.dynamics.learned())
    reward, _, reward_key = load_or_fit_reward(dataset, dynamics, key, a.reward, run.progress_enabled)
    run.use_artefact("dynamics_reward", reward_key)
    return reward.select(a.filter.snapshot_stride)


def _filter_hooks(cfg, dataset: OfflineDataset, dynamics: Dynamics, run: Run) -> RewardConsistencyFilter:
    reward = dynamics_reward(cfg, dataset, dynamics, run)
    return RewardConsistencyFilter(
        reward, cfg.algo.filter, termination_fn(dataset.spec.env, dataset.spec.gym_id, cfg.algo.termination)
    )
