"""Offline datasets: Minari episodes flattened into device-resident transition tensors.

One loading path for every dataset (official Minari ids, imported D4RL files, the suite's own):
`minari.load_dataset`. Transitions come from each episode's own observation sequence, so next_obs is
never the first observation of the following episode (D4RL's `qlearning_dataset` bug). `term` holds
true terminals only; time-limit truncations are kept apart in `timeout` and never end a bootstrap.
Flat arrays are cached on disk under the dataset's content hash, so the second load skips Minari.

Every load checks the dataset folder first (`minari_io.dataset_damage`): a damaged dataset is one line
naming the file and the command that writes it again. The read cache (`cache_root()/datasets/<hash>.npz`)
and the content-hash memos (`cache_root()/hashes/<key>.txt`) are the suite's own: one that does not read
back whole (truncated, garbage, missing arrays, rows that disagree) is rebuilt from the Minari data and
replaced atomically; data holding NaN or inf is never cached. `clear_read_cache` removes them all
(`offline-mbrl cache clear`).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import minari
import numpy as np
import torch

from offline_mbrl.core.cache import atomic_path, cache_root, hash_files, stable_hash
from offline_mbrl.core.errors import EnvironmentFault, UserError
from offline_mbrl.data.envs import Environment, d4rl_reference_scores, environment_of_gym_id
from offline_mbrl.data.minari_io import damaged_message, dataset_damage, dataset_exists
from offline_mbrl.data.names import Resolution, ShortName, made_id, missing_dataset_message, resolve

FLAT_FORMAT = 1


@dataclass(frozen=True)
class Batch:
    """Transitions, each tensor `(B, ...)`. `term` is a true terminal (float 0/1), never a time-out.

    `from_model` marks the rows a training batch took from model rollouts (`rollout.mix` sets it), so a
    critic-target penalty (MOBILE) or a critic regulariser (COMBO) can act on model rows only; None on
    data that never mixes (the dataset itself, a rollout's transitions).
    """

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor  # (B,)
    next_obs: torch.Tensor
    term: torch.Tensor  # (B,)
    from_model: torch.Tensor | None = None  # (B,) bool

    def __len__(self) -> int:
        return self.obs.shape[0]

    def index(self, idx: torch.Tensor) -> Batch:
        values: list[Any] = [None if (v := getattr(self, f.name)) is None else v[idx] for f in fields(self)]
        return Batch(*values)

    def to(self, device: torch.device | str) -> Batch:
        values: list[Any] = [
            None if (v := getattr(self, f.name)) is None else v.to(device) for f in fields(self)
        ]
        return Batch(*values)


@dataclass(frozen=True)
class EnvSpec:
    """What the rest of the suite needs to know about a dataset's environment."""

    gym_id: str  # evaluation environment
    # the environment's short name ("hopper"): picks the termination function; None if unknown
    env: str | None
    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    max_episode_steps: int | None
    ref_min: float | None
    ref_max: float | None
    ref_source: str  # where the reference returns come from, or why there are none

    def normalize(self, returns: np.ndarray | float) -> np.ndarray | None:
        """D4RL normalised score `100 (R - R_random) / (R_expert - R_random)`, or None without references."""
        if self.ref_min is None or self.ref_max is None:
            return None
        return 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min) / (self.ref_max - self.ref_min)


@dataclass(frozen=True)
class Fingerprint:
    """Identity of a dataset's content: the dynamics cache key hashes this."""

    dataset_id: str
    version: int | None
    content_hash: str

    @property
    def key(self) -> str:
        return f"{self.dataset_id}@{self.content_hash}"


@dataclass
class OfflineDataset:
    """A whole dataset as flat transitions on one device, plus its episode structure."""

    name: str
    dataset_id: str
    spec: EnvSpec
    fingerprint: Fingerprint
    data: Batch
    timeout: torch.Tensor  # (N,) bool: the transition ended its episode by the time limit (or data end)
    episode_starts: np.ndarray  # (n_episodes,) index of each episode's first transition
    episode_lengths: np.ndarray  # (n_episodes,)
    episode_returns: np.ndarray  # (n_episodes,) float64 undiscounted return
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def start_obs(self) -> torch.Tensor:
        """Each episode's first observation, `(n_episodes, obs_dim)`."""
        return self.data.obs[torch.as_tensor(self.episode_starts, device=self.data.obs.device)]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        device = self.data.obs.device
        idx = torch.randint(len(self), (n,), device=device, generator=generator)
        return self.data.index(idx)

    def to(self, device: torch.device | str) -> OfflineDataset:
        return replace(self, data=self.data.to(device), timeout=self.timeout.to(device))

    def non_finite(self) -> dict[str, int]:
        """Transitions holding a NaN or ±inf, per field (only fields that have any)."""
        counts = {}
        for name in ("obs", "act", "rew", "next_obs"):
            x = getattr(self.data, name)
            bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
            if (n := int(bad.sum())) > 0:
                counts[name] = n
        return counts

    def check_finite(self) -> None:
        """Refuse a dataset holding NaN or ±inf: it is never learned from, and nothing is cached from it."""
        if bad := self.non_finite():
            where = ", ".join(f"{n:,} transitions in {k}" for k, n in bad.items())
            raise UserError(
                f"dataset {self.name} ({self.dataset_id}) holds non-finite values ({where}); nothing is "
                "learned from it: repair or remake the data (`offline-mbrl datasets info` shows the counts)"
            )


