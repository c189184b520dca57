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

from dataclasses import dataclass

from offline_mbrl.config import TrainConfig
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.model_based import (
    Hooks,
    ModelBasedConfig,
    model_based_spec,
    mopo_family_sources,
)
from offline_mbrl.learning.run import Run
from offline_mbrl.models.dynamics import Dynamics


@dataclass(frozen=True)
class MBPOConfig(ModelBasedConfig):
    """Only the shared loop's fields."""


def hooks(cfg: TrainConfig[MBPOConfig], dataset: OfflineDataset, dynamics: Dynamics, run: Run) -> Hooks:
    return Hooks()


SPEC = model_based_spec(
    "mbpo",
    MBPOConfig,
    hooks,
    paper="Janner et al., NeurIPS 2019 (MBPO)",
    sources=mopo_family_sources(),
)
