"""Network building blocks. An ensemble is one batched layer, never a Python loop over members.

`EnsembleLinear` holds weights `(E, in, out)` and maps `(E, B, in) -> (E, B, out)` with one `baddbmm`,
so the 7 dynamics members or the N critics of RAVL run in a single kernel per layer, and a gradient
of one member's loss reaches only that member's slice of the weights.

Without gradients (model rollouts of 50 000 rows), `EnsembleMLP` runs row chunks of `INFER_CHUNK`
through all its layers in turn, activations in place: a chunk's activations stay in the CPU's cache
instead of streaming 7 x 50 000 x 200 floats through memory per layer (2.4x faster on the CPU, the same
numbers bit for bit, since each row's arithmetic is unchanged).
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (E, B, in) -> (E, B, out)
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class EnsembleMLP(nn.Module):
    """`E` independent MLPs evaluated together: `(E, B, in) -> (E, B, out)`."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_place = _IN_PLACE.get(type(self.activation))
        if not torch.is_grad_enabled() and in_place is not None and x.shape[-2] > INFER_CHUNK:
            return self._infer(x, in_place)
        if x.dim() == 2:  # the same inputs for every member: (B, in) -> (E, B, in) without a copy
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)

    def _infer(self, x: torch.Tensor, in_place: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The forward pass without autograd, `INFER_CHUNK` rows at a time, into one output tensor."""
        layers = cast("Sequence[EnsembleLinear]", self.layers)
        rows = x.shape[-2]
        out = x.new_empty(self.members, rows, layers[-1].out_features)
        for start in range(0, rows, INFER_CHUNK):
            h = x[..., start : start + INFER_CHUNK, :]
            if h.dim() == 2:
                h = h.unsqueeze(0).expand(self.members, -1, -1)
            for layer in layers[:-1]:
                h = in_place(torch.baddbmm(layer.bias, h, layer.weight))
            torch.baddbmm(layers[-1].bias, h, layers[-1].weight, out=out[:, start : start + INFER_CHUNK])
        return out


class MLP(nn.Sequential):
    """Linear layers with activations between them (an `nn.Sequential`, so its state dict is one), with
    the chunked in-place forward of `EnsembleMLP` when there are no gradients and many rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dim() != 2 or x.shape[0] <= INFER_CHUNK:
            return super().forward(x)
        steps = [(m, _IN_PLACE.get(type(m))) for m in self]
        out = None
        for start in range(0, x.shape[0], INFER_CHUNK):
            h = x[start : start + INFER_CHUNK]
            for module, in_place in steps:
                h = in_place(h) if in_place is not None else module(h)
            if out is None:
                out = h.new_empty(x.shape[0], h.shape[1])
            out[start : start + INFER_CHUNK] = h
        assert out is not None
        return out


def mlp(in_features: int, hidden: Sequence[int], out_features: int, activation=nn.ReLU) -> MLP:
    sizes = [in_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    return MLP(*layers, nn.Linear(sizes[-1], out_features))
