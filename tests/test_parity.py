"""Parity of every algorithm's loss, target and penalty with the reference formula.

"Parity" here means: on a small fixed batch with fixed weights (seeded, or explicit tensors), the number
the suite computes (through the function the algorithm calls) equals, within 1e-5, the number a minimal
restatement of the reference's formula gives. The restatements below are written in this file from the
papers and the reference implementations' documented behaviour (shared/reference/algorithms.md), not
copied from the suite: they loop explicitly over members, pairs, rows, samples and layers, in float64
where the inputs are plain tensors, so a vectorisation slip in the suite (a wrong axis, a wrong member
pool, a missing term, a biased std) shows up as a mismatch.

Where the formula involves random draws (MOBILE's next-state samples and policy actions, COMBO's
proposals, MOREC's candidates and softmax draw), the restatement replays the same generator in the order
the suite documents (`Prediction.candidates`, `Prediction.sample`, `TanhGaussianActor.forward`,
`SAC.update`'s docstring), so both sides see the same draws and can be compared exactly.

Covered: MOPO's six uncertainty penalties over both member pools and the penalised reward `r − λu`;
MOBILE's Bellman-inconsistency penalty and its clamped critic target; COMBO's conservative term with its
importance corrections (both `rho_s`); EDAC's ensemble-gradient diversity (value and gradient); MOREC's
select/softmax filter with both cut modes and `min_length`; MBRCSL's return-to-go labels and the
evaluation's RTG decrement; the dynamics ensemble's NLL with its soft log-variance bounds, bound loss and
per-layer weight decay (value and gradient).
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from offline_mbrl.algorithms.combo import COMBOConfig, ConservativeTerm
from offline_mbrl.algorithms.mbrcsl.algorithm import MBRCSLConfig, RCSLNet, ReturnConditionedPolicy
from offline_mbrl.algorithms.mbrcsl.rollouts import collect_rollouts, returns_to_go
from offline_mbrl.algorithms.mobile import BellmanInconsistency, MOBILEConfig, bellman_inconsistency
from offline_mbrl.algorithms.mopo import penalty_hook
from offline_mbrl.algorithms.morec.algorithm import FilterConfig
from offline_mbrl.algorithms.morec.filter import RewardConsistencyFilter
from offline_mbrl.data.dataset import Batch, EnvSpec
from offline_mbrl.learning.edac import edac_diversity
from offline_mbrl.learning.evaluation import evaluate
from offline_mbrl.learning.penalties import PENALTIES, uncertainty
from offline_mbrl.learning.rollout import Step, rollout
from offline_mbrl.learning.sac import SAC, EDACRegulariser, SACConfig
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble, Prediction, training_loss

ATOL = 1e-5
RTOL = 1e-6
OBS, ACT = 3, 2  # observation and action sizes of the toy problems


def close(a, b) -> bool:
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=ATOL, rtol=RTOL
    )


# ---- MOPO's six penalties ---------------------------------------------------------------------------

E, K, B, D = 7, 5, 6, OBS + 1  # members, elites, rows, output dims ([next_obs, reward])
ELITES = [4, 1, 6, 0, 2]  # not sorted, and members 3 and 5 are outliers: the two pools give other numbers


def _prediction() -> Prediction:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(E, B, D, generator=g, dtype=torch.float64)  # (E, B, D)
    std = 0.2 + torch.rand(E, B, D, generator=g, dtype=torch.float64)  # (E, B, D)
    for outlier in (3, 5):  # outside the elites: far away and wide
        mean[outlier] += 2.0
        std[outlier] *= 3.0
    return Prediction(mean=mean, std=std, elites=torch.tensor(ELITES))


def _gauss_logpdf(x: float, mu: float, sigma: float) -> float:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def reference_penalty(name: str, pred: Prediction, sample, member, members: str) -> list[float]:
    """The reference formulas, row by row, member by member (plain Python floats)."""
    mu, sd = pred.mean.tolist(), pred.std.tolist()  # [E][B][D]
    pool = list(range(E)) if members == "all" else list(ELITES)
    x = sample.tolist()  # [B][D]
    out = []
    for b in range(B):
        if name == "max_aleatoric":  # MOPO: max_i ||σ_i||_2
            u = max(math.sqrt(sum(sd[i][b][d] ** 2 for d in range(D))) for i in pool)
        elif name == "max_pairwise_diff":  # MOReL: max_{i,j} ||μ_i − μ_j||_2
            u = max(
                math.sqrt(sum((mu[i][b][d] - mu[j][b][d]) ** 2 for d in range(D))) for i in pool for j in pool
            )
        elif name in ("ensemble_var", "ensemble_std"):  # the Gaussian mixture's variance, summed over dims
            var = 0.0
            for d in range(D):
                second = sum(sd[i][b][d] ** 2 + mu[i][b][d] ** 2 for i in pool) / len(pool)
                first = sum(mu[i][b][d] for i in pool) / len(pool)
                var += second - first**2
            u = var if name == "ensemble_var" else math.sqrt(var)
        elif name == "llv":  # LOMPO: population variance over members of log N(x; μ_i, σ_i²)
            logp = [sum(_gauss_logpdf(x[b][d], mu[i][b][d], sd[i][b][d]) for d in range(D)) for i in pool]
            m = sum(logp) / len(logp)
            u = sum((lp - m) ** 2 for lp in logp) / len(logp)
        elif name == "loo_kl":  # M2AC: KL(N_k || moment-matched mixture of the pool's other members)
            k = int(member[b])
            others = [i for i in pool if i != k]
            u = 0.0
            for d in range(D):
                o_mean = sum(mu[i][b][d] for i in others) / len(others)
                o_var = sum(sd[i][b][d] ** 2 + mu[i][b][d] ** 2 for i in others) / len(others) - o_mean**2
                k_var = sd[k][b][d] ** 2
                u += 0.5 * (math.log(o_var / k_var) + (k_var + (mu[k][b][d] - o_mean) ** 2) / o_var - 1.0)
        else:
            raise KeyError(name)
        out.append(u)
    return out


@pytest.mark.parametrize("members", ["elites", "all"])
@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_mopo_penalty_matches_its_formula(name, members):
    pred = _prediction()
    next_obs, rew, member = pred.sample(torch.Generator().manual_seed(1))  # (B, o), (B,), (B,) an elite
    sample = torch.cat([next_obs, rew.unsqueeze(-1)], dim=-1)  # (B, D): what was sampled
    suite = uncertainty(name, pred, sample, member, members)  # (B,)
    ref = reference_penalty(name, pred, sample, member, members)
    assert suite.shape == (B,)
    assert close(suite, ref), (name, members, suite.tolist(), ref)
    # the pools differ on this prediction: a penalty over the wrong pool fails the comparison above
    other = reference_penalty(name, pred, sample, member, "all" if members == "elites" else "elites")
    assert not close(suite, other)

    # MOPO's rollout reward through its step hook: r − λ·u(s, a), with the raw reward and u logged
    lam = 0.7
    step = Step(
        0,
        torch.zeros(B, OBS),
        torch.zeros(B, ACT),
        pred,
        next_obs,
        rew,
        torch.zeros(B, dtype=torch.bool),
        member,
    )
    out = penalty_hook(name, lam, members)(step)  # type: ignore[arg-type]
    assert close(out.rew, [float(rew[b]) - lam * ref[b] for b in range(B)])
    assert close(out.extras["penalty"], ref) and close(out.extras["raw_reward"], rew)


# ---- shared toy networks ----------------------------------------------------------------------------


def _dynamics(members: int = 4, elites: tuple[int, ...] = (2, 0, 3), scale: float = 1.0) -> DynamicsEnsemble:
    torch.manual_seed(3)
    cfg = DynamicsConfig(members=members, elites=len(elites), hidden=(8, 8), weight_decay=(0.0, 0.0, 0.0))
    model = DynamicsEnsemble(OBS, ACT, cfg)
    with torch.no_grad():
        model.elites.copy_(torch.tensor(elites))
        model.net.layers[-1].weight.mul_(scale)
        model.net.layers[-1].bias.mul_(scale)
    return model


def _learner(sac: SACConfig, critics: int, seed: int = 4) -> SAC:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(sac, actor_hidden=(16, 16), critic_hidden=(16, 16), critics=critics)
    learner = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, compile=False)
    with torch.no_grad():  # targets that differ from the online critics: using the wrong ones fails
        for p in learner.target_critics.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return learner


def _batch(n: int = 6, real: int = 2, seed: int = 5) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    act = torch.rand(n, ACT, generator=g) * 2 - 1
    next_obs = obs + 0.3 * torch.randn(n, OBS, generator=g)
    rew = torch.tensor([0.5, -2.0, 1.0, -3.0, 0.3, 2.0])[:n]  # some targets fall below 0 before the clamp
    term = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])[:n]
    from_model = torch.arange(n) >= real  # real rows first
    return Batch(obs, act, rew, next_obs, term, from_model)


def _q(critics, i: int, obs: torch.Tensor, act: torch.Tensor) -> float:
    """Critic i's value at one (s, a): `obs (o,)`, `act (a,)`."""
    return float(critics(obs.unsqueeze(0), act.unsqueeze(0))[i, 0])


