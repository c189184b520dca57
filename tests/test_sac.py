"""SAC: the squashed-Gaussian actor, the critic ensemble, EDAC's diversity term and the update itself."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from offline_mbrl.data.dataset import Batch
from offline_mbrl.learning.edac import edac_diversity
from offline_mbrl.learning.sac import SAC, CriticEnsemble, EDACRegulariser, SACConfig, TanhGaussianActor

SMALL = SACConfig(actor_hidden=(16, 16), critic_hidden=(16, 16))
FROZEN = replace(
    SMALL, actor_lr=0.0, critic_lr=0.0, alpha_lr=0.0
)  # Adam with lr 0 leaves weights as they are


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Networks this small gain nothing from intra-op threads, and lose a lot when a core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_batch(n=8, obs_dim=3, act_dim=2, seed=0, term=None):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, obs_dim, generator=g),
        act=torch.rand(n, act_dim, generator=g) * 2 - 1,
        rew=torch.randn(n, generator=g),
        next_obs=torch.randn(n, obs_dim, generator=g),
        term=(torch.rand(n, generator=g) < 0.3).float() if term is None else torch.full((n,), float(term)),
    )


def params(module):
    return [p.detach().clone() for p in module.parameters()]


# ---------------------------------------------------------------- actor


def test_actions_have_the_right_shapes_and_stay_inside_a_non_unit_box():
    torch.manual_seed(0)
    low, high = [-2.0, 0.0, -0.5], [2.0, 1.0, 3.5]
    sac = SAC(5, 3, low, high, replace(SMALL, log_std_max=2.0))
    with torch.no_grad():  # wide log-std and large means: plenty of samples pile up at the bounds
        sac.actor.net[-1].bias.copy_(torch.tensor([4.0, -4.0, 0.0, 2.0, 2.0, 2.0]))
    obs = torch.randn(4000, 5)
    for deterministic in (False, True):
        a = sac.act(obs, deterministic=deterministic)
        assert a.shape == (4000, 3)
        assert (a >= torch.tensor(low)).all() and (a <= torch.tensor(high)).all()
    single, log_prob = sac.actor(torch.randn(5))
    assert single.shape == (3,) and log_prob.shape == ()
    q = sac.critics(obs[:7], sac.act(obs[:7]))
    assert q.shape == (2, 7)


def test_sampling_is_reproducible_with_a_generator_and_deterministic_is_tanh_of_the_mean():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, [-2.0, -2.0], [2.0, 2.0], (8,))
    obs = torch.randn(10, 3)
    a1, _ = actor(obs, generator=torch.Generator().manual_seed(7))
    a2, _ = actor(obs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a1, a2)
    mean = actor.net(obs)[:, :2]
    det, _ = actor(obs, deterministic=True)
    torch.testing.assert_close(det, 2.0 * torch.tanh(mean))


def test_log_prob_matches_torch_distributions_tanh_affine_transform():
    torch.manual_seed(1)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    actor = TanhGaussianActor(3, 2, low, high, (8,), log_std_min=-5.0, log_std_max=2.0)
    obs = torch.randn(500, 3)
    act, log_prob = actor(obs, generator=torch.Generator().manual_seed(0))
    mean, log_std = actor.net(obs).chunk(2, dim=-1)
    log_std = log_std.clamp(-5.0, 2.0)
    dist = TransformedDistribution(
        Normal(mean.double(), log_std.exp().double()),
        [TanhTransform(), AffineTransform((high + low).double() / 2, (high - low).double() / 2)],
    )
    # atanh is ill-conditioned right at the bounds; the samples here stay well inside
    inside = ((act - low) / (high - low) - 0.5).abs().amax(-1) < 0.49
    assert inside.float().mean() > 0.5
    expected = dist.log_prob(act.double()).sum(-1)
    torch.testing.assert_close(log_prob[inside].double(), expected[inside], rtol=1e-4, atol=1e-4)


def test_log_prob_is_the_density_of_the_samples_monte_carlo():
    """A histogram of a million one-dimensional samples in [-2, 2] agrees with exp(log_prob) in every bin."""
    torch.manual_seed(0)
    actor = TanhGaussianActor(1, 1, [-2.0], [2.0], (4,))
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(torch.tensor([0.4, math.log(0.8)]))  # u ~ N(0.4, 0.8²)
    act, log_prob = actor(torch.zeros(1_000_000, 1), generator=torch.Generator().manual_seed(3))
    act, density = act.detach().squeeze(-1).double(), log_prob.detach().double().exp()
    edges = torch.linspace(-2.0, 2.0, 81, dtype=torch.float64)
    bins = torch.bucketize(act, edges).clamp(1, 80) - 1
    counts = torch.bincount(bins, minlength=80).double()
    empirical = counts / (len(act) * (edges[1] - edges[0]))
    mean_density = torch.bincount(bins, weights=density, minlength=80) / counts.clamp(min=1)
    busy = counts > 8000
    busy[[0, -1]] = False  # the density is too steep at the bounds for a bin average to stand for it
    assert busy.sum() > 30
    torch.testing.assert_close(mean_density[busy], empirical[busy], rtol=0.05, atol=0.0)
    # integral of the density over the box is 1
    assert float((mean_density * (edges[1] - edges[0]))[counts > 0].sum()) == pytest.approx(1.0, abs=0.03)


# ---------------------------------------------------------------- critics and EDAC


def linear_critics(directions, obs_dim=2):
    """Critics Q_i(s, a) = <d_i, a> + <c_i, s>: their action-gradients are the chosen directions d_i."""
    d = torch.as_tensor(directions, dtype=torch.float32)
    n, act_dim = d.shape
    critics = CriticEnsemble(obs_dim, act_dim, n, hidden=())
    with torch.no_grad():
        critics.net.layers[0].weight[:, obs_dim:, 0] = d
    return critics


@pytest.mark.parametrize(
    ("directions", "expected"),
    [
        ([[1.0, 0.0], [3.0, 0.0]], 2.0),  # identical directions: every pair has cosine 1 -> N(N-1)/(N-1) = N
        ([[1.0, 0.0], [0.0, 0.5]], 0.0),  # orthogonal
        ([[1.0, 1.0], [-2.0, -2.0]], -2.0),  # opposite: 2 ordered pairs of -1, divided by N-1 = 1
        ([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], 3.0),  # identical, N = 3: 6 pairs / 2
        ([[1.0, 0.0], [2.0, 0.0], [0.0, 7.0]], 1.0),  # one pair of equal ones: 2 ordered pairs / 2
        ([[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]], -1.0),  # 2(-1 + 1/√2 - 1/√2) / 2
    ],
)
def test_edac_diversity_on_hand_built_critics(directions, expected):
    critics = linear_critics(directions)
    obs, act = torch.randn(5, 2), torch.randn(5, 2)
    assert float(edac_diversity(critics, obs, act).detach()) == pytest.approx(expected, abs=1e-5)


def test_edac_diversity_matches_a_pairwise_loop_and_trains_the_critics():
    torch.manual_seed(0)
    critics = CriticEnsemble(3, 2, 4, hidden=(8,))
    obs, act = torch.randn(6, 3), torch.randn(6, 2)
    grads = []
    for i in range(4):
        a = act.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(critics(obs, a)[i].sum(), a)
        grads.append(g / g.norm(dim=-1, keepdim=True))
    cos = sum((grads[i] * grads[j]).sum(-1) for i in range(4) for j in range(4) if i != j)
    value = edac_diversity(critics, obs, act)
    assert float(value.detach()) == pytest.approx(float(cos.mean() / 3), abs=1e-5)
    value.backward()
    # every weight shapes the action-gradients; the output bias alone does not
    assert all(layer.weight.grad.abs().sum() > 0 for layer in critics.net.layers)


def test_edac_diversity_needs_two_critics():
    with pytest.raises(ValueError):
        edac_diversity(CriticEnsemble(2, 2, 1, (4,)), torch.randn(3, 2), torch.randn(3, 2))


def test_critic_members_are_independent():
    torch.manual_seed(0)
    critics = CriticEnsemble(3, 2, 3, hidden=(8, 8))
    obs = torch.randn(5, 3)
    per_member = critics(obs, torch.randn(3, 5, 2))  # (N, B) with one action set per member
    assert per_member.shape == (3, 5)
    critics(obs, torch.randn(5, 2))[0].sum().backward()
    for layer in critics.net.layers:
        for p in (layer.weight, layer.bias):
            assert p.grad[0].abs().sum() > 0
            assert torch.count_nonzero(p.grad[1:]) == 0


def test_edac_init():
    torch.manual_seed(0)
    sac = SAC(4, 2, [-1.0] * 2, [1.0] * 2, replace(SMALL, edac_init=True, critics=3))
    linears = [m for m in sac.actor.net if isinstance(m, torch.nn.Linear)]
    assert all(torch.all(m.bias == 0.1) for m in linears[:-1])
    assert linears[-1].weight.abs().max() <= 1e-3 and linears[-1].bias.abs().max() <= 1e-3
    layers = sac.critics.net.layers
    assert all(torch.all(m.bias == 0.1) for m in layers[:-1])
    assert layers[-1].weight.abs().max() <= 3e-3 and layers[-1].weight.abs().max() > 1e-3
    assert all(
        torch.equal(a, b) for a, b in zip(params(sac.critics), params(sac.target_critics), strict=True)
    )


# ---------------------------------------------------------------- update


def test_target_networks_move_by_tau():
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(FROZEN, tau=0.25))
    with torch.no_grad():
        for p in sac.target_critics.parameters():
            p.copy_(torch.randn_like(p))
    before, online = params(sac.target_critics), params(sac.critics)
    metrics = sac.update(make_batch())
    assert all(torch.equal(a, b) for a, b in zip(online, params(sac.critics), strict=True))
    for t0, p, t1 in zip(before, online, params(sac.target_critics), strict=True):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * p)
    assert set(metrics) == {
        "critic_loss",
        "actor_loss",
        "alpha",
        "alpha_loss",
        "entropy",
        "q_mean",
        "q_max",
        "q_min_mean",
        "target_mean",
        "actor_lr",
    }
    assert isinstance(metrics["actor_lr"], float)  # a host number: no device tensor made per update
    tensors = [v for k, v in metrics.items() if k != "actor_lr"]
    assert all(v.dim() == 0 and not v.requires_grad for v in tensors)


@pytest.mark.parametrize(("target_entropy", "direction"), [(5.0, 1.0), (-50.0, -1.0)])
def test_alpha_moves_towards_the_target_entropy(target_entropy, direction):
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(SMALL, target_entropy=target_entropy, init_alpha=0.5))
    alpha = []
    for seed in range(3):
        alpha.append(float(sac.update(make_batch(seed=seed))["alpha"]))
    assert direction * (alpha[-1] - 0.5) > 0 and direction * (alpha[-1] - alpha[0]) > 0


def test_fixed_alpha_stays_put():
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(SMALL, auto_alpha=False, init_alpha=0.2))
    metrics = sac.update(make_batch())
    assert "alpha_loss" not in metrics and float(metrics["alpha"]) == pytest.approx(0.2)


def hand_target(sac, batch, seed, penalty=None):
    """Replay the update's random draws (policy actions at obs, then at next_obs) and build y by hand."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sac.actor(batch.obs, generator=g)
        next_act, next_log_pi = sac.actor(batch.next_obs, generator=g)
        q_next = sac.target_critics(batch.next_obs, next_act).min(0).values
        alpha = sac.log_alpha.exp()
        soft = q_next if sac.cfg.deterministic_backup else q_next - alpha * next_log_pi
        rew = batch.rew if penalty is None else batch.rew - penalty
        y = rew + sac.cfg.gamma * (1 - batch.term) * soft
        if sac.cfg.target_min is not None:
            y = y.clamp(min=sac.cfg.target_min)
        q = sac.critics(batch.obs, batch.act)
    return y, ((q - y) ** 2).mean(1).sum(), next_act


