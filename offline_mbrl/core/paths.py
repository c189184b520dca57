"""Where the suite's committed assets live, and where user state goes.

Committed assets (behaviour-policy checkpoints and manifests, MDP-family files, sweep spaces, paper
tables) are package resources, read through `importlib.resources`: `offline_mbrl/resources/{datasets,
sweeps,tables}` are links to the repository's top-level `datasets/`, `sweeps/` and `reports/tables/`, so
an editable checkout reads its own folders and a wheel (`pip install .`) carries their committed files
(pyproject.toml's package-data). `$OFFLINE_MBRL_ROOT` points at another tree with the same top-level
folders (a checkout of yours with retrained behaviour policies, say).

User state never goes into the installed package: results/, reports/ and sweeps/<study>/ journals are
relative to the current directory; made datasets go where Minari keeps them (`$MINARI_DATASETS_PATH`);
the artefact cache is `$OFFLINE_MBRL_CACHE` (default ~/.cache/offline-mbrl).
"""

from __future__ import annotations

import os
import subprocess
from importlib import resources
from pathlib import Path

# in a run folder: a sweep's record of the trials that ran it ({study: trial number}); reports label the run
# by its trial
TRIALS_FILE = "trials.json"

# the asset folders, by their name under offline_mbrl/resources/ and under $OFFLINE_MBRL_ROOT
_UNDER_ROOT = {"datasets": "datasets", "sweeps": "sweeps", "tables": "reports/tables"}


def checkout() -> Path | None:
    """The source checkout the package runs from (an editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "offline_mbrl").is_dir() else None


def asset(folder: str) -> Path:
    """One of the committed asset folders (`datasets`, `sweeps`, `tables`): `$OFFLINE_MBRL_ROOT`'s, else
    the package's resources."""
    override = os.environ.get("OFFLINE_MBRL_ROOT")
    if override:
        return Path(override) / _UNDER_ROOT[folder]
    # a package installed from a folder or a wheel is a plain directory: its resources are real paths
    return Path(str(resources.files("offline_mbrl").joinpath("resources", folder))).resolve()


def assets_dir() -> Path:
    """The `datasets/` assets: behaviour-policy checkpoints, manifests, MDP-family files."""
    return asset("datasets")


def writable_assets() -> bool:
    """Whether `assets_dir()` is the user's to write (a checkout's or `$OFFLINE_MBRL_ROOT`'s), not an
    installed package's."""
    if os.environ.get("OFFLINE_MBRL_ROOT"):
        return True
    where = checkout()
    return where is not None and assets_dir().is_relative_to(where)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("offline-mbrl")
    except PackageNotFoundError:
        return "unknown"


def code_version() -> str:
    """`git describe --always --dirty` of the checkout; an installed package's version outside one."""
    where = checkout()
    if where is None or not (where / ".git").exists():
        return f"offline-mbrl {package_version()} (installed)"
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty"],
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
