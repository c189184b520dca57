"""`datasets import-d4rl`: turn a D4RL hdf5 file a user already has into a local Minari dataset.

Paper tables are measured on D4RL data; this is how users reproduce them without the hub. Episodes are
split at `terminals | timeouts`. With `next_observations` in the file every transition keeps its true
next observation. Without it, the last transition of each episode has no recorded next observation
(the next row of `observations` is the following episode's reset state, which D4RL's `qlearning_dataset`
wrongly used): that transition is dropped and the count reported.

The whole file is checked before anything is written, each failure one line naming the key: every
required key an array (not a group) of numbers, at least one row, the same rows in every key, the
observation and action shapes of the environment's spaces, finite values (also after the cast to float32,
so 1e300 is refused rather than imported as inf), actions inside the action space, terminals and timeouts
0 or 1, and at least one transition left after splitting. With `--overwrite` the new dataset is staged and
checked whole before it replaces the old one (`minari_io.publish_dataset`); a refused file leaves the old
one untouched.
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
        raise UserError(f"no such file: {file}" + (" (a folder)" if file.is_dir() else ""))
    try:
        with h5py.File(file, "r") as f:
            missing = [k for k in REQUIRED_KEYS if k not in f]
            if missing:
                raise UserError(
                    f"{file} is not a D4RL dataset: missing key(s) {', '.join(missing)} "
                    f"(needs {', '.join(REQUIRED_KEYS)}; next_observations optional)"
                )
            keys = [*REQUIRED_KEYS, *(["next_observations"] if "next_observations" in f else [])]
            arrays = {k: _read_key(file, f, k) for k in keys}
    except OSError as exc:
        raise UserError(f"cannot read {file} as hdf5 ({str(exc).splitlines()[0][:160]})") from None
    n = len(arrays["rewards"])
    if n == 0:
        raise UserError(f"{file} holds no transitions (0 rows in 'rewards'): nothing imported")
    bad = [f"{k} ({len(v):,})" for k, v in arrays.items() if len(v) != n]
    if bad:
        raise UserError(f"{file}: arrays {', '.join(bad)} do not have {n:,} rows like 'rewards'")
    return arrays


def _read_key(file: Path, f: h5py.File, key: str) -> np.ndarray:
    """One key's array: an hdf5 dataset (not a group) of numbers or booleans, with a row axis."""
    node = f.get(key)
    if not isinstance(node, h5py.Dataset):
        raise UserError(f"{file}: '{key}' is a {type(node).__name__}, not an array: not a D4RL dataset")
    if node.dtype.kind not in "biuf":
        raise UserError(f"{file}: '{key}' holds {node.dtype} values, not numbers: not a D4RL dataset")
    if node.ndim == 0:
        raise UserError(f"{file}: '{key}' is a single value, not an array with one row per transition")
    try:
        return np.asarray(node[()])
    except (OSError, ValueError, RuntimeError) as exc:  # a damaged chunk or filter
        raise UserError(f"{file}: '{key}' cannot be read ({str(exc).splitlines()[0][:120]})") from None


def _check_arrays(file: Path, arrays: dict[str, np.ndarray], gym_id: str, obs_space, act_space) -> None:
    """Refuse, in one line naming the key, what the environment's spaces or the format do not allow."""
    n = len(arrays["rewards"])
    for key in ("observations", "next_observations"):
        if key in arrays and arrays[key].shape[1:] != obs_space.shape:
            raise UserError(
                f"{file} does not match {gym_id}: {key} {arrays[key].shape[1:]} vs {obs_space.shape} per row"
            )
    if arrays["actions"].shape[1:] != act_space.shape:
        raise UserError(
            f"{file} does not match {gym_id}: actions {arrays['actions'].shape[1:]} vs "
            f"{act_space.shape} per row"
        )
    for key in ("rewards", "terminals", "timeouts"):
        if arrays[key].shape not in ((n,), (n, 1)):
            raise UserError(f"{file}: '{key}' has shape {arrays[key].shape}; expected ({n},) or ({n}, 1)")
    for key in ("observations", "actions", "rewards", "next_observations"):
        if key not in arrays:
            continue
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf here, and is refused
            rows = (~np.isfinite(arrays[key].astype(np.float32)).reshape(n, -1)).any(axis=1)
        if rows.any():
            raise UserError(
                f"{file} holds non-finite values ({int(rows.sum()):,} rows of {key} with NaN, inf or a value "
                "beyond float32's range): not imported, and nothing was written"
            )
    for key in ("terminals", "timeouts"):
        flags = arrays[key]
        if not np.isin(flags, (0, 1)).all():
            raise UserError(f"{file}: '{key}' holds values other than 0 and 1 (true or false)")
    act = arrays["actions"].astype(np.float64).reshape(n, -1)
    low, high = np.ravel(act_space.low).astype(np.float64), np.ravel(act_space.high).astype(np.float64)
    slack = 1e-5 * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))
    outside = ((act < low - slack) | (act > high + slack)).any(axis=1)
    if outside.any():
        raise UserError(
            f"{file}: 'actions' has {int(outside.sum()):,} of {n:,} rows outside {gym_id}'s action range "
            f"[{_span(low)}, {_span(high)}] (seen {act.min():.4g} to {act.max():.4g}): not imported"
        )


def _span(bound: np.ndarray) -> str:
    return f"{bound[0]:g}" if np.all(bound == bound[0]) else "(" + ", ".join(f"{b:g}" for b in bound) + ")"


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
    _check_arrays(Path(file), arrays, environment.gym_id, obs_space, act_space)
    episodes, dropped = split_episodes(arrays)
    if not episodes:
        raise UserError(
            f"{file} leaves no transition to import: every episode has one step, and without "
            "next_observations the last step of each has no recorded next observation"
        )
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
