"""The counterfactual text transplant: does the decision follow another hospital's text?

For each test film (at model input size): its own detected text is inpainted (Telea, the
cleaning stage's inpainter, radius and dilation scaled to the input), and a donor film's boxes
are pasted at the donor's box positions with a 1-pixel soft edge, twice: with the donor's text
(swap) and from the donor's own cleaned, text-free copy (blank). The two arms differ only in
the glyphs: position, the donor box's background and noise and the film's exposed inpainting
are the same in both, so swap − blank is the text's own effect. Donors come from sources that
(in the ties' split: --ties-from, else the training split, else the test split) never send the
film's decided class, DONORS per film (all sending the same classes, from as many sources as
there are); a decision "follows" when it moves to a class the donors' sources send.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from data_cleaning.inpaint import boxes_to_mask, inpaint
from medxai import distributed
from medxai.boxes import Box
from medxai.data.film_store import FilmStore
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
from pipelines.audit.inputs import MEMORY_LIMIT, Intensity, ModelInputs, TestImage

EDGE_SIGMA = 0.75  # px at model input: the pasted text's soft edge
# Donors per film: one donor's glyphs may by chance resemble a lesion or hit a sensitive spot;
# the mean over three gives each film a graded follow figure at three times the forwards.
DONORS = 3


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


@dataclass(frozen=True)
class TextPlan:
    image: TestImage
    decided: str
    targets: list[str]  # the classes every donor's source sends
    donors: list[str]


def text_plans(
    images: Sequence[TestImage], donors: Donors, decisions: dict[str, int],
    classes: Sequence[str], seed: int, per_film: int = DONORS,
) -> list[TextPlan]:  # fmt: skip
    """Per film: up to `per_film` donors whose sources send the same classes (those of a first
    donor drawn at random), a new source first while one is left (films without a donor are
    left out)."""
    rng, out = np.random.default_rng(seed), []
    for image in images:
        decided = classes[decisions[image.relative]]
        pool = donors.swap_pool(decided, image.relative)
        if not pool:
            continue
        targets = donors.classes_of[pool[int(rng.integers(len(pool)))]]
        drawn = [pool[k] for k in rng.permutation(len(pool))]
        same = [d for d in drawn if donors.classes_of[d] == targets]
        chosen: list[str] = []
        for donor in same:  # one per source first, then the rest in the drawn order
            if donors.source_of[donor] not in {donors.source_of[c] for c in chosen}:
                chosen.append(donor)
        chosen += [d for d in same if d not in chosen]
        out.append(TextPlan(image, decided, targets, chosen[:per_film]))
    return out


class Cleaned:
    """Films at model input with their own text inpainted, each computed once per rank (a
    film is its own base once and a donor about DONORS times). They are kept in a FilmStore,
    so past its limit they go to a file in `spill` rather than grow the rank's memory with
    every film; a film without boxes is its own cleaned copy and is not kept."""

    def __init__(
        self, boxes: dict[str, list[Box]], size: int, radius: int, dilate: int,
        spill: Path | None = None, limit: int = MEMORY_LIMIT // 2,
    ) -> None:  # fmt: skip
        self.boxes, self.size, self.radius, self.dilate = boxes, size, radius, dilate
        self.spill, self.limit = spill, limit
        self.store: FilmStore | None = None  # made on first use, on the rank that uses it

    def of(self, relative: str, pixels: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        boxes = self.boxes[relative]
        if not boxes:
            return pixels
        if self.store is None:
            kept = [r for r, found in self.boxes.items() if found]
            self.store = FilmStore(kept, tuple(pixels.shape), self.spill, self.limit)
        return self.store.made_once(relative, lambda: own_text_removed(
            pixels, boxes, _scale(shape, self.size, self.radius),
            _scale(shape, self.size, self.dilate),
        ))  # fmt: skip

    def __reduce__(self):  # sent to a rank without what it has computed
        return Cleaned, (self.boxes, self.size, self.radius, self.dilate, self.spill, self.limit)


@dataclass(frozen=True)
class Transplanting:
    """What composing and scoring a chunk of transplants needs besides its films (sent once
    to every rank under torchrun)."""

    model: nn.Module
    cleaned: Cleaned  # every film's boxes at model input, and the inpainted films so far
    intensity: Intensity
    classes: list[str]
    batch_size: int
    device: torch.device  # the one-process run's (each rank uses its own)


@dataclass(frozen=True)
class Chunk:
    """A chunk of planned films, with the pixels (at model input, before the intensity steps)
    and original shapes of them and their donors, and their model inputs."""

    plans: list[TextPlan]
    pixels: dict[str, torch.Tensor]
    shapes: dict[str, tuple[int, int]]
    inputs: torch.Tensor

    @classmethod
    def of(cls, plans: list[TextPlan], inputs: ModelInputs) -> Chunk:
        films = dict.fromkeys(r for p in plans for r in (p.image.relative, *p.donors))
        return cls(
            plans, {r: inputs.pixels[r] for r in films}, {r: inputs.shapes[r] for r in films},
            inputs.batch([p.image.relative for p in plans]),
        )  # fmt: skip


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
    """The swap and blank arms, per donor, for every film that has a donor (others are left
    out). Under torchrun the chunks of films are dealt to the ranks."""
    radius, dilate, seed = settings
    donors = Donors.from_rows(list(rows.values()), associations)
    planned = text_plans(images, donors, decisions, classes, seed)
    boxes = {relative: row.model_boxes for relative, row in rows.items()}
    cleaned = Cleaned(
        boxes, inputs.prep.image_size, radius, dilate, inputs.spill, inputs.store_limit
    )  # fmt: skip
    shared = Transplanting(model, cleaned, inputs.intensity, list(classes), batch_size, device)
    parts = [planned[part] for part in chunks(len(planned), batch_size)]  # films; arms: ×2 DONORS
    done = distributed.run_everywhere(
        distributed.dealt_rounds, _transplant_chunk, shared, len(parts),
        local={"payloads": (Chunk.of(part, inputs) for part in parts)},
    )  # fmt: skip
    return [row for part in done for row in part]


def _transplant_chunk(shared: Transplanting, chunk: Chunk) -> list[TransplantRow]:
    """Each film of the chunk with each donor's boxes pasted, with the donor's text (swap)
    and from its cleaned copy (blank); the model's probabilities of both arms and of the film
    itself make the film's row."""
    model, device = distributed.on_rank(shared.model, shared.device)  # in eval mode
    cleaned, size = shared.cleaned, shared.cleaned.size
    batch = []
    for plan in chunk.plans:
        relative = plan.image.relative
        clean = cleaned.of(relative, chunk.pixels[relative], chunk.shapes[relative])
        for donor in plan.donors:
            alpha = text_alpha(cleaned.boxes[donor], size)
            blank = cleaned.of(donor, chunk.pixels[donor], chunk.shapes[donor])
            batch += [
                shared.intensity(clean * (1 - alpha) + chunk.pixels[donor] * alpha),
                shared.intensity(clean * (1 - alpha) + blank * alpha),
            ]
    probs = probabilities(model, torch.stack(batch), device, shared.batch_size)
    originals = probabilities(model, chunk.inputs, device, shared.batch_size)
    out, start = [], 0
    for k, plan in enumerate(chunk.plans):
        arms = probs[start : start + 2 * len(plan.donors)]
        start += 2 * len(plan.donors)
        out.append(_row(plan, arms[0::2], arms[1::2], originals[k], shared.classes))
    return out


