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


# `--precision` of the commands that train or fit: the networks' matrix products (core/precision.py)
PRECISION = Annotated[
    str | None,
    typer.Option(
        help="fp32 (the default; TF32 on CUDA), bf16 (needs AMX or AVX512-BF16, or a bf16 GPU) or "
        "fp32-strict: the matrix products of the learner and of the rollouts (the dynamics fit keeps "
        "dynamics.precision, fp32 by default)",
        show_default=False,
    ),
]


def precision_overrides(precision: str | None, device: str) -> list[str]:
    """`--precision P` as the config overrides it stands for, checked against the device first (one line
    before anything is written)."""
    if precision is None:
        return []
    from offline_mbrl.core.precision import check_precision
    from offline_mbrl.launch import check_device

    check_device(device)
    check_precision(precision, device)
    return [f"precision={precision}"]
