"""RAVL: MBPO-style rollouts with no reward penalty, and an EDAC critic ensemble that is pessimistic about
the values of states at the edge of reach (Sims et al., NeurIPS 2024, "The Edge-of-Reach Problem").

Idea: offline model-based methods fail less because models are wrong than because states reached only at
the last rollout step are never updated and their Q-values, bootstrapped but never corrected, blow up.
RAVL detects them with value uncertainty: SAC with N critics (min over the ensemble in target and actor
loss) plus EDAC's diversity regulariser `η·L_div` on the critics' action-gradients. Compared with MOPO
(`mopo.py`): the same loop, the reward untouched, pessimism moved from the reward to the critics.

Defaults from the reference code (anyasims/edge-of-reach): N 10, η 1.0, h 5, real ratio 0.05, 50 000
rollouts per 1000 steps, 5 rounds retained, actor and critics 3x256 with EDAC initialisation, every lr
3e-4, γ 0.99, τ 5e-3. Deviation: the per-task N = 50 settings of the paper's appendix are not preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from offline_mbrl.algorithm_spec import LearningCheck
from offline_mbrl.config import TrainConfig
from offline_mbrl.data import OfflineDataset
from offline_mbrl.dynamics import Dynamics
from offline_mbrl.model_based import (
    LEARNING_CHECK,
    TEST_SETTINGS,
    Hooks,
    ModelBasedConfig,
    model_based_spec,
    trainers,
)
from offline_mbrl.run import Run
from offline_mbrl.sac import EDACRegulariser, SACConfig


def _ravl_sac() -> SACConfig:
    return SACConfig(
        critics=10,
        actor_hidden=(256, 256, 256),
        critic_hidden=(256, 256, 256),
        actor_lr=3e-4,
        critic_lr=3e-4,
        alpha_lr=3e-4,
        edac_init=True,
    )


@dataclass(frozen=True)
class RAVLConfig(ModelBasedConfig):
    eta: float = 1.0  # η, the EDAC diversity weight (0: plain SAC with N critics)
    # anneal the actor lr (off: RAVL's reference keeps it constant; MOPO's reference anneals it)
    actor_lr_cosine: bool = False
    sac: SACConfig = field(default_factory=_ravl_sac)  # N = 10 critics, 3x256, EDAC init, every lr 3e-4


def hooks(cfg: TrainConfig[RAVLConfig], dataset: OfflineDataset, dynamics: Dynamics, run: Run) -> Hooks:
    eta = cfg.algo.eta
    return Hooks(critic_reg=EDACRegulariser(eta) if eta > 0 else None)


# The CPU-sized critics of benchmarks/compare_small.py: 10 critics of 3x256 with EDAC take minutes per
# thousand steps on a CPU.
_CPU_CRITICS = ("algo.sac.critics=5", "algo.sac.actor_hidden=128,128", "algo.sac.critic_hidden=128,128")

SPEC = model_based_spec(
    "ravl",
    RAVLConfig,
    paper="Sims et al., NeurIPS 2024 (RAVL)",
    **trainers(hooks),
    test_settings=(*TEST_SETTINGS, "algo.sac.critics=3"),
    learning_check=LearningCheck(
        LEARNING_CHECK.steps, LEARNING_CHECK.margin, (*LEARNING_CHECK.overrides, *_CPU_CRITICS)
    ),
)
