"""The `offline-mbrl` command, one module per group of subcommands."""

from typing import Annotated

import typer

# `--threads` of the commands that train or fit: torch's CPU threads (offline_mbrl/threads.py)
THREADS = Annotated[
    int | None,
    typer.Option(help="torch CPU threads (default: the cores this process may use: affinity, cgroup quota)"),
]