def load_dataset(name: str, device: torch.device | str = "cpu") -> OfflineDataset:
    """Load a dataset by short name or Minari id; see `names.resolve` for the order.

    A damaged dataset is a one-line UserError naming the file and the repair command; where a short name
    resolved to a damaged import while the suite's own made dataset is present, the line names that one
    too (the import still comes first: a name never silently changes the data it means).
    """
    res = resolve(name)
    if not res.present and not dataset_exists(res.dataset_id):  # (a swap killed midway is put back)
        raise EnvironmentFault(missing_dataset_message(res))
    if (damage := dataset_damage(res.path)) is not None:
        raise UserError(damaged_message(res.dataset_id, res.path, damage) + _made_instead(res))
    files = _data_files(res)
    content_hash = _content_hash(files)
    metadata = _read_metadata(res)
    cache_file = cache_root() / READ_CACHE / f"{stable_hash([res.dataset_id, content_hash, FLAT_FORMAT])}.npz"
    arrays = _read_flat(cache_file)
    if arrays is None:  # absent, or damaged: rebuilt from the Minari data and replaced atomically
        arrays = _flatten_minari(res)
        if all(np.isfinite(arrays[k]).all() for k in ("obs", "act", "rew", "next_obs")):
            with atomic_path(cache_file) as tmp:
                with open(tmp, "wb") as f:
                    # cast: numpy's stubs match **arrays against savez's allow_pickle keyword (numpy >= 2.1)
                    cast(Any, np.savez)(f, **arrays)
    spec = env_spec_from_metadata(res, metadata, arrays)
    version = res.dataset_id.rsplit("-v", 1)[-1]
    fingerprint = Fingerprint(res.dataset_id, int(version) if version.isdigit() else None, content_hash)
    as_t = torch.as_tensor
    data = Batch(
        obs=as_t(arrays["obs"]),
        act=as_t(arrays["act"]),
        rew=as_t(arrays["rew"]),
        next_obs=as_t(arrays["next_obs"]),
        term=as_t(arrays["term"]).float(),
    )
    ds = OfflineDataset(
        name=name,
        dataset_id=res.dataset_id,
        spec=spec,
        fingerprint=fingerprint,
        data=data,
        timeout=as_t(arrays["timeout"]),
        episode_starts=arrays["episode_starts"],
        episode_lengths=arrays["episode_lengths"],
        episode_returns=arrays["episode_returns"],
        metadata=metadata,
    )
    return ds.to(device)


def _made_instead(res: Resolution) -> str:
    """For a short name resolved to an import: where the suite's own made dataset of that name is."""
    if res.short is None or res.provenance != "imported D4RL":
        return ""
    made = made_id(ShortName(res.short.env, res.short.tier, None))
    return f" (or use the made dataset: --dataset {made})" if dataset_exists(made) else ""


def _data_files(res: Resolution) -> list[Path]:
    data = res.path / "data"
    return sorted(p for p in data.iterdir() if p.is_file())


READ_CACHE = "datasets"  # cache_root()/datasets/<16 hex>.npz: flattened transitions
HASH_MEMOS = "hashes"  # cache_root()/hashes/<32 hex>.txt: a dataset's content hash by (path, size, mtime)
_OWN_FILE = {
    READ_CACHE: re.compile(r"^[0-9a-f]{16}\.npz$"),
    HASH_MEMOS: re.compile(r"^[0-9a-f]{32}\.txt$"),
}
_TEMPORARY = re.compile(r"^\.(?P<final>[^/]+)\.tmp-[0-9a-f]{8}$")  # core.cache.atomic_path's temporaries
_TEMPORARY_STALE_S = 600  # a younger temporary may be another process's write in flight
_FLAT_KEYS = {
    "obs": np.float32,
    "act": np.float32,
    "rew": np.float32,
    "next_obs": np.float32,
    "term": np.bool_,
    "timeout": np.bool_,
    "episode_starts": np.int64,
    "episode_lengths": np.int64,
    "episode_returns": np.float64,
}


