"""MOPO: MBPO with the reward penalized by the model's uncertainty, `r̃ = r − λ·u(s, a)`
(Yu et al., NeurIPS 2020), with the whole uncertainty family Lu et al. (ICLR 2022) compared.

`algo.penalty` picks u from `offline_mbrl.penalties` (max_aleatoric is MOPO's; max_pairwise_diff MOReL's;
ensemble_std / ensemble_var; llv LOMPO's; loo_kl M2AC's), `algo.penalty_coef` is λ and
`algo.penalty_members` the members it is taken over ("elites", the members rollouts sample from, by
default; OfflineRL-Kit took MOPO's max over all 7 members, which `penalty_members=all` reproduces).
The raw model reward and the penalty are both logged (`rollout/raw_reward`, `rollout/penalty`).

Defaults and `--preset paper` follow OfflineRL-Kit's MOPO (its README table): h and λ per D4RL task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from offline_mbrl.config import TrainConfig
from offline_mbrl.data import OfflineDataset
from offline_mbrl.dynamics import Dynamics
from offline_mbrl.errors import UserError
from offline_mbrl.model_based import Hooks, ModelBasedConfig, model_based_spec, trainers
from offline_mbrl.penalties import Members, PenaltyName, uncertainty
from offline_mbrl.rollout import Step, StepHook, with_extras
from offline_mbrl.run import Run


@dataclass(frozen=True)
class MOPOConfig(ModelBasedConfig):
    penalty: PenaltyName = "max_aleatoric"  # the uncertainty u(s, a) (offline_mbrl.penalties)
    penalty_coef: float = 1.0  # λ in r − λ·u(s, a)
    penalty_members: Members = "elites"  # members u is taken over: elites (sampled from) or all

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.penalty_coef) and self.penalty_coef >= 0):
            raise UserError(f"MOPO needs a finite penalty_coef >= 0, got {self.penalty_coef}")


# OfflineRL-Kit's per-task (horizon, λ) for D4RL v2 MuJoCo (shared/reference/algorithms.md).
PAPER_PRESETS = {
    f"{env}-{tier}": {"algo.horizon": h, "algo.penalty_coef": lam, "algo.penalty": "max_aleatoric"}
    for (env, tier), (h, lam) in {
        ("halfcheetah", "medium"): (5, 0.5),
        ("hopper", "medium"): (5, 5.0),
        ("walker2d", "medium"): (5, 0.5),
        ("halfcheetah", "medium-replay"): (5, 0.5),
        ("hopper", "medium-replay"): (5, 2.5),
        ("walker2d", "medium-replay"): (1, 2.5),
        ("halfcheetah", "medium-expert"): (5, 2.5),
        ("hopper", "medium-expert"): (5, 5.0),
        ("walker2d", "medium-expert"): (1, 2.5),
    }.items()
}
# MBRCSL's PointMaze baseline (zhaoyizhou1123/mbrcsl `examples/pointmaze/run_mopo_maze.py`): h 1, λ 2.5
PAPER_PRESETS["pointmaze-stitch"] = {
    "algo.horizon": 1,
    "algo.penalty_coef": 2.5,
    "algo.penalty": "max_aleatoric",
}


def penalty_hook(penalty: PenaltyName, coef: float, members: Members) -> StepHook:
    def hook(step: Step) -> Step:
        sample = step.next_obs.new_empty(step.next_obs.shape[0], step.next_obs.shape[1] + 1)
        sample[:, :-1], sample[:, -1] = step.next_obs, step.rew  # (B, obs_dim + 1): what was sampled
        u = uncertainty(penalty, step.pred, sample, step.member, members)  # (B,)
        return with_extras(replace(step, rew=step.rew - coef * u), raw_reward=step.rew, penalty=u)

    return hook


def hooks(cfg: TrainConfig[MOPOConfig], dataset: OfflineDataset, dynamics: Dynamics, run: Run) -> Hooks:
    a = cfg.algo
    return Hooks(step=penalty_hook(a.penalty, a.penalty_coef, a.penalty_members))


SPEC = model_based_spec(
    "mopo",
    MOPOConfig,
    paper="Yu et al., NeurIPS 2020 (MOPO); Lu et al., ICLR 2022",
    presets=PAPER_PRESETS,
    **trainers(hooks),
)
