"""Datasets: loading (`dataset`: Batch, EnvSpec, OfflineDataset, load_dataset; `names`, `envs`, `catalog`,
`minari_io`, `d4rl_import`) and making the suite's own (`make/`). Data knows only core."""

from offline_mbrl.data.dataset import Batch, EnvSpec, OfflineDataset, load_dataset

__all__ = ["Batch", "EnvSpec", "OfflineDataset", "load_dataset"]
