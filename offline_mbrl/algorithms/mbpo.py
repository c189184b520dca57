"""MBPO without a penalty: SAC on a mix of real data and short model rollouts. The baseline every
offline model-based comparison needs (Janner et al., NeurIPS 2019, used offline as in Yu et al. 2020).

The whole algorithm is the shared loop of `learning.model_based` with no hooks: MOPO (`mopo.py`) adds
a reward penalty as a rollout step hook, RAVL (`ravl.py`) N critics and the EDAC regulariser.
Defaults follow OfflineRL-Kit's MOPO settings (`ModelBasedConfig`); 3M steps. OfflineRL-Kit has no MBPO
script: its MOPO with λ = 0 skips the penalty (`ensemble_dynamics.py#L56`) and is this algorithm, so every
source is run_mopo.py's (`SOURCES`). The suite reports the final evaluation (final.json's `last10_score`:
the reference's mean of the last 10).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.model_based import (
    Hooks,
    ModelBasedConfig,
    model_based_spec,
    mopo_family_sources,
)
from offline_mbrl.learning.rollout import Step
from offline_mbrl.learning.run import Run
from offline_mbrl.models.dynamics import Dynamics

EdgeValues = Literal["bootstrap", "true"]


@dataclass(frozen=True)
class MBPOConfig(ModelBasedConfig):
    """The shared loop's fields, and one experiment switch (not part of MBPO)."""

    # The edge-of-reach claim's causal control (Sims et al. 2024, offline_mbrl/experiments/claims/):
    # "bootstrap" is MBPO; "true" gives each rollout's last transition (whose next state is an edge-of-
    # reach state: reached, never trained on) the target r + γ V*(s') with V* the environment's true
    # optimal value, stored as a terminal so the critic never bootstraps from that state. Needs
    # dynamics.kind=oracle on an environment whose simulator knows V* (point2d only).
    edge_values: EdgeValues = "bootstrap"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.edge_values not in ("bootstrap", "true"):
            raise UserError(f"edge_values must be bootstrap or true, got {self.edge_values!r}")


def preflight(cfg: TrainConfig[MBPOConfig], dataset: OfflineDataset) -> None:
    """`edge_values=true` needs the true simulator of an environment with a known value function."""
    if cfg.algo.edge_values == "bootstrap":
        return
    if cfg.dynamics.kind != "oracle" or cfg.dynamics.oracle_mix != 1.0:
        raise UserError("algo.edge_values=true needs the true dynamics: set dynamics.kind=oracle (mix 1)")
    from offline_mbrl.models.oracle import simulator

    sim = simulator(dataset.spec.env, dataset.spec.gym_id)
    if not hasattr(sim, "value"):
        raise UserError(
            f"algo.edge_values=true needs the true value function of {dataset.spec.gym_id}, which the suite "
            "knows for point2d only"
        )


class TrueEdgeValues:
    """The rollout step hook of `edge_values=true`: at the last step h = horizon - 1, reward r + γ V*(s')
    and a terminal flag."""

    def __init__(self, value: object, gamma: float, horizon: int):
        self.value, self.gamma, self.last = value, gamma, horizon - 1

    def __call__(self, step: Step) -> Step:
        if step.h != self.last:
            return step
        nxt = step.next_obs.detach().to("cpu", torch.float64).numpy()
        v = torch.as_tensor(self.value(nxt, self.gamma), dtype=step.rew.dtype, device=step.rew.device)  # type: ignore[operator]
        return dataclasses.replace(step, rew=step.rew + self.gamma * v, term=torch.ones_like(step.term))


def hooks(cfg: TrainConfig[MBPOConfig], dataset: OfflineDataset, dynamics: Dynamics, run: Run) -> Hooks:
    if cfg.algo.edge_values == "bootstrap":
        return Hooks()
    sim = dynamics.sim  # type: ignore[attr-defined]  # preflight: the oracle of an env with a value
    return Hooks(step=TrueEdgeValues(sim.value, cfg.algo.sac.gamma, cfg.algo.horizon))


SPEC = model_based_spec(
    "mbpo",
    MBPOConfig,
    hooks,
    paper="Janner et al., NeurIPS 2019 (MBPO)",
    sources=mopo_family_sources(),
    preflight=preflight,
)
