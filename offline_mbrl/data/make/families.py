"""MDP families: one task whose physics parameters are drawn from a declared distribution.

A family is a TOML file under `datasets/families/` naming a gymnasium environment, a distribution for each
physics parameter, a member count K and a seed. The seed fixes the K members once and for all, so a dataset
collected across a family's members (mixed dynamics) and an evaluation on every member of that family use
the same K MDPs on every machine. MuJoCo parameters are scales of the environment's own nominal values
(`gravity_scale = 1.1` is 10% more gravity); Pendulum-v1's are its absolute `m`, `l` and `g`.

    name = "hopper-physics"
    env = "Hopper-v5"
    members = 8
    seed = 0
    description = "..."

    [parameters.gravity_scale]
    distribution = "uniform"          # or "log_uniform" (low, high), "choice" (values), "fixed" (value)
    low = 0.75
    high = 1.25
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import gymnasium
import numpy as np

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import assets_dir

if TYPE_CHECKING:
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

_MUJOCO = ("gravity_scale", "friction_scale", "body_mass_scale", "actuator_gear_scale", "joint_damping_scale")

# The parameters each supported environment understands. InvertedDoublePendulum has no friction_scale:
# its geoms never collide (contype 0), so friction would make members that differ only in name.
ENV_PARAMETERS: dict[str, tuple[str, ...]] = {
    "Hopper-v5": _MUJOCO,
    "HalfCheetah-v5": _MUJOCO,
    "Walker2d-v5": _MUJOCO,
    "InvertedDoublePendulum-v5": (
        "gravity_scale",
        "body_mass_scale",
        "actuator_gear_scale",
        "joint_damping_scale",
        "pole_mass_scale",
    ),
    "Pendulum-v1": ("m", "l", "g"),
}

# Zero is a meaningful setting for these (no gravity, no friction, no damping); a zero mass, length or
# gear would make the simulator singular or the robot inert.
_ZERO_ALLOWED = {"gravity_scale", "friction_scale", "joint_damping_scale", "g"}

# Body groups scaled by the per-env mass parameters, on top of body_mass_scale.
_BODY_GROUPS = {"pole_mass_scale": ("pole", "pole2")}

_SPEC_KEYS = {
    "uniform": {"low", "high"},
    "log_uniform": {"low", "high"},
    "choice": {"values"},
    "fixed": {"value"},
}
_FILE_KEYS = {"name", "env", "members", "seed", "description", "parameters"}
_NOMINAL_ATTR = "_mdp_family_nominal"


@dataclass(frozen=True)
class ParameterSpec:
    distribution: str  # "uniform" | "log_uniform" | "choice" | "fixed"
    low: float | None = None
    high: float | None = None
    values: tuple[float, ...] = ()
    value: float | None = None

    def sample(self, rng: np.random.Generator) -> float:
        if self.distribution == "uniform":
            return float(rng.uniform(*self._range()))
        if self.distribution == "log_uniform":
            low, high = self._range()
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.distribution == "choice":
            return float(self.values[int(rng.integers(len(self.values)))])
        return float(self._value())

    def support(self) -> tuple[float, float]:
        """The smallest and largest value a draw can take."""
        if self.distribution in ("uniform", "log_uniform"):
            return self._range()
        if self.distribution == "choice":
            return min(self.values), max(self.values)
        return self._value(), self._value()

    # The parser sets `low` and `high` for "uniform" and "log_uniform", and `value` for "fixed": the only
    # distributions that read them. The casts only tell mypy so; they check nothing.
    def _range(self) -> tuple[float, float]:
        return cast(float, self.low), cast(float, self.high)

    def _value(self) -> float:
        return cast(float, self.value)


@dataclass(frozen=True)
class MDPFamily:
    name: str
    env_id: str
    members: int
    seed: int
    parameters: dict[str, ParameterSpec]
    description: str

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        # Sorted, so reordering the tables of a family file does not change its members.
        return {name: self.parameters[name].sample(rng) for name in sorted(self.parameters)}

    def member_params(self) -> list[dict[str, float]]:
        """The family's K members, fixed by its seed: the same list in every call and every process."""
        rng = np.random.default_rng(self.seed)
        return [self.sample(rng) for _ in range(self.members)]


