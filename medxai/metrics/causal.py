"""Deletion and insertion AUC (Petsiuk et al. 2018), batched across images and steps.

Pixels are ranked by saliency either one by one ("pixel") or as cells of a coarse grid whose
binary mask is upsampled bilinearly ("mask", as the iGOS++ code does at 28x28, 15 cells per
step). Deletion moves the top-ranked part of I to the blurred baseline B step by step,
insertion moves it from B to I; the score is p_c after softmax and the AUC is the trapezoid
area with x = fraction revealed/removed in [0, 1]. Every result states its ranking.
Settings: docs/algorithms.md, Deletion and insertion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medxai.errors import MedxaiError
from medxai.explain.base import ModelRunner, check_int, chunks, model_guard, validate_inputs
from medxai.explain.perturb import blurred_baseline, faster, upsample


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


MASK_PER_STEP = 15  # cells per step when ranking a mask grid


def curve_steps(ranking: str, resolution: int, size: int) -> int:
    """Steps of each curve (deletion, insertion) at the defaults: a row of pixels per step
    (pixel ranking) or MASK_PER_STEP cells of the resolution grid (mask ranking)."""
    return size if ranking == "pixel" else math.ceil(resolution * resolution / MASK_PER_STEP)


def _cell_scores(
    saliency: Tensor, ranking: str, resolution: int, per_step: int | None
) -> tuple[Tensor, tuple[int, int], int, str]:
    """Saliency of each ranked cell (N, G), the cell grid, cells per step, the ranking's label."""
    size = tuple(saliency.shape[-2:])
    if ranking == "pixel":
        per_step = size[1] if per_step is None else per_step
        return saliency.flatten(1), size, per_step, "pixel"  # (N, H*W)
    if ranking == "mask":
        check_int("resolution", resolution, 1, min(size))
        grid = (resolution, resolution)
        per_step = MASK_PER_STEP if per_step is None else per_step
        scores = F.adaptive_avg_pool2d(saliency, grid).flatten(1)  # (N, r*r)
        return scores, grid, per_step, f"mask:{resolution}x{resolution}"
    raise MedxaiError(f"ranking must be 'pixel' or 'mask'; got {ranking!r}")


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
    fast_copy: bool = True,
) -> CausalScores:
    """Deletion/insertion curves and AUCs of saliency maps (N, 1, H, W) for `targets`.

    ranking="pixel": `per_step` pixels per step (default W, one row's worth: 224 at 224x224);
    ranking="mask": rank cells of a resolution x resolution grid, `per_step` cells per step
    (default 15). `baseline` defaults to the blur with kernel 51, sigma 50 (< 500 px).
    fast_copy=False scores on the model itself instead of `perturb.inference_copy`.
    """
    return deletion_insertion_maps(
        model, images, targets, [saliency], ranking=ranking, resolution=resolution,
        per_step=per_step, baseline=baseline, batch_size=batch_size, fast_copy=fast_copy,
    )[0]  # fmt: skip


def deletion_insertion_maps(
    model: nn.Module,
    images: Tensor,
    targets: Tensor | int | list[int],
    maps: Sequence[Tensor],
    *,
    ranking: str = "pixel",
    resolution: int = 28,
    per_step: int | None = None,
    baseline: Tensor | None = None,
    batch_size: int = 64,
    fast_copy: bool = True,
) -> list[CausalScores]:
    """`deletion_insertion` of several maps of the same images (one per method), in one pass.

    The curves' ends are the image and the baseline whatever the map: p_c(I) and p_c(B) go
    through the model once per image, not four times per map; the steps in between of
    every map share the chunks. The model runs as `perturb.inference_copy` when possible
    (and fast_copy is on).
    """
    images, targets = validate_inputs(images, targets)
    maps = [_check_saliency(saliency, images) for saliency in maps]
    check_int("batch_size", batch_size, 1)
    ranked = [_cell_scores(saliency, ranking, resolution, per_step) for saliency in maps]
    _, grid, per_step, label = ranked[0]
    check_int("per_step", per_step, 1)
    cells = ranked[0][0].shape[1]
    steps = math.ceil(cells / per_step)
    counts = (torch.arange(steps + 1, device=images.device) * per_step).clamp(max=cells)
    rank = torch.stack([_ranks(scores) for scores, *_ in ranked])  # (M, N, G)
    base = blurred_baseline(images) if baseline is None else baseline.to(images)
    runner = ModelRunner(model, batch_size, softmax=True)
    copy = faster(runner, images[:1], enabled=bool(fast_copy))
    with model_guard(model), copy, torch.inference_mode():
        ends = _scores(runner, torch.cat([images, base]), targets.repeat(2))  # (2N,)
        inner = _inner_curves(runner, images, base, targets, rank, counts[1:-1], grid)
    runner.check()
    n = images.shape[0]
    ends = ends.view(2, n, 1).expand(2, n, len(maps)).permute(2, 1, 0)  # (M, N, 2): I, B
    deletion = torch.cat([ends[..., :1], inner[:, :, 0], ends[..., 1:]], -1)  # (M, N, steps+1)
    insertion = torch.cat([ends[..., 1:], inner[:, :, 1], ends[..., :1]], -1)
    x = counts.to(images.dtype) / cells
    auc_del, auc_ins = torch.trapezoid(deletion, x, dim=-1), torch.trapezoid(insertion, x, dim=-1)
    return [
        CausalScores(auc_del[m], auc_ins[m], deletion[m], insertion[m], x, label)
        for m in range(len(maps))
    ]


def _ranks(scores: Tensor) -> Tensor:
    """Rank of each cell by descending saliency (ties in index order), (N, G)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    cells = torch.arange(scores.shape[1], device=scores.device).expand(scores.shape[0], -1)
    return rank.scatter_(1, order, cells)


def _scores(runner: ModelRunner, x: Tensor, targets: Tensor) -> Tensor:
    """p_c of every row of x, in the runner's chunks, (B,)."""
    return torch.cat([runner.scores(x[c], targets[c]) for c in chunks(len(x), runner.batch_size)])


def _inner_curves(
    runner: ModelRunner,
    images: Tensor,
    base: Tensor,
    targets: Tensor,
    rank: Tensor,
    counts: Tensor,
    grid: tuple[int, int],
) -> Tensor:
    """Scores at the steps between the ends, (M, N, 2, J): path 0 deletes, 1 inserts."""
    m, n, g = rank.shape
    j_count, size = counts.numel(), tuple(images.shape[-2:])
    total = m * n * 2 * j_count
    rows = torch.arange(total, device=images.device)  # flat (map, image, path, step)
    curves = images.new_empty(total)
    for chunk in chunks(total, runner.batch_size):
        flat = rows[chunk]
        mi, path, j = flat // (2 * j_count), (flat // j_count) % 2, flat % j_count
        img = mi % n
        top = (rank.view(m * n, g)[mi] < counts[j, None]).to(images.dtype)  # (b, G)
        u = upsample(top.view(-1, 1, *grid), size)  # (b, 1, H, W), 1 = moved
        w = torch.where(path.view(-1, 1, 1, 1) == 0, 1 - u, u)  # weight of I
        x = base[img] + (images[img] - base[img]) * w  # (b, C, H, W)
        curves[chunk] = runner.scores(x, targets[img])
    return curves.view(m, n, 2, j_count)
