"""Matched control regions for the region tests: for each film, its own regions' shapes moved to
where the kind's regions sit on other films and not on this one.

Blurring any region changes some decisions; the control makes the flip excess the regions' own
effect by blurring a region of the same shapes and area, in the kind's typical places, on a film
that has nothing there. Each connected region (largest first) goes to the place, wholly inside
the film and overlapping neither the film's own regions nor a control already placed, where the
other films' regions are most frequent; where they sit nowhere free (every film's text in one
place), to the free place nearest its mirror image across the film's vertical axis (the same
height and distance from an edge). A film whose controls cover less than MATCH of its regions'
area has no matched control and is left out of the tests, not given a smaller one.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

MATCH = 0.8  # a control must cover at least this share of the regions' area


def matched_controls(masks: Tensor, counts: Tensor) -> Tensor:
    """(N, 1, S, S) region masks of a chunk of films and (S, S) counts of the kind's regions
    over all test films (these films' included) -> their control masks (empty when none
    matches)."""
    counts = counts.float().cpu().numpy()
    out = [_control(mask[0].cpu().numpy(), counts) for mask in masks]
    return torch.from_numpy(np.stack(out))[:, None].to(masks.device)


def _control(own: np.ndarray, counts: np.ndarray) -> np.ndarray:
    others = (counts - own).astype(np.float32)  # the other films' regions, per pixel
    taken = own.astype(np.float32)
    control = np.zeros(own.shape, bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(own.astype(np.uint8), connectivity=8)
    for k in sorted(range(1, n), key=lambda k: -stats[k, cv2.CC_STAT_AREA]):
        x, y, w, h = (int(v) for v in stats[k, :4])
        shape = (labels[y : y + h, x : x + w] == k).astype(np.float32)
        place = _best_place(shape, others, taken, (y, x))
        if place is not None:
            top, left = place
            control[top : top + h, left : left + w] |= shape > 0
            taken[top : top + h, left : left + w] += shape
    if control.sum() < MATCH * own.sum():
        return np.zeros(own.shape, bool)
    return control


def _best_place(shape: np.ndarray, others: np.ndarray, taken: np.ndarray, own: tuple[int, int]):
    """(top, left) of the free place where `shape` covers the most of the other films'
    regions, the nearest to the mirror of its own place (`own`: top, left) among equals; None
    when no place is free."""
    (h, w), (rows, cols) = shape.shape, others.shape
    if h > rows or w > cols:
        return None
    covered = cv2.matchTemplate(others, shape, cv2.TM_CCORR)
    clash = cv2.matchTemplate(taken, shape, cv2.TM_CCORR)
    tops, lefts = np.mgrid[0 : rows - h + 1, 0 : cols - w + 1]
    distance = np.hypot(tops - own[0], lefts - (cols - w - own[1]))
    score = np.round(covered) - distance / (2 * (rows + cols))  # covered first, then mirror
    score = np.where(clash < 0.5, score, -np.inf)
    best = np.unravel_index(int(np.argmax(score)), score.shape)
    return None if not np.isfinite(score[best]) else (int(best[0]), int(best[1]))
