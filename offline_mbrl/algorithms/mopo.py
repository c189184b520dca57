"""MOPO: MBPO with the reward penalized by the model's uncertainty, `r̃ = r − λ·u(s, a)`
(Yu et al., NeurIPS 2020), with the whole uncertainty family Lu et al. (ICLR 2022) compared.

`algo.penalty` picks u from `learning.penalties` (max_aleatoric is MOPO's; max_pairwise_diff MOReL's;
ensemble_std / ensemble_var; llv LOMPO's; loo_kl M2AC's), `algo.penalty_coef` is λ and
`algo.penalty_members` the members it is taken over ("elites", the members rollouts sample from, by
default; OfflineRL-Kit took MOPO's max over all 7 members, which `penalty_members=all` reproduces, and
`--preset paper` sets, since its per-task λ were tuned with it).
The raw model reward and the penalty are both logged (`rollout/raw_reward`, `rollout/penalty`).

Defaults and `--preset paper` follow OfflineRL-Kit's MOPO (`run_example/run_mopo.py`: its "suggested
hypers" docstring gives h and λ per D4RL task; the learner is its SACPolicy, updated critic -> actor -> α
with α clamped to [0, 1]); `SOURCES` names the file and line of every value, deviations included
(`offline-mbrl config --algo mopo --preset paper --task hopper-medium` prints them). The suite reports the
final evaluation; final.json's `last10_score` is the reference's mean of the last 10 evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.model_based import (
    Hooks,
    ModelBasedConfig,
    model_based_spec,
    mopo_family_sources,
)
from offline_mbrl.learning.penalties import Members, PenaltyName, uncertainty
from offline_mbrl.learning.rollout import Step, StepHook, with_extras
from offline_mbrl.learning.run import Run
from offline_mbrl.models.dynamics import Dynamics
from offline_mbrl.provenance import MBRCSL, OFFLINERL_KIT, Source, Sourced


@dataclass(frozen=True)
class MOPOConfig(ModelBasedConfig):
    penalty: PenaltyName = "max_aleatoric"  # the uncertainty u(s, a) (offline_mbrl.learning.penalties)
    penalty_coef: float = 1.0  # λ in r − λ·u(s, a)
    penalty_members: Members = "elites"  # members u is taken over: elites (sampled from) or all

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.penalty_coef) and self.penalty_coef >= 0):
            raise UserError(f"MOPO needs a finite penalty_coef >= 0, got {self.penalty_coef}")


# OfflineRL-Kit's per-task (horizon, λ) for D4RL v2 MuJoCo: the "suggested hypers" docstring of
# run_example/run_mopo.py (its README has results only), one line per task. Its λ were tuned with the
# max aleatoric norm over all 7 members, so the preset takes the penalty over all of them.
_KIT_MOPO = {
    ("halfcheetah", "medium"): (5, 0.5, 28),
    ("hopper", "medium"): (5, 5.0, 29),
    ("walker2d", "medium"): (5, 0.5, 30),
    ("halfcheetah", "medium-replay"): (5, 0.5, 31),
    ("hopper", "medium-replay"): (5, 2.5, 32),
    ("walker2d", "medium-replay"): (1, 2.5, 33),
    ("halfcheetah", "medium-expert"): (5, 2.5, 34),
    ("hopper", "medium-expert"): (5, 5.0, 35),
    ("walker2d", "medium-expert"): (1, 2.5, 36),
}
_KIT_RUN = "run_example/run_mopo.py"
_KIT_DYNAMICS = "offlinerlkit/dynamics/ensemble_dynamics.py"
_ALL_MEMBERS = OFFLINERL_KIT.at(_KIT_DYNAMICS, 37, 41, 58)  # the std of every member, max over all 7
_ALL_FIXED = OFFLINERL_KIT.at(
    _KIT_DYNAMICS, 37, 41, 58, fixed=True, note="the elites before the round-3 audit"
)
PAPER_PRESETS: dict[str, dict[str, Sourced]] = {
    f"{env}-{tier}": {
        "algo.horizon": Sourced(h, OFFLINERL_KIT.at(_KIT_RUN, line)),
        "algo.penalty_coef": Sourced(lam, OFFLINERL_KIT.at(_KIT_RUN, line)),
        "algo.penalty": Sourced("max_aleatoric", OFFLINERL_KIT.at(_KIT_DYNAMICS, 20)),
        "algo.penalty_members": Sourced("all", _ALL_FIXED),
    }
    for (env, tier), (h, lam, line) in _KIT_MOPO.items()
}
# MBRCSL's PointMaze baseline (zhaoyizhou1123/mbrcsl examples/pointmaze/run_mopo_maze.py): h 1, λ 2.5,
# 100 epochs of 1,000 steps, the max aleatoric norm over all 7 members (its copy of OfflineRL-Kit's dynamics)
_MAZE_RUN = "examples/pointmaze/run_mopo_maze.py"
PAPER_PRESETS["pointmaze-stitch"] = {
    "algo.horizon": Sourced(1, MBRCSL.at(_MAZE_RUN, 54)),
    "algo.penalty_coef": Sourced(2.5, MBRCSL.at(_MAZE_RUN, 55)),
    "algo.penalty": Sourced("max_aleatoric", MBRCSL.at(_KIT_DYNAMICS, 20)),
    "algo.penalty_members": Sourced(
        "all", MBRCSL.at(_KIT_DYNAMICS, 63, fixed=True, note="the elites before")
    ),
    "steps": Sourced(100_000, MBRCSL.at(_MAZE_RUN, 60, 61, fixed=True, note="3M (the default) before")),
}

SOURCES = {
    **mopo_family_sources(),
    "algo.penalty": OFFLINERL_KIT.at(_KIT_DYNAMICS, 20),
    "algo.penalty_coef": OFFLINERL_KIT.at(
        _KIT_RUN,
        63,
        reference=2.5,
        note="the script's default is its default task's (walker2d-medium-expert); 1.0 is the suite's "
        "task-free default; --preset paper sets each task's λ",
    ),
    "algo.penalty_members": Source(
        _ALL_MEMBERS.where,
        reference="all",
        note="the suite takes u over the elites rollouts sample from (as unifloral, Lu et al.'s reference); "
        "--preset paper and --set algo.penalty_members=all take OfflineRL-Kit's max over all 7",
    ),
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
    hooks,
    paper="Yu et al., NeurIPS 2020 (MOPO); Lu et al., ICLR 2022",
    presets=PAPER_PRESETS,
    sources=SOURCES,
)
