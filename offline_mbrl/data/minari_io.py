"""Minari dataset folders: writing them atomically, and telling a whole one from a damaged one.

`minari.create_dataset_from_buffers` writes straight into `$MINARI_DATASETS_PATH/<id>`; a crash halfway
would leave a dataset the loader sees. We point Minari at a hidden staging root on the same filesystem
(Minari skips hidden folders when listing), let it write there, check the staged dataset, and only then
swap it into place: an existing dataset (`--overwrite`) is moved aside first and removed only once the
new one is in place; a failure puts it back. A staging root holds a marker file locked (flock) by the
process writing it, so the next publish removes the staging roots of killed processes (an unlocked marker)
and never a live one; only folders named `.staging-XXXXXXXX` directly under the Minari root are touched.

`dataset_damage` is the cheap check every reader runs first (the metadata parses as an object with
episodes, the hdf5 file opens and holds that many episodes); `damaged_message` says what is damaged and
the exact command that makes, imports or downloads the dataset again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import gymnasium as gym
import h5py
import numpy as np
from minari import create_dataset_from_buffers
from minari.data_collector import EpisodeBuffer
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage import get_dataset_path

from offline_mbrl.core.cache import temp_dir_beside, write_fault
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.envs import TIERS

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: staging roots are never judged stale
    fcntl = None  # type: ignore[assignment]

STAGING = re.compile(r"^\.staging-[a-z0-9_]{8}$")  # tempfile.mkdtemp(prefix=".staging-") in the Minari root
STAGING_MARKER = "offline-mbrl-staging.lock"  # held locked by the process that stages
# a staging root without a marker (an older version's) is stale after a day: its folder's own time stops
# changing once the writer has made its first subfolder, so a long make of an older checkout needs room
UNMARKED_STALE_S = 86_400
FRESH_MARKER_S = 60  # an empty marker younger than this may be a publish between creating and locking it


@dataclass(frozen=True)
class Episode:
    """One episode in Minari's layout: `obs` has one more row than the steps."""

    obs: np.ndarray  # (T + 1, obs_dim)
    act: np.ndarray  # (T, act_dim)
    rew: np.ndarray  # (T,)
    term: np.ndarray  # (T,) bool
    trunc: np.ndarray  # (T,) bool

    def buffer(self, episode_id: int) -> EpisodeBuffer:
        return EpisodeBuffer(
            id=episode_id,
            observations=self.obs,
            actions=self.act,
            rewards=self.rew,
            terminations=self.term,
            truncations=self.trunc,
            infos={},
        )


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def dataset_exists(dataset_id: str) -> bool:
    final = Path(get_dataset_path(dataset_id))
    if not (final / "data").is_dir():
        restore_swapped_out(final)
    return (final / "data").is_dir()


SWAPPED_OUT = re.compile(r"\.(?P<name>.+)\.old-[0-9a-f]{8}")  # `_swap_in`'s name for the dataset it replaces
SWAP_S = 60  # a live swap holds the old dataset aside for microseconds; a killed one, forever


def restore_swapped_out(final: Path) -> bool:
    """Put back a dataset that a swap killed between its two renames left hidden beside its place
    (`.NAME.old-XXXXXXXX`, older than a minute, the place empty); returns whether it did."""
    try:
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            return False
        hidden = [
            p
            for p in final.parent.glob(f".{final.name}.old-*")
            if SWAPPED_OUT.fullmatch(p.name)
            and p.is_dir()
            and time.time() - p.stat().st_ctime > SWAP_S  # ctime: the rename
        ]
        if len(hidden) != 1 or not (hidden[0] / "data").is_dir():
            return False
        os.replace(hidden[0], final)  # over an empty folder too (POSIX rename)
    except OSError:
        return False
    return True


