"""Known-answer classifiers for tests and benchmarks: evidence lies only in a known region.

`SquareEvidenceNet` scores class 1 by the checkerboard energy inside `box`; a blur (or any
smooth baseline) removes that energy, so the right saliency is the square itself.
`known_answer(kind)` builds that and three more kinds (texture in a disc, one bright blob,
two regions both needed) with their images and regions (docs/algorithms.md, Known-answer
models).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medxai.boxes import Box
from medxai.errors import MedxaiError


def checkerboard(size: int) -> Tensor:
    """+-1 checkerboard, (size, size)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((yy + xx) % 2 * 2 - 1).float()


def square_images(n: int, size: int = 32, box: Box = (8, 8, 20, 20), seed: int = 0) -> Tensor:
    """Noise images (sd 0.5) with a +-1 checkerboard added inside `box`, (n, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    x0, y0, x1, y1 = box
    x[:, :, y0:y1, x0:x1] += checkerboard(size)[y0:y1, x0:x1]
    return x


def box_mask(size: int, box: Box) -> Tensor:
    """Boolean (size, size) indicator of `box`."""
    x0, y0, x1, y1 = box
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
        box: Box = (8, 8, 20, 20),
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
        x0, y0, x1, y1 = (v // pool for v in box)
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


# --- More known-answer kinds: texture in a disc, one bright blob, two separated regions ---

# Detector kernels, applied to every channel and summed over the three. LAPLACIAN: isotropic
# high-pass, energy ~0.92 on a +-1 texture shared by the channels; CHECKER: the square model's
# checkerboard detector; SMOOTH: the 5x5 mean brightness of the three channels.
LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]) / 14
CHECKER = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, -1.0], [0.0, -1.0, 1.0]]) / 12
SMOOTH = torch.ones(5, 5) / 75


class ReadoutNet(nn.Module):
    """features: detector conv (3 -> 1, the kernel on every channel) -> energy x^2 or
    ReLU(x - threshold) -> avg-pool; head: logit_1 = gain * mean of the pooled cells in
    `cells` - offset, logit_0 = -logit_1. Weights are fixed but stay parameters."""

    def __init__(
        self,
        kernel: Tensor,
        cells: Tensor,
        *,
        pool: int = 4,
        gain: float = 8.0,
        offset: float = 4.0,
        threshold: float | None = None,
    ) -> None:
        super().__init__()
        k = kernel.shape[-1]
        conv = nn.Conv2d(3, 1, k, padding=k // 2, bias=threshold is not None)
        with torch.no_grad():
            conv.weight.copy_(kernel.expand(1, 3, k, k))
            if conv.bias is not None:
                conv.bias.fill_(-float(threshold))
        act: nn.Module = _Energy() if threshold is None else nn.ReLU()
        self.features = nn.Sequential(OrderedDict(conv=conv, act=act, pool=nn.AvgPool2d(pool)))
        head = nn.Linear(cells.numel(), 2)
        w = cells.flatten().float() * gain / cells.sum()
        with torch.no_grad():
            head.weight.copy_(torch.stack([-w, w]))
            head.bias.copy_(torch.tensor([offset, -offset]))
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


KINDS = ("square", "texture", "blob", "two_regions")


@dataclass(frozen=True)
class KnownAnswer:
    """A hand-built model, images of its class 1, and where each image's evidence lies."""

    kind: str
    model: nn.Module
    images: Tensor  # (N, 3, S, S)
    targets: Tensor  # (N,) all 1
    regions: Tensor  # (N, S, S) bool: the pixels the class-1 logit depends on


def cells_to_pixels(cells: Tensor, pool: int) -> Tensor:
    """A (c, c) cell indicator as its (c*pool, c*pool) pixel indicator."""
    return cells.repeat_interleave(pool, 0).repeat_interleave(pool, 1)


