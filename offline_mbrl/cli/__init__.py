"""The `offline-mbrl` command, one module per group of subcommands."""

from typing import Annotated

import typer

# `--threads` of the commands that train or fit: torch's CPU threads (offline_mbrl/threads.py)
THREADS = Annotated[
    int | None,
    typer.Option(help="torch CPU threads (default: the cores this process may use: affinity, cgroup quota)"),
]
# `--compile/--no-compile` of the commands that train: the SAC update under torch.compile (sac.py)
COMPILE = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="compile the SAC update with torch.compile (default: on CUDA yes, on a CPU no)",
        show_default=False,
    ),
]


def set_compile(value: bool | None) -> None:
    """Apply `--compile/--no-compile` (torch is imported only by the commands that train)."""
    from offline_mbrl.learning.sac import set_compile as apply

    apply(value)
