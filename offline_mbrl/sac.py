"""Soft actor-critic with an N-critic ensemble: the one actor-critic learner every algorithm shares.

The critics are one `EnsembleMLP`, so MOPO's 2 critics and RAVL's 10 or 50 run as one batched network.
Algorithms add their idea through plain callables (`UpdateHook`) instead of subclasses. Each receives
the learner (`sac.actor`, `sac.critics`, `sac.target_critics`, `sac.log_alpha`), the batch (with its
`from_model` mask) and the generator, and returns `(value, metrics)`; a hook that keeps state of its own
(COMBO's Lagrange multiplier) is an object with `state_dict`/`load_state_dict`, checkpointed with the run
(`model_based.Hooks`).

- `critic_reg`: a scalar added to the critic loss as returned (the hook applies its own weight); RAVL
  passes `EDACRegulariser(η)` (EDAC's ensemble-gradient diversity).
- `target_penalty`: a `(B,)` penalty subtracted from the reward inside the target, computed without
  gradients; MOBILE passes its Bellman-inconsistency penalty on model rows. With `deterministic_backup`
  (no entropy term in the target) and `target_min` (MOBILE's reference clamps the target at 0) this
  gives MOBILE's critic update.
- `actor_lr_cosine_steps`: MOPO's cosine-annealed actor learning rate.

One update, by default in the order of the RAVL reference (EDAC): α, actor, critic, target networks;
`update_order` gives MOBILE's reference order (critic, actor, α) and COMBO's (actor, α, critic). The
target networks always move last. Whatever the order, α and the actor share one policy sample at `obs`,
drawn when the first of them runs; each loss uses the α current when it runs (`alpha_max` clamps it, as
MOBILE's reference clamps α to [0, 1]).

Deviations from the reference code, all deliberate:

- α and the actor share one policy sample at `obs` (the EDAC code draws two); the gradients have the same
  expectation and one actor forward is saved. The actor loss uses the α just updated, as the reference does.
- The actor backward accumulates gradients into the actor's parameters only (`inputs=`), so the critics'
  weight gradients are never computed for the actor loss instead of being computed and thrown away.
- Log-probabilities are densities of the environment-unit action: the affine map from [-1, 1] to the action
  box adds `-Σ log|scale|`. On the [-1, 1] MuJoCo boxes this is zero and everything equals the references;
  on a wider box (Pendulum, [-2, 2]) the entropy compared with the target entropy is in environment units.
- MOPO's reference (OfflineRL-Kit) steps its cosine schedule once per epoch; here the learning rate is
  annealed every update, `lr · ½(1 + cos(π t / T))`, held at 0 after T updates.
- `edac_diversity` sums the off-diagonal cosines as `‖Σ_i g_i‖² − Σ_i ‖g_i‖²` (the same number as the
  reference's masked N×N Gram matrix) so its memory grows with N, not N².
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import torch
from torch import Tensor, nn

from offline_mbrl.data import Batch
from offline_mbrl.errors import UserError
from offline_mbrl.nets import EnsembleLinear, EnsembleMLP, mlp

UpdateOrder = Literal["alpha_actor_critic", "critic_actor_alpha", "actor_alpha_critic"]


class UpdateHook(Protocol):
    """A critic regulariser or a target penalty: `(learner, batch, generator) -> (value, metrics)`."""

    def __call__(
        self, learner: SAC, batch: Batch, generator: torch.Generator | None
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_EDAC_EPS = 1e-10  # keeps a zero action-gradient from dividing by zero, as in the EDAC code


@dataclass(frozen=True)
class SACConfig:
    actor_hidden: tuple[int, ...] = (256, 256)  # the actor MLP's hidden layer sizes
    critic_hidden: tuple[int, ...] = (256, 256)  # each critic's hidden layer sizes
    critics: int = 2  # N, the critic ensemble's size (min over all N in targets and the actor loss)
    actor_lr: float = 1e-4  # actor Adam learning rate
    critic_lr: float = 3e-4  # critic Adam learning rate
    alpha_lr: float = 1e-4  # entropy-temperature Adam learning rate
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target-network Polyak rate
    auto_alpha: bool = True  # learn α towards the target entropy (else α stays init_alpha)
    init_alpha: float = 1.0  # initial entropy temperature α
    target_entropy: float | None = None  # entropy target of auto-α; None: -act_dim
    log_std_min: float = -5.0  # the actor's log-std lower clamp
    log_std_max: float = 2.0  # the actor's log-std upper clamp
    edac_init: bool = False  # hidden biases 0.1; output layers U(±1e-3) actor, U(±3e-3) critics
    actor_lr_cosine_steps: int | None = None  # anneal the actor lr to 0 over this many updates
    deterministic_backup: bool = False  # no entropy term in the critic target (MOBILE)
    target_min: float | None = None  # clamp the critic target from below (MOBILE's reference: 0)
    alpha_max: float | None = None  # clamp the α used in the losses from above (MOBILE's reference: 1)
    # the order of the three updates within one step (the references differ; see the module docstring)
    update_order: UpdateOrder = "alpha_actor_critic"

    def __post_init__(self) -> None:
        problems = []
        if self.critics < 1:
            problems.append(f"critics must be at least 1, got {self.critics}")
        if min((*self.actor_hidden, *self.critic_hidden), default=0) < 1:
            problems.append("actor_hidden and critic_hidden must be positive layer sizes")
        rates = {"actor_lr": self.actor_lr, "critic_lr": self.critic_lr, "alpha_lr": self.alpha_lr}
        problems += [f"{k} must be a number >= 0, got {v}" for k, v in rates.items() if not v >= 0]
        if not (0.0 <= self.gamma <= 1.0) or not (0.0 < self.tau <= 1.0):
            problems.append(f"gamma must lie in [0, 1] and tau in (0, 1], got {self.gamma}, {self.tau}")
        if not self.init_alpha >= 0:
            problems.append(f"init_alpha must be >= 0, got {self.init_alpha}")
        if problems:
            raise UserError("algo.sac: " + "; ".join(problems))


class TanhGaussianActor(nn.Module):
    """Gaussian in an unbounded space, squashed by tanh into [-1, 1], then mapped onto the action box."""

    act_scale: Tensor  # buffers, registered in __init__
    act_bias: Tensor
    log_scale_sum: Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_low: Sequence[float] | Tensor,
        act_high: Sequence[float] | Tensor,
        hidden: Sequence[int] = (256, 256),
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
    ):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim)  # mean and log-std heads as one output layer
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        low = torch.as_tensor(act_low, dtype=torch.float32).reshape(act_dim)
        high = torch.as_tensor(act_high, dtype=torch.float32).reshape(act_dim)
        scale = (high - low) / 2
        self.register_buffer("act_scale", scale)
        self.register_buffer("act_bias", (high + low) / 2)
        self.register_buffer("log_scale_sum", scale.abs().log().sum())

    def forward(
        self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Reparameterised action in environment units `(..., A)` and its log-density `(...,)`."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)  # (..., A) each
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        if deterministic:
            eps = torch.zeros_like(mean)
        else:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + log_std.exp() * eps
        # log(1 - tanh(u)^2) written without tanh, stable for large |u|
        log_det_tanh = 2.0 * (_LOG_2 - u - nn.functional.softplus(-2.0 * u))
        log_prob = (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI - log_det_tanh).sum(-1) - self.log_scale_sum
        return self.act_bias + self.act_scale * torch.tanh(u), log_prob


class CriticEnsemble(nn.Module):
    """N independent Q-networks on `[obs, act]`, evaluated as one batched MLP."""

    def __init__(self, obs_dim: int, act_dim: int, members: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.members = members
        self.net = EnsembleMLP(members, obs_dim + act_dim, hidden, 1)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        """`obs (B, o)`, `act (B, a)` shared by all members or `(N, B, a)` one per member -> `(N, B)`."""
        if act.dim() == 3:
            obs = obs.unsqueeze(0).expand(act.shape[0], -1, -1)  # (N, B, o)
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)


def edac_diversity(critics: CriticEnsemble, obs: Tensor, act: Tensor) -> Tensor:
    """EDAC's diversity term: mean over the batch of Σ_{i≠j} cos(∇_a Q_i, ∇_a Q_j), divided by N − 1.

    Differentiable with respect to the critics' parameters (the action-gradients keep their graph).
    """
    n = critics.members
    if n < 2:
        raise ValueError("edac_diversity needs at least 2 critics")
    # one copy of the actions per member so that one backward gives every member's own action-gradient
    act_n = act.detach().unsqueeze(0).repeat(n, 1, 1).requires_grad_(True)  # (N, B, a)
    q = critics(obs, act_n)  # (N, B)
    (grad,) = torch.autograd.grad(q.sum(), act_n, create_graph=True)  # (N, B, a)
    unit = grad / (grad.norm(dim=-1, keepdim=True) + _EDAC_EPS)  # (N, B, a)
    all_pairs = unit.sum(0).pow(2).sum(-1)  # (B,) Σ_{i,j} <u_i, u_j>
    diagonal = unit.pow(2).sum(dim=(0, 2))  # (B,) Σ_i ‖u_i‖²
    return (all_pairs - diagonal).mean() / (n - 1)


class EDACRegulariser:
    """RAVL's critic regulariser: `η · edac_diversity` over every row of the batch."""

    def __init__(self, eta: float):
        self.eta = eta

    def __call__(
        self, learner: SAC, batch: Batch, generator: torch.Generator | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        reg = edac_diversity(learner.critics, batch.obs, batch.act)
        return self.eta * reg, {"critic_reg": reg.detach()}


def _edac_init(
    hidden: Sequence[nn.Linear | EnsembleLinear], output: nn.Linear | EnsembleLinear, bound: float
) -> None:
    for layer in hidden:
        nn.init.constant_(layer.bias, 0.1)
    nn.init.uniform_(output.weight, -bound, bound)
    nn.init.uniform_(output.bias, -bound, bound)


class SAC(nn.Module):
    """Actor, N critics, their targets and α, with their optimisers. `update` is one gradient step."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_low: Sequence[float] | Tensor,
        act_high: Sequence[float] | Tensor,
        cfg: SACConfig,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        self.cfg = cfg
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.actor = TanhGaussianActor(
            obs_dim, act_dim, act_low, act_high, cfg.actor_hidden, cfg.log_std_min, cfg.log_std_max
        )
        self.critics = CriticEnsemble(obs_dim, act_dim, cfg.critics, cfg.critic_hidden)
        if cfg.edac_init:
            linears = [m for m in self.actor.net if isinstance(m, nn.Linear)]
            _edac_init(linears[:-1], linears[-1], 1e-3)
            critic_layers = cast("Sequence[EnsembleLinear]", self.critics.net.layers)  # nn.ModuleList
            _edac_init(critic_layers[:-1], critic_layers[-1], 3e-3)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)), requires_grad=cfg.auto_alpha)
        self.to(device)

        self._actor_params = list(self.actor.parameters())
        self._critic_params: list[Tensor] = list(self.critics.parameters())
        self._target_params: list[Tensor] = list(self.target_critics.parameters())
        self.actor_optim = torch.optim.Adam(self._actor_params, lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self._critic_params, lr=cfg.critic_lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr) if cfg.auto_alpha else None
        self.updates = 0  # completed updates: the position of the actor-lr schedule

    @torch.no_grad()
    def act(
        self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        return self.actor(obs, deterministic, generator)[0]

    def actor_lr(self) -> float:
        steps = self.cfg.actor_lr_cosine_steps
        if steps is None:
            return self.cfg.actor_lr
        return self.cfg.actor_lr * 0.5 * (1.0 + math.cos(math.pi * min(self.updates, steps) / steps))

    def update(
        self,
        batch: Batch,
        critic_reg: UpdateHook | None = None,
        target_penalty: UpdateHook | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor | float]:
        """One step of α, actor and critics (in `update_order`), then the targets; returns detached 0-dim
        metrics (no host sync).

        Metrics: critic_loss, actor_loss, alpha, entropy, q_mean, q_min_mean, target_mean, actor_lr, plus
        alpha_loss with auto-α, target_penalty (its batch mean) and whatever the hooks return.
        Random draws (from `generator`, or torch's default generator when None), in the update order: the
        policy actions at `batch.obs` when α or the actor first runs; in the critic step the next actions
        at `batch.next_obs`, then the target penalty's, then the regulariser's.
        """
        cfg = self.cfg
        metrics: dict[str, Tensor | float] = {}
        sample: tuple[Tensor, Tensor] | None = None  # the policy's action and log-density at batch.obs
        actor_loss = critic_loss = y = q = None
        lr = self.actor_lr()
        for part in cfg.update_order.split("_"):
            if part in ("alpha", "actor") and sample is None:
                sample = self.actor(batch.obs, generator=generator)  # (B, a), (B,)
            if part == "alpha":
                assert sample is not None
                if self.alpha_optim is not None:
                    alpha_loss = -(self.log_alpha * (sample[1].detach() + self.target_entropy)).mean()
                    self.alpha_optim.zero_grad(set_to_none=True)
                    alpha_loss.backward()
                    self.alpha_optim.step()
                    metrics["alpha_loss"] = alpha_loss.detach()
            elif part == "actor":
                assert sample is not None
                actor_loss = self._actor_step(batch.obs, *sample, lr)
            else:
                critic_loss, y, q = self._critic_step(batch, critic_reg, target_penalty, generator, metrics)
        assert sample is not None and actor_loss is not None and critic_loss is not None
        assert y is not None and q is not None

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
        self.updates += 1

        metrics.update(
            critic_loss=critic_loss,
            actor_loss=actor_loss,
            alpha=self.alpha(),
            entropy=-sample[1].detach().mean(),
            q_mean=q.mean(),
            q_min_mean=q.min(0).values.mean(),
            target_mean=y.mean(),
            actor_lr=lr,  # a Python float: a fresh device tensor per update would be a host-to-device copy
        )
        return metrics

    def alpha(self) -> Tensor:
        """The entropy temperature the losses use now: exp(log α), clamped above by `alpha_max`."""
        alpha = self.log_alpha.detach().exp()
        return alpha if self.cfg.alpha_max is None else alpha.clamp(max=self.cfg.alpha_max)

    def _actor_step(self, obs: Tensor, act_pi: Tensor, log_pi: Tensor, lr: float) -> Tensor:
        for group in self.actor_optim.param_groups:
            group["lr"] = lr
        q_pi = self.critics(obs, act_pi).min(0).values  # (B,)
        actor_loss = (self.alpha() * log_pi - q_pi).mean()
        self.actor_optim.zero_grad(set_to_none=True)
        torch.autograd.backward(actor_loss, inputs=self._actor_params)
        self.actor_optim.step()
        return actor_loss.detach()

    def _critic_step(
        self,
        batch: Batch,
        critic_reg: UpdateHook | None,
        target_penalty: UpdateHook | None,
        generator: torch.Generator | None,
        metrics: dict[str, Tensor | float],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One critic step; returns the detached TD loss, the target `(B,)` and the Q-values `(N, B)`."""
        cfg = self.cfg
        alpha = self.alpha()
        with torch.no_grad():
            next_act, next_log_pi = self.actor(batch.next_obs, generator=generator)  # (B, a), (B,)
            next_v = self.target_critics(batch.next_obs, next_act).min(0).values  # (B,)
            if not cfg.deterministic_backup:
                next_v = next_v - alpha * next_log_pi
            rew = batch.rew
            if target_penalty is not None:
                penalty, penalty_metrics = target_penalty(self, batch, generator)  # (B,)
                rew = rew - penalty
                metrics["target_penalty"] = penalty.mean()
                metrics.update(penalty_metrics)
            y = rew + cfg.gamma * (1.0 - batch.term) * next_v  # (B,)
            if cfg.target_min is not None:
                y = y.clamp(min=cfg.target_min)
        q = self.critics(batch.obs, batch.act)  # (N, B)
        critic_loss = (q - y).pow(2).mean(1).sum()
        loss = critic_loss
        if critic_reg is not None:
            reg, reg_metrics = critic_reg(self, batch, generator)
            loss = loss + reg
            metrics.update(reg_metrics)
        self.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optim.step()
        return critic_loss.detach(), y, q.detach()

    def checkpoint(self) -> dict:
        """A snapshot (copied tensors) of everything a resumed training needs to continue exactly."""
        return copy.deepcopy(
            {
                "modules": self.state_dict(),
                "actor_optim": self.actor_optim.state_dict(),
                "critic_optim": self.critic_optim.state_dict(),
                "alpha_optim": None if self.alpha_optim is None else self.alpha_optim.state_dict(),
                "updates": self.updates,
            }
        )

    def restore(self, ckpt: dict) -> None:
        self.load_state_dict(ckpt["modules"])
        self.actor_optim.load_state_dict(ckpt["actor_optim"])
        self.critic_optim.load_state_dict(ckpt["critic_optim"])
        if self.alpha_optim is not None:
            self.alpha_optim.load_state_dict(ckpt["alpha_optim"])
        self.updates = ckpt["updates"]
