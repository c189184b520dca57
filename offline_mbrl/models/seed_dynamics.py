"""K seeds' dynamics ensembles as one network: the rollouts of seeds trained together in one computation.

`SeedDynamics.of(ensembles)` stacks K fitted `DynamicsEnsemble`s of one architecture (they differ by their
dynamics seed, so by weights, normaliser, log-variance bounds and elites) into one `EnsembleMLP` of K·E
members; seed k's members read seed k's rows (`EnsembleMLP`'s grouped inputs). `predict` maps
`(K, B, obs)`, `(K, B, act)` to K ordinary `Prediction`s, each seed's numbers those of its own ensemble's
`predict` (the same products, batched), so every hook and sampling step downstream is the lone run's.
The weights are copied once: fitted dynamics do not change while a policy trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from offline_mbrl.core.nets import EnsembleLinear, EnsembleMLP
from offline_mbrl.models.dynamics import ACTIVATIONS, DynamicsEnsemble, Prediction


class SeedDynamics(nn.Module):
    """K `DynamicsEnsemble`s stacked on a leading seed axis (see the module docstring)."""

    input_mean: torch.Tensor  # (K, 1, in) buffers, registered in __init__
    input_std: torch.Tensor
    max_logvar: torch.Tensor  # (K, 1, 1, out)
    min_logvar: torch.Tensor
    elites: torch.Tensor  # (K, n_elites)

    def __init__(self, ensembles: Sequence[DynamicsEnsemble]):
        super().__init__()
        first = ensembles[0]
        cfg = first.cfg
        shape = (first.obs_dim, first.act_dim, cfg.members, cfg.hidden, cfg.activation, cfg.elites)
        for other in ensembles[1:]:
            o = other.cfg
            if (other.obs_dim, other.act_dim, o.members, o.hidden, o.activation, o.elites) != shape:
                raise ValueError("SeedDynamics stacks ensembles of one architecture")
        self.seeds, self.members = len(ensembles), cfg.members
        self.obs_dim, self.act_dim = first.obs_dim, first.act_dim
        in_dim, out_dim = first.obs_dim + first.act_dim, first.obs_dim + 1
        net = EnsembleMLP(
            self.seeds * cfg.members, in_dim, cfg.hidden, 2 * out_dim, ACTIVATIONS[cfg.activation]
        )
        with torch.no_grad():
            for i, layer in enumerate(cast("Sequence[EnsembleLinear]", net.layers)):
                parts = [cast("Sequence[EnsembleLinear]", e.net.layers)[i] for e in ensembles]
                layer.weight.copy_(torch.cat([p.weight for p in parts]))
                layer.bias.copy_(torch.cat([p.bias for p in parts]))
        net.compute_dtype = first.net.compute_dtype
        self.net = net.requires_grad_(False).to(first.input_mean.device)

        def stacked(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return torch.stack([getattr(e, name).detach() for e in ensembles]).reshape(self.seeds, *shape)

        self.register_buffer("input_mean", stacked("input_mean", (1, in_dim)))
        self.register_buffer("input_std", stacked("input_std", (1, in_dim)))
        self.register_buffer("max_logvar", stacked("max_logvar", (1, 1, out_dim)))
        self.register_buffer("min_logvar", stacked("min_logvar", (1, 1, out_dim)))
        self.register_buffer("elites", torch.stack([e.elites for e in ensembles]))

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> list[Prediction]:
        """`obs (K, B, obs_dim)`, `act (K, B, act_dim)` -> each seed's `Prediction`, `(E, B, obs_dim + 1)`."""
        k, b = obs.shape[0], obs.shape[1]
        inputs = (torch.cat([obs, act], dim=-1) - self.input_mean) / self.input_std  # (K, B, in)
        out = self.net(inputs).view(k, self.members, b, -1)  # (K, E, B, 2·(obs_dim + 1))
        mean, logvar = out.chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        mean = torch.cat([mean[..., : self.obs_dim] + obs.unsqueeze(1), mean[..., self.obs_dim :]], dim=-1)
        std = (0.5 * logvar).exp()
        return [Prediction(mean=mean[i], std=std[i], elites=self.elites[i]) for i in range(k)]

    @classmethod
    def of(cls, dynamics: Sequence[object]) -> SeedDynamics | None:
        """The stacked dynamics of K seeds, or None where they cannot stack (one seed, the true simulator,
        different architectures): their rollouts then run seed by seed."""
        if len(dynamics) < 2 or not all(type(d) is DynamicsEnsemble for d in dynamics):
            return None
        ensembles = cast("Sequence[DynamicsEnsemble]", dynamics)
        try:
            return cls(ensembles)
        except ValueError:
            return None
