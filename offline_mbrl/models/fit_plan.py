"""The plan of a dynamics fit before it starts: cached or not, its size, and a measured time per epoch.

A fit's length is its epochs x its steps per epoch; the time of one step is measured here, on this machine
and its thread setting, by a short warm-up (one untimed and `WARMUP_STEPS` timed gradient steps, batch
gathers included, of a throw-away ensemble of the same shape on random rows of the data; the epoch's
holdout pass is not timed, so a fit runs somewhat longer than said), so the estimate holds for the device in
use rather than for the machine a table was measured on. The global random state is left as it was (the
warm-up draws under `torch.random.fork_rng`), so a seeded fit after the plan is the fit without it.
"""

from __future__ import annotations

import math
import time

import torch

from offline_mbrl.core.cache import artefact_path
from offline_mbrl.core.progress import duration
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.models.dynamics import (
    DynamicsConfig,
    _build,
    dynamics_key,
    holdout_size,
    training_loss,
)

WARMUP_STEPS = 5


def seconds_per_step(dataset: OfflineDataset, cfg: DynamicsConfig) -> float:
    """Measured seconds of one gradient step of this ensemble on this dataset's device."""
    data = dataset.data
    device = data.obs.device
    n = len(data.obs)
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(0)
        model = _build(data.obs.shape[1], data.act.shape[1], cfg).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        elapsed = 0.0
        for step in range(WARMUP_STEPS + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tick = time.perf_counter()  # the batch's gathers count, as in the fit's own loop
            rows = torch.randint(n, (cfg.members, min(cfg.batch_size, n)), device=device)
            inputs = torch.cat([data.obs[rows], data.act[rows]], dim=-1).float()
            targets = torch.cat([data.next_obs[rows] - data.obs[rows], data.rew[rows].unsqueeze(-1)], -1)
            loss = training_loss(model, inputs, targets.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step:  # the first step pays for allocations and kernel choice
                elapsed += time.perf_counter() - tick
    return elapsed / WARMUP_STEPS


def fit_plan(dataset: OfflineDataset, cfg: DynamicsConfig) -> list[str]:
    """Lines saying what the dynamics stage will do: load the cached ensemble, or fit one (its size, its
    stopping rule) with the time per epoch measured here and the total where the epochs are capped."""
    cfg = cfg.learned()
    key = dynamics_key(dataset.fingerprint.key, cfg)
    if artefact_path("dynamics", key).is_dir():
        return [f"dynamics: cached ensemble {key} (no fit)"]
    n = len(dataset.data.obs)
    n_hold = holdout_size(n, cfg)
    steps = cfg.steps_per_epoch or math.ceil((n - n_hold) / cfg.batch_size)
    if cfg.max_epochs is not None:
        rule = f"{cfg.max_epochs} epochs at most, or {cfg.patience} without a {cfg.improvement:.0%} gain"
    else:
        rule = f"until {cfg.patience} epochs in a row without a {cfg.improvement:.0%} gain (no cap)"
    if cfg.min_epochs:
        rule += f", at least {cfg.min_epochs}"
    epoch = steps * seconds_per_step(dataset, cfg)
    fewest = max(cfg.min_epochs, cfg.patience + 1)
    total = (
        f"; {duration(epoch * cfg.max_epochs)} at the cap"
        if cfg.max_epochs is not None
        else f"; {duration(epoch * fewest)} at the fewest epochs the rule allows"
    )
    return [
        f"dynamics: fit {cfg.members} members ({'x'.join(map(str, cfg.hidden))}) on {n - n_hold:,} rows, "
        f"{steps:,} steps an epoch, {rule}; cached as {key}",
        f"estimate: dynamics about {duration(epoch)} an epoch (measured here on {WARMUP_STEPS} steps, "
        f"{torch.get_num_threads()} thread(s)){total}",
    ]
