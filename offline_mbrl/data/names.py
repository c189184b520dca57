"""Dataset names: D4RL-style short names and how they resolve to Minari dataset ids.

Resolution order for a name:
1. a Minari id given verbatim (it contains '/', e.g. `mujoco/hopper/medium-v0`) is used as is;
2. a short name `{env}-{tier}[-vN]` resolves to a locally present imported D4RL dataset
   `d4rl-import/{env}/{tier}-vN` (the newest version when none is given),
3. else to the suite's own `offline-mbrl/{env}/{tier}-v0` (made by `offline-mbrl datasets make`).

An import shadows the made dataset of the same short name on purpose (D4RL's data is what the papers
measured). A damaged import is not skipped in favour of the made one: a name that silently changed the data
it means would change a run's fingerprint and results. Loading it fails in one line naming the damaged
file, the command that imports it again, and the made dataset's id where one is present
(`dataset.load_dataset`); `datasets import-d4rl` and `datasets make` say when a short name now resolves to
another dataset than the one just written (`shadowing_note`).

A task dataset (`pointmaze-stitch`, optionally `-v0`) is not ENV-TIER of a D4RL environment; it resolves
to the suite's own `offline-mbrl/pointmaze/stitch-v0` and carries a ShortName with its own "tier".
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from minari.storage import get_dataset_path

from offline_mbrl.core.errors import UserError
from offline_mbrl.data.envs import ENVIRONMENTS, POINT2D, POINTMAZE, TIERS

IMPORT_NAMESPACE = "d4rl-import"
MADE_NAMESPACE = "offline-mbrl"

_SHORT = re.compile(
    r"^(?P<env>[a-z0-9-]+?)-(?P<tier>" + "|".join(re.escape(t) for t in TIERS) + r")(?:-v(?P<version>\d+))?$"
)


@dataclass(frozen=True)
class ShortName:
    env: str
    tier: str
    version: int | None

    def __str__(self) -> str:
        suffix = "" if self.version is None else f"-v{self.version}"
        return f"{self.env}-{self.tier}{suffix}"


@dataclass(frozen=True)
class Resolution:
    name: str  # what the user typed
    dataset_id: str  # the Minari id it resolves to
    provenance: str  # "imported D4RL", "made by offline-mbrl", "Minari"
    short: ShortName | None

    @property
    def path(self) -> Path:
        return Path(get_dataset_path(self.dataset_id))

    @property
    def present(self) -> bool:
        return (self.path / "data").is_dir()


POINTMAZE_STITCH = "pointmaze-stitch"
# made task datasets outside ENV-TIER: name -> its ShortName (made only, never imported from D4RL)
POINT2D_PARTIAL = "point2d-partial"
TASK_DATASETS: dict[str, ShortName] = {
    POINTMAZE_STITCH: ShortName(POINTMAZE.name, "stitch", None),
    POINT2D_PARTIAL: ShortName(POINT2D.name, "partial", None),
}


def task_dataset(name: str) -> ShortName | None:
    """The ShortName of a task dataset's name (`pointmaze-stitch` or `pointmaze-stitch-v0`), else None."""
    name = name.strip()
    return TASK_DATASETS.get(name.removesuffix("-v0"))


def preset_task(name: str) -> str | None:
    """The task name presets are keyed by (`hopper-medium`, `pointmaze-stitch`), or None."""
    short = parse_short_name(name) or task_dataset(name)
    return None if short is None else f"{short.env}-{short.tier}"


def all_short_names() -> list[str]:
    return [f"{env}-{tier}" for env in ENVIRONMENTS for tier in TIERS] + list(TASK_DATASETS)


def parse_short_name(name: str) -> ShortName | None:
    match = _SHORT.match(name)
    if match is None or match["env"] not in ENVIRONMENTS:
        return None
    version = match["version"]
    return ShortName(match["env"], match["tier"], None if version is None else int(version))


