"""Deletion and insertion AUC (Petsiuk et al. 2018), batched across images and steps.

Pixels are ranked by saliency either one by one ("pixel") or as cells of a coarse grid whose
binary mask is upsampled bilinearly ("mask", as the iGOS++ code does at 28x28, 15 cells per
step). Deletion moves the top-ranked part of I to the blurred baseline B step by step,
insertion moves it from B to I; the score is p_c after softmax and the AUC is the trapezoid
area with x = fraction revealed/removed in [0, 1]. Every result states its ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medxai.errors import MedxaiError
from medxai.explain.base import ModelRunner, check_int, model_guard, validate_inputs
from medxai.explain.perturb import blurred_baseline, upsample


@dataclass(frozen=True)
class CausalScores:
    """Per-image AUCs and curves; `ranking` is "pixel" or "mask:<r>x<r>"."""

    deletion: Tensor  # (N,)
    insertion: Tensor  # (N,)
    deletion_curve: Tensor  # (N, steps + 1)
    insertion_curve: Tensor  # (N, steps + 1)
    fractions: Tensor  # (steps + 1,) x positions of the curves
    ranking: str

    @property
    def overall(self) -> Tensor:
        """Over-all score of the AOP paper: AUC(insertion) - AUC(deletion), (N,)."""
        return self.insertion - self.deletion


def _check_saliency(saliency: Tensor, images: Tensor) -> Tensor:
    expected = (images.shape[0], 1, *images.shape[-2:])
    if not isinstance(saliency, Tensor) or tuple(saliency.shape) != expected:
        got = tuple(saliency.shape) if isinstance(saliency, Tensor) else type(saliency).__name__
        raise MedxaiError(f"saliency must have shape {expected} to match the images; got {got}")
    return saliency.detach().to(images.device, images.dtype)


def deletion_insertion(
    model: nn.Module,
    images: Tensor,
    targets: Tensor | int | list[int],
    saliency: Tensor,
    *,
    ranking: str = "pixel",
    resolution: int = 28,
    per_step: int | None = None,
    baseline: Tensor | None = None,
    batch_size: int = 64,
) -> CausalScores:
    """Deletion/insertion curves and AUCs of saliency maps (N, 1, H, W) for `targets`.

    ranking="pixel": `per_step` pixels per step (default W, one row's worth: 224 at 224x224);
    ranking="mask": rank cells of a resolution x resolution grid, `per_step` cells per step
    (default 15). `baseline` defaults to the blur with kernel 51, sigma 50 (< 500 px).
    """
    images, targets = validate_inputs(images, targets)
    saliency = _check_saliency(saliency, images)
    check_int("batch_size", batch_size, 1)
    n, size = images.shape[0], tuple(images.shape[-2:])
    if ranking == "pixel":
        grid, label = size, "pixel"
        per_step = size[1] if per_step is None else per_step
        scores = saliency.flatten(1)  # (N, H*W)
    elif ranking == "mask":
        check_int("resolution", resolution, 1, min(size))
        grid, label = (resolution, resolution), f"mask:{resolution}x{resolution}"
        per_step = 15 if per_step is None else per_step
        scores = F.adaptive_avg_pool2d(saliency, grid).flatten(1)  # (N, r*r)
    else:
        raise MedxaiError(f"ranking must be 'pixel' or 'mask'; got {ranking!r}")
    check_int("per_step", per_step, 1)
    cells = scores.shape[1]
    steps = math.ceil(cells / per_step)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(cells, device=images.device).expand(n, -1))  # (N, G)
    counts = (torch.arange(steps + 1, device=images.device) * per_step).clamp(max=cells)
    base = blurred_baseline(images) if baseline is None else baseline.to(images)
    runner = ModelRunner(model, batch_size, softmax=True)
    total = n * 2 * (steps + 1)
    curves = images.new_empty(total)  # flat (image, path, step)
    with model_guard(model), torch.no_grad():
        for start in range(0, total, batch_size):
            flat = torch.arange(start, min(total, start + batch_size), device=images.device)
            img, path, j = flat // (2 * (steps + 1)), (flat // (steps + 1)) % 2, flat % (steps + 1)
            top = (rank[img] < counts[j, None]).to(images.dtype)  # (b, G)
            u = upsample(top.view(-1, 1, *grid), size)  # (b, 1, H, W), 1 = moved
            w = torch.where(path.view(-1, 1, 1, 1) == 0, 1 - u, u)  # weight of I
            x = base[img] + (images[img] - base[img]) * w  # (b, C, H, W)
            curves[flat] = runner.scores(x, targets[img])
    runner.check()
    curves = curves.view(n, 2, steps + 1)
    x = counts.to(images.dtype) / cells
    auc = torch.trapezoid(curves, x, dim=-1)  # (N, 2)
    return CausalScores(auc[:, 0], auc[:, 1], curves[:, 0], curves[:, 1], x, label)