@pytest.mark.parametrize("deterministic_backup", [False, True])
@pytest.mark.parametrize("with_penalty", [False, True])
def test_critic_target_by_hand(deterministic_backup, with_penalty):
    torch.manual_seed(0)
    sac = SAC(3, 2, [-2.0] * 2, [2.0] * 2, replace(FROZEN, deterministic_backup=deterministic_backup))
    with torch.no_grad():
        sac.log_alpha.fill_(math.log(0.7))
        for p in sac.target_critics.parameters():
            p.add_(0.3 * torch.randn_like(p))  # targets differ from the online critics
    batch = make_batch(seed=1)
    penalty = torch.linspace(0.5, 2.0, len(batch))
    seen = {}

    def target_penalty(learner, b, generator):
        seen.update(learner=learner, batch=b, generator=generator)
        return penalty, {"penalty/max": penalty.max()}

    y, critic_loss, _ = hand_target(sac, batch, seed=4, penalty=penalty if with_penalty else None)
    gen = torch.Generator().manual_seed(4)
    metrics = sac.update(batch, target_penalty=target_penalty if with_penalty else None, generator=gen)
    torch.testing.assert_close(metrics["target_mean"], y.mean())
    torch.testing.assert_close(metrics["critic_loss"], critic_loss)
    if with_penalty:
        # the hook sees the learner, the batch and the run's generator, and its metrics are returned
        assert seen["learner"] is sac and seen["batch"] is batch and seen["generator"] is gen
        torch.testing.assert_close(metrics["target_penalty"], penalty.mean())
        assert float(metrics["penalty/max"]) == 2.0
    # the entropy term really is in (or out of) the target
    soft_y, *_ = hand_target(replace_cfg(sac, deterministic_backup=not deterministic_backup), batch, seed=4)
    assert not torch.allclose(soft_y, y)


