"""One batched model rollout for every algorithm, the model-data FIFO buffer, and real/model mixing.

`rollout` steps a batch of start states through the learned dynamics for a fixed horizon. Shapes stay
fixed, `(H, B, ...)`, with an `alive` mask: a row that terminated stops contributing (its later steps are
masked, its state frozen) instead of being removed, so there is no shrinking-batch bookkeeping and no
host sync inside the loop. A per-step hook may change the reward (MOPO's penalty), the next state
(MOREC's choice among candidate next states, drawn with `step.pred.candidates(n, step.generator)`) or
stopping (MOREC's reward-consistency cut-off), and adds its own per-step quantities to `extras`. Hooks
compose: `compose(filter_hook, penalty_hook)` is one hook that runs them in order. Short branches (MOPO,
RAVL, h = 1..5), long filtered branches (MOREC, h = 100) and whole trajectories with returns (MBRCSL,
no termination) are the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from offline_mbrl.data.dataset import Batch
from offline_mbrl.models.dynamics import Dynamics, Prediction
from offline_mbrl.models.seed_dynamics import SeedDynamics

Terminated = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Step:
    """One rollout step as a hook sees it; a hook returns a modified copy (`dataclasses.replace`)."""

    h: int
    obs: torch.Tensor  # (B, obs_dim)
    act: torch.Tensor  # (B, act_dim)
    pred: Prediction
    next_obs: torch.Tensor  # (B, obs_dim): the sampled next state
    rew: torch.Tensor  # (B,)
    term: torch.Tensor  # (B,) bool
    member: torch.Tensor  # (B,) the member each transition was sampled from
    generator: torch.Generator | None = None  # the run's generator: a hook draws from it, never globally
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # each (B,)
    # (B,) bool: whether the step's transition is stored (None: all are). A hook that cuts a row also sets
    # its `term` (the row stops) and clears `keep` (the cut transition is not stored: MOREC's filter)
    keep: torch.Tensor | None = None


StepHook = Callable[[Step], Step]


class Composed:
    """Hooks applied in order, as one hook; the state of its stateful parts (any with `state_dict`) is
    its own, so a composed hook is checkpointed like any other."""

    def __init__(self, hooks: list[StepHook]):
        self.hooks = hooks

    def __call__(self, step: Step) -> Step:
        for hook in self.hooks:
            step = hook(step)
        return step

    def _stateful(self) -> dict[str, Any]:
        return {str(i): h for i, h in enumerate(self.hooks) if hasattr(h, "state_dict")}

    def state_dict(self) -> dict[str, Any]:
        return {i: h.state_dict() for i, h in self._stateful().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, h in self._stateful().items():
            h.load_state_dict(state[i])


def compose(*hooks: StepHook | None) -> StepHook | None:
    """One hook that applies `hooks` in order (None entries skipped); None if there are none."""
    active = [h for h in hooks if h is not None]
    if len(active) <= 1:
        return active[0] if active else None
    return Composed(active)


@dataclass(frozen=True)
class Rollout:
    obs: torch.Tensor  # (H, B, obs_dim)
    act: torch.Tensor  # (H, B, act_dim)
    rew: torch.Tensor  # (H, B)
    next_obs: torch.Tensor  # (H, B, obs_dim)
    term: torch.Tensor  # (H, B) bool
    alive: torch.Tensor  # (H, B) bool: the row had not terminated before step h, so step h is real
    extras: dict[str, torch.Tensor]  # each (H, B)
    keep: torch.Tensor | None = None  # (H, B) bool: a hook kept the step's transition (None: all kept)

    @property
    def stored(self) -> torch.Tensor:
        """(H, B) bool: the transitions that are real and kept: what `transitions()` returns."""
        return self.alive if self.keep is None else self.alive & self.keep

    def transitions(self) -> tuple[Batch, dict[str, torch.Tensor]]:
        """The valid transitions, flattened: `(N, ...)` with N = stored.sum() (one host sync)."""
        mask = self.stored
        batch = Batch(
            self.obs[mask], self.act[mask], self.rew[mask], self.next_obs[mask], self.term[mask].float()
        )
        return batch, {k: v[mask] for k, v in self.extras.items()}

    def returns(self) -> torch.Tensor:
        return (self.rew * self.stored).sum(0)  # (B,)

    def lengths(self) -> torch.Tensor:
        return self.stored.sum(0)  # (B,) the transitions each row contributed


@torch.no_grad()
def rollout(
    dynamics: Dynamics,
    policy: Callable[[torch.Tensor], torch.Tensor],
    start_obs: torch.Tensor,
    horizon: int,
    terminated: Terminated,
    step_hook: StepHook | None = None,
    generator: torch.Generator | None = None,
) -> Rollout:
    obs = start_obs
    trace = _Trace(obs.shape[0], obs.device)
    for h in range(horizon):
        act = policy(obs)
        obs = trace.record(
            _step(h, obs, act, dynamics.predict(obs, act), terminated, step_hook, generator), obs
        )
    return trace.rollout(horizon)


@torch.no_grad()
def rollout_seeds(
    dynamics: SeedDynamics,
    policy: Callable[[torch.Tensor], torch.Tensor],
    start_obs: torch.Tensor,
    horizon: int,
    terminated: Terminated,
    step_hooks: Sequence[StepHook | None],
    generators: Sequence[torch.Generator],
) -> list[Rollout]:
    """K seeds' rollouts as one computation: `start_obs (K, B, obs_dim)`, a seed-batched `policy`
    (`(K, B, obs) -> (K, B, act)`, seed k's noise from generator k) and K stacked ensembles. The policy
    and the dynamics run once per step for all seeds; each seed's sampling, termination and hook then
    run on its own rows with its own generator, in the order `rollout` draws them, so seed k's rollout
    is the one `rollout` gives with seed k's ensemble, policy, hook and generator (up to rounding)."""
    obs = start_obs
    traces = [_Trace(obs.shape[1], obs.device) for _ in generators]
    for h in range(horizon):
        act = policy(obs)  # (K, B, act_dim)
        preds = dynamics.predict(obs, act)
        obs = torch.stack(
            [
                trace.record(_step(h, obs[k], act[k], preds[k], terminated, step_hooks[k], gen), obs[k])
                for k, (trace, gen) in enumerate(zip(traces, generators, strict=True))
            ]
        )
    return [trace.rollout(horizon) for trace in traces]


def _step(
    h: int,
    obs: torch.Tensor,
    act: torch.Tensor,
    pred: Prediction,
    terminated: Terminated,
    hook: StepHook | None,
    generator: torch.Generator | None,
) -> Step:
    """One step from a prediction: a draw from a random elite, termination, then the hook."""
    next_obs, rew, member = pred.sample(generator)
    step = Step(h, obs, act, pred, next_obs, rew, terminated(obs, act, next_obs), member, generator)
    return step if hook is None else hook(step)


class _Trace:
    """One batch's steps as they come: the fixed-shape `(H, B, ...)` record and the `alive` mask."""

    def __init__(self, rows: int, device: torch.device):
        self.alive = torch.ones(rows, dtype=torch.bool, device=device)
        self.rows: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "act", "rew", "next_obs", "term", "alive")
        }
        self.extras: dict[str, list[torch.Tensor]] = {}
        self.keeps: list[torch.Tensor] = []

    def record(self, step: Step, obs: torch.Tensor) -> torch.Tensor:
        """Store the step; returns the next states to step from."""
        for k in ("obs", "act", "rew", "next_obs", "term"):
            self.rows[k].append(getattr(step, k))
        self.rows["alive"].append(self.alive)
        for k, v in step.extras.items():
            self.extras.setdefault(k, []).append(v)
        if step.keep is not None:
            self.keeps += [torch.ones_like(self.alive)] * (step.h - len(self.keeps)) + [step.keep]
        self.alive = self.alive & ~step.term
        # A finished row keeps its last state: it is masked out, and stepping garbage could overflow.
        return torch.where(self.alive.unsqueeze(-1), step.next_obs, obs)

    def rollout(self, horizon: int) -> Rollout:
        stacked = {k: torch.stack(v) for k, v in self.rows.items()}
        keep = None
        if self.keeps:
            keep = torch.stack(self.keeps + [torch.ones_like(self.alive)] * (horizon - len(self.keeps)))
        return Rollout(**stacked, extras={k: torch.stack(v) for k, v in self.extras.items()}, keep=keep)


