"""Evaluation in the real environment: vectorised episodes, deterministic actions, normalised score.

All episodes of one evaluation run side by side in one `SyncVectorEnv` (one batched policy call per
step), instead of the reference codes' sequential batch-1 episodes that dominated their wall time; the
evaluations of K seeds trained together step all their episodes as one (`evaluate_many`).
A finished environment restarts on its own and is masked out, so each episode counts once. With MDP-
family parameters, every environment is that member's simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np

from offline_mbrl.data.dataset import EnvSpec


class Policy(Protocol):
    """What evaluation needs of a trained policy. Return-conditioned policies (MBRCSL) keep their
    return-to-go inside and use `last_rew`; the others ignore it."""

    def reset(self, n: int) -> None: ...

    def act(self, obs: np.ndarray, last_rew: np.ndarray | None) -> np.ndarray: ...


@dataclass(frozen=True)
class EvalResult:
    returns: np.ndarray  # (episodes,)
    lengths: np.ndarray  # (episodes,)
    normalized: np.ndarray | None  # (episodes,) D4RL normalised scores, or None without references

    @property
    def score(self) -> float:
        """Mean normalised score, or the mean raw return when the dataset has no references."""
        return float(np.mean(self.normalized if self.normalized is not None else self.returns))


def evaluate(
    policy: Policy, spec: EnvSpec, episodes: int, seed: int, member_params: dict[str, float] | None = None
) -> EvalResult:
    return evaluate_many([policy], spec, episodes, [seed], member_params)[0]


def evaluate_many(
    policies: Sequence[Policy],
    spec: EnvSpec,
    episodes: int,
    seeds: Sequence[int],
    member_params: dict[str, float] | None = None,
) -> list[EvalResult]:
    """Several policies' evaluations (K seeds' runs) stepped as one vectorised environment: policy k acts
    on its own `episodes` environments, seeded `seeds[k] + i` as a lone evaluation seeds them, so each
    result is the one `evaluate` gives that policy alone."""

    def make():
        env = gym.make(spec.gym_id)
        if member_params is not None:
            from offline_mbrl.data.make.families import apply_params

            apply_params(env, member_params)
        return env

    n = episodes * len(policies)
    envs = gym.vector.SyncVectorEnv([make] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=[seed + i for seed in seeds for i in range(episodes)])
    rows = [slice(k * episodes, (k + 1) * episodes) for k in range(len(policies))]
    for policy in policies:
        policy.reset(episodes)
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    last_rew = None
    while alive.any():
        act = [
            p.act(obs[r], None if last_rew is None else last_rew[r])
            for p, r in zip(policies, rows, strict=True)
        ]
        obs, rew, term, trunc, _ = envs.step(np.concatenate(act))
        returns += rew * alive
        lengths += alive
        alive &= ~(term | trunc)
        last_rew = rew
    envs.close()
    return [EvalResult(returns[r], lengths[r], spec.normalize(returns[r])) for r in rows]
