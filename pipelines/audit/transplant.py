"""The counterfactual text transplant: does the decision follow another hospital's text?

For each test film (at model input size): its own detected text is inpainted (Telea, the
cleaning stage's inpainter, radius and dilation scaled to the input), and a donor film's text
pixels are pasted at the donor's box positions with a 1-pixel soft edge. The swap arm's donor
comes from a source that (in the training split) never sends the film's decided class; the
control arm's from the film's own source (failing that, a source that sends the decided
class), which adds no class information. A decision "follows" when it moves to a class the
swap donor's source sends.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from data_cleaning.inpaint import boxes_to_mask, inpaint
from medxai.boxes import Box
from medxai.explain.base import chunks
from medxai.metrics.shortcut import TransplantFollow, transplant_follow
from medxai.report.record import (
    ClassFollow,
    RegionRow,
    Transplant,
    TransplantRow,
    TransplantSplit,
)
from medxai.statistics.bootstrap import Clusters, bootstrap_mean
from medxai.statistics.confound import informative
from pipelines.audit.inputs import ModelInputs, TestImage

EDGE_SIGMA = 0.75  # px at model input: the pasted text's soft edge


@dataclass(frozen=True)
class Donors:
    """Films with text on the model input: their source, and the classes it sends."""

    classes_of: dict[str, list[str]]  # relative path -> its source's classes
    source_of: dict[str, str]  # relative path -> its source

    @classmethod
    def from_rows(cls, rows: Sequence[RegionRow], associations: dict[str, list[str]]) -> Donors:
        known = [r for r in rows if r.model_boxes and r.source in associations]
        return cls(
            {r.relative: associations[r.source] for r in known},
            {r.relative: r.source for r in known},
        )

    def swap_pool(self, decided: str, exclude: str) -> list[str]:
        """Donors whose source never sends the decided class."""
        return [r for r, c in self.classes_of.items() if decided not in c and r != exclude]

    def control_pool(self, decided: str, source: str | None, exclude: str) -> list[str]:
        """Other films of the film's own source (the same operation, no new class
        information); failing those, films of sources that send the decided class."""
        same = [r for r, s in self.source_of.items() if s == source and r != exclude]
        if same:
            return same
        return [r for r, c in self.classes_of.items() if decided in c and r != exclude]


def own_text_removed(pixels: torch.Tensor, boxes: Sequence[Box], radius: int, dilate: int):
    """(C, S, S) in [0, 1] with the boxes inpainted, channel by channel (16-bit Telea)."""
    if not boxes:
        return pixels
    mask = boxes_to_mask(pixels.shape[-2:], boxes, dilate)
    levels = np.round(pixels.numpy() * 65535).astype(np.uint16)
    cleaned = np.stack([inpaint(channel, mask, radius) for channel in levels])
    return torch.from_numpy(cleaned.astype(np.float32) / 65535)


def text_alpha(boxes: Sequence[Box], size: int) -> torch.Tensor:
    """(S, S) blend weights: 1 inside the donor's boxes, a soft edge around them."""
    mask = (boxes_to_mask((size, size), boxes, 0) > 0).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (0, 0), EDGE_SIGMA)
    return torch.from_numpy(np.maximum(mask, soft))


def _composite(inputs: ModelInputs, clean: torch.Tensor, donor: str, rows) -> torch.Tensor:
    alpha = text_alpha(rows[donor].model_boxes, inputs.prep.image_size)
    return inputs.intensity(clean * (1 - alpha) + inputs.pixels[donor] * alpha)


def _scale(original: tuple[int, int], size: int, value: int) -> int:
    return max(1, round(value * size / max(original)))


