"""Evaluation in the real environment: vectorised episodes, deterministic actions, normalised score.

All episodes of one evaluation run side by side in one `SyncVectorEnv` (one batched policy call per
step), instead of the reference codes' sequential batch-1 episodes that dominated their wall time.
A finished environment restarts on its own and is masked out, so each episode counts once. With MDP-
family parameters, every environment is that member's simulator.
"""

from __future__ import annotations

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
    def make():
        env = gym.make(spec.gym_id)
        if member_params is not None:
            from offline_mbrl.data.make.families import apply_params

            apply_params(env, member_params)
        return env

    envs = gym.vector.SyncVectorEnv([make] * episodes, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    policy.reset(episodes)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    alive = np.ones(episodes, dtype=bool)
    last_rew = None
    while alive.any():
        obs, rew, term, trunc, _ = envs.step(policy.act(obs, last_rew))
        returns += rew * alive
        lengths += alive
        alive &= ~(term | trunc)
        last_rew = rew
    envs.close()
    return EvalResult(returns, lengths, spec.normalize(returns))
