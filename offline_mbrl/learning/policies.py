"""Adapters from trained networks to the evaluation `Policy` protocol (numpy in, numpy out)."""

from __future__ import annotations

import numpy as np
import torch


class ActorPolicy:
    """A SAC actor acting deterministically (the mean action), as in the papers' evaluations."""

    def __init__(self, actor_act, device: torch.device):
        self._act, self.device = actor_act, device

    def reset(self, n: int) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: np.ndarray, last_rew: np.ndarray | None) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self._act(obs_t).cpu().numpy()
