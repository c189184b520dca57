"""The algorithm registry: an explicit dict, no import magic. Each algorithm's idea is in its own file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from offline_mbrl.algorithms import bc, mbpo, mopo, ravl
from offline_mbrl.model_based import load_sac_policy


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    config_type: type
    train: Callable  # (TrainConfig, OfflineDataset, DynamicsEnsemble | None, Run) -> (Policy, policy_state)
    load_policy: Callable  # (TrainConfig, EnvSpec, policy_state, device) -> Policy, for a finished run
    paper: str
    uses_dynamics: bool = True
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # D4RL task -> {dotted key: value}


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "mbpo": AlgorithmSpec(
        "mbpo", mbpo.MBPOConfig, mbpo.train, load_sac_policy, "Janner et al., NeurIPS 2019 (MBPO)"
    ),
    "mopo": AlgorithmSpec(
        "mopo",
        mopo.MOPOConfig,
        mopo.train,
        load_sac_policy,
        "Yu et al., NeurIPS 2020 (MOPO); Lu et al., ICLR 2022",
        presets=mopo.PAPER_PRESETS,
    ),
    "ravl": AlgorithmSpec(
        "ravl", ravl.RAVLConfig, ravl.train, load_sac_policy, "Sims et al., NeurIPS 2024 (RAVL)"
    ),
    "bc": AlgorithmSpec(
        "bc", bc.BCConfig, bc.train, bc.load_policy, "behaviour cloning", uses_dynamics=False
    ),
}
