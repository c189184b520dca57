"""Network building blocks. An ensemble is one batched layer, never a Python loop over members.

`EnsembleLinear` holds weights `(E, in, out)` and maps `(E, B, in) -> (E, B, out)` with one `baddbmm`,
so the 7 dynamics members or the N critics of RAVL run in a single kernel per layer, and a gradient
of one member's loss reaches only that member's slice of the weights.

Without gradients (model rollouts of 50 000 rows), `EnsembleMLP` runs row chunks of `INFER_CHUNK`
through all its layers in turn, activations in place: a chunk's activations stay in the CPU's cache
instead of streaming 7 x 50 000 x 200 floats through memory per layer (2.4x faster on the CPU, the same
numbers bit for bit, since each row's arithmetic is unchanged).

`compute_dtype = torch.bfloat16` (set by `core.precision.apply_precision`) runs the products between
hidden layers on bf16 copies of the fp32 weights, with bf16 activations; the input layer (it sees the raw,
unrounded inputs) and the output layer (on the activations cast back) stay fp32: autocast's arithmetic
for the inner products, written here so that the chunked forward and torch.compile have it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

INFER_CHUNK = 512  # rows per chunk of a gradient-free ensemble forward (7 x 512 x 200 floats: 2.9 MB)
# in-place versions of the activations the suite uses, for the gradient-free chunked forward
_IN_PLACE: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.SiLU: lambda h: F.silu(h, inplace=True),
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.ELU: lambda h: F.elu(h, inplace=True),
}


class EnsembleLinear(nn.Module):
    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's nn.Linear default (Kaiming-uniform with a = sqrt(5)), member by member.
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        # x: (E, B, in) -> (E, B, out); with `dtype`, on copies of the weights and inputs in that dtype
        if dtype is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias.to(dtype), x.to(dtype), self.weight.to(dtype))

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class EnsembleMLP(nn.Module):
    """`E` independent MLPs evaluated together: `(E, B, in) -> (E, B, out)`.

    Inputs may also be shared: `(B, in)` by every member, or `(G, B, in)` by groups of `E / G`
    consecutive members (the K seeds' ensembles stacked as one: seed k's members see seed k's rows)."""

    def __init__(
        self,
        members: int,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ):
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.activation = activation()
        self.members = members
        self.compute_dtype: torch.dtype | None = None  # the hidden layers' dtype (None: the weights')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_place = _IN_PLACE.get(type(self.activation))
        if not torch.is_grad_enabled() and in_place is not None and x.shape[-2] > INFER_CHUNK:
            return self._infer(x, in_place)
        x = self._spread(x)
        dtype = self.compute_dtype
        for i, layer in enumerate(self.layers[:-1]):
            x = self.activation(layer(x, None if i == 0 else dtype))
        return self.layers[-1](x if dtype is None else x.float())

    def _infer(self, x: torch.Tensor, in_place: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The forward pass without autograd, `INFER_CHUNK` rows at a time, into one output tensor."""
        layers = cast("Sequence[EnsembleLinear]", self.layers)
        dtype = self.compute_dtype
        # the hidden layers' weights in the compute dtype, cast once for all chunks
        hidden = [
            (lay.bias, lay.weight) if dtype is None or i == 0 else (lay.bias.to(dtype), lay.weight.to(dtype))
            for i, lay in enumerate(layers[:-1])
        ]
        rows = x.shape[-2]
        out = x.new_empty(self.members, rows, layers[-1].out_features)
        for start in range(0, rows, INFER_CHUNK):
            h = self._spread(x[..., start : start + INFER_CHUNK, :])
            for i, (bias, weight) in enumerate(hidden):
                h = in_place(torch.baddbmm(bias, h, weight))
                if i == 0 and dtype is not None:
                    h = h.to(dtype)
            if dtype is not None:
                h = h.float()
            torch.baddbmm(layers[-1].bias, h, layers[-1].weight, out=out[:, start : start + INFER_CHUNK])
        return out

    def _spread(self, x: torch.Tensor) -> torch.Tensor:
        """Shared inputs as one input per member: `(B, in)` without a copy; `(G, B, in)` (groups) copied."""
        if x.dim() == 2:
            return x.unsqueeze(0).expand(self.members, -1, -1)
        groups = x.shape[0]
        if groups == self.members:
            return x
        if self.members % groups:
            raise ValueError(f"{groups} input groups for {self.members} members")
        return (
            x.unsqueeze(1)
            .expand(groups, self.members // groups, *x.shape[1:])
            .reshape(self.members, *x.shape[1:])
        )


class MLP(nn.Sequential):
    """Linear layers with activations between them (an `nn.Sequential`, so its state dict is one), with
    the chunked in-place forward of `EnsembleMLP` when there are no gradients and many rows, and its
    `compute_dtype`."""

    compute_dtype: torch.dtype | None = None  # the hidden layers' dtype (None: the weights')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dim() != 2 or x.shape[0] <= INFER_CHUNK:
            if self.compute_dtype is None:
                return super().forward(x)
            return self._steps(x, [(m, None) for m in self])
        steps = [(m, _IN_PLACE.get(type(m))) for m in self]
        out = None
        for start in range(0, x.shape[0], INFER_CHUNK):
            h = x[start : start + INFER_CHUNK]
            h = self._steps(h, steps)
            if out is None:
                out = h.new_empty(x.shape[0], h.shape[1])
            out[start : start + INFER_CHUNK] = h
        assert out is not None
        return out

    def _steps(
        self, h: torch.Tensor, steps: list[tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor] | None]]
    ) -> torch.Tensor:
        """The layers in turn (activations in place where given); the inner linear layers in
        `compute_dtype`, the first and the last in fp32."""
        dtype, last = self.compute_dtype, len(steps) - 1
        for i, (module, in_place) in enumerate(steps):
            if dtype is not None and isinstance(module, nn.Linear) and 0 < i < last:
                h = F.linear(h.to(dtype), module.weight.to(dtype), module.bias.to(dtype))
            elif dtype is not None and i == last and isinstance(module, nn.Linear):
                h = F.linear(h.float(), module.weight, module.bias)
            else:
                h = in_place(h) if in_place is not None else module(h)
        return h


def mlp(in_features: int, hidden: Sequence[int], out_features: int, activation=nn.ReLU) -> MLP:
    sizes = [in_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    return MLP(*layers, nn.Linear(sizes[-1], out_features))
