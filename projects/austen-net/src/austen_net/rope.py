"""Rotary position embedding (RoPE): each pair of query/key channels turned by an angle that grows
with the position, so that attention scores depend on how far apart two tokens are, not where
they are. With Llama 3's scaling of the slow channels for contexts longer than its training's."""

from __future__ import annotations

import math

import torch
from torch import nn


def rope_frequencies(
    head_dim: int, base: float, scaling: tuple[float, float, float, int] | None = None
) -> torch.Tensor:
    """The rotation speed of each channel pair, ``base^(-2i/D)``. With Llama 3's ``scaling``
    (factor, low, high, original context): pairs whose wavelength is longer than ``original /
    low`` turn ``factor`` times slower, those shorter than ``original / high`` are kept, and the
    band between is interpolated, so the model reads contexts longer than it was trained on."""
    cpu = torch.device("cpu")
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=cpu).float() / head_dim)
    if scaling is None:
        return inv
    factor, low, high, original = scaling
    wavelength = 2 * math.pi / inv
    scaled = torch.where(wavelength > original / low, inv / factor, inv)
    smooth = (original / wavelength - low) / (high - low)
    between = (wavelength >= original / high) & (wavelength <= original / low)
    return torch.where(between, (1 - smooth) * scaled / factor + smooth * scaled, scaled)


class Rotary(nn.Module):
    """Rotary position embedding: rotates each pair of query/key channels (2i, 2i+1) by the angle
    ``position * base^(-2i/D)``, so the score of a query at i and a key at j depends on i - j only.

    A pair is a complex number and the rotation a multiplication by ``e^(i*angle)``: one complex
    multiply per call, with the unit complex numbers computed once for every position.
    """

    def __init__(
        self,
        head_dim: int,
        max_len: int,
        base: float = 10000.0,
        scaling: tuple[float, float, float, int] | None = None,
    ) -> None:
        super().__init__()
        # computed on the CPU even while a model is probed on the meta device (shared.checkpoint):
        # these meta ops would import torch's compiler stack, a second of startup for generate
        cpu = torch.device("cpu")
        inv_freq = rope_frequencies(head_dim, base, scaling)
        angles = torch.outer(torch.arange(max_len, device=cpu).float(), inv_freq)
        # (cos, sin) pairs as a REAL buffer: a complex one would lose its imaginary part when the
        # model is cast with ``model.to(torch.bfloat16)``
        rotation = torch.view_as_real(torch.polar(torch.ones_like(angles), angles))
        self.register_buffer("rotation", rotation, persistent=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``x`` (B, H, T, D) turned by the angles of positions ``pos`` (T,), or (B, T): a
        position for each row."""
        if pos.dim() == 2:
            turns = self.rotation[pos].float().unsqueeze(1)  # (B, 1, T, D/2, 2)
        else:
            turns = self.rotation.index_select(0, pos).float()  # (T, D/2, 2): cos, sin
        if torch.compiler.is_compiling():
            # the same product in real arithmetic: Inductor fuses it into one kernel, where it
            # would leave complex tensors to eager kernels (eager is faster with the complex one)
            cos, sin = turns.unbind(-1)
            x0, x1 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
            turned = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
            return turned.flatten(-2).to(x.dtype)
        pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * torch.view_as_complex(turns)).flatten(-2).to(x.dtype)
