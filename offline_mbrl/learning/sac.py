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

Seeds batched (`SAC(..., seeds=K)`): K independent learners in one module, every tensor with a leading
seed axis: the actor is a K-member `EnsembleMLP`, the critics one `EnsembleMLP` of K·N members, log α has
shape (K,), a batch's fields are `(K, B, ...)` and the update takes one generator per seed. Every loss is a
sum of per-seed losses and the parameters of different seeds are disjoint, so no seed's gradient, Adam
step or metric reads another seed's numbers: a seed's arithmetic is that of a lone learner (a test
checks both). `seed_checkpoint(k)` / `restore_seed(k, ckpt)` move one seed to and from the lone
learner's checkpoint format, so a batched seed's run folder is an ordinary run's. A batched learner's
hooks take the `(K, B, ...)` batch and the K generators and return `(K,)` values (`(K, B)` penalties):
`model_based.over_seeds` makes them from the K seeds' own hooks (EDAC's, MOBILE's, COMBO's).

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
- With the EDAC regulariser, the critics' forward pass on the batch is shared by the TD loss and the
  diversity term (one forward on per-member copies of the actions, whose values are the same), instead of
  the reference's two forwards: the same gradients, about a fifth fewer FLOPs per RAVL update.
- Adam is torch's fused implementation (one kernel for all of a network's tensors); its arithmetic is
  Adam's, its rounding can differ from the reference's per-tensor loop in the last bits.
