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
import importlib
from importlib.metadata import entry_points

from offline_mbrl.algorithm_spec import AlgorithmSpec, LearningCheck
from offline_mbrl.core.errors import UserError
from offline_mbrl.provenance import BEHAVIOUR

__all__ = ["AlgorithmSpec", "LearningCheck", "algorithms", "get_spec", "validate_spec", "BUILTIN_SPECS"]

ENTRY_POINT_GROUP = "offline_mbrl.algorithms"

# The built-in algorithms, one line each: the --algo name and where its spec is (module:attribute of this
# package). The names alone are known without importing any algorithm (the CLI's help lists them); the
# specs are imported when `algorithms()` is first asked.
BUILTIN_SPECS = {
    "mbpo": "mbpo:SPEC",
    "mopo": "mopo:SPEC",
    "ravl": "ravl:SPEC",
    "mobile": "mobile:SPEC",
    "combo": "combo:SPEC",
    "morec-mopo": "morec:SPEC_MOPO",
    "morec-mobile": "morec:SPEC_MOBILE",
    "mbrcsl": "mbrcsl:SPEC",
    "bc": "bc:SPEC",
    "percent-bc": "bc:SPEC_TOP",
}
# specs a program registers in-process as built-ins (the tests' toy algorithms)
REGISTERED: dict[str, AlgorithmSpec] = {}


def algo_help(what: str = "algorithm") -> str:
    """The `--algo` help of every command: the built-in names, from the registry."""
    return f"{what}: {', '.join(BUILTIN_SPECS)}, or an installed plugin's"


def _builtin(name: str) -> AlgorithmSpec:
    module, attr = BUILTIN_SPECS[name].split(":")
    spec = getattr(importlib.import_module(f"offline_mbrl.algorithms.{module}"), attr)
    if spec.name != name:
        raise AssertionError(f"BUILTIN_SPECS['{name}'] is the spec of '{spec.name}'")
    return spec


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
    found = {name: _builtin(name) for name in BUILTIN_SPECS} | REGISTERED
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
            builtin = spec.name in BUILTIN_SPECS or spec.name in REGISTERED
            other = "a built-in algorithm" if builtin else "another plugin"
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