def clear_read_cache() -> int:
    """Remove the suite's read caches (flattened datasets and content-hash memos); returns how many files.

    Only files named as the suite names them in `cache_root()/datasets` and `cache_root()/hashes` (and
    their temporaries older than ten minutes); anything else there is left alone.
    """
    removed = 0
    for folder, own in _OWN_FILE.items():
        path = cache_root() / folder
        if not path.is_dir():
            continue
        for file in path.iterdir():
            temporary = _TEMPORARY.match(file.name)
            if temporary is not None:
                ours = own.match(temporary["final"]) is not None and _older_than(file, _TEMPORARY_STALE_S)
            else:
                ours = own.match(file.name) is not None
            if ours and file.is_file() and not file.is_symlink():
                try:
                    file.unlink()
                except FileNotFoundError:
                    continue  # another process removed or replaced it meanwhile
                removed += 1
    return removed


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _read_flat(cache_file: Path) -> dict[str, np.ndarray] | None:
    """The cached flat arrays if the file reads back whole and consistent, else None (absent or damaged)."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}  # reads every member: zip checks each one's CRC
    except Exception:  # zipfile, numpy and OS errors of a truncated or garbage file
        return None
    return arrays if _flat_consistent(arrays) else None


def _flat_consistent(arrays: dict[str, np.ndarray]) -> bool:
    if set(arrays) != set(_FLAT_KEYS) or any(arrays[k].dtype != t for k, t in _FLAT_KEYS.items()):
        return False
    n = len(arrays["rew"]) if arrays["rew"].ndim == 1 else -1
    lengths, starts = arrays["episode_lengths"], arrays["episode_starts"]
    return (
        n > 0
        and arrays["obs"].ndim == 2
        and arrays["obs"].shape[0] == n
        and arrays["next_obs"].shape == arrays["obs"].shape
        and arrays["act"].ndim == 2
        and arrays["act"].shape[0] == n
        and all(arrays[k].shape == (n,) for k in ("term", "timeout"))
        and lengths.ndim == 1
        and len(lengths) > 0
        and starts.shape == lengths.shape == arrays["episode_returns"].shape
        and bool((lengths > 0).all())
        and int(lengths.sum()) == n
        and bool((starts == np.concatenate([[0], np.cumsum(lengths)[:-1]])).all())
    )


def _content_hash(files: list[Path]) -> str:
    """Hash of the dataset's files, memoised by (path, size, mtime) so a warm load does not re-read them.

    A memo that is not a 32-digit hex digest (truncated, garbage) is recomputed and replaced."""
    stat_key = stable_hash([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files], 32)
    memo = cache_root() / HASH_MEMOS / f"{stat_key}.txt"
    try:
        memoised = memo.read_text().strip() if memo.is_file() else ""
    except (OSError, ValueError):
        memoised = ""
    if re.fullmatch(r"[0-9a-f]{32}", memoised):
        return memoised
    digest = hash_files(files)
    with atomic_path(memo) as tmp:
        tmp.write_text(digest)
    return digest


def _read_metadata(res: Resolution) -> dict:
    try:
        meta = json.loads((res.path / "data" / "metadata.json").read_bytes())
    except (OSError, ValueError) as exc:
        meta = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not isinstance(meta, dict):  # damaged between the check and this read
        damage = f"metadata.json is unreadable ({str(meta)[:80]})"
        raise UserError(damaged_message(res.dataset_id, res.path, damage))
    return meta


def _flatten_minari(res: Resolution) -> dict[str, np.ndarray]:
    """Read every episode through `minari.load_dataset` and flatten it into transition arrays."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = minari.load_dataset(res.dataset_id)
            episodes = list(dataset.iterate_episodes())
    except Exception as exc:  # h5py, json and Minari all raise their own types for damaged files
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}"
        data = res.path / "data"
        damage = f"{data} (metadata.json, main_data.hdf5) cannot be read by Minari ({detail[:160]})"
        raise UserError(damaged_message(res.dataset_id, res.path, damage)) from None
    if not episodes or not any(len(ep.rewards) for ep in episodes):
        raise UserError(damaged_message(res.dataset_id, res.path, "it holds no transitions"))
    if not isinstance(episodes[0].observations, np.ndarray) or not isinstance(
        episodes[0].actions, np.ndarray
    ):
        raise UserError(
            f"dataset '{res.dataset_id}' has structured (dict or tuple) observations or actions; "
            "the suite reads flat Box spaces only"
        )
    obs, act, rew, next_obs, term, timeout, lengths, returns = [], [], [], [], [], [], [], []
    for ep in episodes:
        n = len(ep.rewards)
        if n == 0:
            continue
        if ep.observations.shape[0] != n + 1:
            raise UserError(
                f"dataset '{res.dataset_id}' episode {ep.id} has {ep.observations.shape[0]} observations "
                f"for {n} steps (Minari stores steps + 1); the dataset is corrupted"
            )
        obs.append(ep.observations[:-1])
        next_obs.append(ep.observations[1:])  # the episode's own next observations, never the next episode's
        act.append(ep.actions.reshape(n, -1))
        rew.append(ep.rewards)
        term.append(ep.terminations.astype(bool))
        truncated = ep.truncations.astype(bool) & ~ep.terminations.astype(bool)
        if not truncated[-1] and not ep.terminations[-1]:
            truncated[-1] = (
                True  # an episode cut by the end of collection: bootstrap through it, as a time-out
            )
        timeout.append(truncated)
        lengths.append(n)
        returns.append(float(np.sum(ep.rewards, dtype=np.float64)))
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    return {
        "obs": np.concatenate(obs).astype(np.float32),
        "act": np.concatenate(act).astype(np.float32),
        "rew": np.concatenate(rew).astype(np.float32),
        "next_obs": np.concatenate(next_obs).astype(np.float32),
        "term": np.concatenate(term),
        "timeout": np.concatenate(timeout),
        "episode_starts": np.concatenate([[0], np.cumsum(lengths_arr)[:-1]]).astype(np.int64),
        "episode_lengths": lengths_arr,
        "episode_returns": np.asarray(returns, dtype=np.float64),
    }


