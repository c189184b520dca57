"""Search-space files for `offline-mbrl sweep`: parse, validate against the config, suggest, map to `--set`.

A space is a TOML file in `sweeps/` (`--space NAME` finds `sweeps/NAME.toml`; default `sweeps/ALGO.toml`)
or at any path:

    algorithm = "mopo"                          # the --algo it is for
    description = "one line"                    # optional

    [fixed]                                     # optional: set on every trial, exactly like `train --set`
    "algo.penalty_members" = "elites"

    [params]                                    # one entry per searched key, named as `train --set` names it
    "algo.penalty_coef" = { type = "float", low = 0.01, high = 100.0, log = true }   # optional: step
    "algo.horizon"      = { type = "int", low = 1, high = 50 }                       # optional: step, log
    "algo.penalty"      = { type = "categorical", choices = ["max_aleatoric", "llv"] }
    "dynamics.elites_fraction" = { type = "float", low = 0.1, high = 1.0 }           # a derived key

`float` and `int` need low < high (a constant belongs in [fixed]); `log = true` needs low > 0; an `int` key
may also take a `float` field. `categorical` takes a non-empty list of numbers, strings or booleans (a
tuple field such as `dynamics.hidden` takes strings like "200,200").

Derived keys (DERIVED): `dynamics.elites_fraction = f` sets `dynamics.elites = max(1, round(f * members))`
with `members` the trial's own `dynamics.members` (sampled, fixed, or the default). Samplers such as
GPSampler and CMA-ES cannot search a range that depends on another parameter (`elites` in `[1, members]`);
a fraction in a fixed range they can.

Validation, before the first trial: the file's fields, every key known for the algorithm, each type
fitting its field, non-empty ranges, and valid configs at the space's lowest and highest corners.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna

from offline_mbrl.config import TrainConfig, coerce, flat_keys, get_path
from offline_mbrl.core.cache import stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import asset
from offline_mbrl.launch import build_config

DERIVED = {"dynamics.elites_fraction": ("dynamics.elites", "dynamics.members")}
RESERVED = {"algorithm", "dataset", "seed", "steps", "device", "dynamics.seed"}  # set by the sweep itself
_FIELDS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # float, int, categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        low, high = cast(float, self.low), cast(float, self.high)  # the parser sets both for float and int
        if self.kind == "int":
            return trial.suggest_int(self.key, int(low), int(high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, low, high, step=self.step, log=self.log)

    def corners(self) -> tuple[Any, Any]:
        if self.kind == "categorical":
            return self.choices[0], self.choices[-1]
        return self.low, self.high


@dataclass(frozen=True)
class Space:
    path: Path
    algorithm: str
    params: tuple[Param, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def fingerprint(self, extra: list[str]) -> str:
        """What makes two studies comparable: the searched ranges and every fixed setting (not file names)."""
        return stable_hash({"params": [vars(p) for p in self.params], "fixed": self.fixed, "set": extra})

    def overrides(self, values: dict[str, Any], base: TrainConfig) -> list[str]:
        """`key=value` strings for `build_config`: the fixed settings, then the trial's values."""
        items = {**self.fixed, **{k: v for k, v in values.items() if k not in DERIVED}}
        for key, (target, of) in DERIVED.items():
            if key in values:
                items[target] = max(1, round(values[key] * values.get(of, get_path(base, of))))
        return [f"{k}={_text(v)}" for k, v in items.items()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def find_space(name: str | None, algo: str) -> Path:
    """A path, a name of a shipped space (the repository's `sweeps/`), or (None) the algorithm's default
    `sweeps/ALGO.toml`."""
    folder = asset("sweeps")
    if name is not None and Path(name).is_file():
        return Path(name)
    path = folder / f"{name or algo}.toml"
    if path.is_file():
        return path
    known = sorted(p.stem for p in folder.glob("*.toml"))
    raise UserError(
        f"no search space '{name or algo}' (not a file, not in {folder}); spaces: {', '.join(known)}"
    )


def load_space(path: Path) -> Space:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read search space {path}: {exc}") from None
    unknown = set(raw) - {"algorithm", "description", "fixed", "params"}
    if unknown or not isinstance(raw.get("algorithm"), str) or not isinstance(raw.get("params"), dict):
        why = (
            f"unknown field(s) {', '.join(sorted(unknown))}" if unknown else "needs `algorithm` and [params]"
        )
        raise UserError(f"{path}: {why} (the format is in offline_mbrl/sweep/space.py)")
    params = tuple(_param(path, key, spec) for key, spec in raw["params"].items())
    if not params:
        raise UserError(f"{path}: [params] is empty: nothing to search")
    return Space(Path(path), raw["algorithm"], params, dict(raw.get("fixed", {})), raw.get("description", ""))


def _param(path: Path, key: str, spec: Any) -> Param:
    where = f"{path}: '{key}'"
    if not isinstance(spec, dict) or spec.get("type") not in _FIELDS:
        raise UserError(f'{where} needs a table with type = "float", "int" or "categorical"')
    kind = spec["type"]
    extra = set(spec) - _FIELDS[kind] - {"type"}
    if extra:
        raise UserError(f"{where}: unknown field(s) {', '.join(sorted(extra))} for type {kind}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: empty range: choices must be a non-empty list")
        if any(not isinstance(c, bool | int | float | str) for c in choices):
            raise UserError(f"{where}: choices must be numbers, strings or booleans")
        return Param(key, kind, choices=tuple(choices))
    bounds = [spec.get("low"), spec.get("high"), *([spec["step"]] if "step" in spec else [])]
    allowed = int if kind == "int" else int | float
    if any(isinstance(b, bool) or not isinstance(b, allowed) for b in bounds):
        raise UserError(f"{where}: low, high (and step) must be {'integers' if kind == 'int' else 'numbers'}")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if not low < high:
        raise UserError(
            f"{where}: empty range [{low}, {high}]: low must be below high (constants go in [fixed])"
        )
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0, got {low}")
    if "step" in spec and (spec["step"] <= 0 or log):
        raise UserError(f"{where}: step must be positive and cannot be combined with log")
    return Param(key, kind, low, high, log, spec.get("step"))


def validate(space: Space, algo: str, dataset: str, steps: int | None, extra: list[str]) -> TrainConfig:
    """Check the space against the algorithm's config; returns the base config (fixed settings applied)."""
    if space.algorithm != algo:
        raise UserError(f"{space.path} is a search space for '{space.algorithm}', not '{algo}'")
    searched = {p.key for p in space.params} | {DERIVED[p.key][0] for p in space.params if p.key in DERIVED}
    clash = sorted(searched & {item.partition("=")[0].strip() for item in extra})
    if clash:
        raise UserError(
            f"--set {', '.join(clash)}: searched by {space.path}; drop it from --set or the space"
        )
    fixed = [f"{k}={_text(v)}" for k, v in space.fixed.items()] + extra
    try:
        base = build_config(algo, dataset, steps=steps, overrides=fixed)
    except UserError as exc:
        raise UserError(f"{space.path} [fixed] or --set: {exc}") from None
    keys = flat_keys(base)
    for p in space.params:
        if p.key in DERIVED:
            # a float parameter has both bounds (the parser sets them)
            if p.kind != "float" or cast(float, p.low) <= 0 or cast(float, p.high) > 1:
                raise UserError(f"{space.path}: '{p.key}' is a fraction: type float with 0 < low < high <= 1")
            continue
        if p.key in RESERVED:
            raise UserError(f"{space.path}: '{p.key}' is set by the sweep itself, not searched")
        if p.key not in keys:
            close = difflib.get_close_matches(p.key, [*keys, *DERIVED], n=2)
            hint = f"did you mean {' or '.join(close)}?" if close else f"`offline-mbrl config --algo {algo}`"
            raise UserError(f"{space.path}: unknown key '{p.key}' for {algo}; {hint}")
        _check_type(space.path, p, keys[p.key])
    for corner in (0, 1):
        values = {p.key: p.corners()[corner] for p in space.params}
        try:
            build_config(algo, dataset, steps=steps, overrides=[*space.overrides(values, base), *extra])
        except UserError as exc:
            which = ("lowest", "highest")[corner]
            raise UserError(
                f"{space.path}: the {which} values of the space give an invalid config: {exc}"
            ) from None
    return base


def _check_type(path: Path, p: Param, tp: Any) -> None:
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    args = set(typing.get_args(tp)) - {type(None)} if union else {tp}
    if p.kind == "float" and args != {float}:
        raise UserError(
            f'{path}: \'{p.key}\' is typed {_name(tp)}, not float: use type = "int" or "categorical"'
        )
    if p.kind == "int" and not args <= {int, float}:
        raise UserError(f"{path}: '{p.key}' is typed {_name(tp)}, not a number: use type = \"categorical\"")
    for choice in p.choices:
        coerce(tp, choice, f"{path}: '{p.key}'")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
