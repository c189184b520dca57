"""Configs: `TrainConfig`, `--set key=value` overrides by dotted path, JSON round trip, stable hash, and
each field's one-line description.

One vocabulary: a field's dotted path (`algo.penalty_coef`, `dynamics.members`, `algo.sac.critics`) is the
CLI override, the sweep search-space key, the results column and the report column.

Every config field is documented by a comment the code reads (`field_docs`): the comment at the end of the
field's line, or else the comment lines right above it. `offline-mbrl config --algo A` prints it beside
the value, and a test checks that no field of any registered algorithm is left undescribed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from offline_mbrl.core.cache import stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.precision import Precision
from offline_mbrl.core.ranges import check_value
from offline_mbrl.models.dynamics import DynamicsConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")  # a config instance (what `dataclasses.replace` takes)
A = TypeVar("A", covariant=True)  # an algorithm's own config type (`AlgorithmSpec.config_type`)


@dataclass(frozen=True)
class TrainConfig(Generic[A]):
    """One run: the algorithm, the dataset, the loop's cadence, the dynamics stage and the algorithm's own
    config under `algo`. Resolved (`resolved()`), it is hashed into the run's folder name."""

    algorithm: str  # registered algorithm name (`offline-mbrl config --algo A` lists its keys)
    dataset: str  # dataset short name or Minari id
    algo: A  # the algorithm's own frozen config (its `AlgorithmSpec.config_type`)
    seed: int = 0  # run seed: network init, sampling, evaluation seeds (and dynamics, unless dynamics_seed)
    steps: int = 3_000_000  # gradient steps of the output policy
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1
    eval_every: int = 10_000  # steps between periodic evaluations (a multiple of log_every)
    eval_episodes: int = 10  # episodes per periodic evaluation
    final_eval_episodes: int = 10  # episodes of the final evaluation written to final.json
    log_every: int = 1_000  # steps between metrics.jsonl rows (the one host sync)
    checkpoint_every: int = 50_000  # steps between resumable checkpoints (a multiple of log_every)
    dynamics_seed: int | None = None  # seed of the dynamics fit; None: the run's seed
    # the matrix products of the learner and of the rollouts through the dynamics: fp32 (TF32 allowed on
    # CUDA), bf16 (inner layers; outputs, losses, targets, optimiser state stay fp32) or fp32-strict
    precision: Precision = "fp32"
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)  # the dynamics ensemble's config

    def resolved(self) -> TrainConfig[A]:
        seed = self.seed if self.dynamics_seed is None else self.dynamics_seed
        return dataclasses.replace(
            self, dynamics_seed=seed, dynamics=dataclasses.replace(self.dynamics, seed=seed)
        )


