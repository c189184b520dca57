"""MOREC's dynamics reward r_D(s, a, s'): how much a transition looks like the true dynamics' own, learned
from the offline data by a discriminator against the learned ensemble (Luo et al., ICLR 2024, "Reward-
Consistent Dynamics Models are Strongly Generalizable for Offline Reinforcement Learning").

Idea: the true dynamics act as if they maximised a hidden reward that is consistent across transitions.
A GAIL-style discriminator D(s, a, Δs) trained to tell dataset transitions (label 1) from transitions the
learned model generates (label 0) estimates it; a history of discriminator snapshots, averaged, is the
reward (DARL, Luo et al. 2022: averaging past discriminators removes the dependence on the current
generator). `algorithms/morec.py` uses it to choose among candidate next states and to cut rollouts.

The reward, as the released reference computes it (polixir/morec `models/discriminator_ensemble_loader.py`):
every `stride`-th of the last `max_snapshots` snapshots t is evaluated; its logit is clamped to the range
[learner_t, expert_t] it had when it was taken (learner_t: its least logit on model transitions, expert_t:
its greatest on dataset transitions, over a fixed calibration set) and mapped linearly onto [−1, 1];
`p_t = sigmoid(mapped logit)`, `r_D = −log(1 − mean_t min(p_t, 0.999) + 1e-9)`. r_D therefore lies in
[−log(1 − σ(−1)), −log(1 − σ(1))] = [0.313, 1.313] (`REWARD_RANGE`). A snapshot whose expert_t is not
above learner_t (it did not separate the calibration sets) is left out, as the reference's mask does.

Inputs, as the reference scales them: observations min-max scaled to [−0.8, 0.8] over the dataset,
actions to [−1, 1] over the action bounds. Network, from the released constructor: a state encoder
and a Δs encoder (each [256, 128] ReLU, embeddings of 64 and 16), then a ReLU MLP head on
[state embedding, action, Δs embedding]; every snapshot is one member of batched ensemble layers
(`nets.EnsembleMLP`), so the whole average is one forward pass, and the state-and-action half of the
head's first layer is computed once per (s, a) for all its candidate next states.

Reconstructed (the reward-learning loop was never released; its constructor shows only the shape: a
"transition" generator trained as a discounted RL agent, a discriminator, snapshots every
`history_discriminator_interval` updates kept up to `max_maintaining_disc`), and why:
- The generator is the suite's fitted ensemble, held fixed (the design the reference notes call "simpler
  and defensible"), not a transition policy trained towards higher r_D. Reasons: the filter scores
  candidates drawn from exactly this ensemble, so its samples are the negatives that matter; a
  generator trained adversarially would be a second dynamics model that no algorithm rolls out in; and
  the cached ensemble stays what every algorithm shares (design principle: the model holds no
  algorithm state). What the moving generator gives GAIL, negatives that get harder as training goes,
  is approximated by three kinds of negatives, all at dataset (s, a) pairs so that the discriminator
  must judge the transition, not how common the state-action is:
  one-step samples of a random elite at dataset (s, a); states reached by replaying a dataset
  segment's own actions in the ensemble for up to `replay_steps` steps (the compounding error long
  MOREC rollouts meet; a replay stops at its episode's end); and dataset transitions whose Δs is
  perturbed by Gaussian noise of a log-uniform scale in `perturb_scale` (in units of each dimension's
  scaled-Δs std; from barely visible to gross), a share `perturbed_share` of the negatives.
- Δs is min-max scaled over the dataset's own Δs range to [−0.8, 0.8] (the reference feeds the
  difference of the two scaled observations, whose values are ~100x smaller than the state's; an error of
  a typical Δs size would be a tiny input change there).
- `R`, the half-width of the mapped logit range, is 1, as in the release: its launchers set
  `load_min_max=False`, so its loader fixes the expert and learner logits at 1 and 0 and the range at
  2·max(1, 0) (polixir/morec `models/discriminator_ensemble_loader.py#L15-L17,L40-L42`); the threshold
  0.6 is on this scale.
- The averaged snapshots are every stride-th counted back from the newest kept one; the release counts
  forward from the oldest of its last `max_retain_num` (its newest is then not always included). The
  snapshots are this reconstruction's own, so neither choice reproduces the release's numbers.
- Actions are scaled to [−1, 1] over the action box's bounds (the release: the dataset's action range).
- Snapshots: every `snapshot_every` updates; only every `stored_every`-th of the last `max_snapshots` is
  kept (400 snapshots of this network are ~220 MB; 40 are ~22 MB), so an algorithm's averaging stride
  (MOREC-MOPO 10, MOREC-MOBILE 40) is a multiple of `stored_every`.

The fitted reward is an artefact of the store (kind "dynamics_reward"), keyed by the dataset fingerprint,
the dynamics key of the ensemble it was trained against, and its own config with its seed: fitted once,
shared by every MOREC run and sweep trial of that ensemble. A damaged entry is removed and refitted, with
a one-line message.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from offline_mbrl.core.cache import atomic_path
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.nets import EnsembleLinear, EnsembleMLP

FORMAT_VERSION = 1
KIND = "dynamics_reward"
R_HALF_WIDTH = 1.0  # mapped logits lie in [−R, R]
P_CLIP = 0.999  # each snapshot's probability is clipped here (the release's launchers pass 1.0; p <= 0.731)
REWARD_RANGE = (
    -math.log(1.0 - 1.0 / (1.0 + math.exp(R_HALF_WIDTH))),
    -math.log(1.0 - 1.0 / (1.0 + math.exp(-R_HALF_WIDTH))),
)  # (0.313, 1.313): r_D of a transition every snapshot rates least / most real
OBS_SCALE = 0.8  # observations (and Δs) are min-max scaled to [−0.8, 0.8]
_INPUT_CLIP = 10.0  # scaled inputs beyond this (a diverged model state) are clamped, to stay finite
CALIBRATION = 2048  # dataset and model transitions each snapshot's logit range is measured on
_MAX_CHUNK_FLOATS = 1 << 25  # bounds activation memory of one forward chunk (128 MiB of float32)


@dataclass(frozen=True)
class DynamicsRewardConfig:
    hidden: tuple[int, ...] = (256, 128)  # hidden sizes of the state encoder and of the Δs encoder
    state_embed: int = 64  # state embedding size (the reference's 64)
    delta_embed: int = 16  # Δs embedding size (the reference's 16)
    head_hidden: tuple[int, ...] = (256, 128)  # hidden sizes of the head on [state emb., action, Δs emb.]
    lr: float = 3e-4  # Adam learning rate of the discriminator
    batch_size: int = 256  # dataset transitions per update (and as many model ones)
    updates: int = 10_000  # discriminator updates
    snapshot_every: int = 10  # updates between snapshots of the discriminator
    max_snapshots: int = 400  # the history: the last this many snapshots
    stored_every: int = 10  # every this-many-th snapshot of the history is kept (a stride's unit)
    replay_steps: int = 10  # negatives: steps of a dataset segment's actions replayed in the ensemble
    perturbed_share: float = 0.25  # negatives: the share that are dataset transitions with a perturbed Δs
    perturb_scale: tuple[float, float] = (0.03, 1.0)  # their noise std range, in scaled-Δs stds (log-uniform)
    refresh_every: int = 500  # updates between fresh draws of the pool of ensemble negatives
    holdout: int = 5000  # dataset transitions held out of training (at most 10% of the data), for the AUCs
    seed: int | None = None  # None: the dynamics seed of the ensemble it is trained against

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "head_hidden", tuple(int(h) for h in self.head_hidden))
        object.__setattr__(self, "perturb_scale", tuple(float(s) for s in self.perturb_scale))
        problems = []
        positive = {
            "state_embed": self.state_embed,
            "delta_embed": self.delta_embed,
            "batch_size": self.batch_size,
            "updates": self.updates,
            "snapshot_every": self.snapshot_every,
            "max_snapshots": self.max_snapshots,
            "stored_every": self.stored_every,
            "replay_steps": self.replay_steps,
            "refresh_every": self.refresh_every,
            "holdout": self.holdout,
        }
        problems += [f"{k} must be at least 1, got {v}" for k, v in positive.items() if v < 1]
        if any(h < 1 for h in (*self.hidden, *self.head_hidden)) or not self.hidden or not self.head_hidden:
            problems.append("hidden and head_hidden need at least one layer, each of size >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.perturbed_share < 1.0:  # also refuses NaN
            problems.append(f"perturbed_share must be in [0, 1), got {self.perturbed_share}")
        lo_hi = self.perturb_scale
        if len(lo_hi) != 2 or not (0 < lo_hi[0] <= lo_hi[1] < math.inf):
            problems.append(f"perturb_scale must be two numbers 0 < low <= high, got {lo_hi}")
        if self.stored_every > self.max_snapshots:
            problems.append(
                f"stored_every ({self.stored_every}) exceeds max_snapshots ({self.max_snapshots})"
            )
        if self.updates < self.snapshot_every * self.stored_every:
            problems.append(
                f"updates ({self.updates}) must reach at least one kept snapshot "
                f"(snapshot_every x stored_every = {self.snapshot_every * self.stored_every})"
            )
        if problems:
            raise UserError("invalid dynamics reward config: " + "; ".join(problems))

    @property
    def kept(self) -> int:
        """How many snapshots the fitted reward holds at most."""
        return self.max_snapshots // self.stored_every


# ---- the network --------------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """`members` discriminators D(s, a, Δs) evaluated together (one per snapshot), on scaled inputs.

    `logits(obs, act, delta)`: obs and act `(B, ·)`, delta `(C, B, obs_dim)` (C candidate transitions per
    (s, a)) -> `(M, C, B)`. The state encoder and the (s, a) half of the head's first layer run once per
    (s, a), not once per candidate.
    """

    def __init__(self, members: int, obs_dim: int, act_dim: int, cfg: DynamicsRewardConfig):
        super().__init__()
        self.members = members
        self.state_encoder = EnsembleMLP(members, obs_dim, cfg.hidden, cfg.state_embed)
        self.delta_encoder = EnsembleMLP(members, obs_dim, cfg.hidden, cfg.delta_embed)
        width = cfg.head_hidden[0]
        self.head_sa = EnsembleLinear(members, cfg.state_embed + act_dim, width)  # with the bias
        self.head_delta = nn.Parameter(torch.empty(members, cfg.delta_embed, width))
        nn.init.uniform_(self.head_delta, -1 / math.sqrt(cfg.delta_embed), 1 / math.sqrt(cfg.delta_embed))
        self.head = EnsembleMLP(members, width, cfg.head_hidden[1:], 1)

    def logits(self, obs: torch.Tensor, act: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        m = self.members
        c, b, _ = delta.shape
        state = F.relu(self.state_encoder(obs))  # (M, B, state_embed)
        sa = self.head_sa(torch.cat([state, act.unsqueeze(0).expand(m, -1, -1)], dim=-1))  # (M, B, W)
        d = F.relu(self.delta_encoder(delta.reshape(c * b, -1)))  # (M, C·B, delta_embed)
        hidden = torch.bmm(d, self.head_delta).reshape(m, c, b, -1) + sa.unsqueeze(1)  # (M, C, B, W)
        out = self.head(F.relu(hidden).reshape(m, c * b, -1))  # (M, C·B, 1)
        return out.reshape(m, c, b)


class Scaling(nn.Module):
    """The reference's min-max input scaling (see the module docstring), fitted on the dataset."""

    obs_low: torch.Tensor
    obs_span: torch.Tensor
    act_low: torch.Tensor
    act_span: torch.Tensor
    delta_low: torch.Tensor
    delta_span: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        for name, dim in (("obs", obs_dim), ("act", act_dim), ("delta", obs_dim)):
            self.register_buffer(f"{name}_low", torch.zeros(dim))
            self.register_buffer(f"{name}_span", torch.ones(dim))

    def fit(
        self, obs: torch.Tensor, delta: torch.Tensor, act_low: Sequence[float], act_high: Sequence[float]
    ) -> None:
        for name, x in (("obs", obs), ("delta", delta)):
            low, high = x.amin(0), x.amax(0)
            getattr(self, f"{name}_low").copy_(low)
            getattr(self, f"{name}_span").copy_(torch.where(high - low > 1e-8, high - low, 1.0))
        low_t = torch.as_tensor(act_low, dtype=torch.float32)
        self.act_low.copy_(low_t)
        self.act_span.copy_(torch.as_tensor(act_high, dtype=torch.float32) - low_t)

    def obs(self, x: torch.Tensor) -> torch.Tensor:
        return self._minmax(x, self.obs_low, self.obs_span, OBS_SCALE)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return self._minmax(x, self.act_low, self.act_span, 1.0)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self._minmax(x, self.delta_low, self.delta_span, OBS_SCALE)

    @staticmethod
    def _minmax(x: torch.Tensor, low: torch.Tensor, span: torch.Tensor, half: float) -> torch.Tensor:
        scaled = (x - low) / span * (2 * half) - half
        return scaled.nan_to_num(0.0, _INPUT_CLIP, -_INPUT_CLIP).clamp(-_INPUT_CLIP, _INPUT_CLIP)


