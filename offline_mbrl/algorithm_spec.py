"""`AlgorithmSpec`: everything the suite needs to know about an algorithm, built-in or from a plugin.

An algorithm is one file that defines its config (a frozen dataclass, each field with a one-line comment),
its `train` function and one `SPEC = AlgorithmSpec(...)`; the registry (`offline_mbrl.algorithms`) lists
built-ins by one line each, and a researcher's own package adds its spec through the entry-point group
`offline_mbrl.algorithms` (docs/algorithms.md, "Add your own algorithm"). `offline_mbrl.AlgorithmSpec` is
this class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from offline_mbrl.provenance import Source

if TYPE_CHECKING:
    import torch

    from offline_mbrl.config import TrainConfig
    from offline_mbrl.data.dataset import EnvSpec, OfflineDataset
    from offline_mbrl.learning.evaluation import Policy
    from offline_mbrl.learning.run import Run
    from offline_mbrl.models.dynamics import Dynamics


class TrainFn(Protocol):
    """Train on `dataset` (with `dynamics` when the spec uses them) inside `run`; return the policy to
    evaluate and the state `load_policy` rebuilds it from (saved as policy.pt)."""

    def __call__(
        self, cfg: TrainConfig[Any], dataset: OfflineDataset, dynamics: Dynamics | None, run: Run
    ) -> tuple[Policy, dict[str, Any]]: ...


class TrainSeedsFn(Protocol):
    """Train K runs that differ only by seed in one batched computation (each in its own `Run`, all at
    the same step); return each run's `(policy, state)` as `TrainFn` does."""

    def __call__(
        self,
        cfgs: Sequence[TrainConfig[Any]],
        dataset: OfflineDataset,
        dynamics: Sequence[Dynamics],
        runs: Sequence[Run],
    ) -> list[tuple[Policy, dict[str, Any]]]: ...


class LoadPolicyFn(Protocol):
    """Rebuild a finished run's policy from its policy.pt state."""

    def __call__(self, cfg: TrainConfig[Any], spec: EnvSpec, state: dict, device: torch.device) -> Policy: ...


@dataclass(frozen=True)
class LearningCheck:
    """The slow test's toy task: on pendulum-medium-replay (made from the committed behaviour policies),
    train `steps` with `overrides`; the final normalised score must beat the data's mean by `margin`."""

    steps: int
    margin: float
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str  # the --algo name
    config_type: type  # the algorithm's frozen config dataclass (TrainConfig.algo)
    train: TrainFn
    load_policy: LoadPolicyFn
    paper: str  # the paper (authors, venue, year) shown in reports
    uses_dynamics: bool = True  # whether train() gets the cached dynamics ensemble
    # K seeds as one batched computation (`train --seeds K`, compare/reproduce cells); None: one by one
    train_seeds: TrainSeedsFn | None = None
    # `--preset paper`: task -> {dotted key: value}; built-ins give each value as `Sourced(value, source)`
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # dotted key -> where its default comes from (`offline_mbrl.provenance`); keys not named: suite choices
    sources: Mapping[str, Source] = field(default_factory=dict)
    # `--set` overrides that make the contract battery's tiny run (60 steps, tiny data) take seconds
    test_settings: tuple[str, ...] = ()
    # per run budget ("smoke", "small"): the algorithm's own overrides on top of the budget's common ones;
    # every key must exist in the config (checked when the algorithm is registered)
    budgets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    learning_check: LearningCheck | None = None  # the slow test's learning threshold (None: not checked)
    # the `precision` values its networks implement (core/precision.py); others are refused in one line
    precisions: tuple[str, ...] = ("fp32", "fp32-strict")
    # checks of the config against the dataset that no config alone can make (UserError), run after the
    # dataset loads and before anything is written (MBPO's `edge_values=true` needs a simulator's value)
    preflight: Callable[[TrainConfig[Any], OfflineDataset], None] | None = None


def small_steps(steps: int) -> tuple[str, ...]:
    """The `small` budget's length for one algorithm: its gradient steps (about 3 minutes of training on
    one core at its measured rate, benchmarks/results/small_tier.md) with 10 evaluations and checkpoints."""
    return (f"steps={steps}", f"eval_every={steps // 10}", f"checkpoint_every={steps // 10}")
