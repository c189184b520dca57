"""Where the suite's committed assets live (behaviour checkpoints, MDP-family files, sweep spaces)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout the package runs from (`$OFFLINE_MBRL_ROOT` overrides; the suite installs editable)."""
    override = os.environ.get("OFFLINE_MBRL_ROOT")
    return Path(override) if override else Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """The top-level `datasets/` folder: behaviour-policy checkpoints, manifests, MDP-family files."""
    return project_root() / "datasets"
