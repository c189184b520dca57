"""The precision of the networks' matrix products: `fp32`, `bf16` or `fp32-strict` (`--precision`).

`bf16` is mixed precision as autocast does it, written out in the networks (`core/nets.py`) so that the
gradient-free chunked forward and `torch.compile` see it too: the hidden layers multiply bf16 copies of
their fp32 master weights and carry bf16 activations; the output layer of every network runs in fp32 on
the activations cast back, so Q-values, the actor's mean and log-std, the dynamics' mean and log-variance,
and everything computed from them (losses, TD targets, log-probabilities, the dynamics NLL, penalties)
are fp32. Master weights, gradients as applied and optimiser state stay fp32. A Q of 300 rounded to bf16
would move by 1 (8 bits of mantissa): that is why the output layers, a few percent of the FLOPs, stay fp32.

`fp32` lets a CUDA device use TF32 tensor cores for fp32 matrix products (10 bits of mantissa, fp32
range); `fp32-strict` forbids it. On a CPU the two are the same arithmetic.

bf16 is refused with one line where the device has no fast bf16: a CPU without AMX or AVX512-BF16 would
emulate it slower than fp32, and a GPU without bf16 support has none. `OFFLINE_MBRL_BF16_ANYWHERE=1`
allows it anyway (the numbers are the same, only slower): the tests use it on any machine.
"""

from __future__ import annotations

import os
import typing
from typing import Literal

import torch
from torch import nn

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.nets import MLP, EnsembleMLP

Precision = Literal["fp32", "bf16", "fp32-strict"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
ANYWHERE_ENV = "OFFLINE_MBRL_BF16_ANYWHERE"


def compute_dtype(precision: str) -> torch.dtype | None:
    """The dtype of the hidden layers' products: bf16, or None for fp32."""
    return torch.bfloat16 if precision == "bf16" else None


def cpu_bf16_flags() -> dict[str, bool]:
    """Whether this CPU has the instructions that make bf16 products fast."""
    return {
        "amx_bf16": bool(torch.cpu._is_amx_tile_supported()),
        "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
    }


def missing_bf16(device: torch.device | str) -> str | None:
    """What this device lacks for fast bf16 (None: it has it)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        if any(cpu_bf16_flags().values()):
            return None
        return "this CPU has neither AMX nor AVX512-BF16 (bf16 products would be emulated, slower than fp32)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None  # the device check says that CUDA is missing
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"{torch.cuda.get_device_name(dev)} has no bf16 support"
    return f"bf16 is supported here on cpu and cuda devices, not on {dev.type}"


def check_precision(precision: str, device: torch.device | str) -> None:
    """One line, before anything is written, when `precision` is unknown or bf16 is not fast here."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "bf16" or os.environ.get(ANYWHERE_ENV) == "1":
        return
    if (missing := missing_bf16(device)) is not None:
        raise UserError(f"--precision bf16: {missing}; use --precision fp32 (or set {ANYWHERE_ENV}=1)")


def configure_matmul(precision: str, device: torch.device | str) -> None:
    """TF32 for fp32 products on CUDA unless `fp32-strict` (process-wide: one precision per process)."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32-strict"
        torch.backends.cudnn.allow_tf32 = precision != "fp32-strict"


def apply_precision(module: nn.Module, precision: str) -> nn.Module:
    """Set the compute dtype of every network (`EnsembleMLP`, `MLP`) inside `module`; returns it."""
    dtype = compute_dtype(precision)
    for m in module.modules():
        if isinstance(m, EnsembleMLP | MLP):
            m.compute_dtype = dtype
    return module
