"""Fitting MOREC's dynamics reward and caching it: the discriminator trained against the ensemble's
snapshots (`fit_dynamics_reward`), its held-out AUCs, and the cached artefact (`load_or_fit_reward`,
fitted once per ensemble and reward config). The reward itself (config, network, files) is `morec.reward`."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from offline_mbrl.algorithms.morec.reward import (
    CALIBRATION,
    FORMAT_VERSION,
    KIND,
    OBS_SCALE,
    DynamicsReward,
    DynamicsRewardConfig,
    Scaling,
    load,
    new_reward,
    save,
)
from offline_mbrl.core.cache import load_or_build, stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.progress import stage
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.models.dynamics import DynamicsEnsemble


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC of scores separating `pos` (higher is real) from `neg`: Mann-Whitney U / (n_p n_n)."""
    from scipy.stats import rankdata

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def auc(pos: torch.Tensor | np.ndarray, neg: torch.Tensor | np.ndarray) -> float:
    """ROC AUC of a score that should be higher on `pos` than on `neg` (0.5: chance, 1: perfect)."""
    as_np = [x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x for x in (pos, neg)]
    return _auc(as_np[0], as_np[1])


class _Negatives:
    """The pool of ensemble negatives (one-step samples and replayed dataset segments), redrawn on
    demand, plus the perturbed dataset transitions drawn per batch."""

    def __init__(self, dataset: OfflineDataset, dynamics: DynamicsEnsemble, train_idx: torch.Tensor, cfg):
        data = dataset.data
        self.data, self.dynamics, self.cfg = data, dynamics, cfg
        self.train_idx = train_idx
        device = data.obs.device
        ends = np.repeat(dataset.episode_starts + dataset.episode_lengths, dataset.episode_lengths)
        self.episode_end = torch.as_tensor(ends, device=device)  # (N,) one past each transition's episode

    @torch.no_grad()
    def replay(self, idx: torch.Tensor, steps: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """From dataset states `idx`, replay each segment's own actions in the ensemble for `steps` steps;
        `(obs, act, next_obs, k)` of every valid model transition (k: the replay step, 0 = one-step)."""
        data = self.data
        obs = data.obs[idx]
        rows: list[tuple[torch.Tensor, ...]] = []
        alive = torch.ones(len(idx), dtype=torch.bool, device=obs.device)
        for k in range(steps):
            at = idx + k
            alive = alive & (at < self.episode_end[idx])
            act = data.act[at.clamp(max=len(data.obs) - 1)]
            next_obs, _, _ = self.dynamics.predict(obs, act).sample(generator)
            rows.append((obs[alive], act[alive], next_obs[alive], torch.full_like(idx[alive], k)))
            obs = next_obs.nan_to_num(0.0, 1e6, -1e6)
        return tuple(torch.cat([r[i] for r in rows]) for i in range(4))

    def pool(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        starts = self.train_idx[
            torch.randint(len(self.train_idx), (n,), device=self.train_idx.device, generator=generator)
        ]
        obs, act, next_obs, _ = self.replay(starts, self.cfg.replay_steps, generator)
        return obs, act, next_obs

    def perturbed(
        self, idx: torch.Tensor, scaling: Scaling, delta_std: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dataset transitions `idx` with Δs moved by noise of std σ·(scaled-Δs std), log σ uniform."""
        lo, hi = (math.log(s) for s in self.cfg.perturb_scale)
        device = idx.device
        sigma = torch.exp(lo + (hi - lo) * torch.rand(len(idx), 1, device=device, generator=generator))
        noise = torch.randn(len(idx), self.data.obs.shape[1], device=device, generator=generator)
        # noise in scaled-Δs units, back in environment units: scaled = Δ / span · 1.6 − …
        shift = noise * sigma * delta_std * scaling.delta_span / (2 * OBS_SCALE)
        return self.data.obs[idx], self.data.act[idx], self.data.next_obs[idx] + shift


def fit_dynamics_reward(
    dataset: OfflineDataset,
    dynamics: DynamicsEnsemble,
    cfg: DynamicsRewardConfig,
    seed: int,
    progress: bool = True,
) -> tuple[DynamicsReward, dict]:
    """Train the discriminator against `dynamics` on `dataset`'s device; the reward and a JSON report."""
    started = time.perf_counter()
    data = dataset.data
    device = data.obs.device
    spec = dataset.spec
    obs_dim, act_dim = spec.obs_dim, spec.act_dim
    gen = torch.Generator(device=device).manual_seed(seed)
    n = len(data.obs)
    n_hold = min(cfg.holdout, n // 10)
    if n_hold < 1 or n - n_hold < cfg.batch_size:
        raise UserError(f"{n} transitions are too few to fit a dynamics reward (batch {cfg.batch_size})")
    perm = torch.randperm(n, device=device, generator=gen)
    hold_idx, train_idx = perm[:n_hold].sort().values, perm[n_hold:]

    reward = new_reward(1, obs_dim, act_dim, cfg, seed)
    reward.scaling.fit(data.obs, data.next_obs - data.obs, spec.act_low, spec.act_high)
    reward.to(device)
    disc, scaling = reward.disc, reward.scaling
    delta_std = scaling.delta(data.next_obs - data.obs).std(0)  # (obs_dim,) in scaled units
    optim = torch.optim.Adam(disc.parameters(), lr=cfg.lr)
    negatives = _Negatives(dataset, dynamics, train_idx, cfg)

    n_pert = round(cfg.batch_size * cfg.perturbed_share)
    n_model = cfg.batch_size - n_pert
    pool_starts = max(cfg.refresh_every * n_model // cfg.replay_steps, n_model)

    def scaled(o: torch.Tensor, a: torch.Tensor, o2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return scaling.obs(o), scaling.act(a), scaling.delta(o2 - o).unsqueeze(0)  # delta (1, B, obs)

    def draw(k: int) -> torch.Tensor:  # k training-split indices
        return train_idx[torch.randint(len(train_idx), (k,), device=device, generator=gen)]

    # the fixed calibration sets each kept snapshot's logit range is measured on
    cal_real = data.index(draw(CALIBRATION))
    cal_m_obs, cal_m_act, cal_m_next, _ = negatives.replay(draw(CALIBRATION), 1, gen)

    kept_params: list[list[torch.Tensor]] = []
    kept_range: list[tuple[float, float]] = []
    losses: list[float] = []
    window: list[torch.Tensor] = []
    pool: tuple[torch.Tensor, ...] = ()
    stride_updates = cfg.snapshot_every * cfg.stored_every
    first_kept = cfg.updates - (cfg.kept - 1) * stride_updates  # the history's oldest kept snapshot

    with stage("dynamics reward", cfg.updates, "dynamics reward (updates)", enabled=progress) as fit:
        for update in range(1, cfg.updates + 1):
            if (update - 1) % cfg.refresh_every == 0:
                pool = negatives.pool(pool_starts, gen)
            real = data.index(draw(cfg.batch_size))
            pick = torch.randint(len(pool[0]), (n_model,), device=device, generator=gen)
            pert = negatives.perturbed(draw(n_pert), scaling, delta_std, gen)
            fake = [torch.cat([pool[i][pick], pert[i]]) for i in range(3)]
            logit_real = disc.logits(*scaled(real.obs, real.act, real.next_obs))[0, 0]  # (B,)
            logit_fake = disc.logits(*scaled(*fake))[0, 0]
            loss = F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()  # BCE, real = 1
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            window.append(loss.detach())
            if update % stride_updates == 0 and update >= first_kept:
                with torch.no_grad():
                    hi = disc.logits(*scaled(cal_real.obs, cal_real.act, cal_real.next_obs)).max()
                    lo = disc.logits(*scaled(cal_m_obs, cal_m_act, cal_m_next)).min()
                kept_params.append([p.detach().clone() for p in disc.parameters()])
                kept_range.append((float(hi), float(lo)))  # one host sync per kept snapshot
            if update % 100 == 0 or update == cfg.updates:
                losses.append(torch.stack(window).mean().item())
                window.clear()
                fit.advance(update, f"BCE {losses[-1]:.4f}")

    ok = [i for i, (hi, lo) in enumerate(kept_range) if hi > lo + 1e-6]
    if not ok:
        raise UserError(
            "the dynamics reward did not separate dataset from model transitions in any kept snapshot; "
            "try more updates (--set reward.updates=...)"
        )
    final = new_reward(len(ok), obs_dim, act_dim, cfg).to(device)
    with torch.no_grad():
        for param, *snaps in zip(final.disc.parameters(), *[kept_params[i] for i in ok], strict=True):
            param.copy_(torch.cat(snaps, dim=0))
        final.scaling.load_state_dict(scaling.state_dict())
        final.expert.copy_(torch.tensor([kept_range[i][0] for i in ok]))
        final.learner.copy_(torch.tensor([kept_range[i][1] for i in ok]))
    final.eval()

    report = {
        "updates": cfg.updates,
        "snapshots": len(ok),
        "snapshots_dropped": len(kept_range) - len(ok),
        "loss_history": losses,  # mean BCE per 100 updates
        "n_train": len(train_idx),
        "n_holdout": n_hold,
        "holdout_idx": hold_idx.tolist(),
        **holdout_aucs(final, dataset, dynamics, negatives, hold_idx, delta_std, gen),
        "wall_time": time.perf_counter() - started,
    }
    return final, report


@torch.no_grad()
def holdout_aucs(
    reward: DynamicsReward,
    dataset: OfflineDataset,
    dynamics: DynamicsEnsemble,
    negatives: _Negatives,
    hold_idx: torch.Tensor,
    delta_std: torch.Tensor,
    gen: torch.Generator,
) -> dict:
    """r_D on held-out dataset transitions vs model transitions at the same (s, a) (one step, and after
    replaying the segment's actions for the longest replay) and perturbed ones; AUCs and means."""
    data = dataset.data
    r_real = reward(data.obs[hold_idx], data.act[hold_idx], data.next_obs[hold_idx])
    obs, act, nxt, k = negatives.replay(hold_idx, reward.cfg.replay_steps, gen)
    r_model = reward(obs, act, nxt)
    out: dict = {
        "reward_real_mean": r_real.mean().item(),
        "auc_one_step": auc(r_real, r_model[k == 0]),
        "auc_replay": auc(r_real, r_model[k > 0]) if bool((k > 0).any()) else math.nan,
        "reward_one_step_mean": r_model[k == 0].mean().item(),
    }
    scaling = reward.scaling
    for sigma in (0.1, 1.0):
        noise = torch.randn(data.next_obs[hold_idx].shape, device=hold_idx.device, generator=gen)
        shift = noise * sigma * delta_std * scaling.delta_span / (2 * OBS_SCALE)
        r_pert = reward(data.obs[hold_idx], data.act[hold_idx], data.next_obs[hold_idx] + shift)
        out[f"auc_perturbed_{sigma:g}"] = auc(r_real, r_pert)
    return out


def reward_key(fingerprint_key: str, dynamics_key: str, cfg: DynamicsRewardConfig, seed: int) -> str:
    """What determines a fitted reward: dataset content, the ensemble (its key), its config and seed."""
    fields = {**dataclasses.asdict(cfg), "seed": seed}
    return stable_hash(
        {"dataset": fingerprint_key, "dynamics": dynamics_key, "reward": fields, "format": FORMAT_VERSION}
    )


def load_or_fit_reward(
    dataset: OfflineDataset,
    dynamics: DynamicsEnsemble,
    dynamics_key: str,
    cfg: DynamicsRewardConfig,
    progress: bool = True,
) -> tuple[DynamicsReward, dict, str]:
    """The cached reward for (dataset, ensemble, cfg), fitted and published on a miss; a damaged entry
    is removed (the store published it) and refitted, with a one-line message on stderr."""
    dataset.check_finite()
    seed = dynamics.cfg.seed if cfg.seed is None else cfg.seed
    key = reward_key(dataset.fingerprint.key, dynamics_key, cfg, seed)
    device = dataset.data.obs.device

    def build(folder: Path) -> dict:
        reward, report = fit_dynamics_reward(dataset, dynamics, cfg, seed, progress)
        report = {
            **report,
            "key": key,
            "dynamics_key": dynamics_key,
            "dataset_id": dataset.fingerprint.dataset_id,
            "config": {**dataclasses.asdict(cfg), "seed": seed},
            "format": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        save(reward, folder / "reward.pt")
        (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return {
            "dataset_id": dataset.fingerprint.dataset_id,
            "dataset_name": dataset.name,
            "dynamics_key": dynamics_key,
            "summary": (
                f"{report['snapshots']} snapshots, AUC one-step {report['auc_one_step']:.3f}, "
                f"replay {report['auc_replay']:.3f}"
            ),
        }

    reward, report = load_or_build(
        KIND, key, build, lambda entry: _load_entry(entry, device), "fitting the reward again", progress
    )
    return reward, report, key


def _load_entry(entry: Path, device: torch.device | str) -> tuple[DynamicsReward, dict]:
    try:
        report = json.loads((entry / "report.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"dynamics reward cache entry {entry} is damaged ({exc})") from None
    reward = load(entry / "reward.pt", device)
    return reward, report
