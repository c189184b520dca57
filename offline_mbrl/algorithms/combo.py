"""COMBO: conservative Q-learning on real and model data (Yu et al., NeurIPS 2021, "COMBO: Conservative
Offline Model-Based Policy Optimization").

Idea: no uncertainty estimate at all. Model rollouts widen the state distribution, and a CQL term pushes
Q down on actions the policy (and a uniform proposal) would take at those states while pushing it up on
the dataset's own (s, a). For each critic i the term is

    w · T · mean_s logsumexp_k(Q_i(s, a_k)/T − log q(a_k))  −  w · mean_{(s,a) real} Q_i(s, a)

where the a_k are `repeats` draws from each of three proposals with their log-densities as importance
corrections: the policy at s (a ~ π(·|s), − log π(a|s)), the policy at the next state evaluated at s
(a ~ π(·|s'), − log π(a|s')), and the uniform distribution over the action box (− log U). States s are
the whole mixed batch (`rho_s = "mix"`) or its model rows (`"model"`). With `lagrange`, the weight
becomes w·α' with α' a learned multiplier that keeps the term near `lagrange_threshold` (checkpointed
with the run). Compared with MOPO (`mopo.py`) and MOBILE (`mobile.py`), pessimism acts on the critic's
values directly, the rollouts and rewards are MBPO's; the nearest sibling in this suite is RAVL
(`ravl.py`), whose critic regulariser (EDAC) sits in the same hook.

Defaults from OfflineRL-Kit's COMBO (`policy/model_based/combo.py`, `run_example/run_combo.py`): actor
and 2 critics 3x256, actor lr 1e-4 cosine-annealed, critic lr 3e-4, α auto-tuned (lr 1e-4, not
clamped), deterministic backup, real ratio 0.5, h 5, CQL weight 5.0, temperature 1, 10 repeats,
`rho_s` mix, Lagrange off (threshold 10, lr 3e-4), 50 000 rollouts per 1000 steps, 5 rounds retained,
update order actor → α → critics → Polyak (`algo.sac.update_order`). `--preset paper` sets the run
script's suggested per-task h and CQL weight for the nine D4RL medium, medium-replay and
medium-expert tasks, and its 1000 epochs x 1000 steps (1M steps; the suite's default is 3M).

Deviations from the reference code, each deliberate:
- The logsumexp runs over all 3 x `repeats` proposals of a state, as the formula (and CQL) says. The
  reference's `value.reshape(batch, repeats, 1)` results are discarded (reshape is not in place), so
  its logsumexp runs over the 3 proposals of each single repeat, and the mean over repeats follows:
  a smaller soft-max than the paper's. `algo.logsumexp_over=repeat` computes the reference's.
- The uniform proposal's log-density is −Σ log(high − low) over the action box (the reference's
  log 0.5^|A| assumes [−1, 1], which this equals there).
- One Adam over both critics instead of one per critic: Adam is per-parameter, so the steps are the same.
- The policy's proposal actions are drawn without gradients (the reference builds their graph and
  discards the actor's gradients); their log-densities are detached in both.
- With Lagrange, the multiplier step uses the conservative term's value (no gradient reaches the critics
  from the multiplier's loss, which the reference lets accumulate and then zeroes).
- `max_q_backup` (off in the reference's defaults) is not implemented.
- The reference reports the mean of the last 10 per-epoch evaluations; the suite reports the final
  evaluation, like every other algorithm here (final.json's `last10_score` is the reference's statistic).
`SOURCES` names the file and line of every default and preset value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from offline_mbrl.algorithm_spec import LearningCheck, small_steps
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import Batch, OfflineDataset
from offline_mbrl.learning.model_based import (
    CPU_NETS,
    LEARNING_CHECK,
    Hooks,
    ModelBasedConfig,
    budgets_with,
    kit_sources,
    model_based_spec,
    real_rows,
)
from offline_mbrl.learning.run import Run
from offline_mbrl.learning.sac import SAC, Generators, SACConfig
from offline_mbrl.models.dynamics import Dynamics
from offline_mbrl.provenance import MBRCSL, OFFLINERL_KIT, Sourced


def _combo_sac() -> SACConfig:
    return SACConfig(
        actor_hidden=(256, 256, 256),
        critic_hidden=(256, 256, 256),
        actor_lr=1e-4,
        critic_lr=3e-4,
        alpha_lr=1e-4,
        deterministic_backup=True,
        update_order="actor_alpha_critic",
    )


@dataclass(frozen=True)
class COMBOConfig(ModelBasedConfig):
    real_ratio: float = 0.5  # the fraction of each SAC batch drawn from the dataset (COMBO: half)
    cql_weight: float = 5.0  # w, the conservative term's weight
    temperature: float = 1.0  # T of the logsumexp
    repeats: int = 10  # actions drawn from each of the three proposals per state
    rho_s: Literal["mix", "model"] = "mix"  # states the logsumexp is taken at: the whole batch or model rows
    # the logsumexp's span: all 3·repeats proposals of a state (the formula), or the 3 proposals of each
    # repeat, then the mean over repeats (what OfflineRL-Kit's code computes)
    logsumexp_over: Literal["all", "repeat"] = "all"
    lagrange: bool = False  # learn a multiplier α' on the term that keeps it near lagrange_threshold
    lagrange_threshold: float = 10.0  # the Lagrange version's target for the conservative term
    lagrange_lr: float = 3e-4  # Adam learning rate of log α'
    # actor and 2 critics 3x256, deterministic backup, update order actor → α → critics
    sac: SACConfig = field(default_factory=_combo_sac)

    def __post_init__(self) -> None:
        super().__post_init__()
        numbers = {"cql_weight": self.cql_weight, "lagrange_threshold": self.lagrange_threshold}
        if not all(math.isfinite(v) for v in numbers.values()) or self.temperature <= 0 or self.repeats < 1:
            raise UserError(
                f"COMBO needs finite cql_weight and lagrange_threshold, temperature > 0 and repeats >= 1, "
                f"got {numbers}, temperature {self.temperature}, repeats {self.repeats}"
            )
        n_real = real_rows(self.batch_size, self.real_ratio)
        if n_real < 1 or (self.rho_s == "model" and n_real >= self.batch_size):
            raise UserError(
                f"COMBO needs real rows in every batch (and model rows with rho_s=model): batch_size "
                f"{self.batch_size} x real_ratio {self.real_ratio} gives {n_real} real rows"
            )


class ConservativeTerm:
    """COMBO's critic regulariser, `Σ_i w·(T·mean logsumexp(cat_q_i/T) − mean Q_i(real))`; with
    `lagrange`, a learned multiplier α' (state checkpointed with the run) scales it."""

    def __init__(self, cfg: COMBOConfig, act_low: Tensor, act_high: Tensor, device: torch.device):
        self.cfg = cfg
        self.act_low, self.act_span = act_low.to(device), (act_high - act_low).to(device)
        self.log_uniform = -self.act_span.log().sum()  # log-density of U(box)
        self.log_alpha_prime = torch.zeros((), device=device, requires_grad=True)
        self.optim = torch.optim.Adam([self.log_alpha_prime], lr=cfg.lagrange_lr) if cfg.lagrange else None

    def __call__(
        self, learner: SAC, batch: Batch, generator: torch.Generator | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        gap = conservative_gap(self, learner, batch, generator)  # (N,)
        value, metrics = self.weigh(gap)
        return value, {"combo_gap": gap.detach().mean(), **metrics}

    def weigh(self, gap: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The term from one learner's gaps `(N,)`: `w·gap` summed over critics, or with Lagrange, one
        multiplier step and the multiplier times `w·gap − threshold`."""
        cfg = self.cfg
        term = cfg.cql_weight * gap  # (N,)
        if self.optim is None:
            return term.sum(), {}
        alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
        multiplier_loss = -(alpha_prime * (term.detach() - cfg.lagrange_threshold)).mean()
        self.optim.zero_grad(set_to_none=True)
        multiplier_loss.backward()
        self.optim.step()
        value = (alpha_prime.detach() * (term - cfg.lagrange_threshold)).sum()
        return value, {"combo_alpha_prime": alpha_prime.detach()}

    @classmethod
    def over_seeds(cls, terms: Sequence[ConservativeTerm]) -> SeedsConservativeTerm:
        return SeedsConservativeTerm(terms)

    def state_dict(self) -> dict[str, Any]:
        return {
            "log_alpha_prime": self.log_alpha_prime.detach().clone(),
            "optim": None if self.optim is None else self.optim.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_alpha_prime.copy_(state["log_alpha_prime"])
        if self.optim is not None and state["optim"] is not None:
            self.optim.load_state_dict(state["optim"])


class SeedsConservativeTerm:
    """K seeds' terms on a seed-batched learner: the proposals and critics of all seeds in one batched
    pass; each seed's own `ConservativeTerm` weighs its gaps (and steps its own multiplier), so every
    run's checkpoint holds its lone term's state."""

    def __init__(self, terms: Sequence[ConservativeTerm]):
        if len({t.cfg for t in terms}) != 1:
            raise ValueError("seeds batched together share COMBO's settings")
        self.terms = list(terms)

    def __call__(
        self, learner: SAC, batch: Batch, generator: Sequence[torch.Generator]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        gaps = conservative_gap(self.terms[0], learner, batch, generator)  # (K, N)
        weighed = [t.weigh(gap) for t, gap in zip(self.terms, gaps, strict=True)]
        metrics = {"combo_gap": gaps.detach().mean(-1)}
        for name in weighed[0][1]:
            metrics[name] = torch.stack([m[name] for _, m in weighed])
        return torch.stack([value for value, _ in weighed]), metrics


def uniform(shape: tuple[int, ...], device: torch.device, generator: Generators) -> Tensor:
    """U(0, 1) draws of `shape`; with one generator per seed, `(K, *shape)`, seed k's from generator k."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, device=device, generator=generator)
    return torch.stack([torch.rand(shape, device=device, generator=g) for g in generator])


def conservative_gap(term: ConservativeTerm, learner: SAC, batch: Batch, generator: Generators) -> Tensor:
    """Per critic, `T·mean_s logsumexp_k(Q(s, a_k)/T − log q(a_k)) − mean_{real} Q(s, a)`: `(N,)`, or
    `(K, N)` for a seed-batched learner (every tensor then has a leading seed axis)."""
    cfg = term.cfg
    obs, act, next_obs, from_model = batch.obs, batch.act, batch.next_obs, batch.from_model
    if from_model is None:
        raise ValueError("COMBO's conservative term needs the batch's from_model mask")
    lead, (b, o) = obs.shape[:-2], obs.shape[-2:]  # lead: () or (K,)
    r = cfg.repeats
    obs_r = obs.unsqueeze(-3).expand(*lead, r, b, o).reshape(*lead, r * b, o)  # (…, R·B, o), repeat-major
    next_r = next_obs.unsqueeze(-3).expand(*lead, r, b, o).reshape(*lead, r * b, o)
    with torch.no_grad():
        unif = term.act_low + term.act_span * uniform((r * b, act.shape[-1]), obs.device, generator)
        a_here, logp_here = learner.actor(obs_r, generator=generator)
        a_next, logp_next = learner.actor(next_r, generator=generator)
    n = learner.critics.members
    proposals = [
        learner.critics(obs_r, a_here) - logp_here.unsqueeze(-2),  # (…, N, R·B)
        learner.critics(obs_r, a_next) - logp_next.unsqueeze(-2),
        learner.critics(obs_r, unif) - term.log_uniform,
    ]
    if cfg.logsumexp_over == "all":
        cat_q = torch.cat([p.reshape(*lead, n, r, b) for p in proposals], dim=-2)  # (…, N, 3R, B)
        lse = cfg.temperature * torch.logsumexp(cat_q / cfg.temperature, dim=-2)  # (…, N, B)
    else:
        per_repeat = torch.stack([p.reshape(*lead, n, r, b) for p in proposals], dim=-3)  # (…, N, 3, R, B)
        lse = (cfg.temperature * torch.logsumexp(per_repeat / cfg.temperature, dim=-3)).mean(-2)  # (…, N, B)
    real = (~from_model).float().unsqueeze(-2)  # (…, 1, B)
    q_data = learner.critics(obs, act)  # (…, N, B)
    q_real = (q_data * real).sum(-1) / real.sum(-1)  # (…, N)
    if cfg.rho_s == "model":
        model = from_model.float().unsqueeze(-2)
        lse_mean = (lse * model).sum(-1) / model.sum(-1)
    else:
        lse_mean = lse.mean(-1)
    return lse_mean - q_real  # (…, N)


def hooks(cfg: TrainConfig[COMBOConfig], dataset: OfflineDataset, dynamics: Dynamics, run: Run) -> Hooks:
    spec = dataset.spec
    low = torch.tensor(spec.act_low, dtype=torch.float32)
    high = torch.tensor(spec.act_high, dtype=torch.float32)
    return Hooks(critic_reg=ConservativeTerm(cfg.algo, low, high, run.device))


# run_combo.py's suggested (horizon, CQL weight, line) per D4RL v2 task ("suggested hypers" docstring),
# and its 1000 epochs of 1000 steps.
_PAPER = {
    ("halfcheetah", "medium"): (5, 0.5, 28),
    ("hopper", "medium"): (5, 5.0, 29),
    ("walker2d", "medium"): (1, 5.0, 30),
    ("halfcheetah", "medium-replay"): (5, 0.5, 31),
    ("hopper", "medium-replay"): (5, 0.5, 32),
    ("walker2d", "medium-replay"): (1, 0.5, 33),
    ("halfcheetah", "medium-expert"): (5, 5.0, 34),
    ("hopper", "medium-expert"): (5, 5.0, 35),
    ("walker2d", "medium-expert"): (1, 5.0, 36),
}
_RUN = "run_example/run_combo.py"
PAPER_PRESETS: dict[str, dict[str, Sourced]] = {
    f"{env}-{tier}": {
        "algo.horizon": Sourced(h, OFFLINERL_KIT.at(_RUN, line)),
        "algo.cql_weight": Sourced(w, OFFLINERL_KIT.at(_RUN, line)),
        "steps": Sourced(1_000_000, OFFLINERL_KIT.at(_RUN, 78, 79)),
    }
    for (env, tier), (h, w, line) in _PAPER.items()
}
# MBRCSL's PointMaze baseline (`examples/pointmaze/run_combo_maze.py`): h 5, w 1.0, real ratio 0.5, 3 x 256
# (the last two are the defaults), 100 epochs x 1,000 steps
_MAZE = "examples/pointmaze/run_combo_maze.py"
PAPER_PRESETS["pointmaze-stitch"] = {
    "algo.horizon": Sourced(5, MBRCSL.at(_MAZE, 66)),
    "algo.cql_weight": Sourced(1.0, MBRCSL.at(_MAZE, 48)),
    "steps": Sourced(100_000, MBRCSL.at(_MAZE, 71, 72)),
}

_LINES = {
    "actor_lr": 45, "critic_lr": 46, "hidden": 47, "gamma": 48, "tau": 49, "auto_alpha": 51,
    "target_entropy": 52, "alpha_lr": 53, "dynamics_lr": 66, "dynamics_hidden": 67, "weight_decay": 68,
    "members": 69, "elites": 70, "rollout_freq": 71, "rollout_batch": 72, "retain": 74, "real_ratio": 75,
    "epoch": 78, "step_per_epoch": 79, "eval_episodes": 80, "batch_size": 81, "cosine": 131, "log_alpha": 137,
    "patience": 244, "critics": 115,
}  # fmt: skip
_POLICY = "offlinerlkit/policy/model_based/combo.py"
SOURCES = {
    **kit_sources("run_combo", _LINES),
    "steps": OFFLINERL_KIT.at(
        _RUN,
        78,
        79,
        reference=1_000_000,
        note="3M here, as every other algorithm's default; --preset paper sets the reference's 1M",
    ),
    "algo.horizon": OFFLINERL_KIT.at(_RUN, 73),
    "algo.cql_weight": OFFLINERL_KIT.at(_RUN, 55),
    "algo.temperature": OFFLINERL_KIT.at(_RUN, 56),
    "algo.repeats": OFFLINERL_KIT.at(_RUN, 62),
    "algo.rho_s": OFFLINERL_KIT.at(_RUN, 64),
    "algo.lagrange": OFFLINERL_KIT.at(_RUN, 59),
    "algo.lagrange_threshold": OFFLINERL_KIT.at(_RUN, 60),
    "algo.lagrange_lr": OFFLINERL_KIT.at(_RUN, 61),
    "algo.logsumexp_over": OFFLINERL_KIT.at(
        _POLICY,
        184,
        185,
        186,
        187,
        188,
        reference="repeat",
        note="the reference's reshape result is discarded, so its logsumexp spans the 3 proposals of one "
        "repeat; the suite takes it over all 3·R, as the formula (--set algo.logsumexp_over=repeat: the "
        "reference's)",
    ),
    "algo.sac.deterministic_backup": OFFLINERL_KIT.at(_RUN, 58),
    "algo.sac.update_order": OFFLINERL_KIT.at(_POLICY, 118, 226),
    "algo.sac.alpha_max": OFFLINERL_KIT.at(_POLICY, 132),
    "algo.sac.target_min": OFFLINERL_KIT.at(_POLICY, 157),
    "algo.sac.actor_critics": OFFLINERL_KIT.at(_POLICY, 120),
}

# the small budget's length: about 3 minutes of training on one core (benchmarks/results/small_tier.md)
SMALL_STEPS = 3_000

SPEC = model_based_spec(
    "combo",
    COMBOConfig,
    hooks,
    "Yu et al., NeurIPS 2021 (COMBO)",
    presets=PAPER_PRESETS,
    sources=SOURCES,
    # 2x128 networks and 3 actions per proposal (9 per state, not 30): at the paper's sizes a smoke cell
    # took 258 s on 2 cores
    budgets=budgets_with(smoke=(*CPU_NETS, "algo.repeats=3"), small=small_steps(SMALL_STEPS)),
    learning_check=LearningCheck(
        LEARNING_CHECK.steps, LEARNING_CHECK.margin, (*LEARNING_CHECK.overrides, *CPU_NETS)
    ),
)
