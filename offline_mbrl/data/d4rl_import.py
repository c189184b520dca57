"""`datasets import-d4rl`: turn a D4RL hdf5 file a user already has into a local Minari dataset.

Paper tables are measured on D4RL data; this is how users reproduce them without the hub. Episodes are
split at `terminals | timeouts`. With `next_observations` in the file every transition keeps its true
next observation. Without it, the last transition of each episode has no recorded next observation
(the next row of `observations` is the following episode's reset state, which D4RL's `qlearning_dataset`
wrongly used): that transition is dropped and the count reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from offline_mbrl.core.cache import hash_files
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.envs import ENVIRONMENTS, d4rl_reference_scores
from offline_mbrl.data.minari_io import Episode, publish_dataset
from offline_mbrl.data.names import imported_id, parse_short_name

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


@dataclass(frozen=True)
class ImportSummary:
    dataset_id: str
    path: Path
    episodes: int
    transitions: int
    terminals: int
    timeouts: int
    dropped: int  # transitions without a recorded next observation (files lacking next_observations)


def _read_arrays(file: Path) -> dict[str, np.ndarray]:
    if not file.is_file():
        raise UserError(f"no such file: {file}")
    try:
        with h5py.File(file, "r") as f:
            missing = [k for k in REQUIRED_KEYS if k not in f]
            if missing:
                raise UserError(
                    f"{file} is not a D4RL dataset: missing key(s) {', '.join(missing)} "
                    f"(needs {', '.join(REQUIRED_KEYS)}; next_observations optional)"
                )
            keys = [*REQUIRED_KEYS, *(["next_observations"] if "next_observations" in f else [])]
            arrays = {k: np.asarray(f[k][()]) for k in keys}
    except OSError as exc:
        raise UserError(f"cannot read {file} as hdf5 ({str(exc).splitlines()[0]})") from None
    n = len(arrays["rewards"])
    bad = [k for k, v in arrays.items() if len(v) != n]
    if bad:
        raise UserError(f"{file}: arrays {', '.join(bad)} do not have {n} rows like 'rewards'")
    return arrays


def split_episodes(arrays: dict[str, np.ndarray]) -> tuple[list[Episode], int]:
    """Cut the flat D4RL arrays into episodes at terminals or timeouts; returns (episodes, dropped)."""
    obs = arrays["observations"].astype(np.float32)
    act = arrays["actions"].astype(np.float32)
    rew = arrays["rewards"].astype(np.float32).reshape(-1)
    term = arrays["terminals"].astype(bool).reshape(-1)
    timeout = arrays["timeouts"].astype(bool).reshape(-1) & ~term
    next_obs = arrays.get("next_observations")
    ends = np.flatnonzero(term | timeout)
    if len(ends) == 0 or ends[-1] != len(rew) - 1:
        ends = np.append(ends, len(rew) - 1)  # trailing steps: an episode cut by the end of the file
    episodes, dropped = [], 0
    start: int | np.integer = 0  # then the row after each end (a numpy integer, from `ends`)
    for end in ends:
        stop = end + 1
        if next_obs is not None:
            ep_obs = np.concatenate([obs[start:stop], next_obs[end : end + 1].astype(np.float32)])
            sl = slice(start, stop)
        else:
            ep_obs = obs[start:stop]  # the final next observation was never recorded: drop that step
            sl = slice(start, end)
            dropped += 1
        n = sl.stop - sl.start
        if n > 0:
            trunc = np.zeros(n, dtype=bool)
            ep_term = term[sl].copy()
            if next_obs is None:
                trunc[-1] = True  # the kept part ends where the record of next observations stops
            else:
                trunc[-1] = not ep_term[-1]
            episodes.append(Episode(ep_obs, act[sl], rew[sl], ep_term, trunc))
        start = stop
    return episodes, dropped


def import_d4rl(file: Path, name: str, overwrite: bool = False) -> ImportSummary:
    short = parse_short_name(name)
    if short is None or short.version is None:
        raise UserError(
            f"--name '{name}' is not a D4RL name like hopper-medium-v2 "
            f"(environments: {', '.join(ENVIRONMENTS)}; the version suffix is required)"
        )
    environment = ENVIRONMENTS[short.env]
    arrays = _read_arrays(Path(file))
    env = gym.make(environment.gym_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if arrays["observations"].shape[1:] != obs_space.shape or arrays["actions"].shape[1:] != act_space.shape:
        raise UserError(
            f"{file} does not match {environment.gym_id}: observations {arrays['observations'].shape[1:]} vs "
            f"{obs_space.shape}, actions {arrays['actions'].shape[1:]} vs {act_space.shape}"
        )
    for field in ("observations", "actions", "rewards", "next_observations"):
        if field in arrays and not np.isfinite(arrays[field]).all():
            rows = int((~np.isfinite(arrays[field].reshape(len(arrays[field]), -1))).any(axis=1).sum())
            raise UserError(
                f"{file} holds non-finite values ({rows:,} rows of {field} with NaN or inf): not imported, "
                f"and nothing named {name} was written"
            )
    episodes, dropped = split_episodes(arrays)
    ref = d4rl_reference_scores().get(short.env)
    dataset_id = imported_id(short, short.version)
    source_hash = hash_files([Path(file)])
    path = publish_dataset(
        dataset_id,
        episodes,
        eval_env=environment.gym_id,
        observation_space=obs_space,
        action_space=act_space,
        ref_min=ref.ref_min if ref else None,
        ref_max=ref.ref_max if ref else None,
        algorithm_name="D4RL (imported)",
        description=(
            f"D4RL {name} imported from {Path(file).name} (blake2b {source_hash}) by offline-mbrl; "
            f"episodes split at terminals and timeouts; {dropped} final transitions without a recorded "
            "next observation dropped"
        ),
        code_permalink="https://github.com/Farama-Foundation/D4RL",
        overwrite=overwrite,
    )
    return ImportSummary(
        dataset_id=dataset_id,
        path=path,
        episodes=len(episodes),
        transitions=sum(len(e.rew) for e in episodes),
        terminals=int(sum(e.term.sum() for e in episodes)),
        timeouts=int(sum(e.trunc.sum() for e in episodes)),
        dropped=dropped,
    )