def _pi(learner: SAC, obs: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The policy's action and log-density at one state for the given standard-normal noise."""
    a, logp = learner.actor.with_noise(obs.unsqueeze(0), eps.unsqueeze(0))
    return a[0], float(logp[0])


# ---- MOBILE -----------------------------------------------------------------------------------------


@torch.no_grad()
def reference_mobile_u(dynamics, learner: SAC, obs, act, samples: int, g: torch.Generator) -> list[float]:
    """u(s, a): for each elite, the mean over `samples` next-observation draws of min_j Q̄_j(s', a'),
    a' ~ π(s'); then the unbiased std across elites. Draws replayed as the suite makes them: the
    candidates' noise `(K, n, B, D)` first, then one policy noise row per candidate, candidate-major."""
    pred = dynamics.predict(obs, act)
    elites = pred.elites.tolist()
    k, b = len(elites), obs.shape[0]
    noise = torch.randn((k, samples, b, OBS + 1), generator=g)  # (K, n, B, D)
    eps = torch.randn((k * samples * b, ACT), generator=g)  # (K·n·B, a)
    n_critics = learner.cfg.critics
    out = []
    for row in range(b):
        per_elite = []
        for ki, e in enumerate(elites):
            total = 0.0
            for j in range(samples):
                s2 = pred.mean[e, row, :OBS] + pred.std[e, row, :OBS] * noise[ki, j, row, :OBS]
                a2, _ = _pi(learner, s2, eps[(ki * samples + j) * b + row])
                total += min(_q(learner.target_critics, c, s2, a2) for c in range(n_critics))
            per_elite.append(total / samples)
        m = sum(per_elite) / k
        out.append(math.sqrt(sum((v - m) ** 2 for v in per_elite) / (k - 1)))
    return out


def test_mobile_bellman_inconsistency_matches_its_formula():
    dynamics = _dynamics()
    learner = _learner(MOBILEConfig().sac, critics=3)
    batch = _batch()
    suite = bellman_inconsistency(
        dynamics, learner, batch.obs, batch.act, 4, torch.Generator().manual_seed(7)
    )
    ref = reference_mobile_u(dynamics, learner, batch.obs, batch.act, 4, torch.Generator().manual_seed(7))
    assert suite.shape == (6,) and min(ref) > 0
    assert close(suite, ref), (suite.tolist(), ref)


def test_mobile_target_matches_its_formula():
    """y = max(0, (r − β·u) + γ(1 − d)·min_j Q̄_j(s', a')), a' ~ π(s'), u = 0 on real rows; the critic loss
    is Σ_j mean_b (Q_j(s, a) − y)²."""
    beta, samples = 2.0, 4
    dynamics = _dynamics()
    learner = _learner(MOBILEConfig().sac, critics=2)
    cfg = learner.cfg
    assert cfg.deterministic_backup and cfg.target_min == 0.0
    batch = _batch()
    # suite: one critic step with MOBILE's hook (the target is computed before the step changes anything)
    q_before = learner.critics(batch.obs, batch.act).detach()  # (N, B)
    metrics: dict = {}
    hook = BellmanInconsistency(dynamics, beta, samples)
    loss, y, _ = learner._critic_step(batch, None, hook, torch.Generator().manual_seed(8), metrics)

    # restatement, replaying the generator: the next actions at s' first, then the penalty's draws
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        eps_next = torch.randn((6, ACT), generator=g)
        u = reference_mobile_u(dynamics, learner, batch.obs, batch.act, samples, g)
        ys = []
        for b in range(6):
            a2, _ = _pi(learner, batch.next_obs[b], eps_next[b])
            next_v = min(_q(learner.target_critics, j, batch.next_obs[b], a2) for j in range(2))
            penalty = beta * u[b] if bool(batch.from_model[b]) else 0.0
            target = (float(batch.rew[b]) - penalty) + cfg.gamma * (1.0 - float(batch.term[b])) * next_v
            ys.append(max(0.0, target))
    assert close(y, ys), (y.tolist(), ys)
    assert 0.0 in ys and any(v > 0 for v in ys)  # the clamp is active on some rows, not all
    td = sum(sum((float(q_before[j, b]) - ys[b]) ** 2 for b in range(6)) / 6 for j in range(2))
    assert close(loss, td)
    expected_penalty = sum(beta * u[b] for b in range(6) if bool(batch.from_model[b])) / 6
    assert close(metrics["target_penalty"], expected_penalty)


# ---- COMBO ------------------------------------------------------------------------------------------


def _lse(values: list[float], T: float) -> float:
    top = max(v / T for v in values)
    return T * (top + math.log(sum(math.exp(v / T - top) for v in values)))


@pytest.mark.parametrize("over", ["all", "repeat"])
@pytest.mark.parametrize("rho_s", ["mix", "model"])
def test_combo_conservative_term_matches_its_formula(rho_s, over):
    """Per critic i: w·T·mean_s logsumexp(cat_q_i/T) − w·mean_{real} Q_i(s, a), cat_q the R repeats of
    Q(s, a~π(s)) − log π(a|s), Q(s, a~π(s')) − log π(a|s'), Q(s, a~U[−1,1]) − log 0.5^|A|; summed over
    critics (each critic's loss gets its own term). `logsumexp_over=repeat` is what OfflineRL-Kit's code
    computes: a logsumexp over the 3 proposals of each repeat, then the mean over the R repeats."""
    R, w, T = 3, 2.5, 0.7
    cfg = COMBOConfig(repeats=R, cql_weight=w, temperature=T, rho_s=rho_s, logsumexp_over=over)
    learner = _learner(COMBOConfig().sac, critics=2)
    batch = _batch()
    n_rows, n_critics = 6, 2
    term = ConservativeTerm(cfg, torch.full((ACT,), -1.0), torch.full((ACT,), 1.0), torch.device("cpu"))
    suite, _ = term(learner, batch, torch.Generator().manual_seed(9))

    # restatement: the uniform draws (R·B, a), then the policy noise at s, then at s' (rows repeat-major)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        unif = -1.0 + 2.0 * torch.rand((R * n_rows, ACT), generator=g)
        eps_here = torch.randn((R * n_rows, ACT), generator=g)
        eps_next = torch.randn((R * n_rows, ACT), generator=g)
        log_unif = math.log(0.5**ACT)
        states = [b for b in range(n_rows) if rho_s == "mix" or bool(batch.from_model[b])]
        real = [b for b in range(n_rows) if not bool(batch.from_model[b])]
        total = 0.0
        for i in range(n_critics):
            lse = []
            for b in states:
                s = batch.obs[b]
                per_repeat = []  # the three proposals of repeat r
                for r in range(R):
                    a1, lp1 = _pi(learner, s, eps_here[r * n_rows + b])
                    a2, lp2 = _pi(learner, batch.next_obs[b], eps_next[r * n_rows + b])
                    per_repeat.append(
                        [
                            _q(learner.critics, i, s, a1) - lp1,
                            _q(learner.critics, i, s, a2) - lp2,  # π(s')'s action, valued at s
                            _q(learner.critics, i, s, unif[r * n_rows + b]) - log_unif,
                        ]
                    )
                if over == "all":  # 3R proposals in one logsumexp
                    lse.append(_lse([v for three in per_repeat for v in three], T))
                else:
                    lse.append(sum(_lse(three, T) for three in per_repeat) / R)
            q_real = sum(_q(learner.critics, i, batch.obs[b], batch.act[b]) for b in real) / len(real)
            total += w * (sum(lse) / len(lse)) - w * q_real
    assert close(suite, total), (float(suite), total)


# ---- EDAC (RAVL's critic regulariser) ---------------------------------------------------------------


def reference_edac(critics, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Σ over ordered pairs i ≠ j of cos(∇_a Q_i, ∇_a Q_j) (gradients normalised with eps 1e-10 in the
    norm), averaged over the batch, divided by N − 1. Differentiable in the critics' weights."""
    n, b = critics.members, obs.shape[0]
    grads = []
    for i in range(n):
        a = act.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(critics(obs, a)[i].sum(), a, create_graph=True)  # (B, a): Q_i's alone
        grads.append(g)
    total = torch.zeros(())
    for row in range(b):
        unit = [grads[i][row] / (torch.sqrt((grads[i][row] ** 2).sum()) + 1e-10) for i in range(n)]
        for i in range(n):
            for j in range(n):
                if i != j:
                    total = total + (unit[i] * unit[j]).sum()
    return total / b / (n - 1)


def test_edac_diversity_matches_its_formula():
    learner = _learner(SACConfig(), critics=4)
    batch = _batch()
    params = list(learner.critics.parameters())
    suite = edac_diversity(learner.critics, batch.obs, batch.act)
    ref = reference_edac(learner.critics, batch.obs, batch.act)
    assert close(suite, ref), (float(suite), float(ref))
    # the gradient the critics are trained with is the same too (the output bias gets none: ∇_a ignores it)
    g_suite = torch.autograd.grad(suite, params, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g_suite, g_ref, strict=True):
        assert (a is None and b is None) or close(a, b)
    # and the hook RAVL passes adds η times it
    reg, metrics = EDACRegulariser(0.5)(learner, batch, None)
    assert close(reg.detach(), 0.5 * ref.detach()) and close(metrics["critic_reg"], ref)


# ---- MOREC's reward-consistency filter --------------------------------------------------------------


def stub_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """A fixed stand-in with DynamicsReward's call signature: `next_obs (C, B, o)` -> r_D `(C, B)`."""
    return 1.0 - 0.3 * (next_obs - obs).square().sum(-1) + 0.1 * act.sum(-1)


def stub_reward_one(obs, act, next_obs) -> float:
    return (
        1.0
        - 0.3 * sum((float(next_obs[d]) - float(obs[d])) ** 2 for d in range(OBS))
        + 0.1 * sum(float(a) for a in act)
    )


def stub_terminated(obs, act, next_obs) -> torch.Tensor:
    return next_obs[..., 0] > 1.5


def stub_policy(obs: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([[0.5, -0.3], [0.2, 0.4], [-0.6, 0.1]])
    return torch.tanh(obs @ w)  # (B, a)


@torch.no_grad()
def reference_morec(dynamics, start: torch.Tensor, horizon: int, cfg: FilterConfig, g: torch.Generator):
    """Each row's stored transitions `[(obs, act, rew, next_obs, term)]`, step by step: candidates = elites ×
    samples next states; choose by argmax r_D or by softmax(r_D/T); where the chosen r_D < threshold (from
    step min_length on) and the state is not terminal, cut: stored as terminal ("terminal") or not stored
    ("drop"); the row stops either way. Draws replayed per step: the model's own sample (elite pick,
    noise), the candidates' noise, then (softmax) one multinomial draw for the batch."""
    b = start.shape[0]
    state = [start[r].clone() for r in range(b)]
    done = [False] * b
    stored: list[list[tuple]] = [[] for _ in range(b)]
    for h in range(horizon):
        obs = torch.stack(state)  # finished rows keep their last state (their draws are still made)
        act = stub_policy(obs)
        pred = dynamics.predict(obs, act)
        elites = pred.elites.tolist()
        k = len(elites)
        torch.randint(k, (b,), generator=g)  # Prediction.sample's elite pick ...
        torch.randn((b, OBS + 1), generator=g)  # ... and noise, replaced by the filter's choice
        noise = torch.randn((k, cfg.samples, b, OBS + 1), generator=g)  # (K, n, B, D)
        cands, scores = [], []
        for r in range(b):
            row_c, row_s = [], []
            for ki, e in enumerate(elites):
                for j in range(cfg.samples):
                    draw = pred.mean[e, r] + pred.std[e, r] * noise[ki, j, r]  # (D,)
                    row_c.append(draw)
                    row_s.append(stub_reward_one(obs[r], act[r], draw[:OBS]))
            cands.append(row_c)
            scores.append(row_s)
        if cfg.rule == "select":
            picks = [max(range(len(s)), key=lambda c, s=s: s[c]) for s in scores]
        else:
            probs = []
            for s in scores:
                z = [math.exp((v - max(s)) / cfg.temperature) for v in s]
                probs.append([v / sum(z) for v in z])
            # one draw per row from its (C,) probabilities; the suite hands torch.multinomial a transposed
            # (C, B) tensor, whose memory order decides which random number meets which entry: same here
            by_candidate = torch.tensor(probs).T.contiguous()  # (C, B)
            picks = torch.multinomial(by_candidate.T, 1, generator=g).squeeze(1).tolist()
        for r in range(b):
            if done[r]:
                continue
            draw, chosen = cands[r][picks[r]], scores[r][picks[r]]
            next_obs, rew = draw[:OBS], float(draw[OBS])
            env_term = float(next_obs[0]) > 1.5 or not bool(torch.isfinite(next_obs).all())
            cut = chosen < cfg.threshold and h >= cfg.min_length and not env_term
            if not (cut and cfg.cut == "drop"):
                stored[r].append((obs[r], act[r], rew, next_obs, float(env_term or cut)))
            if env_term or cut:
                done[r] = True
            else:
                state[r] = next_obs
    return stored


@pytest.mark.parametrize("min_length", [0, 2])
@pytest.mark.parametrize("cut", ["terminal", "drop"])
@pytest.mark.parametrize("rule", ["select", "softmax"])
def test_morec_filter_matches_its_rule(rule, cut, min_length):
    dynamics = _dynamics(scale=0.6)
    cfg = FilterConfig(rule=rule, temperature=0.1, threshold=0.75, samples=2, cut=cut, min_length=min_length)
    start = torch.randn(8, OBS, generator=torch.Generator().manual_seed(11))
    horizon = 6
    filt = RewardConsistencyFilter(stub_reward, cfg, stub_terminated)  # type: ignore[arg-type]
    ro = rollout(
        dynamics, stub_policy, start, horizon, stub_terminated, filt, torch.Generator().manual_seed(12)
    )
    ref = reference_morec(dynamics, start, horizon, cfg, torch.Generator().manual_seed(12))

    mask = ro.stored  # (H, B)
    lengths = [len(rows) for rows in ref]
    assert mask.sum(0).tolist() == lengths
    assert 0 < sum(ro.extras["cut"].max(0).values.tolist()) < 8  # some rows are cut, not all
    for r in range(8):
        hs = mask[:, r].nonzero().squeeze(-1).tolist()
        for h, (obs, act, rew, next_obs, term) in zip(hs, ref[r], strict=True):
            assert close(ro.obs[h, r], obs) and close(ro.act[h, r], act)
            assert close(ro.next_obs[h, r], next_obs) and close(ro.rew[h, r], rew)
            assert float(ro.term[h, r]) == term, (r, h)


# ---- MBRCSL -----------------------------------------------------------------------------------------


def reference_rtg(rews: list[float]) -> list[float]:
    """Return-to-go of each step: the sum of the rewards from that step to the end, its own included."""
    return [sum(rews[t:]) for t in range(len(rews))]


def test_mbrcsl_returns_to_go_match_their_definition():
    g = torch.Generator().manual_seed(13)
    rew = torch.randn(5, 4, generator=g)  # (H, B)
    lengths = [5, 3, 1, 4]  # rows that terminated early store fewer steps
    stored = torch.tensor([[h < n for n in lengths] for h in range(5)])  # (H, B)
    suite = returns_to_go(rew, stored)
    for b, n in enumerate(lengths):
        ref = reference_rtg([float(rew[h, b]) for h in range(n)])
        assert close(suite[:n, b], ref)


def test_mbrcsl_kept_rollouts_are_labelled_with_their_returns_to_go():
    """Through the rollout phase (model rollouts with Walker2d's termination, so lengths differ): every
    kept step's label is the sum of its rollout's model rewards from that step on."""
    dynamics = _dynamics(members=3, elites=(1, 2), scale=0.3)
    start = torch.tensor([[1.25, 0.0, 0.1], [1.3, 0.2, -0.1], [1.1, -0.3, 0.0]])
    spec = SimpleNamespace(env="walker2d", gym_id="Walker2d-v5")
    dataset = SimpleNamespace(spec=spec, start_obs=start, episode_returns=np.array([-0.5]))

    class Behaviour:
        def sample(self, obs, generator=None):
            return torch.tanh(torch.randn(obs.shape[0], ACT, generator=generator))

    a = MBRCSLConfig(rollout_batch=16, keep=10_000, max_batches=2, horizon=8, return_quantile=1.0)
    kept = collect_rollouts(dataset, dynamics, Behaviour(), a, seed=0, progress=False)  # type: ignore[arg-type]
    k = kept.returns.shape[0]
    lengths = [int((kept.traj == i).sum()) for i in range(k)]
    assert k >= 2 and len(set(lengths)) > 1  # several kept rollouts, of different lengths
    for i in range(k):
        rows = (kept.traj == i).nonzero().squeeze(-1).tolist()
        rews = [float(kept.rew[r]) for r in rows]
        assert close(kept.rtg[rows], reference_rtg(rews))
        assert close(kept.returns[i], sum(rews)) and float(kept.returns[i]) > -0.5


def test_mbrcsl_evaluation_rtg_starts_at_the_best_return_and_falls_by_each_reward():
    """In evaluation (Pendulum-v1, 2 episodes), the RTG fed to the policy at step t is
    target − Σ_{k<t} r_k, r_k the reward the environment returned."""
    spec = EnvSpec("Pendulum-v1", "pendulum", 3, 1, (-2.0,), (2.0,), 200, None, None, "none")
    torch.manual_seed(14)
    fed: list[torch.Tensor] = []

    class Recording(RCSLNet):
        def forward(self, obs, rtg):
            fed.append(rtg.clone())
            return super().forward(obs, rtg)

    target = 37.5
    net = Recording(spec, (8,), torch.zeros(3), torch.ones(3), 10.0, target)
    inner = ReturnConditionedPolicy(net, torch.device("cpu"))
    seen: list[np.ndarray] = []

    class Spy:  # records the rewards evaluation hands to the policy
        def reset(self, n):
            inner.reset(n)

        def act(self, obs, last_rew):
            if last_rew is not None:
                seen.append(np.array(last_rew, dtype=np.float64))
            return inner.act(obs, last_rew)

    result = evaluate(Spy(), spec, episodes=2, seed=0)
    assert len(fed) == 200 and len(seen) == 199
    for ep in range(2):
        rtg = target
        for t in range(200):
            if t > 0:
                rtg -= float(seen[t - 1][ep])
            assert abs(float(fed[t][ep]) - rtg) < 1e-3 * max(1.0, abs(rtg)), (ep, t)
        # the rewards seen are the episode's: the return less them is one Pendulum reward (the last step's)
        last = result.returns[ep] - sum(float(s[ep]) for s in seen)
        assert -16.3 - 1e-3 <= last <= 1e-3


# ---- the dynamics ensemble's loss -------------------------------------------------------------------


def reference_dynamics_loss(
    model: DynamicsEnsemble, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """OfflineRL-Kit's EnsembleDynamics.learn, restated member by member in float64: soft-clamped
    log-variance (lv = max − softplus(max − lv); lv = min + softplus(lv − min)); Σ_members mean_{b,d}
    (μ − y)²·exp(−lv) + lv; + 0.01·Σmax_logvar − 0.01·Σmin_logvar; + Σ_layers wd·0.5·Σ_members ||W||²
    (its get_decay_loss)."""
    layers = list(model.net.layers)
    wds = model.cfg.weight_decay
    mx, mn = model.max_logvar.double(), model.min_logvar.double()
    members, _, out = model.cfg.members, inputs.shape[1], model.obs_dim + 1
    loss = torch.zeros((), dtype=torch.float64)
    for e in range(members):
        h = (inputs[e].double() - model.input_mean.double()) / model.input_std.double()  # (b, in)
        for li, layer in enumerate(layers):
            h = h @ layer.weight[e].double() + layer.bias[e].double()
            if li < len(layers) - 1:
                h = h * torch.sigmoid(h)  # Swish
        mean, lv = h[:, :out], h[:, out:]
        lv = mx - torch.log1p(torch.exp(mx - lv))
        lv = mn + torch.log1p(torch.exp(lv - mn))
        total = torch.zeros((), dtype=torch.float64)
        for row in range(mean.shape[0]):
            for d in range(out):
                y = targets[e, row, d].double()
                total = total + (mean[row, d] - y) ** 2 * torch.exp(-lv[row, d]) + lv[row, d]
        loss = loss + total / (mean.shape[0] * out)
    loss = loss + 0.01 * mx.sum() - 0.01 * mn.sum()
    for wd, layer in zip(wds, layers, strict=True):
        loss = loss + wd * (0.5 * (layer.weight.double() ** 2).sum())
    return loss


def test_dynamics_nll_matches_the_reference_loss():
    torch.manual_seed(15)
    cfg = DynamicsConfig(members=3, elites=2, hidden=(6, 6, 6, 6))  # the default 5 weight-decay values
    assert cfg.weight_decay == (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) and cfg.logvar_loss_coef == 0.01
    model = DynamicsEnsemble(OBS, ACT, cfg)
    with torch.no_grad():
        model.net.layers[-1].weight.mul_(4.0)  # raw log-variances on both sides of the bounds
        model.max_logvar.copy_(0.5 + 0.3 * torch.randn(OBS + 1))
        model.min_logvar.copy_(-1.0 + 0.3 * torch.randn(OBS + 1))
        model.input_mean.copy_(0.2 * torch.randn(OBS + ACT))
        model.input_std.copy_(0.5 + torch.rand(OBS + ACT))
    inputs = torch.randn(3, 5, OBS + ACT)  # (E, b, in): each member its own batch
    targets = torch.randn(3, 5, OBS + 1)  # (E, b, [Δobs, reward])
    suite = training_loss(model, inputs, targets)
    ref = reference_dynamics_loss(model, inputs, targets)
    assert close(suite, ref), (float(suite), float(ref))
    # the weight decay is not negligible here: dropping it (or its ½) would fail the comparison
    decay = sum(
        wd * 0.5 * float((layer.weight.detach() ** 2).sum())
        for wd, layer in zip(cfg.weight_decay, model.net.layers, strict=True)
    )
    assert decay > 1e-4
    params = list(model.parameters())
    g_suite = torch.autograd.grad(suite, params)
    g_ref = torch.autograd.grad(ref, params)
    assert all(close(a, b) for a, b in zip(g_suite, g_ref, strict=True))