def families_dir() -> Path:
    return assets_dir() / "families"


def list_families() -> list[str]:
    folder = families_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_family(name_or_path: str) -> MDPFamily:
    """A shipped family by name (`hopper-physics`) or any family file by its path (`my/family.toml`)."""
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"MDP-family file {path} does not exist")
    else:
        path = families_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            valid = ", ".join(list_families()) or "none"
            raise UserError(f"unknown MDP family {name_or_path!r}; valid families: {valid}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return _parse_family(raw, path)


def _parse_family(raw: dict, path: Path) -> MDPFamily:
    missing = sorted(_FILE_KEYS - raw.keys() - {"parameters"})
    if missing:
        raise UserError(f"{path}: missing key(s) {', '.join(missing)}")
    unknown = sorted(raw.keys() - _FILE_KEYS)
    if unknown:
        raise UserError(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FILE_KEYS))}"
        )
    name, env_id, members, seed = raw["name"], raw["env"], raw["members"], raw["seed"]
    # The file name is how a family is found again, so results labelled by `name` must point back to it.
    if name != path.stem:
        raise UserError(f"{path}: name = {name!r} must match the file name {path.stem!r}")
    if env_id not in ENV_PARAMETERS:
        raise UserError(f"{path}: env {env_id!r} is not supported; supported: {', '.join(ENV_PARAMETERS)}")
    if not _is_int(members) or members < 1:
        raise UserError(f"{path}: members must be a positive integer, got {members!r}")
    if not _is_int(seed) or seed < 0:
        raise UserError(f"{path}: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(raw["description"], str) or not raw["description"].strip():
        raise UserError(f"{path}: description must be a non-empty string")
    tables = raw.get("parameters")
    if not isinstance(tables, dict) or not tables:
        raise UserError(f"{path}: needs at least one [parameters.NAME] table")
    parameters = {}
    for pname, table in tables.items():
        where = f"{path}: parameter {pname!r}"
        _check_known(pname, env_id, where)
        if not isinstance(table, dict):
            raise UserError(f"{where} must be a table with a distribution")
        parameters[pname] = _parse_spec(pname, table, where)
    return MDPFamily(name, env_id, members, seed, parameters, raw["description"].strip())


def _parse_spec(pname: str, table: dict, where: str) -> ParameterSpec:
    dist = table.get("distribution")
    if dist not in _SPEC_KEYS:
        raise UserError(f"{where}: distribution must be one of {', '.join(_SPEC_KEYS)}, got {dist!r}")
    expected = _SPEC_KEYS[dist]
    keys = table.keys() - {"distribution"}
    if keys != expected:
        raise UserError(
            f"{where}: a {dist} distribution takes exactly {', '.join(sorted(expected))}, "
            f"got {', '.join(sorted(keys)) or 'nothing'}"
        )
    if dist == "choice":
        values = table["values"]
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: values must be a non-empty list of numbers")
        spec = ParameterSpec(dist, values=tuple(_number(v, pname, where) for v in values))
    elif dist == "fixed":
        spec = ParameterSpec(dist, value=_number(table["value"], pname, where))
    else:
        low, high = _number(table["low"], pname, where), _number(table["high"], pname, where)
        if not low < high:
            raise UserError(f"{where}: empty range, low ({low}) must be below high ({high}); use 'fixed'")
        if dist == "log_uniform" and low <= 0:
            raise UserError(f"{where}: log_uniform needs low > 0, got {low}")
        spec = ParameterSpec(dist, low=low, high=high)
    return spec


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(x, pname: str, where: str) -> float:
    """A finite value the simulator accepts for `pname`."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise UserError(f"{where}: {x!r} is not a finite number")
    if x < 0 or (x == 0 and pname not in _ZERO_ALLOWED):
        bound = ">= 0" if pname in _ZERO_ALLOWED else "> 0"
        raise UserError(f"{where}: {pname} must be {bound}, got {x}")
    return float(x)


def _check_known(pname: str, env_id: str, where: str) -> None:
    if pname not in ENV_PARAMETERS[env_id]:
        raise UserError(f"{where} is unknown for {env_id}; known: {', '.join(ENV_PARAMETERS[env_id])}")


def apply_params(env: gymnasium.Env, params: dict[str, float]) -> None:
    """Turn `env` into the member `params`: parameters not named go back to their nominal values.

    Values are set from the nominal ones saved on first use, never from the current ones, so applying a
    member twice, or one member after another, never compounds.
    """
    base = env.unwrapped
    env_id = base.spec.id if base.spec is not None else None
    if env_id not in ENV_PARAMETERS:
        raise UserError(f"MDP families support {', '.join(ENV_PARAMETERS)}; got environment {env_id!r}")
    where = f"{env_id}: parameter"
    for pname, value in params.items():
        _check_known(pname, env_id, f"{where} {pname!r}")
        _number(value, pname, f"{where} {pname!r}")
    if env_id == "Pendulum-v1":
        pendulum = cast("PendulumEnv", base)
        nominal = _nominal(base, lambda: {"m": pendulum.m, "l": pendulum.l, "g": pendulum.g})
        for pname, value in nominal.items():
            setattr(base, pname, float(params.get(pname, value)))
        return
    _apply_mujoco(base, params)


def _nominal(base, capture) -> dict:
    """The env's values before any member was applied, captured on first use."""
    if not hasattr(base, _NOMINAL_ATTR):
        setattr(base, _NOMINAL_ATTR, capture())
    return getattr(base, _NOMINAL_ATTR)


def _apply_mujoco(base, params: dict[str, float]) -> None:
    import mujoco

    model = base.model
    fields = ("body_mass", "body_inertia", "geom_friction", "actuator_gear", "dof_damping")
    nominal = _nominal(
        base, lambda: {f: getattr(model, f).copy() for f in fields} | {"gravity": model.opt.gravity.copy()}
    )

    mass = np.full(model.nbody, params.get("body_mass_scale", 1.0))
    for pname, bodies in _BODY_GROUPS.items():
        for body in bodies:
            if pname in params:
                mass[model.body(body).id] *= params[pname]
    model.body_mass[:] = nominal["body_mass"] * mass
    # Scaling density at fixed geometry scales the inertia tensor by the same factor as the mass.
    model.body_inertia[:] = nominal["body_inertia"] * mass[:, None]
    model.opt.gravity[:] = nominal["gravity"] * params.get("gravity_scale", 1.0)
    model.geom_friction[:] = nominal["geom_friction"]
    model.geom_friction[:, 0] *= params.get("friction_scale", 1.0)  # sliding; torsional/rolling stay
    model.actuator_gear[:] = nominal["actuator_gear"]
    model.actuator_gear[:, 0] *= params.get("actuator_gear_scale", 1.0)
    model.dof_damping[:] = nominal["dof_damping"] * params.get("joint_damping_scale", 1.0)
    # Derived constants (subtree masses, inverse weights that set contact softness, solver scaling) were
    # computed for the nominal masses at compile time; recompute them on a scratch MjData so the env's
    # own state is untouched. On an unchanged model this reproduces the compiled values bit for bit.
    mujoco.mj_setConst(model, mujoco.MjData(model))


def make_member_env(family: MDPFamily, params: dict[str, float], **make_kwargs) -> gymnasium.Env:
    """`gymnasium.make(family.env_id)` turned into the member `params`; it stays that member across resets."""
    env = gymnasium.make(family.env_id, **make_kwargs)
    try:
        apply_params(env, params)
    except UserError:
        env.close()
        raise
    return env


def make_member_vector_env(
    family: MDPFamily, params: dict[str, float], num_envs: int
) -> gymnasium.vector.SyncVectorEnv:
    """`num_envs` copies of one member, for evaluating a policy on that member in parallel episodes."""
    if not _is_int(num_envs) or num_envs < 1:
        raise UserError(f"num_envs must be a positive integer, got {num_envs!r}")
    return gymnasium.vector.SyncVectorEnv([lambda: make_member_env(family, params)] * num_envs)