def dataset_damage(path: Path) -> str | None:
    """What is damaged in the dataset folder `path` (one phrase naming the file), or None if it looks whole.

    Cheap enough for every load: parses `data/metadata.json`, opens `data/main_data.hdf5` and counts its
    episode groups; never reads the arrays (a damaged array is caught where they are read).
    """
    data = Path(path) / "data"
    meta_file = data / "metadata.json"
    if not meta_file.is_file():
        return f"{meta_file} is missing (the dataset is incomplete)"
    try:
        meta = json.loads(meta_file.read_bytes())
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{meta_file} is not readable JSON ({'empty file' if _empty(meta_file) else detail})"
    if not isinstance(meta, dict):
        return f"{meta_file} holds a JSON {type(meta).__name__}, not an object"
    episodes, steps = meta.get("total_episodes"), meta.get("total_steps")
    if not _count(episodes) or not _count(steps):
        return f"{meta_file} records no episodes (total_episodes {episodes!r}, total_steps {steps!r})"
    for key in ("ref_min_score", "ref_max_score"):
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{meta_file} has a {key} that is not a number ({value!r:.40})"
    for key in ("eval_env_spec", "env_spec"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"{meta_file} has an {key} that is not a string"
    if meta.get("data_format", "hdf5") != "hdf5":
        return None  # another storage format: Minari reads it, and the load reports what it cannot read
    main = data / "main_data.hdf5"
    if not main.is_file():
        return f"{main} is missing (the dataset is incomplete)"
    try:
        with h5py.File(main, "r") as f:
            groups = len(f)
            last = f"episode_{episodes - 1}" in f
    except Exception as exc:  # h5py raises OSError, KeyError or RuntimeError for a damaged file
        detail = "empty file" if _empty(main) else (str(exc).splitlines()[0] if str(exc) else "unreadable")
        return f"{main} is not a readable hdf5 file ({detail[:120]})"
    if groups != episodes or not last:
        return f"{main} holds {groups} episodes where metadata.json records {episodes}"
    return None


def _empty(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return path.stat().st_size == 0
    return False


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def repair_command(dataset_id: str, path: Path | None = None) -> str:
    """The exact command that writes `dataset_id` again (make, import or download)."""
    parts = dataset_id.split("/")
    if len(parts) == 3 and parts[0] == "offline-mbrl":
        env, rest = parts[1], parts[2].removesuffix("-v0")
        if env in ("pointmaze", "point2d"):
            return f"offline-mbrl datasets make {env}-{rest} --overwrite"
        tier = max((t for t in TIERS if rest == t or rest.startswith(t + "-")), key=len, default=None)
        if tier is not None:
            family = rest[len(tier) + 1 :]
            fam = f" --family {family}" if family else ""
            return f"offline-mbrl datasets make {env}-{tier}{fam}{_made_with(path)} --overwrite"
    if len(parts) == 3 and parts[0] == "d4rl-import":
        return (
            f"offline-mbrl datasets import-d4rl {_imported_from(path)} "
            f"--name {parts[1]}-{parts[2]} --overwrite"
        )
    return f"minari download {dataset_id} --force"


def _made_with(path: Path | None) -> str:
    """` --size N --seed S` as a made dataset's metadata records them, where it still reads."""
    with contextlib.suppress(Exception):
        made = json.loads((Path(path or "") / "data" / "metadata.json").read_bytes())["offline_mbrl"]
        size, seed = made["size"], made["seed"]
        if _count(size) and isinstance(seed, int):
            return f" --size {size}" + (f" --seed {seed}" if seed else "")
    return ""


def _imported_from(path: Path | None) -> str:
    """The D4RL file an import was made from (its description names it), else FILE.hdf5."""
    with contextlib.suppress(Exception):
        meta = json.loads((Path(path or "") / "data" / "metadata.json").read_bytes())
        found = re.search(r"imported from (\S+\.(?:hdf5|h5)) \(", str(meta.get("description", "")))
        if found:
            return found[1]
    return "FILE.hdf5"


def damaged_message(dataset_id: str, path: Path, damage: str) -> str:
    """One line: the dataset, the damaged file, and the command that writes it again."""
    command = repair_command(dataset_id, path)
    return (
        f"dataset '{dataset_id}' is damaged (corrupted or partial): {damage}; write it again with `{command}`"
    )


def check_dataset(dataset_id: str) -> None:
    """Raise the one-line UserError of `damaged_message` if the dataset's folder is damaged."""
    path = Path(get_dataset_path(dataset_id))
    if (damage := dataset_damage(path)) is not None:
        raise UserError(damaged_message(dataset_id, path, damage))


def remove_stale_staging(root: Path | None = None) -> int:
    """Remove the staging roots that killed publishes left under the Minari root; returns how many.

    Only `.staging-XXXXXXXX` folders directly under the root: one whose marker is not locked (its writer
    is gone: the kernel drops a killed process's locks), or one without a marker older than an hour.
    """
    root = Path(root or get_dataset_path())
    try:
        folders = list(root.iterdir()) if root.is_dir() else []
    except OSError:  # an unreadable Minari root: its own error comes from the command's next step
        return 0
    removed = 0
    for folder in folders:
        if not STAGING.match(folder.name) or not folder.is_dir() or folder.is_symlink():
            continue
        marker = folder / STAGING_MARKER
        stale = False
        if marker.is_file():
            # a marker is written only after its lock is taken: an empty one may belong to a publish
            # that has created it and not yet locked it (judged by its age instead)
            with contextlib.suppress(OSError):
                young = time.time() - marker.stat().st_mtime < FRESH_MARKER_S
                stale = _unlocked(marker) and (marker.stat().st_size > 0 or not young)
        else:
            with contextlib.suppress(OSError):
                stale = time.time() - folder.stat().st_mtime > UNMARKED_STALE_S
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    return removed


def _unlocked(marker: Path) -> bool:
    if fcntl is None:
        return False
    try:
        fd = os.open(marker, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a live publish
    else:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken


@contextlib.contextmanager
def _staging_root(root: Path) -> Iterator[Path]:
    """A fresh hidden staging root under `root`, marked and locked as ours while the block runs."""
    remove_stale_staging(root)
    staging = temp_dir_beside(root)
    fd = os.open(staging / STAGING_MARKER, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"offline-mbrl staging, pid {os.getpid()}\n".encode())
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(fd)


def _swap_in(new: Path, final: Path) -> None:
    """Put folder `new` at `final`. An existing `final` is moved aside first and removed only once `new`
    is in place; if that rename fails, it is put back."""
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    had_old = final.exists()
    if had_old:
        os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        if had_old:
            os.replace(old, final)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def publish_dataset(
    dataset_id: str,
    episodes: list[Episode],
    *,
    eval_env: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    ref_min: float | None,
    ref_max: float | None,
    algorithm_name: str,
    description: str,
    code_permalink: str,
    overwrite: bool = False,
    extra_metadata: dict | None = None,
) -> Path:
    """Write `episodes` as the Minari dataset `dataset_id`, all or nothing. Returns its folder.

    No episode, or an episode without steps, is refused before anything is written; the staged dataset
    is checked (`dataset_damage`, its step count) before it replaces anything.
    """
    final = Path(get_dataset_path(dataset_id))
    if (final / "data").is_dir() and not overwrite:
        raise UserError(f"dataset '{dataset_id}' already exists at {final}; pass --overwrite to replace it")
    steps = sum(len(ep.rew) for ep in episodes)
    if not episodes or any(len(ep.rew) == 0 for ep in episodes):
        raise UserError(f"dataset '{dataset_id}' would hold no transitions or an empty episode: not written")
    datasets_root = Path(get_dataset_path())
    try:
        return _publish(dataset_id, episodes, final, steps, datasets_root, dict(
            eval_env=eval_env, observation_space=observation_space, action_space=action_space,
            algorithm_name=algorithm_name, author="offline-mbrl", description=description,
            code_permalink=code_permalink, ref_min_score=ref_min, ref_max_score=ref_max, data_format="hdf5",
        ), extra_metadata)  # fmt: skip
    except OSError as exc:  # a full disk or a folder without write permission, while staging or swapping
        raise write_fault(final, exc) from None


def _publish(
    dataset_id: str,
    episodes: list[Episode],
    final: Path,
    steps: int,
    datasets_root: Path,
    minari_args: dict[str, Any],
    extra_metadata: dict | None,
) -> Path:
    with _staging_root(datasets_root) as staging:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # Minari warns about author/email fields we leave empty on purpose
            dataset = create_dataset_from_buffers(
                dataset_id=dataset_id, buffer=[ep.buffer(i) for i, ep in enumerate(episodes)], **minari_args
            )
            if extra_metadata:
                dataset.storage.update_metadata(extra_metadata)
        staged = staging / dataset_id
        damage = dataset_damage(staged)
        if damage is None and dataset.storage.total_steps != steps:
            damage = f"{dataset.storage.total_steps} steps written of {steps}"
        if damage is not None:
            raise UserError(f"dataset '{dataset_id}' was not written correctly ({damage}); nothing replaced")
        namespace = dataset_id.split("/")[0]
        if "/" in dataset_id and namespace not in list_local_namespaces():
            with contextlib.suppress(ValueError):  # another process created it meanwhile
                create_namespace(namespace)
        final.parent.mkdir(parents=True, exist_ok=True)
        _swap_in(staged, final)
    return final
