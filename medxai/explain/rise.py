"""RISE (Petsiuk et al. 2018): score-weighted mean of random upsampled binary masks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from medxai.explain.base import Explainer, ModelRunner, check_float, check_int, chunks, minmax


def rise_masks(
    count: int,
    cells: int,
    p: float,
    size: tuple[int, int],
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """`count` masks: cells x cells Bernoulli(p) grids, bilinear-upsampled to (cells+1) x cell
    size and cropped at a random shift in [0, cell), (count, 1, H, W)."""
    h, w = size
    ch, cw = math.ceil(h / cells), math.ceil(w / cells)
    grid = torch.rand(count, 1, cells, cells, generator=generator, device=device) < p
    up = F.interpolate(
        grid.to(dtype),
        size=((cells + 1) * ch, (cells + 1) * cw),
        mode="bilinear",
        align_corners=False,
    )  # (count, 1, (s+1)ch, (s+1)cw)
    dy = torch.randint(0, ch, (count,), generator=generator, device=device)
    dx = torch.randint(0, cw, (count,), generator=generator, device=device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, :, None]  # (count, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, :]  # (count, 1, W)
    return up[torch.arange(count, device=device)[:, None, None], 0, rows, cols].unsqueeze(1)


class RISE(Explainer):
    """RISE (Petsiuk et al. 2018): saliency = sum_m p_c(I * m) m / (n p) over random masks.

    Defaults: 4000 masks of 7x7 cells, p = 0.5 (docs/algorithms.md, RISE); the masks are
    shared by all images and generated in groups to bound memory.
    """

    name = "rise"

    def __init__(
        self,
        *,
        masks: int = 4000,
        cells: int = 7,
        p: float = 0.5,
        group: int = 256,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.masks = check_int("masks", masks, 1)
        self.cells = check_int("cells", cells, 1)
        self.p = check_float("p", p, 1e-6, 1.0)
        self.group = check_int("group", group, 1)

    def forward_equivalents(self) -> float:
        return float(self.masks)  # forward passes only

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        n, size = images.shape[0], tuple(images.shape[-2:])
        gen = self.generator(images.device)
        sal = images.new_zeros(n, size[0] * size[1])  # (N, H*W)
        with torch.no_grad():
            for group in chunks(self.masks, self.group):
                g = group.stop - group.start
                m = rise_masks(g, self.cells, self.p, size, gen, images.device, images.dtype)
                rows = torch.arange(n * g, device=images.device)  # image-major
                scores = images.new_empty(n * g)  # (N*G,)
                for chunk in chunks(n * g, runner.batch_size):
                    img, k = rows[chunk] // g, rows[chunk] % g
                    scores[chunk] = runner.scores(images[img] * m[k], targets[img])
                sal += scores.view(n, g) @ m.flatten(1)  # (N, H*W)
        sal = sal / (self.masks * self.p)
        return minmax(sal.view(n, 1, *size))
