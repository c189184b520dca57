"""The uncertainty-penalty family compared by Lu et al. (ICLR 2022), as functions of one model prediction.

Every penalty maps a `Prediction` (all members' means and stds over `[next_obs, reward]`, shape
`(E, B, D)`) plus the sampled transition to a `(B,)` tensor `u(s, a)`; MOPO's reward is `r - λ u`.
The true simulator's prediction (`Prediction.exact`, `offline_mbrl.models.oracle`) has no uncertainty:
`uncertainty(name, ...)`, the entry point the algorithms use, returns 0 for it without evaluating a
formula (log-likelihood and KL formulas are undefined at zero std).
`members` chooses the members a penalty is taken over: "elites" (default; the members rollouts sample
from, as in the JAX reference unifloral) or "all" (OfflineRL-Kit's MOPO took the max aleatoric over
all 7 while sampling only elites, undocumented; here it is a setting you choose).

Formulas and normalisation, in environment units (no per-dimension rescaling):
- max_aleatoric (MOPO): `max_i ||σ_i||_2`.
- max_pairwise_diff (MOReL): `max_{i,j} ||μ_i − μ_j||_2`.
- ensemble_std: the std of the Gaussian mixture per dimension, `sqrt(mean_i(σ_i² + μ_i²) − μ̄²)`, reduced
  over dimensions by the L2 norm (= sqrt of the total mixture variance); ensemble_var is its square.
- llv (LOMPO): variance over members of `log N(s'; μ_i, σ_i²)` (diagonal, summed over dimensions) at
  the sampled `[next_obs, reward]`.
- loo_kl (M2AC): `KL(N_k || N_{-k})` between the member `k` that produced the sample and a diagonal
  Gaussian moment-matched to the mixture of the other members.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from offline_mbrl.models.dynamics import Prediction

PenaltyName = Literal["max_aleatoric", "max_pairwise_diff", "ensemble_std", "ensemble_var", "llv", "loo_kl"]
Members = Literal["elites", "all"]


def _select(pred: Prediction, members: Members) -> tuple[torch.Tensor, torch.Tensor]:
    if members == "all":
        return pred.mean, pred.std
    return pred.mean[pred.elites], pred.std[pred.elites]  # (K, B, D)


def max_aleatoric(
    pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members
) -> torch.Tensor:
    _, std = _select(pred, members)
    return torch.linalg.vector_norm(std, dim=-1).amax(0)  # (B,)


def max_pairwise_diff(
    pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members
) -> torch.Tensor:
    mean, _ = _select(pred, members)
    diff = mean.unsqueeze(0) - mean.unsqueeze(1)  # (K, K, B, D)
    return torch.linalg.vector_norm(diff, dim=-1).amax(dim=(0, 1))


def _mixture_var(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    second = (std.square() + mean.square()).mean(0)  # (B, D)
    return (second - mean.mean(0).square()).clamp_min(0.0)


def ensemble_var(
    pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members
) -> torch.Tensor:
    mean, std = _select(pred, members)
    return _mixture_var(mean, std).sum(-1)


def ensemble_std(
    pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members
) -> torch.Tensor:
    return ensemble_var(pred, sample, member, members).sqrt()


def llv(pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members) -> torch.Tensor:
    mean, std = _select(pred, members)
    z = (sample.unsqueeze(0) - mean) / std
    log_density = (-0.5 * z.square() - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)  # (K, B)
    return log_density.var(0, unbiased=False)


def loo_kl(pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members) -> torch.Tensor:
    mean, std = pred.mean, pred.std  # (E, B, D): `member` indexes all members
    E = mean.shape[0]
    pool = torch.zeros(E, dtype=torch.bool, device=mean.device)
    pool[torch.arange(E, device=mean.device) if members == "all" else pred.elites] = True
    batch = torch.arange(mean.shape[1], device=mean.device)
    own_mean, own_var = mean[member, batch], std[member, batch].square()  # (B, D)
    others = pool.unsqueeze(1) & (
        torch.arange(E, device=mean.device).unsqueeze(1) != member.unsqueeze(0)
    )  # (E, B)
    w = others.float().unsqueeze(-1)
    n = w.sum(0).clamp_min(1.0)  # (B, 1)
    o_mean = (w * mean).sum(0) / n
    o_var = ((w * (std.square() + mean.square())).sum(0) / n - o_mean.square()).clamp_min(1e-12)
    kl = 0.5 * (torch.log(o_var / own_var) + (own_var + (own_mean - o_mean).square()) / o_var - 1.0)
    return kl.sum(-1)


PENALTIES: dict[str, Callable[[Prediction, torch.Tensor, torch.Tensor, Members], torch.Tensor]] = {
    "max_aleatoric": max_aleatoric,
    "max_pairwise_diff": max_pairwise_diff,
    "ensemble_std": ensemble_std,
    "ensemble_var": ensemble_var,
    "llv": llv,
    "loo_kl": loo_kl,
}


def uncertainty(
    name: str, pred: Prediction, sample: torch.Tensor, member: torch.Tensor, members: Members
) -> torch.Tensor:
    """Penalty `name` of `pred` `(B,)`; exactly 0 for the true simulator's prediction."""
    if pred.exact:
        return torch.zeros(pred.mean.shape[1], device=pred.mean.device, dtype=pred.mean.dtype)
    return PENALTIES[name](pred, sample, member, members)