def disc(size: int, cy: float, cx: float, radius: float) -> Tensor:
    """Boolean (size, size) disc of pixel centres within `radius` of (cy, cx)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= radius**2


def _case(kind: str, model: nn.Module, images: Tensor, regions: Tensor) -> KnownAnswer:
    targets = torch.ones(images.shape[0], dtype=torch.long)
    return KnownAnswer(kind, model.eval(), images, targets, regions)


def square_case(n: int = 8, seed: int = 0) -> KnownAnswer:
    """`SquareEvidenceNet` at 32 px: a checkerboard's energy in the box (8, 8, 20, 20)."""
    box = (8, 8, 20, 20)
    region = box_mask(32, box).expand(n, 32, 32)
    return _case("square", SquareEvidenceNet(32, box), square_images(n, 32, box, seed), region)


def texture_case(n: int = 8, seed: int = 0) -> KnownAnswer:
    """Laplacian energy read over a pixelated disc (12 of 10x10 cells of 4 px, within 7 px
    of (12, 12)) of 40-px noise images (sd 0.5). A random +-1 texture fills the disc and, as
    a distractor the head never reads, the same disc about (28, 28)."""
    cells = disc(10, 3.0, 3.0, 1.75)
    region = cells_to_pixels(cells, 4)
    distractor = cells_to_pixels(disc(10, 7.0, 7.0, 1.75), 4)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 40, 40, generator=g) * 0.5
    texture = torch.randint(0, 2, (n, 1, 40, 40), generator=g).float() * 2 - 1
    model = ReadoutNet(LAPLACIAN, cells, gain=8.0, offset=4.0)
    return _case("texture", model, x + texture * (region | distractor), region.expand(n, 40, 40))


def blob_case(n: int = 8, seed: int = 0) -> KnownAnswer:
    """Global average of ReLU(5x5 mean brightness - 0.5): one bright Gaussian blob (sigma
    2.5 px, +2 on every channel) at a random place in 32-px noise images (sd 0.5), and a
    dark one (-2) elsewhere that the detector ignores. The answer is the disc of radius 6 px
    about the bright blob: where the detector fires, plus its 2-px reach."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    regions = []
    for i in range(n):
        bright, dark = _two_places(g)
        for (cy, cx), amplitude in ((bright, 2.0), (dark, -2.0)):
            x[i] += amplitude * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5**2))
        regions.append(disc(32, bright[0] + 0.5, bright[1] + 0.5, 6.0))
    model = ReadoutNet(SMOOTH, torch.ones(8, 8), gain=350.0, offset=4.0, threshold=0.5)
    return _case("blob", model, x, torch.stack(regions))


def _two_places(g: torch.Generator) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two blob centres in [8, 24) x [8, 24), at least 12 px apart."""
    while True:
        a, b = torch.randint(8, 24, (2, 2), generator=g).float().tolist()
        if (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 >= 144:
            return (a[0], a[1]), (b[0], b[1])


def two_region_case(n: int = 8, seed: int = 0) -> KnownAnswer:
    """Checkerboard energy read over two 12-px boxes in opposite corners of 48-px noise
    images (sd 0.5); logit_1 = 16 x mean energy - 11.8 is positive only with both present
    (energy ~0.98 each, ~0.02 without): the class needs both regions."""
    boxes = ((4, 4, 16, 16), (32, 32, 44, 44))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 48, 48, generator=g) * 0.5
    region = box_mask(48, boxes[0]) | box_mask(48, boxes[1])
    x = x + checkerboard(48) * region
    cells = region[::4, ::4]
    model = ReadoutNet(CHECKER, cells, gain=16.0, offset=11.8)
    return _case("two_regions", model, x, region.expand(n, 48, 48))


def known_answer(kind: str, n: int = 8, seed: int = 0) -> KnownAnswer:
    """The known-answer case `kind` (one of KINDS) with n images."""
    builders = {"square": square_case, "texture": texture_case, "blob": blob_case,
                "two_regions": two_region_case}  # fmt: skip
    if kind not in builders:
        raise MedxaiError(f"unknown known-answer kind {kind!r}; expected one of {KINDS}")
    return builders[kind](n, seed)
