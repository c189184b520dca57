"""The algorithm registry: built-ins listed here, one line each, plus researchers' own algorithms from
installed packages through the entry-point group `offline_mbrl.algorithms` (no import magic beyond that
one documented group). Each algorithm's idea is in its own file, which defines its `SPEC`.

`algorithms()` is the registry (built-ins first, then plugins, loaded once per process); `get_spec(name)`
is the one place an unknown name becomes a one-line error. A plugin that fails to import, is not an
`AlgorithmSpec`, clashes with a built-in or another plugin, or names a key its config lacks is a one-line
error naming its package.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from offline_mbrl.algorithm_spec import AlgorithmSpec, LearningCheck
from offline_mbrl.algorithms import bc, combo, mbpo, mbrcsl, mobile, mopo, morec, ravl
from offline_mbrl.core.errors import UserError
from offline_mbrl.provenance import BEHAVIOUR

__all__ = ["AlgorithmSpec", "LearningCheck", "algorithms", "get_spec", "validate_spec", "BUILTINS"]

ENTRY_POINT_GROUP = "offline_mbrl.algorithms"

BUILTINS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        mbpo.SPEC,
        mopo.SPEC,
        ravl.SPEC,
        mobile.SPEC,
        combo.SPEC,
        morec.SPEC_MOPO,
        morec.SPEC_MOBILE,
        mbrcsl.SPEC,
        bc.SPEC,
        bc.SPEC_TOP,
    )
}


def validate_spec(spec: AlgorithmSpec, where: str) -> None:
    """Every key a spec names (test settings, budgets, presets, sources) must exist in its config."""
    from offline_mbrl.config import TrainConfig, flat_keys

    keys = flat_keys(TrainConfig(spec.name, "-", spec.config_type()))
    named = [item.partition("=")[0] for item in spec.test_settings]
    named += [item.partition("=")[0] for items in spec.budgets.values() for item in items]
    named += [key for preset in spec.presets.values() for key in preset]
    named += [key for key in spec.sources if not key.startswith(BEHAVIOUR)]
    missing = sorted(set(named) - set(keys))
    if missing:
        raise UserError(
            f"{where}: algorithm '{spec.name}' names key(s) its config lacks: {', '.join(missing)}"
        )


@functools.cache
def algorithms() -> dict[str, AlgorithmSpec]:
    """Every registered algorithm: the built-ins, then installed plugins."""
    found = dict(BUILTINS)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        package = ep.dist.name if ep.dist is not None else ep.value
        where = f"algorithm plugin '{ep.name}' ({ep.value}) from package {package}"
        try:
            spec = ep.load()
        except Exception as exc:  # any import-time failure of someone else's package
            raise UserError(f"{where} failed to load: {type(exc).__name__}: {exc}") from None
        if not isinstance(spec, AlgorithmSpec):
            raise UserError(f"{where} is a {type(spec).__name__}, not an offline_mbrl.AlgorithmSpec")
        if spec.name != ep.name:
            raise UserError(f"{where}: the entry point is named '{ep.name}' but its spec '{spec.name}'")
        if spec.name in found:
            other = "a built-in algorithm" if spec.name in BUILTINS else "another plugin"
            raise UserError(f"{where}: the name '{spec.name}' is already taken by {other}")
        validate_spec(spec, where)
        found[spec.name] = spec
    return found


def get_spec(name: str) -> AlgorithmSpec:
    """The spec of a registered algorithm; a one-line error naming the choices otherwise."""
    known = algorithms()
    if name not in known:
        raise UserError(f"unknown algorithm '{name}'; choose from {', '.join(known)}")
    return known[name]
