"""EDAC's ensemble-gradient diversity term (An et al., NeurIPS 2021), RAVL's critic regulariser: the mean
over the batch of the pairwise cosines of the N critics' action-gradients, which the critic loss adds with
weight η. The SAC learner shares its critics' forward pass with the TD loss (`EDACRegulariser.from_q`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from offline_mbrl.data.dataset import Batch

if TYPE_CHECKING:
    from offline_mbrl.learning.sac import SAC, CriticEnsemble

_EDAC_EPS = 1e-10  # keeps a zero action-gradient from dividing by zero, as in the EDAC code


def edac_diversity(critics: CriticEnsemble, obs: Tensor, act: Tensor) -> Tensor:
    """EDAC's diversity term: mean over the batch of Σ_{i≠j} cos(∇_a Q_i, ∇_a Q_j), divided by N − 1.

    Differentiable with respect to the critics' parameters (the action-gradients keep their graph).
    """
    act_n = per_member_actions(critics, act)
    return edac_from_q(critics(obs, act_n), act_n)


def per_member_actions(critics: CriticEnsemble, act: Tensor) -> Tensor:
    """One copy of the actions per member, `(N, B, a)` (`(K, N, B, a)` with seeds), requiring grad, so
    that one backward gives every member's own action-gradient."""
    if critics.members < 2:
        raise ValueError("edac_diversity needs at least 2 critics")
    return act.detach().unsqueeze(-3).repeat_interleave(critics.members, dim=-3).requires_grad_(True)


def edac_from_q(q: Tensor, act_n: Tensor) -> Tensor:
    """EDAC's diversity term from the critics' values `q (…, N, B)` at `act_n` (`per_member_actions`):
    a scalar, or `(K,)` per seed."""
    n = q.shape[-2]
    (grad,) = torch.autograd.grad(q.sum(), act_n, create_graph=True)  # (…, N, B, a)
    unit = grad / (grad.norm(dim=-1, keepdim=True) + _EDAC_EPS)  # (…, N, B, a)
    all_pairs = unit.sum(-3).pow(2).sum(-1)  # (…, B) Σ_{i,j} <u_i, u_j>
    diagonal = unit.pow(2).sum(dim=(-3, -1))  # (…, B) Σ_i ‖u_i‖²
    return (all_pairs - diagonal).mean(-1) / (n - 1)


class EDACRegulariser:
    """RAVL's critic regulariser: `η · edac_diversity` over every row of the batch.

    The learner calls `from_q` with the critics' values on per-member action copies, the same forward
    that its TD loss uses; called as a hook, it makes that forward itself."""

    def __init__(self, eta: float):
        self.eta = eta

    def __call__(
        self, learner: SAC, batch: Batch, generator: torch.Generator | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        act_n = per_member_actions(learner.critics, batch.act)
        return self.from_q(learner.critics(batch.obs, act_n), act_n)

    def from_q(self, q: Tensor, act_n: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        reg = edac_from_q(q, act_n)
        return self.eta * reg, {"critic_reg": reg.detach()}

    @classmethod
    def over_seeds(cls, hooks: Sequence[EDACRegulariser]) -> EDACRegulariser:
        """K seeds' terms are one: the term has no state and works on `(K, N, B)` values as it is."""
        if len({h.eta for h in hooks}) != 1:
            raise ValueError("seeds batched together share one EDAC weight η")
        return hooks[0]