def probabilities(model: nn.Module, batch: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([
            torch.softmax(model(batch[rows].to(device)).float(), 1).cpu()
            for rows in chunks(len(batch), batch_size)
        ])  # fmt: skip


@dataclass(frozen=True)
class Plan:
    image: TestImage
    decided: str
    targets: list[str]  # the swap donor's source's classes
    swap: str
    control: str


def plans(
    images: Sequence[TestImage], donors: Donors, decisions: dict[str, int],
    classes: Sequence[str], seed: int,
) -> list[Plan]:  # fmt: skip
    """Per film: a swap and a control donor, drawn with `seed` (films lacking either are left
    out)."""
    rng, out = np.random.default_rng(seed), []
    for image in images:
        decided = classes[decisions[image.relative]]
        swaps = donors.swap_pool(decided, image.relative)
        controls = donors.control_pool(decided, image.record.source, image.relative)
        if not swaps or not controls:
            continue
        swap = swaps[int(rng.integers(len(swaps)))]
        control = controls[int(rng.integers(len(controls)))]
        out.append(Plan(image, decided, donors.classes_of[swap], swap, control))
    return out


def transplant_rows(
    model: nn.Module,
    images: Sequence[TestImage],
    rows: dict[str, RegionRow],
    inputs: ModelInputs,
    decisions: dict[str, int],
    classes: Sequence[str],
    associations: dict[str, list[str]],
    settings: tuple[int, int, int],  # (Telea radius, box dilation, seed) at original size
    device: torch.device,
    batch_size: int = 32,
) -> list[TransplantRow]:
    """Both arms for every film that has a swap and a control donor (others are left out)."""
    radius, dilate, seed = settings
    donors = Donors.from_rows(list(rows.values()), associations)
    planned, size, out = plans(images, donors, decisions, classes, seed), inputs.prep.image_size, []
    model = model.to(device).eval()
    for part in chunks(len(planned), max(1, batch_size // 2)):
        batch = []
        for plan in planned[part]:
            relative = plan.image.relative
            shape = inputs.shapes[relative]
            clean = own_text_removed(
                inputs.pixels[relative], rows[relative].model_boxes,
                _scale(shape, size, radius), _scale(shape, size, dilate),
            )  # fmt: skip
            batch += [
                _composite(inputs, clean, plan.swap, rows),
                _composite(inputs, clean, plan.control, rows),
            ]
        probs = probabilities(model, torch.stack(batch), device, batch_size)
        originals = probabilities(
            model, inputs.batch([p.image.relative for p in planned[part]]), device, batch_size
        )
        out += [
            _row(plan, probs[2 * k], probs[2 * k + 1], originals[k], classes)
            for k, plan in enumerate(planned[part])
        ]
    return out


def _row(plan: Plan, swap: torch.Tensor, control: torch.Tensor, original, classes) -> TransplantRow:
    targets = [classes.index(c) for c in plan.targets]
    record = plan.image.record
    return TransplantRow(
        relative=plan.image.relative, label=record.label, source=record.source,
        decided=plan.decided, targets=plan.targets, swap_donor=plan.swap,
        control_donor=plan.control,
        swap_prediction=classes[int(swap.argmax())],
        control_prediction=classes[int(control.argmax())],
        target_prob=float(original[targets].sum()), swap_target_prob=float(swap[targets].sum()),
        control_target_prob=float(control[targets].sum()),
    )  # fmt: skip


def _follow(
    rows: Sequence[TransplantRow], n_bootstrap: int, seed: int,
    clusters_of: Callable[[Sequence[str]], Clusters] | None,
) -> TransplantFollow:  # fmt: skip
    return transplant_follow(
        np.array([r.swap_prediction in r.targets for r in rows]),
        np.array([r.control_prediction in r.targets for r in rows]),
        np.array([r.swap_target_prob - r.control_target_prob for r in rows]),
        n_bootstrap=n_bootstrap, seed=seed,
        clusters=clusters_of([r.relative for r in rows]) if clusters_of else None,
    )  # fmt: skip


def _per_class(rows: Sequence[TransplantRow], n_bootstrap: int, seed: int) -> list[ClassFollow]:
    """Per (true class, donor source's classes): how often films follow, in each arm, and the
    paired excess's interval."""
    groups: dict[tuple[str, str], list[TransplantRow]] = defaultdict(list)
    for row in rows:
        groups[(row.label, " or ".join(row.targets))].append(row)
    out = []
    for (label, target), members in sorted(groups.items()):
        follows = np.array([r.swap_prediction in r.targets for r in members], dtype=float)
        controls = np.array([r.control_prediction in r.targets for r in members], dtype=float)
        _, ci = bootstrap_mean(follows - controls, n_bootstrap, seed=seed)
        out.append(
            ClassFollow(label, target, len(members), follows.mean(), controls.mean(), ci)
        )  # fmt: skip
    return out


def summarise_transplant(
    rows: Sequence[TransplantRow], test: dict[str, Sequence[TestImage]],
    associations: dict[str, list[str]], n_bootstrap: int, seed: int,
    clusters_of: Callable[[Sequence[str]], Clusters] | None = None,
) -> Transplant:  # fmt: skip
    """Follow rates over all test films (pooled) and per test split, with paired CIs
    (patients, from `clusters_of`, resampled with their films)."""
    skipped = ""
    if not informative(associations):
        skipped = (
            "no transplant: every source of the training split sends every class, so no "
            "hospital's text carries a class to transplant"
        )
    elif not rows:
        skipped = "no transplant: no test film had text donors for both arms"
    by_relative = {row.relative: row for row in rows}
    per_split = {}
    for split, images in test.items():
        mine = [by_relative[i.relative] for i in images if i.relative in by_relative]
        if mine:
            follow = _follow(mine, n_bootstrap, seed, clusters_of)
            per_split[split] = TransplantSplit(follow, _per_class(mine, n_bootstrap, seed))
    pooled = _follow(rows, n_bootstrap, seed, clusters_of) if rows else None
    return Transplant(associations, skipped, pooled, per_split, list(rows))