def replace_cfg(sac, **changes):
    sac.cfg = replace(sac.cfg, **changes)
    return sac


def test_target_min_clamps_the_target():
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(FROZEN, target_min=0.0, deterministic_backup=True))
    batch = replace(make_batch(term=1.0), rew=torch.tensor([-3.0, 2.0, -1.0, 0.5, 1.0, -0.1, 4.0, 0.0]))
    metrics = sac.update(batch)
    assert float(metrics["target_mean"]) == pytest.approx((2.0 + 0.5 + 1.0 + 4.0) / 8)


def test_critic_regulariser_enters_the_loss():
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(SMALL, critics=3))
    calls = []

    def reg(learner, batch, generator):
        calls.append((learner, batch.obs.shape, batch.act.shape))
        value = edac_diversity(learner.critics, batch.obs, batch.act)
        return value, {"critic_reg": value.detach()}

    metrics = sac.update(make_batch(), critic_reg=reg)
    assert calls == [(sac, (8, 3), (8, 2))]
    assert "critic_reg" in metrics and metrics["critic_reg"].dim() == 0


def test_edac_regulariser_weights_the_diversity_and_reports_it_unweighted():
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(SMALL, critics=3))
    batch = make_batch()
    value, metrics = EDACRegulariser(0.25)(sac, batch, None)
    raw = edac_diversity(sac.critics, batch.obs, batch.act)
    torch.testing.assert_close(value, 0.25 * raw)
    torch.testing.assert_close(metrics["critic_reg"], raw.detach())


