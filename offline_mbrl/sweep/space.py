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

Validation, before the first trial and before anything is written: the file's fields (finite bounds
within ±1e15, `log` a boolean, distinct choices), every key known for the algorithm and none the sweep sets
itself (algorithm, dataset, seed, device: also refused in [fixed] and --set), each type fitting its field,
non-empty ranges, and valid configs at the space's lowest and highest corners and at values inside each
range (`Param.samples`: every choice, every value of a small int range), the other keys at their lowest.
An unquoted dotted key (`algo.horizon = ...`, which TOML reads as nested tables) means the dotted key.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
import types
import typing
from collections.abc import Callable
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
_HUGE = 1e15  # bounds beyond this are typos (no config value is that large), and lose float precision
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

    def samples(self) -> list[Any]:
        """Values to check besides the corners: every choice; every value of an int range of up to 256
        values (else 64 spread over it); 9 spread over a float range (a constraint such as "a divisor
        of eval_every" holds at both ends of 1..5 but not at 3)."""
        if self.kind == "categorical":
            return list(self.choices)
        low, high = cast(float, self.low), cast(float, self.high)
        if self.kind == "int":
            step = int(self.step or 1)
            count = (int(high) - int(low)) // step + 1
            picks = range(count) if count <= 256 else sorted({round(i * (count - 1) / 63) for i in range(64)})
            return [int(low) + i * step for i in picks]
        if self.step:
            count = int((high - low) // self.step) + 1
            return [low + round(i * (count - 1) / 8) * self.step for i in range(9)]
        if self.log:
            return [low * (high / low) ** (i / 8) for i in range(9)]
        return [low + (high - low) * i / 8 for i in range(9)]


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
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read search space {path}: {_line(exc)}") from None
    unknown = set(raw) - {"algorithm", "description", "fixed", "params"}
    if unknown or not isinstance(raw.get("algorithm"), str) or not isinstance(raw.get("params"), dict):
        names = ", ".join(sorted(map(_key, unknown)))
        why = (
            f"unknown field(s) {names}" if unknown else "needs `algorithm` (a string) and [params] (a table)"
        )
        raise UserError(f"{path}: {why} (the format is in offline_mbrl/sweep/space.py)")
    if not isinstance(raw.get("description", ""), str):
        raise UserError(f"{path}: description must be a string")
    if not isinstance(raw.get("fixed", {}), dict):
        raise UserError(f'{path}: [fixed] must be a table of config keys ("algo.horizon" = 5)')
    fixed = _flat(raw.get("fixed", {}), lambda v: False)
    for key, value in fixed.items():
        if not _scalar(value) and not (isinstance(value, list) and value and all(map(_scalar, value))):
            raise UserError(
                f"{path}: [fixed] {_key(key)} must be a number, string, boolean or a list of them"
            )
    specs = _flat(raw["params"], lambda v: "type" in v or not all(isinstance(x, dict) for x in v.values()))
    params = tuple(_param(path, key, spec) for key, spec in specs.items())
    if not params:
        raise UserError(f"{path}: [params] is empty: nothing to search")
    return Space(Path(path), raw["algorithm"], params, fixed, raw.get("description", ""))


def _flat(table: dict, leaf: Callable[[dict], bool], prefix: str = "") -> dict[str, Any]:
    """TOML reads an unquoted dotted key (`algo.horizon = ...`) as nested tables: the same dotted key."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value and not leaf(value):
            out.update(_flat(value, leaf, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value))


def _key(key: str) -> str:
    """A key as messages show it: quoted, on one line whatever it holds."""
    return repr(key) if key.isprintable() else json.dumps(key)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _param(path: Path, key: str, spec: Any) -> Param:
    where = f"{path}: {_key(key)}"
    if not isinstance(spec, dict) or spec.get("type") not in _FIELDS:
        raise UserError(
            f'{where} needs a table with type = "float", "int" or "categorical" '
            '(e.g. { type = "int", low = 1, high = 5 })'
        )
    kind = spec["type"]
    extra = set(spec) - _FIELDS[kind] - {"type"}
    if extra:
        allowed_fields = ", ".join(sorted(_FIELDS[kind]))
        raise UserError(
            f"{where}: unknown field(s) {', '.join(sorted(map(_key, extra)))} for type {kind} "
            f"(allowed: {allowed_fields})"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: empty range: choices must be a non-empty list")
        if any(not _scalar(c) for c in choices):
            raise UserError(f"{where}: choices must be finite numbers, strings or booleans")
        if len({(type(c), c) for c in choices}) < len(choices):
            raise UserError(f"{where}: choices must differ (a choice is listed twice)")
        return Param(key, kind, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{where}: type {kind} needs low and high")
    bounds = [spec.get("low"), spec.get("high"), *([spec["step"]] if "step" in spec else [])]
    allowed = int if kind == "int" else int | float
    if any(isinstance(b, bool) or not isinstance(b, allowed) for b in bounds):
        raise UserError(f"{where}: low, high (and step) must be {'integers' if kind == 'int' else 'numbers'}")
    if not all(math.isfinite(b) and abs(b) <= _HUGE for b in bounds):
        raise UserError(f"{where}: low, high (and step) must be finite numbers within ±{_HUGE:.0e}")
    if not isinstance(spec.get("log", False), bool):
        raise UserError(f"{where}: log must be true or false")
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
    flags = {"algorithm": "--algo", "dataset": "--dataset", "seed": "--seeds", "device": "--device"}
    for key, where in [(k, f"{space.path} [fixed]") for k in space.fixed] + [
        (item.partition("=")[0].strip(), "--set") for item in extra
    ]:
        if key in flags:
            raise UserError(f"{where} {_key(key)}: set by the sweep's {flags[key]}, not by a config key")
    fixed = [f"{k}={_text(v)}" for k, v in space.fixed.items()] + extra
    try:
        base = build_config(algo, dataset, steps=steps, overrides=fixed)
    except UserError as exc:
        raise UserError(f"{space.path} [fixed] or --set: {_line(exc)}") from None
    keys = flat_keys(base)
    for p in space.params:
        if p.key in DERIVED:
            # a float parameter has both bounds (the parser sets them)
            if p.kind != "float" or cast(float, p.low) <= 0 or cast(float, p.high) > 1:
                raise UserError(f"{space.path}: '{p.key}' is a fraction: type float with 0 < low < high <= 1")
            continue
        if p.key in RESERVED:
            raise UserError(f"{space.path}: {_key(p.key)} is set by the sweep itself, not searched")
        if p.key not in keys:
            close = difflib.get_close_matches(p.key, [*keys, *DERIVED], n=2)
            hint = f"did you mean {' or '.join(close)}?" if close else f"`offline-mbrl config --algo {algo}`"
            raise UserError(f"{space.path}: unknown key {_key(p.key)} for {algo}; {hint}")
        _check_type(space.path, p, keys[p.key])
    lowest = {p.key: p.corners()[0] for p in space.params}
    trials = [("lowest", lowest), ("highest", {p.key: p.corners()[1] for p in space.params})]
    for p in space.params:  # inside the range too, not only at its ends (the others at their lowest)
        trials += [
            (f"{_key(p.key)} = {_text(v)!r} with the lowest", {**lowest, p.key: v}) for v in p.samples()
        ]
    for which, values in trials:
        try:
            build_config(algo, dataset, steps=steps, overrides=[*space.overrides(values, base), *extra])
        except UserError as exc:
            raise UserError(
                f"{space.path}: the {which} values of the space give an invalid config: {_line(exc)} "
                "(every value of a range must be valid: narrow it or list the valid values as choices)"
            ) from None
    return base


def _check_type(path: Path, p: Param, tp: Any) -> None:
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    args = set(typing.get_args(tp)) - {type(None)} if union else {tp}
    if p.kind == "float" and args != {float}:
        raise UserError(
            f'{path}: {_key(p.key)} is typed {_name(tp)}, not float: use type = "int" or "categorical"'
        )
    if p.kind == "int" and not args <= {int, float}:
        raise UserError(f'{path}: {_key(p.key)} is typed {_name(tp)}, not a number: use type = "categorical"')
    for choice in p.choices:
        try:
            coerce(tp, choice, f"{path}: {_key(p.key)}")
        except UserError as exc:
            raise UserError(_line(exc)) from None


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