- `edac_diversity` sums the off-diagonal cosines as `‖Σ_i g_i‖² − Σ_i ‖g_i‖²` (the same number as the
  reference's masked N×N Gram matrix) so its memory grows with N, not N².
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import torch
from torch import Tensor, nn

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.nets import EnsembleLinear, EnsembleMLP, mlp
from offline_mbrl.core.precision import Precision, apply_precision
from offline_mbrl.data.dataset import Batch
from offline_mbrl.learning.edac import (
    EDACRegulariser,
    per_member_actions,
)

UpdateOrder = Literal["alpha_actor_critic", "critic_actor_alpha", "actor_alpha_critic"]
# One generator, or one per seed for a seed-batched learner (None: torch's default generator)
Generators = torch.Generator | Sequence[torch.Generator] | None


_COMPILE: bool | None = None  # this process's choice (--compile / --no-compile); None: compile on CUDA only


def set_compile(value: bool | None) -> None:
    """Compile the SAC update (True), keep it eager (False), or decide by device (None: CUDA compiles;
    on a CPU the compiled update measured no faster, benchmarks/results/speed_cpu)."""
    global _COMPILE
    _COMPILE = value


def compile_default(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda" if _COMPILE is None else _COMPILE


def standard_normal(like: Tensor, generator: Generators) -> Tensor:
    """N(0, 1) noise shaped like `like`; with one generator per seed, seed k's slice comes from
    generator k, drawn exactly as a lone learner with that generator draws it."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    if len(generator) != like.shape[0]:
        raise ValueError(f"{len(generator)} generators for {like.shape[0]} seeds")
    shape = like.shape[1:]
    draws = [torch.randn(shape, generator=g, device=like.device, dtype=like.dtype) for g in generator]
    return torch.stack(draws)


class UpdateHook(Protocol):
    """A critic regulariser or a target penalty: `(learner, batch, generator) -> (value, metrics)`."""

    def __call__(
        self, learner: SAC, batch: Batch, generator: torch.Generator | None
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


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
    # the critics the actor loss maximises: the online ones (every reference but one), or the target
    # networks (MOREC-MOBILE's released MOBILE with 2 critics: polixir/morec mobile.py#L198-L200)
    actor_critics: Literal["online", "target"] = "online"

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
        seeds: int | None = None,
    ):
        super().__init__()
        # mean and log-std heads as one output layer; K seeds: one K-member ensemble, (K, B, obs) inputs
        out = 2 * act_dim
        self.net = mlp(obs_dim, hidden, out) if seeds is None else EnsembleMLP(seeds, obs_dim, hidden, out)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        low = torch.as_tensor(act_low, dtype=torch.float32).reshape(act_dim)
        high = torch.as_tensor(act_high, dtype=torch.float32).reshape(act_dim)
        scale = (high - low) / 2
        self.register_buffer("act_scale", scale)
        self.register_buffer("act_bias", (high + low) / 2)
        self.register_buffer("log_scale_sum", scale.abs().log().sum())

    def forward(
        self, obs: Tensor, deterministic: bool = False, generator: Generators = None
    ) -> tuple[Tensor, Tensor]:
        """Reparameterised action in environment units `(..., A)` and its log-density `(...,)`."""
        noise_shape = obs.new_empty(*obs.shape[:-1], self.act_scale.shape[0])
        eps = torch.zeros_like(noise_shape) if deterministic else standard_normal(noise_shape, generator)
        return self.with_noise(obs, eps)

    def with_noise(self, obs: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """`forward` with the standard-normal noise given: a function of tensors alone (compilable)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)  # (..., A) each
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        u = mean + log_std.exp() * eps
        # log(1 - tanh(u)^2) written without tanh, stable for large |u|
        log_det_tanh = 2.0 * (_LOG_2 - u - nn.functional.softplus(-2.0 * u))
        log_prob = (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI - log_det_tanh).sum(-1) - self.log_scale_sum
        return self.act_bias + self.act_scale * torch.tanh(u), log_prob

    def sampler(self, generator: Generators = None) -> Callable[[Tensor], Tensor]:
        """`obs -> action` sampled with `generator`, without gradients (rollouts' exploration policy)."""

        @torch.no_grad()
        def sample(obs: Tensor) -> Tensor:
            return self(obs, generator=generator)[0]

        return sample


class CriticEnsemble(nn.Module):
    """N independent Q-networks on `[obs, act]`, evaluated as one batched MLP (K·N members for K seeds)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        members: int,
        hidden: Sequence[int] = (256, 256),
        seeds: int | None = None,
    ):
        super().__init__()
        self.members, self.seeds = members, seeds
        self.net = EnsembleMLP(members * (seeds or 1), obs_dim + act_dim, hidden, 1)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        """`obs (B, o)`, `act (B, a)` shared by all members or `(N, B, a)` one per member -> `(N, B)`;
        with K seeds, `obs (K, B, o)` and `act (K, B, a)` or `(K, N, B, a)` -> `(K, N, B)`."""
        n = self.members
        if self.seeds is None:
            if act.dim() == 3:
                obs = obs.unsqueeze(0).expand(act.shape[0], -1, -1)  # (N, B, o)
            return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)
        k, b = obs.shape[0], obs.shape[1]
        if act.dim() == 3:  # (K, B, a): the same actions for every member of a seed
            act = act.unsqueeze(1).expand(k, n, b, -1)
        x = torch.cat([obs.unsqueeze(1).expand(k, n, b, -1), act], dim=-1)  # (K, N, B, o + a)
        return self.net(x.reshape(k * n, b, -1)).view(k, n, b)


def _edac_init(
    hidden: Sequence[nn.Linear | EnsembleLinear], output: nn.Linear | EnsembleLinear, bound: float
) -> None:
    for layer in hidden:
        nn.init.constant_(layer.bias, 0.1)
    nn.init.uniform_(output.weight, -bound, bound)
    nn.init.uniform_(output.bias, -bound, bound)


class SAC(nn.Module):
    """Actor, N critics, their targets and α, with their optimisers. `update` is one gradient step.

    `seeds=K`: K independent learners batched on a leading axis (the module docstring says how)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_low: Sequence[float] | Tensor,
        act_high: Sequence[float] | Tensor,
        cfg: SACConfig,
        device: torch.device | str = "cpu",
        seeds: int | None = None,
        compile: bool | None = None,
        precision: Precision = "fp32",
    ):
        super().__init__()
        if seeds is not None and seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        self.cfg, self.seeds, self.obs_dim, self.precision = cfg, seeds, obs_dim, precision
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.actor = TanhGaussianActor(
            obs_dim, act_dim, act_low, act_high, cfg.actor_hidden, cfg.log_std_min, cfg.log_std_max, seeds
        )
        self.critics = CriticEnsemble(obs_dim, act_dim, cfg.critics, cfg.critic_hidden, seeds)
        if cfg.edac_init:
            linears = [m for m in self.actor.net.modules() if isinstance(m, nn.Linear | EnsembleLinear)]
            _edac_init(linears[:-1], linears[-1], 1e-3)
            critic_layers = cast("Sequence[EnsembleLinear]", self.critics.net.layers)  # nn.ModuleList
            _edac_init(critic_layers[:-1], critic_layers[-1], 3e-3)
        apply_precision(self.actor, precision)
        apply_precision(self.critics, precision)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        log_alpha = torch.full(() if seeds is None else (seeds,), math.log(cfg.init_alpha))
        self.log_alpha = nn.Parameter(log_alpha, requires_grad=cfg.auto_alpha)
        self.to(device)

        self._actor_params = list(self.actor.parameters())
        self._critic_params: list[Tensor] = list(self.critics.parameters())
        self._target_params: list[Tensor] = list(self.target_critics.parameters())
        self.actor_optim = _adam(self._actor_params, cfg.actor_lr)
        self.critic_optim = _adam(self._critic_params, cfg.critic_lr)
        self.alpha_optim = _adam([self.log_alpha], cfg.alpha_lr) if cfg.auto_alpha else None
        self.updates = 0  # completed updates: the position of the actor-lr schedule
        # The update's network passes as functions of tensors alone (the noise drawn outside them), so
        # that `compile` can hand them to torch.compile: each pass with its backward becomes one fused,
        # fixed-shape graph. EDAC's second-order term and the hooks stay eager (double backward through
        # a compiled graph is unsupported); everything else of the step is the same code either way.
        self.compiled = compile = compile_default(device) if compile is None else compile
        self._policy: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] = self.actor.with_noise
        # bound methods, not modules: a module attribute would register the critics a second time
        self._q: Callable[[Tensor, Tensor], Tensor] = self.critics.forward
        self._target_q: Callable[[Tensor, Tensor], Tensor] = self.target_critics.forward
        if compile:
            # a graph the backend cannot compile runs eagerly instead of stopping the run; every learner
            # of a process (a benchmark's, a test's) guards the same functions: room for their graphs
            torch._dynamo.config.suppress_errors = True
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self._policy = torch.compile(self._policy, dynamic=False)
            self._q = torch.compile(self._q, dynamic=False)
            self._target_q = torch.compile(self._target_q, dynamic=False)

    def _sample(self, obs: Tensor, generator: Generators) -> tuple[Tensor, Tensor]:
        """The policy's reparameterised action and log-density at `obs`, through the (compiled) pass."""
        eps = standard_normal(obs.new_empty(*obs.shape[:-1], self.actor.act_scale.shape[0]), generator)
        return self._policy(obs, eps)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False, generator: Generators = None) -> Tensor:
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
        generator: Generators = None,
    ) -> dict[str, Tensor | float]:
        """One step of α, actor and critics (in `update_order`), then the targets; returns detached
        metrics (no host sync): 0-dim tensors, or `(K,)` per seed for a seed-batched learner.

        Metrics: critic_loss, actor_loss, alpha, entropy, q_mean, q_min_mean, target_mean, actor_lr, plus
        alpha_loss with auto-α, target_penalty (its batch mean) and whatever the hooks return.
        Random draws (from `generator`, or torch's default generator when None; one generator per seed
        when batched), in the update order: the policy actions at `batch.obs` when α or the actor first
        runs; in the critic step the next actions at `batch.next_obs`, then the target penalty's, then
        the regulariser's.
        """
        cfg = self.cfg
        metrics: dict[str, Tensor | float] = {}
        sample: tuple[Tensor, Tensor] | None = None  # the policy's action and log-density at batch.obs
        actor_loss = critic_loss = y = q = None
        lr = self.actor_lr()
        for part in cfg.update_order.split("_"):
            if part in ("alpha", "actor") and sample is None:
                sample = self._sample(batch.obs, generator)  # (…, B, a), (…, B)
            if part == "alpha":
                assert sample is not None
                if self.alpha_optim is not None:
                    log_pi = sample[1].detach()
                    alpha_loss = -(self.log_alpha.unsqueeze(-1) * (log_pi + self.target_entropy)).mean(-1)
                    self.alpha_optim.zero_grad(set_to_none=True)
                    alpha_loss.sum().backward()
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
            entropy=-sample[1].detach().mean(-1),
            q_mean=q.mean(dim=(-2, -1)),
            q_max=q.amax(dim=(-2, -1)),  # the largest Q of any critic on the batch (edge-of-reach collapse)
            q_min_mean=q.min(-2).values.mean(-1),
            target_mean=y.mean(-1),
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
        q_of = self._q if self.cfg.actor_critics == "online" else self._target_q
        q_pi = q_of(obs, act_pi).min(-2).values  # (…, B)
        actor_loss = (self.alpha().unsqueeze(-1) * log_pi - q_pi).mean(-1)  # () or (K,)
        self.actor_optim.zero_grad(set_to_none=True)
        torch.autograd.backward(actor_loss.sum(), inputs=self._actor_params)
        self.actor_optim.step()
        return actor_loss.detach()

    def _critic_step(
        self,
        batch: Batch,
        critic_reg: UpdateHook | None,
        target_penalty: UpdateHook | None,
        generator: Generators,
        metrics: dict[str, Tensor | float],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One critic step; returns the detached TD loss, the target `(…, B)` and the Q-values `(…, N, B)`."""
        cfg = self.cfg
        alpha = self.alpha().unsqueeze(-1)
        with torch.no_grad():
            next_act, next_log_pi = self._sample(batch.next_obs, generator)  # (…, B, a), (…, B)
            next_v = self._target_q(batch.next_obs, next_act).min(-2).values  # (…, B)
            if not cfg.deterministic_backup:
                next_v = next_v - alpha * next_log_pi
            rew = batch.rew
            if target_penalty is not None:
                penalty, penalty_metrics = target_penalty(self, batch, generator)  # type: ignore[arg-type]
                rew = rew - penalty
                metrics["target_penalty"] = penalty.mean(-1)
                metrics.update(penalty_metrics)
            y = rew + cfg.gamma * (1.0 - batch.term) * next_v  # (…, B)
            if cfg.target_min is not None:
                y = y.clamp(min=cfg.target_min)
        reg: Tensor | None = None
        if isinstance(critic_reg, EDACRegulariser):  # one forward for the TD loss and the diversity term
            act_n = per_member_actions(self.critics, batch.act)
            q = self.critics(batch.obs, act_n)  # (…, N, B)
            reg, reg_metrics = critic_reg.from_q(q, act_n)
            metrics.update(reg_metrics)
        else:
            q = self._q(batch.obs, batch.act)  # (…, N, B)
            if critic_reg is not None:
                reg, reg_metrics = critic_reg(self, batch, generator)  # type: ignore[arg-type]
                metrics.update(reg_metrics)
        critic_loss = (q - y.unsqueeze(-2)).pow(2).mean(-1).sum(-1)  # () or (K,)
        loss = critic_loss.sum() if reg is None else (critic_loss + reg).sum()
        self.critic_optim.zero_grad(set_to_none=True)
        torch.autograd.backward(loss, inputs=self._critic_params)
        self.critic_optim.step()
        return critic_loss.detach(), y, q.detach()

    # --- checkpoints ---------------------------------------------------------------------------------

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

    def _seed_views(self, k: int) -> dict[str, tuple[Tensor, Callable[[Tensor], Tensor]]]:
        """For each entry of a lone learner's state dict: this learner's tensor and the map from it to
        seed k's entry in the lone format (a view, so it also writes seed k)."""
        assert self.seeds is not None
        n = self.cfg.critics
        views: dict[str, tuple[Tensor, Callable[[Tensor], Tensor]]] = {}
        for name, t in self.state_dict(keep_vars=True).items():
            if name.startswith("actor.net.layers."):  # (K, in, out) -> nn.Linear's (out, in); bias (out,)
                _, _, _, i, kind = name.split(".")
                lone = f"actor.net.{2 * int(i)}.{kind}"
                views[lone] = (t, lambda x: x[k].T if x.dim() == 3 and x.shape[1] != 1 else x[k, 0])
            elif name.startswith(("critics.", "target_critics.")):  # members k·N .. k·N + N - 1
                views[name] = (t, lambda x: x[k * n : (k + 1) * n])
            elif name == "log_alpha":
                views[name] = (t, lambda x: x[k])
            else:  # the action box's buffers: shared by the seeds
                views[name] = (t, lambda x: x)
        return views

    def _optim_views(self, k: int) -> list[tuple[torch.optim.Optimizer | None, list[str]]]:
        """Each optimiser with the lone-format names of its parameters, in its order."""
        names = {id(p): name for name, p in self.named_parameters()}
        lone = {
            name: name
            if not name.startswith("actor.net.layers.")
            else f"actor.net.{2 * int(name.split('.')[3])}.{name.split('.')[4]}"
            for name in names.values()
        }
        out: list[tuple[torch.optim.Optimizer | None, list[str]]] = []
        for opt in (self.actor_optim, self.critic_optim, self.alpha_optim):
            params = [] if opt is None else opt.param_groups[0]["params"]
            out.append((opt, [lone[names[id(p)]] for p in params]))
        return out

    def seed_checkpoint(self, k: int) -> dict:
        """Seed k of a seed-batched learner as a lone learner's `checkpoint()` (copied tensors)."""
        views = self._seed_views(k)
        modules = {name: _dense(fn(t.detach())) for name, (t, fn) in views.items()}
        optims: list[dict | None] = []
        for opt, names in self._optim_views(k):
            if opt is None:
                optims.append(None)
                continue
            sd = opt.state_dict()
            state = {}
            for i, name in enumerate(names):
                if i in sd["state"]:
                    fn = views[name][1]
                    state[i] = {
                        key: (value.clone() if key == "step" else _dense(fn(value)))
                        for key, value in sd["state"][i].items()
                    }
            optims.append({"state": state, "param_groups": copy.deepcopy(sd["param_groups"])})
        return {
            "modules": modules,
            "actor_optim": optims[0],
            "critic_optim": optims[1],
            "alpha_optim": optims[2],
            "updates": self.updates,
        }

    @torch.no_grad()
    def restore_seed(self, k: int, ckpt: dict) -> None:
        """Load a lone learner's `checkpoint()` into seed k (the other seeds keep their state)."""
        views = self._seed_views(k)
        for name, (t, fn) in views.items():
            fn(t).copy_(ckpt["modules"][name])
        for (opt, names), saved in zip(self._optim_views(k), ckpt_optims(ckpt), strict=True):
            if opt is None or saved is None:
                continue
            for i, (name, p) in enumerate(zip(names, opt.param_groups[0]["params"], strict=True)):
                if i not in saved["state"]:
                    continue
                state = opt.state[p]
                if not state:  # a fresh optimiser: its state tensors are made on the first step
                    state["step"] = saved["state"][i]["step"].clone()
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                for key, value in saved["state"][i].items():
                    if key == "step":
                        state["step"].copy_(value)
                    else:
                        views[name][1](state[key]).copy_(value)
        self.updates = ckpt["updates"]

    def lone_actor_state(self, k: int, part: str = "actor") -> dict[str, Tensor]:
        """Seed k's actor (or `part="critics"`) in a lone learner's state-dict format (its `policy.pt`)."""
        prefix = f"{part}."
        views = self._seed_views(k)
        return {
            n[len(prefix) :]: _dense(fn(t.detach())) for n, (t, fn) in views.items() if n.startswith(prefix)
        }

    @classmethod
    def batch_of(
        cls, lone: Sequence[SAC], device: torch.device | str = "cpu", compile: bool | None = None
    ) -> SAC:
        """A seed-batched learner whose seed k starts as `lone[k]` (same config): the initial weights
        of K separately built learners, so a batched seed starts where its lone run starts."""
        first = lone[0]
        box = first.actor
        low = (box.act_bias - box.act_scale).tolist()
        high = (box.act_bias + box.act_scale).tolist()
        batched = cls(
            first.obs_dim, len(low), low, high, first.cfg, device, len(lone), compile, first.precision
        )
        for k, learner in enumerate(lone):
            batched.restore_seed(k, learner.checkpoint())
        return batched


def ckpt_optims(ckpt: dict) -> tuple[dict | None, dict | None, dict | None]:
    return ckpt["actor_optim"], ckpt["critic_optim"], ckpt["alpha_optim"]


def _adam(params: Sequence[Tensor], lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has the fused kernel for the parameters' device."""
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused)


def _dense(view: Tensor) -> Tensor:
    """A contiguous copy: a transposed view cloned keeps its strides, and an optimiser state whose strides
    differ from its parameter's is misread by the fused Adam kernel."""
    return view.clone(memory_format=torch.contiguous_format)