class ModelBuffer:
    """A device-resident FIFO of model transitions: when full, the oldest rows are overwritten."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str):
        self.capacity = capacity
        self.obs = torch.zeros(capacity, obs_dim, device=device)
        self.act = torch.zeros(capacity, act_dim, device=device)
        self.rew = torch.zeros(capacity, device=device)
        self.next_obs = torch.zeros(capacity, obs_dim, device=device)
        self.term = torch.zeros(capacity, device=device)
        self.ptr = 0  # next row to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Batch) -> None:
        n = len(batch)
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` rows can survive
            batch = batch.index(torch.arange(n - self.capacity, n, device=batch.obs.device))
            n = self.capacity
        idx = (self.ptr + torch.arange(n, device=self.obs.device)) % self.capacity
        for name in ("obs", "act", "rew", "next_obs", "term"):
            getattr(self, name)[idx] = getattr(batch, name).to(self.obs.device, torch.float32)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        idx = torch.randint(self.size, (n,), device=self.obs.device, generator=generator)
        return Batch(self.obs[idx], self.act[idx], self.rew[idx], self.next_obs[idx], self.term[idx])

    def state_dict(self) -> dict:
        keep = slice(0, self.size)
        return {
            "capacity": self.capacity,
            "ptr": self.ptr,
            "size": self.size,
            **{k: getattr(self, k)[keep].clone() for k in ("obs", "act", "rew", "next_obs", "term")},
        }

    def load_state_dict(self, state: dict) -> None:
        self.ptr, self.size = state["ptr"], state["size"]
        for k in ("obs", "act", "rew", "next_obs", "term"):
            getattr(self, k)[: self.size] = state[k].to(self.obs.device)


def model_rows(n_real: int, n_model: int, device: torch.device | str) -> torch.Tensor:
    """The `from_model` mask of a mixed batch: `(n_real + n_model,)` bool, real rows first."""
    from_model = torch.ones(n_real + n_model, dtype=torch.bool, device=device)
    from_model[:n_real] = False
    return from_model


def mix(real: Batch, model: Batch, from_model: torch.Tensor | None = None) -> Batch:
    """Real rows first, then model rows; `from_model` marks the model rows (pass `model_rows(...)` made
    once to save two kernel launches per update)."""
    fields = ("obs", "act", "rew", "next_obs", "term")
    if from_model is None:
        from_model = model_rows(len(real), len(model), real.obs.device)
    return Batch(
        **{f: torch.cat([getattr(real, f), getattr(model, f)]) for f in fields}, from_model=from_model
    )


def with_extras(step: Step, **extras: torch.Tensor) -> Step:
    return replace(step, extras={**step.extras, **extras})