def _row(
    plan: TextPlan, swap: torch.Tensor, blank: torch.Tensor, original, classes
) -> TransplantRow:
    targets = [classes.index(c) for c in plan.targets]
    record = plan.image.record
    return TransplantRow(
        relative=plan.image.relative, label=record.label, source=record.source,
        decided=plan.decided, targets=plan.targets, donors=plan.donors,
        swap_predictions=[classes[int(k)] for k in swap.argmax(1)],
        blank_predictions=[classes[int(k)] for k in blank.argmax(1)],
        target_prob=float(original[targets].sum()),
        swap_target_prob=float(swap[:, targets].sum(1).mean()),
        blank_target_prob=float(blank[:, targets].sum(1).mean()),
    )  # fmt: skip


def _follow(
    rows: Sequence[TransplantRow], n_bootstrap: int, seed: int,
    clusters_of: Callable[[Sequence[str]], Clusters] | None,
) -> TransplantFollow:  # fmt: skip
    return transplant_follow(
        np.array([r.follow for r in rows]),
        np.array([r.blank_follow for r in rows]),
        np.array([r.swap_target_prob - r.blank_target_prob for r in rows]),
        n_bootstrap=n_bootstrap, seed=seed,
        clusters=clusters_of([r.relative for r in rows]) if clusters_of else None,
    )  # fmt: skip


def _per_class(
    rows: Sequence[TransplantRow], n_bootstrap: int, seed: int,
    clusters_of: Callable[[Sequence[str]], Clusters] | None,
) -> list[ClassFollow]:  # fmt: skip
    """Per (true class, donor sources' classes): how often films follow, in each arm, and the
    paired excess's interval (patients resampled together)."""
    groups: dict[tuple[str, str], list[TransplantRow]] = defaultdict(list)
    for row in rows:
        groups[(row.label, " or ".join(row.targets))].append(row)
    out = []
    for (label, target), members in sorted(groups.items()):
        follows = np.array([r.follow for r in members])
        blanks = np.array([r.blank_follow for r in members])
        clusters = clusters_of([r.relative for r in members]) if clusters_of else None
        _, ci = bootstrap_mean(follows - blanks, n_bootstrap, seed=seed, clusters=clusters)
        out.append(ClassFollow(label, target, len(members), follows.mean(), blanks.mean(), ci))
    return out


def summarise_transplant(
    rows: Sequence[TransplantRow], test: dict[str, Sequence[TestImage]],
    associations: dict[str, list[str]], n_bootstrap: int, seed: int,
    clusters_of: Callable[[Sequence[str]], Clusters] | None = None,
    ties_split: str = "the training split",
) -> Transplant:  # fmt: skip
    """Follow rates over all test films (pooled) and per test split, with paired CIs
    (patients, from `clusters_of`, resampled with their films). `ties_split`: where the
    `associations` were counted, as the reason for a skipped transplant names it."""
    skipped = ""
    if not associations:
        skipped = (
            f"no transplant: no film of {ties_split} names its source, so no hospital's text "
            "is tied to a class"
        )
    elif not informative(associations):
        skipped = (
            f"no transplant: every source of {ties_split} sends every class, so no "
            "hospital's text carries a class to transplant"
        )
    elif not rows:
        skipped = "no transplant: no test film had a text donor of another class's hospital"
    by_relative = {row.relative: row for row in rows}
    per_split = {}
    for split, images in test.items():
        mine = [by_relative[i.relative] for i in images if i.relative in by_relative]
        if mine:
            follow = _follow(mine, n_bootstrap, seed, clusters_of)
            per_split[split] = TransplantSplit(
                follow, _per_class(mine, n_bootstrap, seed, clusters_of)
            )
    pooled = _follow(rows, n_bootstrap, seed, clusters_of) if rows else None
    return Transplant(associations, skipped, pooled, per_split, list(rows), DONORS)
