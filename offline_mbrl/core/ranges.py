"""The allowed range of every numeric config key, checked where a value enters a config.

A value from `--set`, a `--config` file, a preset or a sweep's proposal is converted to its field's type
(`config.coerce`) and then checked here: a non-finite float, an int written as a non-integral float, or a
value outside its key's range is one line naming the key and the range, before anything is written. The
ranges are the widest a run of this suite can use, not tuning advice: lower bounds are what the code needs
(a positive cadence, a probability in [0, 1]); upper bounds keep a typo from hanging a machine (10^9
steps, 2^20 rows a batch, 65,536 units a layer). A config class's own `__post_init__` adds the checks
that tie keys together (elites at most members, eval_every a multiple of log_every).

Keys are matched by their last part (`algo.sac.critic_lr` by `critic_lr`), or by the whole dotted key
where the same name means other things in two configs. tests/test_generated_config.py checks that every
numeric key of every registered algorithm has a range here.
"""

from __future__ import annotations

import math
from typing import Any

from offline_mbrl.core.errors import UserError

BIG = 10**9  # steps, cadences, counts of updates
SEED_MAX = 2**31 - 1  # a seed every library the suite seeds takes (Gymnasium, NumPy, torch, MuJoCo)
WIDTH = 65_536  # units of one layer
LAYERS = 64  # hidden layers of one network
COEF = 1e6  # weights, coefficients and temperatures
MAX_SEEDS = 100  # seeds of one command (train, compare, reproduce, an experiment): several commands for more

RANGES: dict[str, tuple[float, float]] = {
    # the loop
    "steps": (1, BIG),
    "log_every": (1, BIG),
    "eval_every": (1, BIG),
    "checkpoint_every": (1, BIG),
    "eval_episodes": (1, 10_000),
    "final_eval_episodes": (1, 10_000),
    "seed": (0, SEED_MAX),
    "dynamics_seed": (0, SEED_MAX),
    "rollout_seed": (0, SEED_MAX),
    # sizes of networks and batches
    "batch_size": (1, 2**20),
    "critics": (1, 1024),
    "members": (1, 1024),
    "elites": (1, 1024),
    "hidden": (1, WIDTH),
    "actor_hidden": (1, WIDTH),
    "critic_hidden": (1, WIDTH),
    "head_hidden": (1, WIDTH),
    "delta_embed": (1, WIDTH),
    "state_embed": (1, WIDTH),
    "time_embed": (1, WIDTH),
    "diffusion_steps": (1, 100_000),
    # rollouts and their buffer
    "horizon": (1, 100_000),
    "rollout_batch": (1, 10**8),
    "rollout_every": (1, BIG),
    "retain_rollouts": (1, 10_000),
    "real_ratio": (0, 1),
    "penalty_samples": (1, 10_000),
    "samples": (1, 10_000),
    "repeats": (1, 10_000),
    "min_length": (0, 100_000),
    "keep": (1, BIG),
    "max_batches": (1, BIG),
    # schedules of fits and updates
    "epochs": (1, 10**6),
    "max_epochs": (1, 10**6),
    "min_epochs": (0, 10**6),
    "find_best_start": (0, 10**6),
    "patience": (1, 10**6),
    "steps_per_epoch": (1, BIG),
    "max_holdout": (1, BIG),
    "updates": (1, BIG),
    "actor_lr_cosine_steps": (1, BIG),
    "refresh_every": (1, BIG),
    "snapshot_every": (1, BIG),
    "stored_every": (1, BIG),
    "snapshot_stride": (1, 10**6),
    "max_snapshots": (1, 10**6),
    "replay_steps": (1, 10**6),
    "algo.reward.holdout": (1, BIG),  # MOREC: transitions held out
    "algo.holdout": (0, 1),  # MBRCSL: a share of the kept rollouts
    # rates
    "lr": (0, 10),
    "actor_lr": (0, 10),
    "critic_lr": (0, 10),
    "alpha_lr": (0, 10),
    "lagrange_lr": (0, 10),
    # probabilities and shares
    "gamma": (0, 1),
    "tau": (0, 1),
    "ema": (0, 1),
    "holdout_ratio": (0, 1),
    "improvement": (0, 1),
    "min_improvement": (0, 1),
    "oracle_mix": (0, 1),
    "perturbed_share": (0, 1),
    "plateau_lr_factor": (0, 1),
    "return_quantile": (0, 1),
    "top_fraction": (0, 1),
    # weights, coefficients, temperatures, clamps
    "penalty_coef": (0, COEF),
    "cql_weight": (0, COEF),
    "eta": (0, COEF),
    "init_alpha": (0, COEF),
    "alpha_max": (0, COEF),
    "logvar_loss_coef": (0, COEF),
    "weight_decay": (0, COEF),
    "temperature": (0, COEF),
    "perturb_scale": (0, COEF),
    "lagrange_threshold": (-COEF, COEF),
    "threshold": (-COEF, COEF),
    "target_entropy": (-COEF, COEF),
    "target_min": (-1e9, 1e9),
    "log_std_min": (-20, 20),
    "log_std_max": (-20, 20),
}


def range_of(key: str) -> tuple[float, float] | None:
    """The allowed range of a dotted key: its whole path's, else its last part's; None if it has none."""
    return RANGES.get(key) or RANGES.get(key.rpartition(".")[2])


def _shown(bound: float) -> str:
    """A bound as people write it: 10^9, -10^6, 2^20, 2^31-1, 0.5."""
    if bound < 0:
        return "-" + _shown(-bound)
    if isinstance(bound, float):
        if not (bound.is_integer() and bound >= 10**6):
            return f"{bound:g}"
        bound = int(bound)
    if bound >= 10**6:
        for base in (10, 2):
            for k in range(64):
                if base**k == bound:
                    return f"{base}^{k}"
                if base == 2 and 2**k - 1 == bound:
                    return f"2^{k}-1"
    return str(bound)


def allowed(key: str) -> str:
    """The range of `key` as the error messages write it: `[1, 10^9]`."""
    found = range_of(key)
    return "any number" if found is None else f"[{_shown(found[0])}, {_shown(found[1])}]"


def check_value(key: str, value: Any) -> Any:
    """`value` (already of its field's type) if it lies in `key`'s range; else one line naming both.

    Tuples are checked item by item (a layer's width) and by length (at most `LAYERS` items)."""
    if isinstance(value, tuple):
        if len(value) > LAYERS:
            raise UserError(f"{key}: {len(value)} items, at most {LAYERS} are allowed")
        for item in value:
            check_value(key, item)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{key}: {value} is not a finite number; allowed: {allowed(key)}")
    found = range_of(key)
    if found is not None and not found[0] <= value <= found[1]:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise UserError(f"{key}: {shown} is outside its allowed range {allowed(key)}")
    return value


def check_option(flag: str, value: int | float, low: int | float, high: int | float) -> None:
    """A command-line option within [low, high], else one line naming it: `--starts must be between 1 and
    10^7, got 0` (the `positive` wording where only the lower bound is 1 and the value is below it)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{flag} must be a finite number, got {value}")
    if value < low and low == 1:
        raise UserError(f"{flag} must be positive, got {value} (at most {_shown(high)})")
    if not low <= value <= high:
        raise UserError(f"{flag} must be between {_shown(low)} and {_shown(high)}, got {value}")
