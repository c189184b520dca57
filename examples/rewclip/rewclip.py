"""RewClip: MBPO whose model rewards are clipped to the range of rewards seen in the dataset.

An example of an algorithm living in its own package (docs/algorithms.md, "Add your own algorithm").
The idea in one line: a learned model's reward is least trustworthy where it leaves the data's range,
so clip it there (a crude relative of MOPO's penalty, `offline_mbrl/algorithms/mopo.py`, its nearest
sibling). Everything else is the suite's shared model-based loop (`offline_mbrl/learning/model_based.py`);
the idea is one rollout step hook.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from offline_mbrl.learning.model_based import Hooks, ModelBasedConfig, model_based_spec
from offline_mbrl.learning.rollout import Step, with_extras


@dataclass(frozen=True)
class RewClipConfig(ModelBasedConfig):
    margin: float = 0.0  # widen the data's reward range by this much on both sides before clipping


def hooks(cfg, dataset, dynamics, run) -> Hooks:
    """The algorithm's idea for one run, as hooks of the shared loop (here: one rollout step hook)."""
    rew = dataset.data.rew
    low, high = float(rew.min()) - cfg.algo.margin, float(rew.max()) + cfg.algo.margin

    def clip(step: Step) -> Step:
        clipped = step.rew.clamp(low, high)  # (B,)
        return with_extras(replace(step, rew=clipped), clipped_share=(clipped != step.rew).float())

    return Hooks(step=clip)


# An offline_mbrl.AlgorithmSpec: the shared loop (one seed, or K seeds batched) with these hooks, its
# policy loader, test settings and budgets filled in
SPEC = model_based_spec("rewclip", RewClipConfig, hooks, "example: MBPO with clipped model rewards")
