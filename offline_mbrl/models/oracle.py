"""True-simulator dynamics: the real Gymnasium physics behind the learned ensemble's interface.

`OracleDynamics.predict(obs, act)` returns a `Prediction` (as `DynamicsEnsemble.predict` does) whose next
state and reward come from the environment's own simulator set to each observed state, so `rollout()`
and every algorithm can run on the true dynamics. With `mix` λ < 1 it interpolates between a learned
ensemble (λ = 0) and the simulator (λ = 1), member by member: `mean_i = (1-λ) μ_i + λ true`,
`std_i = (1-λ) σ_i`, so a sample is `(1-λ)·(learned sample) + λ·true` (RAVL's Figure 1 axis). At λ = 1
every member's mean is the truth and every std is 0: a sample is the true transition exactly and every
uncertainty penalty is zero.

State reconstruction (the recipe of RAVL's edge-of-reach code): the MuJoCo state is set from the
observation, with the coordinate the observation omits set to 0.
- Hopper-v5, Walker2d-v5, HalfCheetah-v5: obs = `[qpos[1:], qvel]`; qpos = `[0, obs[:nq-1]]`,
  qvel = `obs[nq-1:]`. The floor is an infinite plane, so the physics does not depend on x, and the
  forward reward is `(x_after - 0) / dt`. Rewards and healthy rules are the v5 defaults (forward weight 1,
  control cost 1e-3 (hopper, walker2d) or 0.1 (halfcheetah) on the raw action, healthy reward 1 only if
  the state after the step is healthy, judged on the unclipped velocities as v5 does).
- InvertedDoublePendulum-v5: obs = `[x, sin θ1, sin θ2, cos θ1, cos θ2, clip(qvel), clip(qfrc_constraint[0])]`
  with clips at ±10; qpos = `[x, atan2(sin θ1, cos θ1), atan2(sin θ2, cos θ2)]`, qvel = `obs[5:8]`; the
  constraint force is derived, not state, so the input's is ignored. The next obs's constraint force and
  the reward's tip site `site_xpos` are what MuJoCo leaves in its data after `mj_step`: with RK4 those of
  the last integration stage, not of the final qpos (see `termination.py`). They are read from the
  simulator, not rebuilt, so obs, reward and its alive bonus (`y <= 1` ends) are the env's own.
- Pendulum-v1 (not MuJoCo): θ = atan2(sin, cos), and gymnasium's closed-form step (g = 10, m = l = 1,
  dt = 0.05, |θ̇| <= 8, |u| <= 2, the reward on the pre-step angle), vectorised in numpy.
Every MuJoCo simulation starts from time 0 with a zero solver warm start and zero applied forces; the
ctrl is the raw action (MuJoCo clamps it to ctrlrange, the control cost uses it unclamped, as the env).

Batching, with no Python loop per transition:
- Hopper, Walker2d, HalfCheetah: `mujoco.rollout` (one MjData per thread and a thread pool, both held by
  the simulator) from `mjSTATE_FULLPHYSICS` rows, whose time, qpos and qvel offsets come from
  `mj_stateSize` of the lower state bits and are checked once against `mj_getState`; the control row is
  held for the `frame_skip` substeps.
- IDP: the rollout returns only state, and `qfrc_constraint` and the stale `site_xpos` cannot be rebuilt
  from it, so it runs on `mujoco.batch.Batch` (MuJoCo >= 4), which steps the same state rows on a thread
  pool and copies the bound derived fields out after the call (documented bit-identical to a loop over
  one MjData; on hopper it gave `mujoco.rollout`'s states to the last bit).
- Pendulum, point2d (the edge-of-reach task): numpy array arithmetic.
Threads: `torch.get_num_threads()`, at most `os.cpu_count()` (or `threads=`). Throughput of
`Simulator.step` for B = 10000 with one thread on this shared 2-core machine
(`benchmarks/oracle_throughput.py`): hopper 15.6k transitions/s, walker2d 11.5k/s, halfcheetah 37k/s,
IDP 23k/s, pendulum 21M/s; a second thread gave no gain here (the other core was busy).

Agreement with transitions recorded from the Gymnasium envs (tests/test_oracle.py: random actions from a
fixed seed, 300 steps, walker2d 800; every (obs, act) replayed). The env carries the previous step's solver
warm start while the oracle starts from zero, which could move contact steps by the solver's tolerance;
measured, it does not matter. Max |error| (next obs; reward): hopper 2.3e-15; 2.6e-10, walker2d 1.5e-13;
4.0e-10, halfcheetah 2.5e-13; 4.3e-8, IDP 1.3e-15; 8.9e-16 (1.4e-14; 4.6e-14 with the cart at the
slider limit), pendulum 4.5e-7; 3.8e-7. The locomotion reward errors are the env's float32 control cost
(it squares the float32 action), pendulum's come from its float32 observations.

Limits:
- Hopper, Walker2d and IDP clip velocities in the observation to ±10: a state recorded with a clipped
  velocity is rebuilt at ±10, so its true next state is not recoverable (the tests exclude such
  transitions: 636 of walker2d's 800 random-action steps, none of hopper's 300).
- A dataset of an MDP family (`offline_mbrl.data.make.families`: changed gravity, masses, ...) or of a
  D4RL id (`Hopper-v2`) still gets the nominal v5 physics of its short name.
- x is set to 0, so the absolute position (the env's `info["x_position"]`) is not reproduced.
- Needs MuJoCo >= 4.0 (`mujoco.batch`; tested with 4.0.1), while gymnasium[mujoco] allows older ones:
  making a MuJoCo simulator on an older one is a UserError (importing this module is not).
- A state MuJoCo rejects (non-finite, or beyond its 1e10 bound; MuJoCo would reset it to the model's
  defaults and warn) gives NaN next obs and reward: the termination functions end the row, though its
  transition carries the NaN reward, as a diverging learned model's would. At mix 0 the simulator is not
  called at all.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from packaging.version import Version

from offline_mbrl.core.errors import UserError
from offline_mbrl.data.envs import environment_of_gym_id
from offline_mbrl.models.dynamics import DynamicsEnsemble, Prediction

if TYPE_CHECKING:
    import mujoco.batch

VELOCITY_CLIP = 10.0  # hopper/walker2d/IDP `np.clip(qvel, -10, 10)` in `_get_obs`
# mujoco.batch is new in MuJoCo 4 and mujoco.rollout's API changed through 3.x; gymnasium[mujoco] allows
# MuJoCo >= 2.1.5, so the version is checked (and the two modules imported) only when a simulator is made.
MIN_MUJOCO = "4.0"


class Simulator(Protocol):
    """One environment's true step on a batch: float64 numpy in, `(next_obs (B, obs_dim), reward (B,))`."""

    obs_dim: int
    act_dim: int

    def step(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _check_batch(obs: np.ndarray, act: np.ndarray, obs_dim: int, act_dim: int, name: str) -> None:
    if obs.ndim != 2 or act.ndim != 2 or obs.shape[1] != obs_dim or act.shape[1] != act_dim:
        raise UserError(
            f"{name} takes obs (B, {obs_dim}) and act (B, {act_dim}), got {tuple(obs.shape)} and "
            f"{tuple(act.shape)}"
        )
    if obs.shape[0] != act.shape[0]:
        raise UserError(f"{name}: {obs.shape[0]} observations but {act.shape[0]} actions")


def _threads(threads: int | None) -> int:
    if threads is None:
        threads = min(torch.get_num_threads(), os.cpu_count() or 1)
    return max(1, threads)


class _MujocoSimulator:
    """A Gymnasium MuJoCo env's model and frame skip, and a batched `frame_skip`-step simulation."""

    def __init__(self, gym_id: str, threads: int | None):
        if Version(mujoco.__version__) < Version(MIN_MUJOCO):
            raise UserError(
                f"the true simulator of {gym_id} needs MuJoCo >= {MIN_MUJOCO} (mujoco.batch), installed: "
                f"{mujoco.__version__}; pip install 'mujoco>={MIN_MUJOCO}'"
            )
        env = cast(MujocoEnv, gym.make(gym_id).unwrapped)
        # The env's own compiled model and frame skip: its XML, options and defaults, nothing re-stated.
        self.name = gym_id
        self.model: mujoco.MjModel = env.model
        self.frame_skip: int = int(env.frame_skip)
        self.dt: float = float(env.dt)
        self.act_dim = int(self.model.nu)
        env.close()
        self.threads = _threads(threads)
        self.nq, self.nv = int(self.model.nq), int(self.model.nv)
        # Where qpos and qvel sit in an mjSTATE_FULLPHYSICS row: the components are stored in the order of
        # their bits, so a component starts after the size of the lower bits; checked below.
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
        self.nstate = mujoco.mj_stateSize(self.model, spec)
        self.time_at = self._offset(spec, mujoco.mjtState.mjSTATE_TIME.value)
        self.qpos_at = self._offset(spec, mujoco.mjtState.mjSTATE_QPOS.value)
        self.qvel_at = self._offset(spec, mujoco.mjtState.mjSTATE_QVEL.value)
        probe = mujoco.MjData(self.model)
        probe.time = 0.5
        probe.qpos[:] = np.arange(1, self.nq + 1)
        probe.qvel[:] = -np.arange(1, self.nv + 1)
        row = np.empty(self.nstate)
        mujoco.mj_getState(self.model, probe, row, spec)
        expected = self._rows(np.array([[0.5]]), probe.qpos[None], probe.qvel[None])[0]
        if not np.array_equal(row, expected):  # a future MuJoCo with another layout must fail loudly
            raise RuntimeError(f"unexpected mjSTATE_FULLPHYSICS layout in MuJoCo {mujoco.__version__}")

    def _offset(self, spec: int, component: int) -> int:
        return mujoco.mj_stateSize(self.model, spec & (component - 1))

    def _rows(self, time: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """FULLPHYSICS rows `(B, nstate)` with these times, positions and velocities, everything else 0."""
        rows = np.zeros((len(qpos), self.nstate))
        rows[:, self.time_at] = time[:, 0]
        rows[:, self.qpos_at : self.qpos_at + self.nq] = qpos
        rows[:, self.qvel_at : self.qvel_at + self.nv] = qvel
        return rows


class _RolloutSimulator(_MujocoSimulator):
    """`mujoco.rollout` over FULLPHYSICS rows: final qpos and qvel only."""

    def __init__(self, gym_id: str, threads: int | None):
        super().__init__(gym_id, threads)
        import mujoco.rollout

        self._data = [mujoco.MjData(self.model) for _ in range(self.threads)]
        # One pool for the simulator's life (0: run on the calling thread).
        self._pool = mujoco.rollout.Rollout(nthread=self.threads if self.threads > 1 else 0)

    def simulate(
        self, qpos: np.ndarray, qvel: np.ndarray, ctrl: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`frame_skip` steps from each state under constant ctrl: `(qpos, qvel, rejected)` after them."""
        batch = len(qpos)
        initial = self._rows(np.zeros((batch, 1)), qpos, qvel)
        control = np.ascontiguousarray(ctrl, dtype=np.float64)[:, None, :]  # (B, 1, nu): held for every step
        state, _ = self._pool.rollout(
            self.model,
            self._data,
            initial,
            control,
            nstep=self.frame_skip,
            initial_warmstart=np.zeros((batch, self.nv)),
        )
        final = state[:, -1]
        return (
            final[:, self.qpos_at : self.qpos_at + self.nq],
            final[:, self.qvel_at : self.qvel_at + self.nv],
            # MuJoCo resets a simulation whose state is non-finite or beyond its bound and warns, and
            # mujoco.rollout stops stepping it: its time falls short of frame_skip steps.
            ~(final[:, self.time_at] > (self.frame_skip - 0.5) * self.model.opt.timestep),
        )


@dataclass(frozen=True)
class Locomotion:
    """A v5 locomotion task's observation and reward constants (its constructor defaults)."""

    gym_id: str
    ctrl_cost_weight: float
    clip_velocity: bool  # hopper, walker2d clip qvel to [-10, 10] in the observation
    healthy_z: tuple[float, float] | None  # None: no healthy reward (halfcheetah)
    healthy_angle: tuple[float, float] = (-math.inf, math.inf)
    healthy_state: tuple[float, float] | None = None  # hopper: `state_vector()[2:]` within this range
    forward_reward_weight: float = 1.0
    healthy_reward: float = 1.0


LOCOMOTION = {
    "hopper": Locomotion(
        "Hopper-v5", 1e-3, True, (0.7, math.inf), (-0.2, 0.2), healthy_state=(-100.0, 100.0)
    ),
    "walker2d": Locomotion("Walker2d-v5", 1e-3, True, (0.8, 2.0), (-1.0, 1.0)),
    "halfcheetah": Locomotion("HalfCheetah-v5", 0.1, False, None),
}


def _inside(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return (x > bounds[0]) & (x < bounds[1])  # v5's strict `min < x < max`


class LocomotionSimulator(_RolloutSimulator):
    """Hopper-v5, Walker2d-v5, HalfCheetah-v5: obs `[qpos[1:], qvel]`, x set to 0."""

    def __init__(self, task: Locomotion, threads: int | None = None):
        super().__init__(task.gym_id, threads)
        self.task = task
        self.obs_dim = self.nq - 1 + self.nv

    def step(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_batch(obs, act, self.obs_dim, self.act_dim, self.name)
        qpos = np.concatenate([np.zeros((len(obs), 1)), obs[:, : self.nq - 1]], axis=1)
        qpos1, qvel1, rejected = self.simulate(qpos, obs[:, self.nq - 1 :], act)
        task = self.task
        vel_obs = np.clip(qvel1, -VELOCITY_CLIP, VELOCITY_CLIP) if task.clip_velocity else qvel1
        next_obs = np.concatenate([qpos1[:, 1:], vel_obs], axis=1)
        reward = task.forward_reward_weight * qpos1[:, 0] / self.dt  # x started at 0
        reward = reward - task.ctrl_cost_weight * np.square(act).sum(axis=1)  # on the raw, unclipped action
        if task.healthy_z is not None:
            healthy = _inside(qpos1[:, 1], task.healthy_z) & _inside(qpos1[:, 2], task.healthy_angle)
            if task.healthy_state is not None:  # state_vector()[2:]: qpos[2:] and the unclipped qvel
                rest = np.concatenate([qpos1[:, 2:], qvel1], axis=1)
                healthy &= _inside(rest, task.healthy_state).all(axis=1)
            # v5 pays the healthy reward only while healthy (v4 paid it on the terminal step too)
            reward = reward + task.healthy_reward * healthy
        next_obs[rejected], reward[rejected] = np.nan, np.nan
        return next_obs, reward


class InvertedDoublePendulumSimulator(_MujocoSimulator):
    """InvertedDoublePendulum-v5 on `mujoco.batch.Batch`, which returns MuJoCo's site_xpos and
    qfrc_constraint after the step (stale by one RK4 stage, exactly as the env reads them)."""

    HEALTHY_REWARD = 10.0  # v5 default `healthy_reward`
    MIN_TIP_HEIGHT = 1.0  # terminated when the tip's y <= 1

    def __init__(self, threads: int | None = None):
        super().__init__("InvertedDoublePendulum-v5", threads)
        self.obs_dim = 1 + 2 * (self.nq - 1) + self.nv + 1
        self._batch: mujoco.batch.Batch | None = None  # rebuilt when the batch size changes
        self._tip = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "tip")

    def _batch_of(self, size: int) -> mujoco.batch.Batch:
        if self._batch is None or self._batch.nsim != size:
            import mujoco.batch

            self._batch = mujoco.batch.Batch(self.model, nsim=size, nthread=self.threads)
            # A derived field is copied out only by calls made after it was bound: bind before stepping.
            self._batch.bind("site_xpos")
            self._batch.bind("qfrc_constraint")
        return self._batch

    def step(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_batch(obs, act, self.obs_dim, self.act_dim, self.name)
        hinges = self.nq - 1
        sin, cos = obs[:, 1 : 1 + hinges], obs[:, 1 + hinges : 1 + 2 * hinges]
        qvel0 = obs[:, 1 + 2 * hinges : 1 + 2 * hinges + self.nv]
        batch = self._batch_of(len(obs))
        # Model defaults everywhere (time 0, zero warm start and applied forces), then this state.
        batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE.value)
        batch.qpos[:] = np.concatenate([obs[:, :1], np.arctan2(sin, cos)], axis=1)
        batch.qvel[:] = qvel0
        batch.ctrl[:] = act
        batch.step(nstep=self.frame_skip)
        qpos1, qvel1 = batch.qpos.copy(), batch.qvel.copy()
        tip = batch.bind("site_xpos")[:, self._tip]  # (B, 3), the last RK4 stage's, as the env reads it
        constraint = batch.bind("qfrc_constraint")[:, :1]
        next_obs = np.concatenate(
            [
                qpos1[:, :1],
                np.sin(qpos1[:, 1:]),
                np.cos(qpos1[:, 1:]),
                np.clip(qvel1, -VELOCITY_CLIP, VELOCITY_CLIP),
                np.clip(constraint, -VELOCITY_CLIP, VELOCITY_CLIP),
            ],
            axis=1,
        )
        x, y = tip[:, 0], tip[:, 2]
        alive = ~(y <= self.MIN_TIP_HEIGHT)
        dist_penalty = 0.01 * x**2 + (y - 2) ** 2
        vel_penalty = 1e-3 * qvel1[:, 1] ** 2 + 5e-3 * qvel1[:, 2] ** 2  # unclipped, as the env's
        reward = self.HEALTHY_REWARD * alive - dist_penalty - vel_penalty
        rejected = batch.warning.reshape(len(obs), -1).any(axis=1)  # this call's (reset cleared them)
        next_obs[rejected], reward[rejected] = np.nan, np.nan
        return next_obs, reward


class PendulumSimulator:
    """Pendulum-v1's closed-form step (gymnasium's classic_control/pendulum.py, default g), vectorised."""

    G, M, L, DT = 10.0, 1.0, 1.0, 0.05
    MAX_SPEED, MAX_TORQUE = 8.0, 2.0
    obs_dim, act_dim = 3, 1
    name = "Pendulum-v1"

    def step(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_batch(obs, act, self.obs_dim, self.act_dim, self.name)
        th, thdot = np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2]  # θ in [-π, π]: already normalised
        u = np.clip(act[:, 0], -self.MAX_TORQUE, self.MAX_TORQUE)
        reward = -(th**2 + 0.1 * thdot**2 + 0.001 * u**2)
        g, m, length, dt = self.G, self.M, self.L, self.DT
        new_thdot = thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt
        new_thdot = np.clip(new_thdot, -self.MAX_SPEED, self.MAX_SPEED)
        new_th = th + new_thdot * dt
        return np.stack([np.cos(new_th), np.sin(new_th), new_thdot], axis=1), reward


class Point2DSimulator:
    """The edge-of-reach task's closed-form step (offline_mbrl/data/make/point2d.py), and its true optimal
    value (`value`), which no MuJoCo task has."""

    obs_dim, act_dim = 2, 2
    name = "offline_mbrl/Point2D-v0"

    def step(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from offline_mbrl.data.make import point2d

        _check_batch(obs, act, self.obs_dim, self.act_dim, self.name)
        return point2d.step(obs, act)

    def value(self, obs: np.ndarray, gamma: float) -> np.ndarray:
        from offline_mbrl.data.make import point2d

        return point2d.optimal_value(obs, gamma)


SUPPORTED = ("halfcheetah", "hopper", "inverted-double-pendulum", "pendulum", "point2d", "walker2d")


def simulator(env: str | None, gym_id: str, threads: int | None = None) -> Simulator:
    """The true simulator of an environment (`EnvSpec.env`, or else the exact `gym_id`)."""
    name = env
    if name is None:
        known = environment_of_gym_id(gym_id)
        name = known.name if known is not None else None
    if name is None or name not in SUPPORTED:
        raise UserError(
            f"no true simulator for environment {gym_id} (short name {env!r}); "
            f"supported environments: {', '.join(SUPPORTED)}"
        )
    if name in LOCOMOTION:
        return LocomotionSimulator(LOCOMOTION[name], threads)
    if name == "inverted-double-pendulum":
        return InvertedDoublePendulumSimulator(threads)
    if name == "point2d":
        return Point2DSimulator()
    return PendulumSimulator()


class OracleDynamics:
    """`DynamicsEnsemble.predict`'s interface over the true simulator, optionally mixed with a learned
    ensemble: `mix` = 1 is the simulator alone, 0 the learned ensemble alone."""

    def __init__(
        self,
        env: str | None,
        gym_id: str,
        obs_dim: int,
        act_dim: int,
        learned: DynamicsEnsemble | None = None,
        mix: float = 1.0,
        members: int = 7,
        elites: int = 5,
        threads: int | None = None,
    ):
        if not 0.0 <= mix <= 1.0:  # also rejects NaN
            raise UserError(f"oracle mix must be in [0, 1] (1: the true simulator alone), got {mix}")
        if mix < 1.0 and learned is None:
            raise UserError(f"oracle mix {mix} < 1 interpolates with a learned ensemble, but none was given")
        if not 1 <= elites <= members:
            raise UserError(f"oracle elites ({elites}) must be between 1 and members ({members})")
        self.sim = simulator(env, gym_id, threads)
        if (obs_dim, act_dim) != (self.sim.obs_dim, self.sim.act_dim):
            raise UserError(
                f"{gym_id} has obs_dim {self.sim.obs_dim} and act_dim {self.sim.act_dim}, "
                f"got obs_dim {obs_dim} and act_dim {act_dim}"
            )
        if learned is not None and (learned.obs_dim, learned.act_dim) != (obs_dim, act_dim):
            raise UserError(
                f"the learned ensemble has obs_dim {learned.obs_dim} and act_dim {learned.act_dim}, "
                f"{gym_id} has {obs_dim} and {act_dim}"
            )
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.learned = learned if mix < 1.0 else None  # at mix 1 it would never be read
        self.mix = float(mix)
        self.members = members
        self._elites = torch.arange(elites)

    @property
    def elites(self) -> torch.Tensor:
        return self.learned.elites if self.learned is not None else self._elites

    def eval(self) -> OracleDynamics:
        if self.learned is not None:
            self.learned.eval()
        return self

    def to(self, device: torch.device | str) -> OracleDynamics:
        if self.learned is not None:
            self.learned.to(device)
        self._elites = self._elites.to(device)
        return self

    def truth(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The simulator's `[next_obs, reward]`, `(B, obs_dim + 1)` float32 on the input's device."""
        if obs.ndim != 2 or act.ndim != 2 or obs.shape[1] != self.obs_dim or act.shape[1] != self.act_dim:
            raise UserError(
                f"oracle dynamics take obs (B, {self.obs_dim}) and act (B, {self.act_dim}), "
                f"got {tuple(obs.shape)} and {tuple(act.shape)}"
            )
        as_np = [t.detach().to("cpu", torch.float64).numpy() for t in (obs, act)]
        next_obs, reward = self.sim.step(*as_np)
        true = np.concatenate([next_obs, reward[:, None]], axis=1)
        return torch.from_numpy(true).to(device=obs.device, dtype=torch.float32)

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> Prediction:
        if self.learned is not None and self.mix == 0.0:
            # The learned ensemble alone; 0 * NaN from a state the simulator rejects must not leak in.
            return self.learned.predict(obs, act)
        true = self.truth(obs, act)  # (B, D)
        if self.learned is None:
            mean = true.unsqueeze(0).repeat(self.members, 1, 1)  # (E, B, D): a copy, never a view
            elites = self._elites.to(obs.device)
            return Prediction(mean=mean, std=torch.zeros_like(mean), elites=elites, exact=True)
        pred = self.learned.predict(obs, act)
        lam = self.mix
        return Prediction(
            mean=(1 - lam) * pred.mean + lam * true, std=(1 - lam) * pred.std, elites=pred.elites
        )