class DynamicsReward(nn.Module):
    """The averaged snapshots: `r_D(obs, act, next_obs)` in environment units.

    `obs`, `act` `(B, ·)`; `next_obs` `(B, obs_dim)` or `(C, B, obs_dim)` (C candidates per (s, a)) ->
    r_D `(B,)` or `(C, B)`, each in `REWARD_RANGE`.
    """

    expert: torch.Tensor  # (M,) each snapshot's greatest calibration logit on dataset transitions
    learner: torch.Tensor  # (M,) its least on model transitions

    def __init__(self, members: int, obs_dim: int, act_dim: int, cfg: DynamicsRewardConfig):
        super().__init__()
        self.obs_dim, self.act_dim, self.cfg = obs_dim, act_dim, cfg
        self.disc = Discriminator(members, obs_dim, act_dim, cfg)
        self.scaling = Scaling(obs_dim, act_dim)
        self.register_buffer("expert", torch.ones(members))
        self.register_buffer("learner", -torch.ones(members))

    @property
    def members(self) -> int:
        return self.disc.members

    def select(self, stride: int) -> DynamicsReward:
        """The reward averaging every `stride`-th snapshot of the history, counted back from the newest
        (a multiple of `cfg.stored_every`; the stored snapshots are every `stored_every`-th already)."""
        if stride < 1 or stride % self.cfg.stored_every:
            raise UserError(
                f"the dynamics reward's snapshot stride must be a multiple of its stored_every "
                f"({self.cfg.stored_every}), got {stride}"
            )
        step = stride // self.cfg.stored_every
        keep = torch.arange(self.members - 1, -1, -step).flip(0)  # the newest is always in
        out = new_reward(len(keep), self.obs_dim, self.act_dim, self.cfg)
        state = {
            k: (v[keep.to(v.device)] if k.startswith("disc.") or k in ("expert", "learner") else v)
            for k, v in self.state_dict().items()
        }
        out.load_state_dict(state)
        return out.to(self.expert.device)

    @torch.no_grad()
    def forward(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        single = next_obs.dim() == 2
        cand = next_obs.unsqueeze(0) if single else next_obs  # (C, B, obs_dim)
        c, b, _ = cand.shape
        s, a = self.scaling.obs(obs), self.scaling.act(act)
        delta = self.scaling.delta(cand - obs.unsqueeze(0))  # (C, B, obs_dim)
        # rows of (s, a) per chunk, so that M x C x rows x widest layer stays bounded
        widest = max(*self.cfg.hidden, *self.cfg.head_hidden)
        rows = max(1, _MAX_CHUNK_FLOATS // (self.members * c * widest))
        out = []
        for lo in range(0, b, rows):
            sl = slice(lo, lo + rows)
            logits = self.disc.logits(s[sl], a[sl], delta[:, sl])  # (M, C, rows)
            out.append(self.reward_from_logits(logits))
        r = torch.cat(out, dim=-1)  # (C, B)
        return r[0] if single else r

    def reward_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(M, ...) logits -> r_D (...): clamp and map each snapshot to [−R, R], average probabilities."""
        shape = (-1,) + (1,) * (logits.dim() - 1)
        lo, hi = self.learner.view(shape), self.expert.view(shape)
        mapped = (logits.clamp(lo, hi) - lo) / (hi - lo) * (2 * R_HALF_WIDTH) - R_HALF_WIDTH
        p = torch.sigmoid(mapped).clamp(max=P_CLIP).mean(0)
        return -torch.log(1.0 - p + 1e-9)


def new_reward(
    members: int, obs_dim: int, act_dim: int, cfg: DynamicsRewardConfig, seed: int = 0
) -> DynamicsReward:
    """A reward module initialised from `seed` without touching the global RNG (a run that fits the
    reward and one that loads it go on with the same random state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DynamicsReward(members, obs_dim, act_dim, cfg)


# ---- fitting --------------------------------------------------------------------------------------------


# ---- files and the cached artefact ----------------------------------------------------------------------


def save(reward: DynamicsReward, path: Path) -> None:
    payload = {
        "format": FORMAT_VERSION,
        "members": reward.members,
        "obs_dim": reward.obs_dim,
        "act_dim": reward.act_dim,
        "config": dataclasses.asdict(reward.cfg),
        "state_dict": {k: v.detach().cpu() for k, v in reward.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: Path, device: torch.device | str = "cpu") -> DynamicsReward:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {payload.get('format')} is not {FORMAT_VERSION}")
        cfg = DynamicsRewardConfig(**payload["config"])
        reward = new_reward(payload["members"], payload["obs_dim"], payload["act_dim"], cfg)
        reward.load_state_dict(payload["state_dict"])
        if not all(bool(torch.isfinite(v).all()) for v in reward.state_dict().values()):
            raise ValueError("non-finite weights")
    except Exception as exc:  # torch, pickle and zipfile raise many types for a damaged file
        raise UserError(f"cannot read dynamics reward {path} ({type(exc).__name__}: {exc})") from None
    return reward.to(device).eval()
