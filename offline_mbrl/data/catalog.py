"""What datasets exist: every known short name, what it resolves to, and any other local Minari dataset.

A damaged dataset folder is listed with what is damaged and the command that writes it again; it never
stops the listing of the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from minari.storage import get_dataset_path

from offline_mbrl.data.minari_io import dataset_damage, repair_command
from offline_mbrl.data.names import Resolution, all_short_names, provenance_of, resolve


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    dataset_id: str
    present: bool
    transitions: int | None
    episodes: int | None
    size_mb: float | None
    provenance: str
    damage: str | None = None  # what is damaged, for a present dataset that does not read
    repair: str | None = None  # the command that writes it again

    @property
    def damaged(self) -> bool:
        return self.damage is not None


def _describe(res: Resolution) -> CatalogEntry:
    steps = episodes = size = damage = repair = None
    if res.present:
        damage = dataset_damage(res.path)
        if damage is None:
            try:
                meta = json.loads((res.path / "data" / "metadata.json").read_bytes())
                steps, episodes = meta["total_steps"], meta["total_episodes"]
            except (OSError, ValueError, KeyError, TypeError):
                damage = "metadata.json changed while it was listed"
        if damage is not None:
            repair = repair_command(res.dataset_id, res.path)
        try:
            size = sum(p.stat().st_size for p in (res.path / "data").iterdir() if p.is_file()) / 2**20
        except OSError:
            size = None
    return CatalogEntry(
        res.name, res.dataset_id, res.present, steps, episodes, size, res.provenance, damage, repair
    )


def local_dataset_ids() -> list[str]:
    """Ids of every dataset folder under the Minari root (hidden staging folders excluded)."""
    root = Path(get_dataset_path())
    ids = []
    for data in root.rglob("data"):
        rel = data.parent.relative_to(root)
        if data.is_dir() and not any(part.startswith(".") for part in rel.parts):
            ids.append(rel.as_posix())
    return sorted(ids)


def catalog() -> list[CatalogEntry]:
    entries = [_describe(resolve(name)) for name in all_short_names()]
    covered = {e.dataset_id for e in entries}
    for dataset_id in local_dataset_ids():
        if dataset_id not in covered:
            entries.append(_describe(Resolution(dataset_id, dataset_id, provenance_of(dataset_id), None)))
    return entries
