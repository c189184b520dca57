"""The `--set algo.reward.*` items of the commands that fit MOREC's dynamics reward beside an ensemble
(`dynamics fit --reward`, `diagnose --reward`): split from the dynamics items once, here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from offline_mbrl.algorithms.morec.reward import DynamicsRewardConfig
from offline_mbrl.config import set_paths
from offline_mbrl.core.errors import UserError


def split_reward_overrides(
    items: Sequence[str], reward: bool
) -> tuple[list[str], DynamicsRewardConfig | None]:
    """`--set` items of a command that fits dynamics and, with `--reward`, MOREC's dynamics reward: the
    dynamics items and the reward's config (None without `--reward`; `algo.reward.*` items then are a
    one-line error)."""
    is_reward = [i.strip().startswith(("algo.reward.", "reward.")) for i in items]
    if any(is_reward) and not reward:
        raise UserError("--set algo.reward.* applies to the dynamics reward: add --reward")
    reward_items = [i for i, r in zip(items, is_reward, strict=True) if r]
    dynamics_items = [i for i, r in zip(items, is_reward, strict=True) if not r]
    return dynamics_items, reward_config_from_overrides(reward_items) if reward else None


def reward_config_from_overrides(overrides: list[str]) -> Any:
    """`dynamics fit --reward`'s dynamics-reward config: the `algo.reward.KEY=V` keys MOREC runs take
    (`reward.KEY=V` also accepted)."""
    from offline_mbrl.algorithms.morec.reward import DynamicsRewardConfig

    items: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("algo.").removeprefix("reward.")
        if not sep:
            raise UserError(f"--set expects key=value, got '{item}'")
        items[key] = value.strip()
    return set_paths(DynamicsRewardConfig(), items, "algo.reward.")
