"""Known-answer classifiers for tests and benchmarks: evidence lies only in a known square.

`SquareEvidenceNet` scores class 1 by the checkerboard energy inside `box`; a blur (or any
smooth baseline) removes that energy, so the right saliency is the square itself.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def checkerboard(size: int) -> Tensor:
    """+-1 checkerboard, (size, size)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((yy + xx) % 2 * 2 - 1).float()


def square_images(n: int, size: int = 32, box: Box = (8, 20, 8, 20), seed: int = 0) -> Tensor:
    """Noise images (sd 0.5) with a +-1 checkerboard added inside `box`, (n, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    y0, y1, x0, x1 = box
    x[:, :, y0:y1, x0:x1] += checkerboard(size)[y0:y1, x0:x1]
    return x


def box_mask(size: int, box: Box) -> Tensor:
    """Boolean (size, size) indicator of `box`."""
    y0, y1, x0, x1 = box
    m = torch.zeros(size, size, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


class _Energy(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * x


class SquareEvidenceNet(nn.Module):
    """features: checker detector -> energy -> avg-pool -> (inside box, outside box) channels;
    head: linear on the inside channel only, logit_1 = gain * mean energy in box - offset.

    `size` and the box must be multiples of `pool`; weights are fixed but stay parameters.
    """

    def __init__(
        self,
        size: int = 32,
        box: Box = (8, 20, 8, 20),
        pool: int = 4,
        gain: float = 8.0,
        offset: float = 4.0,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 1, 3, padding=1, bias=False)
        kernel = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, -1.0], [0.0, -1.0, 1.0]]) / 12
        with torch.no_grad():
            conv.weight.copy_(kernel.expand(1, 3, 3, 3))
        split = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            split.weight.fill_(1.0)
        self.features = nn.Sequential(
            OrderedDict(conv=conv, energy=_Energy(), pool=nn.AvgPool2d(pool), split=split)
        )
        cells = size // pool
        y0, y1, x0, x1 = (v // pool for v in box)
        inside = torch.zeros(2, cells, cells)
        inside[0, y0:y1, x0:x1] = 1.0
        self.register_buffer("region", inside)  # channel 0 sees the box, channel 1 the rest
        head = nn.Linear(2 * cells * cells, 2)
        w = inside.flatten() * gain / inside.sum()
        with torch.no_grad():
            head.weight.copy_(torch.stack([-w, w]))
            head.bias.copy_(torch.tensor([offset, -offset]))
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        a = self.features(x)  # (N, 2, size/pool, size/pool)
        inside = self.region[0:1]
        a = torch.cat([a[:, :1] * inside, a[:, 1:] * (1 - inside)], 1)
        return self.head(a.flatten(1))
