"""Where each default and paper-preset value comes from, in a form the code reads.

A value that claims to follow a reference names it: the repository at the commit that was read, the file
and the line (`Ref.at`). An algorithm's spec carries two such maps:

- `AlgorithmSpec.sources`: dotted key -> `Source` of the algorithm's default (`algo.horizon`,
  `algo.sac.update_order`, `dynamics.max_epochs`). Keys of the shared parts (SAC, the model-based loop, the
  dynamics ensemble) are cited once in their own modules and merged in by the specs that use them.
- `AlgorithmSpec.presets`: task -> dotted key -> `Sourced(value, source)`: every `--preset paper` value
  with its source (a test fails when one has none).

A `Source` whose `reference` is set records a deliberate deviation: the suite's value differs, `note`
says why and which setting reproduces the reference. `fixed` marks a value the round-3 audit corrected.
`offline-mbrl config --algo A [--preset paper --task T]` prints value and source per key, and
`offline-mbrl config --audit` prints the whole audit table (docs/fidelity.md is that table).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

_SAME = object()  # `Source.reference` default: the suite's value is the reference's


@dataclass(frozen=True)
class Source:
    where: str  # "owner/repo@commit path#Lline"
    reference: Any = _SAME  # the reference's value where the suite deliberately differs
    note: str = ""  # a deviation: why, and the setting that reproduces the reference; a fix: what it was
    fixed: bool = False  # the suite's value was corrected by the round-3 fidelity audit

    @property
    def deviates(self) -> bool:
        return self.reference is not _SAME

    def status(self) -> str:
        if self.deviates:
            return "deliberate deviation"
        return "fixed" if self.fixed else "matches"

    def reference_value(self, suite_value: Any) -> Any:
        return suite_value if self.reference is _SAME else self.reference

    def __str__(self) -> str:
        return self.where


@dataclass(frozen=True)
class Ref:
    """A released reference repository at the commit that was read."""

    repo: str  # owner/name on GitHub
    commit: str  # the commit the cited lines were read at

    def at(self, path: str, *lines: int, **kw: Any) -> Source:
        """A `Source` at `path` line(s) of this repository (keywords: `Source`'s other fields)."""
        where = f"{self.repo}@{self.commit[:7]} {path}"
        if lines:
            where += "#" + _line_ranges(lines)
        return Source(where, **kw)


def _line_ranges(lines: tuple[int, ...]) -> str:
    """`(20, 21, 22, 23, 58)` -> `L20-L23,L58`: runs of consecutive lines as ranges."""
    runs: list[list[int]] = []
    for n in sorted(set(lines)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"L{r[0]}" if len(r) == 1 else f"L{r[0]}-L{r[-1]}" for r in runs)


class Sourced(NamedTuple):
    """A preset value and where it comes from."""

    value: Any
    source: Source


# The references read for the round-3 audit, at the commits of the snapshots that were read.
OFFLINERL_KIT = Ref("yihaosun1124/OfflineRL-Kit", "e3ce69793766d02660217d4dfc0af4693a5531bd")
MOBILE_AUTHORS = Ref("yihaosun1124/mobile", "4882dce878f0792a337c0a95c27f4abf7e926101")
EDGE_OF_REACH = Ref("anyasims/edge-of-reach", "18b50853219676d120c6238f399664500eaa1f0c")
MOREC = Ref("polixir/morec", "be8a64115be4582ef2d53420ba3ff46cb06f4cdb")
MBRCSL = Ref("zhaoyizhou1123/mbrcsl", "89863177e46b7d58c27bc2369376a5718299279b")
CORL = Ref("tinkoff-ai/CORL", "6afec90484bbf47dee05fdf525e26a3ebe028e9b")
BEHAVIOUR = "behaviour: "  # a `sources` key that names a behaviour, not a config key (audit table only)


def preset_values(preset: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's plain values (`Sourced` unwrapped; a plugin may give plain values)."""
    return {k: v.value if isinstance(v, Sourced) else v for k, v in preset.items()}


def key_sources(
    spec_sources: Mapping[str, Source],
    preset: Mapping[str, Any] | None,
    overridden: set[str],
    keys: list[str],
) -> dict[str, str]:
    """Each key's source as printed by `offline-mbrl config`: `--set` where an override set it, else the
    preset's source, else the default's, else empty (a suite choice no reference gives)."""
    out: dict[str, str] = {}
    for key in keys:
        if key in overridden:
            out[key] = "--set"
        elif preset is not None and key in preset:
            v = preset[key]
            out[key] = f"preset: {v.source}" if isinstance(v, Sourced) else "preset (no source given)"
        elif key in spec_sources:
            src = spec_sources[key]
            out[key] = f"{src} ({src.status()})" if src.deviates or src.fixed else str(src)
        else:
            out[key] = ""
    return out


def dynamics_sources(at: Callable[..., Source], line: Mapping[str, int]) -> dict[str, Source]:
    """Where the dynamics defaults come from: the run script `at` cites (its argparse `line`s for lr,
    hidden sizes, weight decay, members, elites and the patience passed to training) and OfflineRL-Kit's
    `EnsembleDynamics` for what the scripts leave at the class defaults."""
    ens = functools.partial(OFFLINERL_KIT.at, "offlinerlkit/dynamics/ensemble_dynamics.py")
    return {
        "dynamics.members": at(line["members"]),
        "dynamics.elites": at(line["elites"]),
        "dynamics.hidden": at(line["dynamics_hidden"]),
        "dynamics.activation": OFFLINERL_KIT.at("offlinerlkit/modules/dynamics_module.py", 9, 39),
        "dynamics.weight_decay": at(line["weight_decay"]),
        "dynamics.lr": at(line["dynamics_lr"]),
        "dynamics.batch_size": ens(112),
        "dynamics.holdout_ratio": ens(113, 118),
        "dynamics.max_holdout": ens(113, 118),
        "dynamics.patience": at(line["patience"]),
        "dynamics.improvement": ens(150, 151),
        "dynamics.max_epochs": ens(110),
        "dynamics.steps_per_epoch": ens(184),
        "dynamics.logvar_loss_coef": ens(114, 196),
        BEHAVIOUR
        + "dynamics layer init: truncated normal std 1/(2·sqrt(fan_in)), zero biases": OFFLINERL_KIT.at(
            "offlinerlkit/nets/ensemble_linear.py",
            20,
            21,
            22,
            23,
            fixed=True,
            note="uniform ±1/sqrt(fan_in) weights and biases before the round-3 audit",
        ),
    }
