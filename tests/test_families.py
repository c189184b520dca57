"""MDP families: the shipped files load, members are fixed by the seed, and members really change physics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import gymnasium as gym
import numpy as np
import pytest

from offline_mbrl.core.errors import UserError
from offline_mbrl.data.make.families import (
    ENV_PARAMETERS,
    apply_params,
    list_families,
    load_family,
    make_member_env,
    make_member_vector_env,
)

SHIPPED = [
    "halfcheetah-physics",
    "hopper-physics",
    "inverted-double-pendulum-physics",
    "pendulum-physics",
    "walker2d-physics",
]
PENDULUM_NOMINAL = {"m": 1.0, "l": 1.0, "g": 10.0}
STEPS = 30


@pytest.fixture(autouse=True)
def _mujoco_log_in_tmp(tmp_path, monkeypatch):
    # MuJoCo 4 warns that HalfCheetah's XML uses `settotalmass` and appends it to ./MUJOCO_LOG.TXT.
    monkeypatch.chdir(tmp_path)


def nominal_params(env_id):
    """Every parameter the env supports, at its nominal value."""
    if env_id == "Pendulum-v1":
        return dict(PENDULUM_NOMINAL)
    return {name: 1.0 for name in ENV_PARAMETERS[env_id]}


def rollout(env, seed=0):
    """Observations and rewards under one fixed action sequence from `reset(seed)`."""
    space = env.action_space
    actions = np.random.default_rng(123).uniform(space.low, space.high, size=(STEPS, *space.shape))
    obs, _ = env.reset(seed=seed)
    rows = [np.append(obs, 0.0)]
    for action in actions.astype(space.dtype):
        obs, reward, terminated, truncated, _ = env.step(action)
        rows.append(np.append(obs, reward))
        if terminated or truncated:
            break
    return np.array(rows)


def same(a, b):
    return a.shape == b.shape and np.array_equal(a, b)


def write_family(folder, stem="tmp-family", parameters=None, **top):
    """A family file; a top-level key given as None is left out."""
    data = {"name": stem, "env": "Hopper-v5", "members": 4, "seed": 7, "description": "test family"} | top
    if parameters is None:
        parameters = {"gravity_scale": {"distribution": "uniform", "low": 0.8, "high": 1.2}}
    # JSON scalars and arrays are valid TOML values.
    lines = [f"{key} = {json.dumps(value)}" for key, value in data.items() if value is not None]
    for name, table in parameters.items():
        lines.append(f"[parameters.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = folder / f"{stem}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_list_families_has_every_shipped_family():
    assert set(SHIPPED) <= set(list_families())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_family_loads_and_every_member_applies(name):
    family = load_family(name)
    assert family.name == name and family.env_id in ENV_PARAMETERS and family.description
    members = family.member_params()
    assert len(members) == family.members >= 2
    env = gym.make(family.env_id)
    for params in members:
        assert set(params) == set(family.parameters)
        for pname, value in params.items():
            low, high = family.parameters[pname].support()
            assert low <= value <= high
        apply_params(env, params)
        env.reset(seed=0)
        obs, *_ = env.step(env.action_space.sample())
        assert np.all(np.isfinite(obs))
    # K distinct MDPs, not K copies of one.
    assert len({tuple(sorted(p.items())) for p in members}) == family.members


def test_member_params_are_fixed_by_the_seed_across_calls_and_processes():
    family = load_family("hopper-physics")
    members = family.member_params()
    assert members == family.member_params() == load_family("hopper-physics").member_params()
    code = (
        "import json; from offline_mbrl.data.make.families import load_family; "
        "print(json.dumps(load_family('hopper-physics').member_params()))"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout) == members


def test_every_distribution_samples_within_its_declaration(tmp_path):
    path = write_family(
        tmp_path,
        members=50,
        parameters={
            "gravity_scale": {"distribution": "uniform", "low": 0.8, "high": 1.2},
            "friction_scale": {"distribution": "log_uniform", "low": 0.5, "high": 2.0},
            "body_mass_scale": {"distribution": "choice", "values": [0.9, 1.1]},
            "actuator_gear_scale": {"distribution": "fixed", "value": 0.95},
        },
    )
    family = load_family(str(path))
    members = family.member_params()
    assert len(members) == 50
    assert all(0.8 <= p["gravity_scale"] <= 1.2 and 0.5 <= p["friction_scale"] <= 2.0 for p in members)
    assert {p["body_mass_scale"] for p in members} == {0.9, 1.1}
    assert {p["actuator_gear_scale"] for p in members} == {0.95}
    # Log-uniform on [0.5, 2] is symmetric about 1 in log space: both sides get draws.
    assert min(p["friction_scale"] for p in members) < 1 < max(p["friction_scale"] for p in members)
    # Reordering the tables does not change the members.
    (tmp_path / "reordered").mkdir()
    tables = tomllib.loads(path.read_text())["parameters"]
    reordered = write_family(tmp_path / "reordered", members=50, parameters=dict(reversed(tables.items())))
    assert list(tomllib.loads(reordered.read_text())["parameters"]) == list(reversed(tables))
    assert load_family(str(reordered)).member_params() == members


@pytest.mark.parametrize("name", SHIPPED)
def test_members_change_the_trajectory_and_a_member_is_reproducible(name):
    family = load_family(name)
    first, second = family.member_params()[:2]
    env = make_member_env(family, first)
    trajectory = rollout(env)
    assert same(trajectory, rollout(env))  # reset twice: the member survives reset
    assert same(trajectory, rollout(make_member_env(family, first)))  # made twice
    assert not same(trajectory, rollout(make_member_env(family, second)))
    assert not same(trajectory, rollout(gym.make(family.env_id)))


@pytest.mark.parametrize("name", SHIPPED)
def test_nominal_params_reproduce_the_unmodified_env_exactly(name):
    family = load_family(name)
    member = make_member_env(family, nominal_params(family.env_id))
    assert same(rollout(member), rollout(gym.make(family.env_id)))


@pytest.mark.parametrize(
    ("env_id", "pname"), [(env_id, pname) for env_id, names in ENV_PARAMETERS.items() for pname in names]
)
def test_each_parameter_changes_the_simulator(env_id, pname):
    env = gym.make(env_id)
    baseline = rollout(env)
    params = nominal_params(env_id)
    params[pname] *= 1.3
    apply_params(env, params)
    assert not same(rollout(env), baseline)


def test_applying_is_relative_to_nominal_and_never_compounds():
    env = gym.make("Hopper-v5")
    model = env.unwrapped.model
    fresh = gym.make("Hopper-v5").unwrapped.model
    params = {"gravity_scale": 1.2, "body_mass_scale": 0.8, "friction_scale": 1.1, "actuator_gear_scale": 0.9}
    apply_params(env, params)
    apply_params(env, params)
    np.testing.assert_allclose(model.opt.gravity, fresh.opt.gravity * 1.2)
    np.testing.assert_allclose(model.body_mass, fresh.body_mass * 0.8)
    np.testing.assert_allclose(model.body_inertia, fresh.body_inertia * 0.8)
    np.testing.assert_allclose(model.geom_friction[:, 0], fresh.geom_friction[:, 0] * 1.1)
    np.testing.assert_array_equal(model.geom_friction[:, 1:], fresh.geom_friction[:, 1:])
    np.testing.assert_allclose(model.actuator_gear[:, 0], fresh.actuator_gear[:, 0] * 0.9)
    family = load_family("hopper-physics")
    assert same(rollout(env), rollout(make_member_env(family, params)))
    env.reset(seed=1)
    np.testing.assert_allclose(model.opt.gravity, fresh.opt.gravity * 1.2)  # reset keeps the member
    # A later member replaces the earlier one: what it does not name goes back to nominal.
    apply_params(env, {"joint_damping_scale": 2.0})
    np.testing.assert_array_equal(model.opt.gravity, fresh.opt.gravity)
    np.testing.assert_array_equal(model.body_mass, fresh.body_mass)
    np.testing.assert_array_equal(model.body_subtreemass, fresh.body_subtreemass)
    np.testing.assert_allclose(model.dof_damping, fresh.dof_damping * 2.0)


def test_pole_mass_scale_scales_only_the_poles_on_top_of_body_mass_scale():
    env = gym.make("InvertedDoublePendulum-v5")
    model = env.unwrapped.model
    nominal = model.body_mass.copy()
    apply_params(env, {"pole_mass_scale": 1.2, "body_mass_scale": 0.9})
    for body, scale in [("cart", 0.9), ("pole", 0.9 * 1.2), ("pole2", 0.9 * 1.2)]:
        index = model.body(body).id
        assert model.body_mass[index] == pytest.approx(nominal[index] * scale)


def test_pendulum_parameters_are_absolute_and_respect_make_kwargs():
    family = load_family("pendulum-physics")
    env = make_member_env(family, {"m": 1.1, "l": 0.9, "g": 9.0})
    base = env.unwrapped
    assert (base.m, base.l, base.g) == (1.1, 0.9, 9.0)
    env.reset(seed=0)
    assert (base.m, base.l, base.g) == (1.1, 0.9, 9.0)
    # A parameter the member leaves out falls back to the env's own nominal value, here g from make().
    env = make_member_env(family, {"m": 1.1}, g=9.81)
    assert (env.unwrapped.m, env.unwrapped.l, env.unwrapped.g) == (1.1, 1.0, 9.81)


def test_vector_env_runs_copies_of_one_member():
    family = load_family("hopper-physics")
    params = family.member_params()[3]
    vec = make_member_vector_env(family, params, num_envs=3)
    assert vec.num_envs == 3
    gravity = make_member_env(family, params).unwrapped.model.opt.gravity
    for sub in vec.envs:
        np.testing.assert_array_equal(sub.unwrapped.model.opt.gravity, gravity)
    single = make_member_env(family, params)
    action = np.full(single.action_space.shape, 0.5, dtype=np.float32)
    vec.reset(seed=0)  # sub-env i is seeded with 0 + i
    single.reset(seed=0)
    obs, *_ = vec.step(np.stack([action] * 3))
    expected, *_ = single.step(action)
    np.testing.assert_array_equal(obs[0], expected)
    with pytest.raises(UserError, match="num_envs must be a positive integer"):
        make_member_vector_env(family, params, num_envs=0)


def test_unknown_family_name_lists_valid_ones():
    with pytest.raises(
        UserError, match="unknown MDP family 'hoper-physics'; valid families: .*hopper-physics"
    ):
        load_family("hoper-physics")


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_family(str(tmp_path / "nope.toml"))
    bad = tmp_path / "broken.toml"
    bad.write_text("name = 'broken\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_family(str(bad))


UNIFORM = {"distribution": "uniform", "low": 0.8, "high": 1.2}


@pytest.mark.parametrize(
    ("top", "parameters", "message"),
    [
        ({"seed": None}, None, r"missing key\(s\) seed"),
        ({"member": 3}, None, r"unknown key\(s\) member"),
        ({"name": "other"}, None, "name = 'other' must match the file name 'tmp-family'"),
        ({"env": "Ant-v5"}, None, "env 'Ant-v5' is not supported; supported: Hopper-v5"),
        ({"members": 0}, None, "members must be a positive integer, got 0"),
        ({"members": True}, None, "members must be a positive integer, got True"),
        ({"seed": -1}, None, "seed must be a non-negative integer"),
        ({"description": " "}, None, "description must be a non-empty string"),
        ({}, {}, r"needs at least one \[parameters.NAME\] table"),
        (
            {},
            {"mass_scale": UNIFORM},
            "parameter 'mass_scale' is unknown for Hopper-v5; known: gravity_scale",
        ),
        (
            {"env": "InvertedDoublePendulum-v5"},
            {"friction_scale": UNIFORM},
            "'friction_scale' is unknown for InvertedDoublePendulum-v5",
        ),
        ({"env": "Pendulum-v1"}, {"gravity_scale": UNIFORM}, "unknown for Pendulum-v1; known: m, l, g"),
        (
            {},
            {"gravity_scale": {"distribution": "normal"}},
            "distribution must be one of uniform, log_uniform",
        ),
        ({}, {"gravity_scale": {"low": 0.8, "high": 1.2}}, "distribution must be one of"),
        (
            {},
            {"gravity_scale": {"distribution": "uniform", "low": 0.8, "high": 1.2, "values": [1.0]}},
            "a uniform distribution takes exactly high, low, got high, low, values",
        ),
        ({}, {"gravity_scale": {"distribution": "uniform", "low": 1.2}}, "takes exactly high, low, got low"),
        (
            {},
            {"gravity_scale": {"distribution": "uniform", "low": 1.1, "high": 1.1}},
            r"empty range, low \(1.1\) must be below high \(1.1\)",
        ),
        (
            {},
            {"gravity_scale": {"distribution": "uniform", "low": 1.2, "high": 0.8}},
            "empty range",
        ),
        (
            {},
            {"friction_scale": {"distribution": "log_uniform", "low": 0.0, "high": 1.2}},
            "log_uniform needs low > 0",
        ),
        (
            {},
            {"body_mass_scale": {"distribution": "uniform", "low": -0.5, "high": 1.2}},
            "body_mass_scale must be > 0, got -0.5",
        ),
        (
            {},
            {"actuator_gear_scale": {"distribution": "fixed", "value": 0}},
            "actuator_gear_scale must be > 0",
        ),
        ({}, {"gravity_scale": {"distribution": "fixed", "value": "1.0"}}, "'1.0' is not a finite number"),
        ({}, {"gravity_scale": {"distribution": "choice", "values": []}}, "values must be a non-empty list"),
        ({}, {"gravity_scale": {"distribution": "choice", "values": 1.0}}, "values must be a non-empty list"),
    ],
)
def test_bad_family_files_raise_a_specific_user_error(tmp_path, top, parameters, message):
    path = write_family(tmp_path, parameters=parameters, **top)
    with pytest.raises(UserError, match=message):
        load_family(str(path))


def test_zero_is_allowed_where_it_means_something(tmp_path):
    path = write_family(tmp_path, parameters={"gravity_scale": {"distribution": "fixed", "value": 0}})
    assert load_family(str(path)).member_params()[0] == {"gravity_scale": 0.0}


def test_apply_params_rejects_bad_parameters_and_unsupported_envs():
    env = gym.make("Hopper-v5")
    with pytest.raises(UserError, match="Hopper-v5: parameter 'pole_mass_scale' is unknown for Hopper-v5"):
        apply_params(env, {"pole_mass_scale": 1.1})
    with pytest.raises(UserError, match="nan is not a finite number"):
        apply_params(env, {"gravity_scale": float("nan")})
    with pytest.raises(UserError, match="MDP families support .*; got environment 'CartPole-v1'"):
        apply_params(gym.make("CartPole-v1"), {"gravity_scale": 1.0})
    family = load_family("pendulum-physics")
    with pytest.raises(UserError, match="unknown for Pendulum-v1"):
        make_member_env(family, {"gravity_scale": 1.0})