def test_actor_lr_cosine_schedule():
    torch.manual_seed(0)
    sac = SAC(3, 2, [-1.0] * 2, [1.0] * 2, replace(SMALL, actor_lr=1e-3, actor_lr_cosine_steps=4))
    lrs = [float(sac.update(make_batch(seed=s))["actor_lr"]) for s in range(6)]
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * min(t, 4) / 4)) for t in range(6)]
    assert lrs == pytest.approx(expected, abs=1e-9)
    assert sac.actor_optim.param_groups[0]["lr"] == 0.0


def test_learns_a_contextual_bandit():
    """One-step problem, reward -(a - 0.5 s)²: the mean action approaches 0.5 s and Q fits the reward."""
    torch.manual_seed(0)
    cfg = SACConfig(
        actor_hidden=(32, 32), critic_hidden=(32, 32), actor_lr=3e-3, critic_lr=3e-3, alpha_lr=3e-3
    )
    sac = SAC(1, 1, [-1.0], [1.0], cfg)
    g = torch.Generator().manual_seed(0)
    for _ in range(800):
        obs = torch.rand(128, 1, generator=g) * 2 - 1
        act = torch.rand(128, 1, generator=g) * 2 - 1
        rew = -((act - 0.5 * obs) ** 2).squeeze(-1)
        sac.update(Batch(obs, act, rew, obs, torch.ones(128)), generator=g)
    obs = torch.linspace(-1, 1, 101).unsqueeze(-1)
    err = (sac.act(obs, deterministic=True) - 0.5 * obs).abs()
    assert float(err.max()) < 0.1, float(err.max())
    act = torch.rand(101, 1, generator=g) * 2 - 1
    with torch.no_grad():
        q_err = (sac.critics(obs, act) + ((act - 0.5 * obs) ** 2).squeeze(-1)).abs()
    assert float(q_err.mean()) < 0.05, float(q_err.mean())