def train_config_from_dict(raw: dict, algo_type: type[A]) -> TrainConfig[A]:
    """Rebuild a `TrainConfig` from `to_dict` output (a run's config.json, a sweep export)."""
    top = {k: v for k, v in raw.items() if k not in ("algo", "dynamics")}
    return dataclasses.replace(
        from_dict(TrainConfig, {**top, "algo": None}),
        algo=from_dict(algo_type, raw.get("algo", {}), "algo."),
        dynamics=from_dict(DynamicsConfig, raw.get("dynamics", {}), "dynamics."),
    )


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's description: the comment ending its line, else the comment lines right above it.

    Read from the class's source (base classes first), so the description lives beside the field.
    """
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(base) or base is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(base))
        except (OSError, TypeError):
            continue
        comments: dict[int, str] = {}  # line -> comment text
        code_lines: set[int] = set()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                code_lines.add(tok.start[0])
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for node in body.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            end = node.end_lineno or node.lineno
            trailing = [comments[n] for n in range(node.lineno, end + 1) if n in comments]
            above: list[str] = []
            line = node.lineno - 1
            while line in comments and line not in code_lines:
                above.insert(0, comments[line])
                line -= 1
            text = " ".join(trailing or above)
            if text.startswith("noqa") or text.startswith("type:"):
                text = ""
            docs[node.target.id] = text
    return docs


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """`(dotted key, value, description)` for every settable key of a config instance."""
    rows: list[tuple[str, Any, str]] = []
    cls: type = type(cfg)  # annotated: mypy does not take type[Any] as Hashable (field_docs is cached)
    docs = field_docs(cls)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows.extend(describe(value, f"{prefix}{f.name}."))
        else:
            rows.append((f"{prefix}{f.name}", value, docs.get(f.name, "")))
    return rows


def to_dict(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# keys left out of a run's hash at these values: the default they had before the key existed, so the run
# folders made before it keep their names
_UNHASHED_AT = {("precision",): "fp32", ("dynamics", "precision"): "fp32"}


def config_hash(cfg: Any) -> str:
    raw = to_dict(cfg)
    for path, value in _UNHASHED_AT.items():
        parent: Any = raw
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and parent.get(path[-1]) == value:
            del parent[path[-1]]
    return stable_hash(raw)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Rebuild a (nested) config dataclass from `to_dict` output; unknown keys are an error, and every
    value is checked as a `--set` value is (its type, its range)."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or cls.__name__
        raise UserError(f"{where}: expected a JSON object of config keys, got {type(data).__name__}")
    hints = _field_types(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(sorted(unknown))} for {cls.__name__}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_dataclass_type(tp) and not isinstance(value, dict):
            raise UserError(f"{prefix}{name}: expected a JSON object of config keys, got {value!r}")
        kwargs[name] = (
            from_dict(tp, value, f"{prefix}{name}.")
            if _is_dataclass_type(tp)
            else coerce(tp, value, prefix + name)
        )
    return cls(**kwargs)


def flat_keys(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted path of a config (class or instance) and its type.

    For an instance, nested configs are read from the values, so a field typed loosely (the algorithm's
    own config under `algo`) still exposes its keys.
    """
    cls = cfg if isinstance(cfg, type) else type(cfg)
    out: dict[str, Any] = {}
    for name, tp in _field_types(cls).items():
        path = f"{prefix}{name}"
        value = None if isinstance(cfg, type) else getattr(cfg, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(flat_keys(value, path + "."))
        elif _is_dataclass_type(tp):
            out.update(flat_keys(tp, path + "."))
        else:
            out[path] = tp
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert `value` (a string from the CLI, or a JSON value) to the field type `tp`, within the key's
    allowed range (`core/ranges.py`)."""
    return check_value(key, _convert(tp, value, key))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, key)
            except UserError as exc:
                errors.append(str(exc))
        if len(errors) == 1:  # one type besides None (int | None): its own message says more
            raise UserError(errors[0])
        raise UserError(f"{key}: cannot read {value!r} as {_type_name(tp)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise UserError(f"{key}: {value!r} is not one of {', '.join(map(str, args))}")
    if origin is tuple:
        if not isinstance(value, str | list | tuple):
            raise UserError(f"{key}: {value!r} is not a list of values (write them comma-separated)")
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if args else str
        return tuple(coerce(inner, v.strip() if isinstance(v, str) else v, key) for v in items if v != "")
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, str) and "e" in value.lower():  # 1e6: an int written as a float
                value = float(value)
            if isinstance(value, float) and not value.is_integer():  # 2.5, inf, nan: never rounded
                raise ValueError
            if isinstance(value, bool | dict | list):
                raise TypeError
            return int(value)
        if tp is float:
            if isinstance(value, bool | dict | list):
                raise TypeError
            return float(value)
        if tp is str:
            if not isinstance(value, str | int | float):
                raise TypeError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{key}: {value!r} is not a valid {_type_name(tp)}") from None
    return value


def unknown_key_message(key: str, valid: list[str]) -> str:
    """One line: the unknown key and its close matches (or where the whole list is printed)."""
    import difflib

    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.85)
    if not close:  # a misspelt last part: match it alone, within the same prefix
        head, _, last = key.rpartition(".")
        tails = {k.rpartition(".")[2]: k for k in valid if k.rpartition(".")[0] == head}
        close = [tails[t] for t in difflib.get_close_matches(last, list(tails), n=3, cutoff=0.75)]
    hint = f"did you mean {' or '.join(close)}?" if close else "no key is close to it;"
    return f"unknown config key '{key}'; {hint} `offline-mbrl config --algo ALGO` lists every key"


def set_path(cfg: D, key: str, value: Any) -> D:
    """Return a copy of `cfg` with the dotted `key` set (value coerced to the field's type)."""
    return set_paths(cfg, {key: value})


def set_paths(cfg: D, items: dict[str, Any], _prefix: str = "") -> D:
    """Set several dotted keys at once: one `replace` per config level, so a config that validates
    itself (the dynamics config checks hidden sizes against weight decays) sees all changes together."""
    valid = flat_keys(cfg)
    for key in items:
        if key not in valid:
            raise UserError(unknown_key_message(_prefix + key, [_prefix + k for k in valid]))
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for key, value in items.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = coerce(valid[key], value, _prefix + key)
    for head, sub in nested.items():
        direct[head] = set_paths(getattr(cfg, head), sub, f"{_prefix}{head}.")
    return dataclasses.replace(cfg, **direct)


def apply_overrides(cfg: D, overrides: list[str]) -> D:
    """Apply `key=value` strings (a later one for the same key wins)."""
    items: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects key=value, got '{item}'")
        items[key.strip()] = value.strip()
    return set_paths(cfg, items)


def dynamics_config_from_overrides(seed: int, overrides: list[str]) -> DynamicsConfig:
    """`dynamics fit`'s config: the same `dynamics.KEY=V` keys `train --set` takes."""
    items: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.startswith("dynamics."):
            raise UserError(
                f"--set {item}: dynamics fit takes the keys train takes, dynamics.KEY=VALUE "
                f"(e.g. dynamics.{key.removeprefix('dynamics.') or 'members'}={value.strip() or 5})"
            )
        if key == "dynamics.seed":
            raise UserError(f"--set {item}: the dynamics seed is set by --seed; pass --seed instead")
        items[key.removeprefix("dynamics.")] = value.strip()
    check_value("seed", seed)
    return set_paths(dataclasses.replace(DynamicsConfig(), seed=seed), items, "dynamics.")


def get_path(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def load_json(path: Path) -> dict:
    """A `--config` file: a JSON object (a run's config.json, a sweep's exported best config)."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a folder, not a JSON file") from None
    except PermissionError:
        raise UserError(f"config file {path} cannot be read (permission denied)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} holds a JSON {type(raw).__name__}, not an object of config keys")
    return raw
