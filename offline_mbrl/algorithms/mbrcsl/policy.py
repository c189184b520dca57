"""MBRCSL's output policy: a return-conditioned MLP [obs, return-to-go] -> action, trained by supervised
learning on the kept rollouts with holdout early stopping, evaluated from the best kept return."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from offline_mbrl.algorithms.mbrcsl.rollouts import (
    KeptRollouts,
)
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.nets import mlp
from offline_mbrl.data.dataset import EnvSpec

if TYPE_CHECKING:
    from offline_mbrl.algorithms.mbrcsl.algorithm import MBRCSLConfig


class RCSLNet(nn.Module):
    """[z-scored obs, RTG / scale] -> MLP -> tanh onto the action box. `target` is the evaluation's
    initial return-to-go (the best kept return)."""

    obs_mean: torch.Tensor  # buffers, registered in __init__
    obs_std: torch.Tensor
    rtg_scale: torch.Tensor
    target: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, spec: EnvSpec, hidden: tuple[int, ...], obs_mean, obs_std, rtg_scale, target):
        super().__init__()
        self.net = mlp(spec.obs_dim + 1, hidden, spec.act_dim)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32).clone())
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32).clone())
        self.register_buffer("rtg_scale", torch.as_tensor(rtg_scale, dtype=torch.float32).clone())
        self.register_buffer("target", torch.as_tensor(target, dtype=torch.float32).clone())
        self.register_buffer("low", torch.as_tensor(spec.act_low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(spec.act_high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor, rtg: torch.Tensor) -> torch.Tensor:
        x = torch.cat([(obs - self.obs_mean) / self.obs_std, (rtg / self.rtg_scale).unsqueeze(-1)], dim=-1)
        unit = torch.tanh(self.net(x))
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)


class ReturnConditionedPolicy:
    """Evaluation: the RTG of every episode starts at `net.target` and drops by each observed reward."""

    def __init__(self, net: RCSLNet, device: torch.device):
        self.net, self.device = net, device
        self.rtg = torch.zeros(0, device=device)

    def reset(self, n: int) -> None:
        self.rtg = self.net.target.expand(n).clone()

    @torch.no_grad()
    def act(self, obs: np.ndarray, last_rew: np.ndarray | None) -> np.ndarray:
        if last_rew is not None:
            self.rtg = self.rtg - torch.as_tensor(last_rew, dtype=torch.float32, device=self.device)
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.net(obs_t, self.rtg).cpu().numpy()


def _split(kept: KeptRollouts, share: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of the training and holdout rollouts (whole rollouts held out; none if fewer than 2)."""
    k = int(kept.returns.shape[0])
    n_hold = min(k - 1, max(1, round(k * share))) if share > 0 and k >= 2 else 0
    order = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
    held = torch.zeros(k, dtype=torch.bool)
    held[order[:n_hold]] = True
    rows_held = held.to(kept.traj.device)[kept.traj]  # (N,)
    return (~rows_held).nonzero().squeeze(-1), rows_held.nonzero().squeeze(-1)


@dataclasses.dataclass
class EarlyStopping:
    """The output policy's early-stopping bookkeeping (checkpointed with the run): the best holdout loss
    so far, the weights that reached it, and the epochs since."""

    best: dict[str, torch.Tensor] | None = None
    best_loss: float = math.inf
    since_best: int = 0

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_loss, self.since_best = state["best"], state["best_loss"], state["since_best"]


def load_policy(
    cfg: TrainConfig[MBRCSLConfig], spec: EnvSpec, state: dict, device
) -> ReturnConditionedPolicy:
    net = RCSLNet(spec, cfg.algo.hidden, *(state[k] for k in ("obs_mean", "obs_std", "rtg_scale", "target")))
    net.load_state_dict(state)
    return ReturnConditionedPolicy(net.to(device), device)
