"""Where the suite's committed assets live (behaviour checkpoints, MDP-family files, sweep spaces)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def project_root() -> Path:
    """The checkout the package runs from (`$OFFLINE_MBRL_ROOT` overrides; the suite installs editable)."""
    override = os.environ.get("OFFLINE_MBRL_ROOT")
    return Path(override) if override else Path(__file__).resolve().parents[2]


def assets_dir() -> Path:
    """The top-level `datasets/` folder: behaviour-policy checkpoints, manifests, MDP-family files."""
    return project_root() / "datasets"


def code_version() -> str:
    """`git describe --always --dirty` of the checkout, or "unknown" outside one."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root()), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# The packages whose versions determine made data and results (the physics, the environments, the random
# streams, the networks); recorded in every made dataset's metadata and every run's config.json.
STACK = ("mujoco", "gymnasium", "gymnasium-robotics", "minari", "numpy", "torch")


def stack_versions() -> dict[str, str]:
    """{package: installed version} of `STACK` ("absent" where one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in STACK:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found
