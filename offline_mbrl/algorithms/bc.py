"""Behaviour cloning: regress the dataset's actions on its observations. The floor any report needs.

A deterministic MLP with a tanh output mapped onto the action box, trained with MSE (as in the TD3+BC
and CORL baselines' BC); no dynamics model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from offline_mbrl.data import OfflineDataset
from offline_mbrl.nets import mlp
from offline_mbrl.policies import ActorPolicy
from offline_mbrl.run import Run, TrainConfig


@dataclass(frozen=True)
class BCConfig:
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 1e-3
    batch_size: int = 256


def train(cfg: TrainConfig, dataset: OfflineDataset, dynamics, run: Run):
    a, spec, device = cfg.algo, dataset.spec, run.device
    torch.manual_seed(cfg.seed)
    net = mlp(spec.obs_dim, a.hidden, spec.act_dim).to(device)
    low = torch.tensor(spec.act_low, device=device)
    high = torch.tensor(spec.act_high, device=device)
    obs_mean, obs_std = dataset.data.obs.mean(0), dataset.data.obs.std(0) + 1e-3

    def act(obs: torch.Tensor) -> torch.Tensor:
        unit = torch.tanh(net((obs - obs_mean) / obs_std))
        return low + (unit + 1.0) * 0.5 * (high - low)

    optim = torch.optim.Adam(net.parameters(), lr=a.lr)

    class State:  # what a checkpoint must hold to resume exactly
        def state_dict(self):
            return {"net": net.state_dict(), "optim": optim.state_dict()}

        def load_state_dict(self, s):
            net.load_state_dict(s["net"])
            optim.load_state_dict(s["optim"])

    policy = ActorPolicy(act, device)
    for _ in run.loop({"bc": State()}, lambda: policy):
        batch = dataset.sample(a.batch_size, run.generator)
        loss = (act(batch.obs) - batch.act).square().mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        run.log({"bc/loss": loss})
    return policy, {"net": net.state_dict(), "obs_mean": obs_mean, "obs_std": obs_std}
