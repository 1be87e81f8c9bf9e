"""Pointing game (Zhang et al. 2018): does the most salient pixel fall in an instance mask?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from medxai.errors import MedxaiError


@dataclass(frozen=True)
class PointingResult:
    """Hits of the evaluated maps and the mean accuracy over categories."""

    hits: Tensor  # (N,) bool; False where not evaluated
    evaluated: Tensor  # (N,) bool: score above min_score (or no scores given)
    per_category: dict[str, float]
    mean_accuracy: float


def pointing_hits(saliency: Tensor, masks: Sequence[Tensor], tolerance: float = 0.0) -> Tensor:
    """Hit per map: the first maximum (row-major) lies within `tolerance` px of a mask pixel.

    masks[i] is a bool (H, W) mask or (K, H, W) instance masks of the target class.
    """
    if saliency.dim() != 4 or saliency.shape[1] != 1 or len(masks) != saliency.shape[0]:
        raise MedxaiError("saliency must be (N, 1, H, W) with one mask entry per map")
    n, _, h, w = saliency.shape
    peak = saliency.flatten(1).argmax(1)  # (N,)
    hits = torch.zeros(n, dtype=torch.bool)
    for i, m in enumerate(masks):
        m = torch.as_tensor(m, device=saliency.device).bool()
        if tuple(m.shape[-2:]) != (h, w):
            raise MedxaiError(f"mask {i} has shape {tuple(m.shape)}; expected (..., {h}, {w})")
        union = m.reshape(-1, h, w).any(0)
        py, px = int(peak[i]) // w, int(peak[i]) % w
        if tolerance <= 0:
            hits[i] = bool(union[py, px])
        else:
            pts = union.nonzero().to(torch.float32)  # (P, 2)
            d2 = (pts - torch.tensor([py, px], dtype=torch.float32, device=pts.device)) ** 2
            hits[i] = bool(pts.numel()) and bool(d2.sum(1).min() <= tolerance**2)
    return hits


def pointing_game(
    saliency: Tensor,
    masks: Sequence[Tensor],
    categories: Sequence[str],
    *,
    scores: Tensor | None = None,
    min_score: float = 0.5,
    tolerance: float = 0.0,
) -> PointingResult:
    """Mean over categories of hits / (hits + misses); only maps whose p_c > min_score count
    when `scores` is given (the AOP paper's protocol on COCO)."""
    if len(categories) != saliency.shape[0]:
        raise MedxaiError("categories must name the target class of every map")
    hits = pointing_hits(saliency, masks, tolerance)
    evaluated = torch.ones_like(hits)
    if scores is not None:
        evaluated = torch.as_tensor(scores).detach().cpu().flatten() > min_score
    keep = evaluated.tolist()
    per_category, mean = category_accuracy(
        [c for c, ok in zip(categories, keep, strict=True) if ok],
        [h for h, ok in zip(hits.tolist(), keep, strict=True) if ok],
    )
    return PointingResult(hits & evaluated, evaluated, per_category, mean)


def category_accuracy(
    categories: Sequence[str], hits: Sequence[bool]
) -> tuple[dict[str, float], float]:
    """Per-category hit rate and their mean (each category weighs the same, as in COCO)."""
    per: dict[str, list[bool]] = {}
    for cat, hit in zip(categories, hits, strict=True):
        per.setdefault(cat, []).append(bool(hit))
    per_category = {c: sum(v) / len(v) for c, v in per.items()}
    mean = sum(per_category.values()) / len(per_category) if per_category else float("nan")
    return per_category, mean
