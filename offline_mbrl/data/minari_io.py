"""Writing Minari datasets atomically: build under a hidden staging root, publish by rename.

`minari.create_dataset_from_buffers` writes straight into `$MINARI_DATASETS_PATH/<id>`; a crash halfway
would leave a dataset the loader sees. We point Minari at a hidden staging root on the same filesystem
(Minari skips hidden folders when listing), let it write there, and rename the finished folder into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from minari import create_dataset_from_buffers
from minari.data_collector import EpisodeBuffer
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage import get_dataset_path

from offline_mbrl.core.cache import replace_dir, temp_dir_beside
from offline_mbrl.core.errors import UserError


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
    return (Path(get_dataset_path(dataset_id)) / "data").is_dir()


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
    """Write `episodes` as the Minari dataset `dataset_id`, all or nothing. Returns its folder."""
    final = Path(get_dataset_path(dataset_id))
    if (final / "data").is_dir() and not overwrite:
        raise UserError(f"dataset '{dataset_id}' already exists at {final}; pass --overwrite to replace it")
    datasets_root = Path(get_dataset_path())
    staging = temp_dir_beside(datasets_root)
    try:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # Minari warns about author/email fields we leave empty on purpose
            dataset = create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=[ep.buffer(i) for i, ep in enumerate(episodes)],
                eval_env=eval_env,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=algorithm_name,
                author="offline-mbrl",
                description=description,
                code_permalink=code_permalink,
                ref_min_score=ref_min,
                ref_max_score=ref_max,
                data_format="hdf5",
            )
            if extra_metadata:
                dataset.storage.update_metadata(extra_metadata)
        namespace = dataset_id.split("/")[0]
        if "/" in dataset_id and namespace not in list_local_namespaces():
            with contextlib.suppress(ValueError):  # another process created it meanwhile
                create_namespace(namespace)
        final.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(staging / dataset_id, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
