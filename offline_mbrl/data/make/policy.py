"""The behaviour policy: a Gaussian MLP over normalised observations, saved as a small checkpoint.

The policy acts in a normalised action box [-1, 1]^A and is mapped onto the environment's bounds, so
one network shape serves Pendulum ([-2, 2]) and the MuJoCo tasks ([-1, 1]). Datasets store the
environment-unit action that was actually applied (clipped to the bounds), as D4RL did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from offline_mbrl.core.errors import UserError


class GaussianPolicy(nn.Module):
    obs_mean: torch.Tensor  # buffers, registered in __init__
    obs_var: torch.Tensor
    act_low: torch.Tensor
    act_high: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, act_low, act_high, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.hidden = tuple(hidden)
        layers: list[nn.Module] = []
        width = obs_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        self.mu = nn.Sequential(*layers, nn.Linear(width, act_dim))
        self.log_std = nn.Parameter(torch.full((act_dim,), -0.5))
        self.register_buffer("obs_mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("obs_var", torch.ones(obs_dim, dtype=torch.float64))
        self.register_buffer("act_low", torch.as_tensor(np.asarray(act_low, dtype=np.float32)))
        self.register_buffer("act_high", torch.as_tensor(np.asarray(act_high, dtype=np.float32)))

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        z = (obs.double() - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)
        return z.clamp(-10.0, 10.0).float()

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = self.mu(self.normalize(obs))
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def to_env(self, unit_action: torch.Tensor) -> torch.Tensor:
        """Map a normalised action onto the environment's box, clipping at the bounds."""
        a = unit_action.clamp(-1.0, 1.0)
        return self.act_low + (a + 1.0) * 0.5 * (self.act_high - self.act_low)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, generator: torch.Generator | None, deterministic: bool = False
    ) -> np.ndarray:
        """Environment-unit actions for a batch of observations (stochastic unless `deterministic`)."""
        dist = self.distribution(torch.as_tensor(obs, dtype=torch.float32))
        if deterministic:
            unit = dist.mean
        else:
            unit = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=generator)
        return self.to_env(unit).numpy()

    def checkpoint(self) -> dict:
        return {
            "obs_dim": self.obs_mean.shape[0],
            "act_dim": self.act_low.shape[0],
            "hidden": list(self.hidden),
            "state_dict": {k: v.detach().clone() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> GaussianPolicy:
        sd = ckpt["state_dict"]
        policy = cls(ckpt["obs_dim"], ckpt["act_dim"], sd["act_low"], sd["act_high"], tuple(ckpt["hidden"]))
        policy.load_state_dict(sd)
        return policy.eval()


def load_policy_file(path: Path) -> dict:
    """Read a committed checkpoint file; a missing or unreadable one is a one-line error."""
    if not path.is_file():
        raise UserError(
            f"behaviour checkpoint {path} is missing; train it with `offline-mbrl datasets train-behaviour` "
            "(see datasets/README.md) or restore it from git"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise UserError(
            f"behaviour checkpoint {path} cannot be read ({type(exc).__name__}); restore it from git"
        ) from None