def test_checkpoint_restore_continues_bitwise_identically():
    cfg = replace(SMALL, critics=3, actor_lr_cosine_steps=20)
    batches = [make_batch(seed=s) for s in range(12)]

    def run(sac, bs, g):
        for b in bs:
            sac.update(b, critic_reg=EDACRegulariser(0.5), generator=g)

    torch.manual_seed(0)
    sac = SAC(3, 2, [-2.0] * 2, [2.0] * 2, cfg)
    g = torch.Generator().manual_seed(1)
    run(sac, batches[:6], g)
    buf = io.BytesIO()
    torch.save({"sac": sac.checkpoint(), "rng": g.get_state()}, buf)
    run(sac, batches[6:], g)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    torch.manual_seed(123)  # a different initialisation, overwritten by the restore
    resumed = SAC(3, 2, [-2.0] * 2, [2.0] * 2, cfg)
    resumed.restore(saved["sac"])
    g2 = torch.Generator()
    g2.set_state(saved["rng"])
    run(resumed, batches[6:], g2)
    assert resumed.updates == sac.updates == 12
    for (name, a), b in zip(sac.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    # the optimiser state matters: restoring the weights alone does not reproduce the run
    weights_only = SAC(3, 2, [-2.0] * 2, [2.0] * 2, cfg)
    weights_only.load_state_dict(saved["sac"]["modules"])
    g3 = torch.Generator()
    g3.set_state(saved["rng"])
    run(weights_only, batches[6:], g3)
    assert not torch.equal(weights_only.actor.net[0].weight, sac.actor.net[0].weight)


# ---------------------------------------------------------------- seeds batched on a leading axis


def stack(batches):
    return Batch(
        *(torch.stack([getattr(b, f) for b in batches]) for f in ("obs", "act", "rew", "next_obs", "term"))
    )


def lone_learners(cfg, seeds):
    """One lone learner per seed, built as a run builds it: after seeding torch's generator."""
    learners = []
    for s in seeds:
        torch.manual_seed(s)
        learners.append(SAC(3, 2, [-1.0, -2.0], [1.0, 2.0], cfg))
    return learners


RAVL_SMALL = replace(SMALL, critics=3, edac_init=True)


@pytest.mark.parametrize(
    "cfg, eta",
    [
        (SMALL, 0.0),
        (RAVL_SMALL, 1.0),
        (replace(SMALL, update_order="critic_actor_alpha", actor_lr_cosine_steps=6), 0.0),
    ],
)
def test_a_batched_seed_learns_exactly_what_its_lone_learner_learns(cfg, eta):
    seeds = (0, 1, 2)
    lone = lone_learners(cfg, seeds)
    batched = SAC.batch_of(lone_learners(cfg, seeds))
    reg = EDACRegulariser(eta) if eta else None
    lone_gens = [torch.Generator().manual_seed(100 + s) for s in seeds]
    batch_gens = [torch.Generator().manual_seed(100 + s) for s in seeds]
    for step in range(6):
        batches = [make_batch(n=16, seed=10 * step + s) for s in seeds]
        lone_metrics = [
            sac.update(b, critic_reg=reg, generator=g)
            for sac, b, g in zip(lone, batches, lone_gens, strict=True)
        ]
        metrics = batched.update(stack(batches), critic_reg=reg, generator=batch_gens)
        for k in range(3):
            for name in ("critic_loss", "actor_loss", "alpha", "q_mean", "target_mean", "entropy"):
                assert torch.allclose(metrics[name][k], lone_metrics[k][name], rtol=1e-5, atol=1e-6), name
    for k, sac in enumerate(lone):
        mine = batched.seed_checkpoint(k)
        theirs = sac.checkpoint()
        for name, value in theirs["modules"].items():
            assert torch.allclose(mine["modules"][name], value, rtol=1e-5, atol=1e-6), name
        for opt in ("actor_optim", "critic_optim", "alpha_optim"):
            for i, state in theirs[opt]["state"].items():
                for key, value in state.items():
                    assert torch.allclose(mine[opt]["state"][i][key], value, rtol=1e-4, atol=1e-7), (
                        opt,
                        i,
                        key,
                    )
        assert mine["updates"] == theirs["updates"] == 6


def test_one_seeds_data_and_weights_leave_the_other_seeds_bit_identical():
    """Change seed 1's batches and initial weights: seeds 0 and 2 end bit for bit where they did."""
    seeds = (0, 1, 2)

    def train(other):
        learners = lone_learners(RAVL_SMALL, seeds)
        if other:
            learners[1] = lone_learners(RAVL_SMALL, (7,))[0]
        batched = SAC.batch_of(learners)
        gens = [torch.Generator().manual_seed(100 + s) for s in seeds]
        for step in range(4):
            batches = [make_batch(n=16, seed=10 * step + s + (1000 * other if s == 1 else 0)) for s in seeds]
            batched.update(stack(batches), critic_reg=EDACRegulariser(1.0), generator=gens)
        return [batched.seed_checkpoint(k)["modules"] for k in range(3)]

    same, changed = train(False), train(True)
    for k in (0, 2):
        for name, value in same[k].items():
            assert torch.equal(changed[k][name], value), (k, name)
    assert not torch.equal(changed[1]["critics.net.layers.0.weight"], same[1]["critics.net.layers.0.weight"])


def test_a_seed_moves_between_a_batched_and_a_lone_learner_and_continues_the_same():
    seeds = (3, 4)
    batched = SAC.batch_of(lone_learners(RAVL_SMALL, seeds))
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for step in range(3):
        batched.update(stack([make_batch(n=16, seed=step + s) for s in seeds]), generator=gens)
    lone = lone_learners(RAVL_SMALL, (99,))[0]
    lone.restore(batched.seed_checkpoint(1))  # seed 4 alone, from the batched learner's state
    lone_gen = torch.Generator()
    lone_gen.set_state(gens[1].get_state())
    for step in range(3, 6):
        batches = [make_batch(n=16, seed=step + s) for s in seeds]
        batched.update(stack(batches), generator=gens)
        lone.update(batches[1], generator=lone_gen)
    for name, value in lone.checkpoint()["modules"].items():
        assert torch.allclose(batched.seed_checkpoint(1)["modules"][name], value, rtol=1e-5, atol=1e-6), name
    actor = TanhGaussianActor(3, 2, [-1.0, -2.0], [1.0, 2.0], RAVL_SMALL.actor_hidden)
    actor.load_state_dict(batched.lone_actor_state(1))  # policy.pt of a batched seed loads as a lone actor
    obs = torch.randn(5, 3)
    expected = batched.actor(obs.unsqueeze(0).expand(2, -1, -1), deterministic=True)[0][1]
    assert torch.allclose(actor(obs, deterministic=True)[0], expected, atol=1e-6)


def test_a_batched_learners_target_penalty_acts_on_each_seed_alone():
    """A seed-batched learner's hooks work on the seed axis: a `(K, B)` penalty lowers seed k's targets
    by its own row only."""
    batch = stack([make_batch(seed=0), make_batch(seed=1)])

    def penalty(learner, b, g):
        return torch.stack([torch.zeros(8), torch.ones(8)]), {}

    def targets(hook):
        learner = SAC.batch_of(lone_learners(SMALL, (0, 1)))
        gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
        return learner.update(batch, target_penalty=hook, generator=gens)["target_mean"]

    plain, penalised = targets(None), targets(penalty)
    assert torch.allclose(plain - penalised, torch.tensor([0.0, 1.0]), atol=1e-5)
    with pytest.raises(ValueError, match="2 generators for 3 seeds"):
        SAC.batch_of(lone_learners(SMALL, (0, 1, 2))).update(
            stack([make_batch(seed=s) for s in range(3)]), generator=[torch.Generator()] * 2
        )


# ---------------------------------------------------------------- compiled update


def test_the_compiled_update_learns_what_the_eager_one_learns():
    """torch.compile on the update's network passes (CPU here; the GPU check runs it on CUDA): the same
    learner within rounding, for a lone learner and a batch of seeds, with MOBILE's order and clamps."""
    cfg = replace(SMALL, update_order="critic_actor_alpha", target_min=0.0, alpha_max=1.0)
    for seeds in (None, 2):
        learners = []
        for compiled in (False, True):
            torch.manual_seed(0)
            if seeds is None:
                learners.append(SAC(3, 2, [-1.0, -2.0], [1.0, 2.0], cfg, compile=compiled))
            else:
                learners.append(SAC.batch_of(lone_learners(cfg, range(seeds)), compile=compiled))
        assert learners[1].compiled and not learners[0].compiled
        gens = [[torch.Generator().manual_seed(s) for s in range(seeds or 1)] for _ in learners]
        for step in range(5):
            batches = [make_batch(n=16, seed=10 * step + s) for s in range(seeds or 1)]
            batch = batches[0] if seeds is None else stack(batches)
            metrics = [
                sac.update(batch, generator=g[0] if seeds is None else g)
                for sac, g in zip(learners, gens, strict=True)
            ]
            for name in ("critic_loss", "actor_loss", "q_mean", "target_mean"):
                assert torch.allclose(metrics[0][name], metrics[1][name], rtol=1e-4, atol=1e-5), name
        eager, compiled = (sac.state_dict() for sac in learners)
        for name, value in eager.items():
            assert (compiled[name] - value).norm() <= 1e-3 * value.norm() + 1e-6, name