def _eval_gym_id(metadata: dict) -> str | None:
    for key in ("eval_env_spec", "env_spec"):
        raw = metadata.get(key)
        if raw:
            try:
                return json.loads(raw)["id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return None


def env_spec_from_metadata(res: Resolution, metadata: dict, arrays: dict[str, np.ndarray]) -> EnvSpec:
    """Build the EnvSpec and check that the dataset's arrays fit the evaluation environment's spaces."""
    gym_id = _eval_gym_id(metadata)
    environment: Environment | None = environment_of_gym_id(gym_id) if gym_id else None
    if environment is not None:
        gym_id = environment.gym_id  # D4RL's mujoco-py ids (Hopper-v2) are evaluated on the Gymnasium v5 task
    if gym_id is None:
        raise UserError(
            f"dataset '{res.dataset_id}' names no environment in {res.path / 'data' / 'metadata.json'} "
            "(eval_env_spec or env_spec with an id); cannot evaluate on it"
        )
    try:
        env = gym.make(gym_id)
    except gym.error.Error as exc:
        raise UserError(
            f"dataset '{res.dataset_id}' names environment '{gym_id}', which Gymnasium cannot make ({exc})"
        ) from None
    obs_space, act_space = env.observation_space, env.action_space
    max_steps = env.spec.max_episode_steps if env.spec else None
    env.close()
    if not isinstance(act_space, gym.spaces.Box) or not isinstance(obs_space, gym.spaces.Box):
        raise UserError(
            f"environment '{gym_id}' has non-Box spaces; the suite supports continuous control only"
        )
    obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
    if arrays["obs"].shape[1] != obs_dim or arrays["act"].shape[1] != act_dim:
        raise UserError(
            f"dataset '{res.dataset_id}' does not match environment '{gym_id}': observations "
            f"{arrays['obs'].shape[1]} vs {obs_dim}, actions {arrays['act'].shape[1]} vs {act_dim}"
        )
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if ref_min is not None and ref_max is not None:
        source = "dataset metadata"
    elif environment is not None and environment.name in d4rl_reference_scores():
        ref = d4rl_reference_scores()[environment.name]
        ref_min, ref_max, source = ref.ref_min, ref.ref_max, f"{ref.source} for {environment.name}"
    else:
        ref_min = ref_max = None
        source = f"no reference returns: none in the dataset's metadata and none known for '{gym_id}'"
    return EnvSpec(
        gym_id=gym_id,
        env=environment.name if environment else None,
        obs_dim=obs_dim,
        act_dim=act_dim,
        act_low=tuple(float(x) for x in np.ravel(act_space.low)),
        act_high=tuple(float(x) for x in np.ravel(act_space.high)),
        max_episode_steps=max_steps,
        ref_min=None if ref_min is None else float(ref_min),
        ref_max=None if ref_max is None else float(ref_max),
        ref_source=source,
    )