def provenance_of(dataset_id: str) -> str:
    namespace = dataset_id.split("/", 1)[0]
    return {IMPORT_NAMESPACE: "imported D4RL", MADE_NAMESPACE: "made by offline-mbrl"}.get(
        namespace, "Minari"
    )


def imported_id(short: ShortName, version: int) -> str:
    return f"{IMPORT_NAMESPACE}/{short.env}/{short.tier}-v{version}"


def made_id(short: ShortName) -> str:
    return f"{MADE_NAMESPACE}/{short.env}/{short.tier}-v{short.version or 0}"


def _imported_versions(short: ShortName) -> list[int]:
    folder = Path(get_dataset_path(f"{IMPORT_NAMESPACE}/{short.env}"))
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(short.tier)}-v(\d+)$")
    found = (pattern.match(p.name) for p in folder.iterdir() if (p / "data").is_dir())
    return sorted(int(m[1]) for m in found if m)


def resolve(name: str) -> Resolution:
    """Map a user-facing dataset name to a Minari id (present or not). Unknown names raise UserError."""
    name = name.strip()
    if "/" in name:
        return Resolution(name, name, provenance_of(name), None)
    task = task_dataset(name)
    if task is not None:
        return Resolution(name, made_id(task), "made by offline-mbrl", task)
    short = parse_short_name(name)
    if short is None:
        close = difflib.get_close_matches(name, all_short_names(), n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; `offline-mbrl datasets list` shows them all"
        )
        raise UserError(f"unknown dataset name '{name}'{hint}")
    versions = _imported_versions(short)
    if short.version is not None and short.version in versions:
        return Resolution(name, imported_id(short, short.version), "imported D4RL", short)
    if short.version is None and versions:
        return Resolution(name, imported_id(short, versions[-1]), "imported D4RL", short)
    return Resolution(name, made_id(short), "made by offline-mbrl", short)


def missing_dataset_message(res: Resolution) -> str:
    """One line that says the dataset is absent and the exact command that makes, imports or downloads it."""
    if res.short is None:
        if res.provenance == "Minari":
            how = f"download it with `minari download {res.dataset_id}`"
        else:
            how = "make or import it first (see `offline-mbrl datasets list`)"
        return f"dataset '{res.dataset_id}' is not present under {res.path.parent}: {how}"
    base = f"{res.short.env}-{res.short.tier}"
    if base in TASK_DATASETS:
        return f"dataset '{res.name}' is not present: make it with `offline-mbrl datasets make {base}`"
    d4rl_version = res.short.version if res.short.version not in (None, 0) else 2
    return (
        f"dataset '{res.name}' is not present: make it with `offline-mbrl datasets make {base}`, "
        "or import D4RL's file with "
        f"`offline-mbrl datasets import-d4rl FILE.hdf5 --name {base}-v{d4rl_version}`"
    )


def shadowing_note(dataset_id: str) -> str | None:
    """A note when the short name of the just-written `dataset_id` means another dataset, else None."""
    parts = dataset_id.split("/")
    if len(parts) != 3 or parts[0] not in (IMPORT_NAMESPACE, MADE_NAMESPACE):
        return None
    short = parse_short_name(f"{parts[1]}-{parts[2]}")
    if short is None:
        return None  # a family's dataset has no short name
    base = f"{short.env}-{short.tier}"
    now = resolve(base)
    if parts[0] == MADE_NAMESPACE and now.dataset_id != dataset_id:
        return (
            f"note: `{base}` resolves to the imported {now.dataset_id} (imports come first); "
            f"use --dataset {dataset_id} for the one just made"
        )
    made = resolve(made_id(ShortName(short.env, short.tier, None)))
    if parts[0] == IMPORT_NAMESPACE and now.dataset_id == dataset_id and made.present:
        return (
            f"note: `{base}` now means this import (imports come before made datasets); "
            f"the made {made.dataset_id} stays, by its id"
        )
    return None
