"""Every uncertainty penalty on a hand-built prediction, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from offline_mbrl.learning.penalties import PENALTIES
from offline_mbrl.models.dynamics import Prediction

# Three members, one transition, D = 2 ([next_obs (1 dim), reward]); elites are members 0 and 1.
MEAN = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]], [[6.0, 8.0]]])  # (3, 1, 2)
STD = torch.tensor([[[1.0, 0.0 + 1e-9]], [[0.0 + 1e-9, 2.0]], [[6.0, 8.0]]])
PRED = Prediction(mean=MEAN, std=STD, elites=torch.tensor([0, 1]))
SAMPLE = torch.tensor([[0.0, 0.0]])
MEMBER = torch.tensor([0])


def value(name, members="elites", sample=SAMPLE, member=MEMBER):
    out = PENALTIES[name](PRED, sample, member, members)
    assert out.shape == (1,)
    return out.item()


def test_max_aleatoric_elites_vs_all():
    assert value("max_aleatoric") == pytest.approx(2.0)  # max(||(1, 0)||, ||(0, 2)||)
    assert value("max_aleatoric", "all") == pytest.approx(10.0)  # member 2: ||(6, 8)||


def test_max_pairwise_diff():
    assert value("max_pairwise_diff") == pytest.approx(5.0)  # ||(3, 4) - (0, 0)||
    assert value("max_pairwise_diff", "all") == pytest.approx(10.0)  # ||(6, 8) - (0, 0)||


def test_ensemble_var_and_std_of_the_mixture():
    # elites: per dim, E[σ² + μ²] - μ̄²: dim0 (1 + 9)/2 - 1.5² = 2.75; dim1 (4 + 16)/2 - 2² = 6
    assert value("ensemble_var") == pytest.approx(8.75)
    assert value("ensemble_std") == pytest.approx(math.sqrt(8.75))


def test_llv_is_the_variance_of_member_log_likelihoods():
    pred = Prediction(
        mean=torch.zeros(2, 1, 1), std=torch.tensor([[[1.0]], [[2.0]]]), elites=torch.tensor([0, 1])
    )
    x = torch.tensor([[1.0]])
    logp0 = -0.5 - 0.5 * math.log(2 * math.pi)
    logp1 = -0.5 * 0.25 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    expected = ((logp0 - logp1) / 2) ** 2  # population variance of two values
    assert PENALTIES["llv"](pred, x, torch.tensor([0]), "elites").item() == pytest.approx(expected)


def test_loo_kl_between_the_sampling_member_and_the_others():
    mean = torch.tensor([[[0.0]], [[1.0]], [[3.0]]])
    std = torch.tensor([[[1.0]], [[1.0]], [[1.0]]])
    pred = Prediction(mean=mean, std=std, elites=torch.tensor([0, 1, 2]))
    # member 0 vs the moment-matched mixture of members 1 and 2: mean 2, var 1 + ((1-2)² + (3-2)²)/2 = 2
    expected = 0.5 * (math.log(2.0 / 1.0) + (1.0 + (0.0 - 2.0) ** 2) / 2.0 - 1.0)
    got = PENALTIES["loo_kl"](pred, torch.zeros(1, 1), torch.tensor([0]), "elites").item()
    assert got == pytest.approx(expected)
    # with one member identical to the mixture of the others the KL is zero
    pred2 = Prediction(mean=torch.zeros(2, 1, 1), std=torch.ones(2, 1, 1), elites=torch.tensor([0, 1]))
    assert PENALTIES["loo_kl"](pred2, torch.zeros(1, 1), torch.tensor([1]), "elites").item() == pytest.approx(
        0.0
    )


def test_penalties_are_batched_and_non_negative():
    g = torch.Generator().manual_seed(0)
    pred = Prediction(
        mean=torch.randn(7, 64, 5, generator=g),
        std=torch.rand(7, 64, 5, generator=g) + 0.1,
        elites=torch.arange(5),
    )
    sample, _, member = pred.sample(g)
    full = torch.cat([sample, torch.randn(64, 1, generator=g)], dim=1)
    for name, fn in PENALTIES.items():
        out = fn(pred, full, member, "elites")
        assert out.shape == (64,), name
        assert torch.all(out >= -1e-6) and torch.isfinite(out).all(), name
