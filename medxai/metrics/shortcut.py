"""Shortcut evidence inside given regions (e.g. detected burned-in text boxes).

Saliency side: the share of saliency mass and of the top-k% pixels inside the regions
against the regions' share of the area. Model side (iGOS++ paper, Fig. 12): region-only
insertion reveals only the regions over the blurred baseline and asks whether the target
class is still predicted; region deletion blurs only the regions and records the score drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from medxai.errors import MedxaiError
from medxai.explain.base import ModelRunner, check_float, chunks, model_guard, validate_inputs
from medxai.explain.perturb import blurred_baseline
from medxai.models.training import chance_level_f1
from medxai.statistics.bootstrap import Clusters, Interval, bootstrap_mean, resolve
from medxai.statistics.classification import Evaluation

Boxes = Sequence[Sequence[Sequence[float]]]  # per image, boxes (x0, y0, x1, y1) in pixels


def boxes_to_masks(
    boxes: Boxes, size: tuple[int, int], device: torch.device | None = None
) -> Tensor:
    """Region masks (N, 1, H, W) bool from per-image boxes (x0, y0, x1, y1), x1/y1 exclusive."""
    h, w = size
    out = torch.zeros(len(boxes), 1, h, w, dtype=torch.bool, device=device)
    for i, image_boxes in enumerate(boxes):
        for box in image_boxes:
            if len(box) != 4:
                raise MedxaiError(f"box {box!r} of image {i} must be (x0, y0, x1, y1)")
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            out[i, 0, max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)] = True
    return out


def as_region_masks(regions: Tensor | Boxes, images: Tensor) -> Tensor:
    """Boxes or masks ((N, H, W) or (N, 1, H, W)) -> bool masks (N, 1, H, W) on images' device."""
    n, size = images.shape[0], tuple(images.shape[-2:])
    if isinstance(regions, Tensor):
        masks = regions.to(images.device).bool()
        if masks.dim() == 3:
            masks = masks.unsqueeze(1)
        if tuple(masks.shape) != (n, 1, *size):
            raise MedxaiError(
                f"region masks must have shape ({n}, 1, {size[0]}, {size[1]}); "
                f"got {tuple(regions.shape)}"
            )
        return masks
    if len(regions) != n:
        raise MedxaiError(f"need one list of boxes per image ({n}); got {len(regions)}")
    return boxes_to_masks(regions, size, images.device)


def saliency_share(saliency: Tensor, regions: Tensor, top_k: float = 0.05) -> dict[str, Tensor]:
    """Per map (N,): mass_share, area_share, top_k_overlap (share of the top-k% pixels inside),
    and lift = mass_share / area_share (1 = no more saliency than the area explains)."""
    check_float("top_k", top_k, 1e-9, 1.0)
    s = saliency.detach().flatten(1).clamp_min(0)  # (N, H*W)
    r = regions.flatten(1).to(s.device)
    area = r.float().mean(1)
    total = s.sum(1)
    mass = torch.where(total > 0, (s * r).sum(1) / total.clamp_min(1e-30), torch.zeros_like(total))
    k = max(1, round(top_k * s.shape[1]))
    top = s.topk(k, dim=1).indices
    overlap = r.gather(1, top).float().mean(1)
    lift = torch.where(area > 0, mass / area.clamp_min(1e-30), torch.full_like(mass, float("nan")))
    return {"mass_share": mass, "area_share": area, "top_k_overlap": overlap, "lift": lift}


@dataclass(frozen=True)
class RegionTests:
    """Model scores with regions revealed alone or removed, per image (N,)."""

    original_score: Tensor
    baseline_score: Tensor
    baseline_prediction: Tensor  # the blurred image alone: the control for insertion
    inserted_score: Tensor  # only the regions over the blurred baseline
    inserted_prediction: Tensor
    inserted_keeps_class: Tensor  # inserted_prediction == target
    deleted_score: Tensor  # only the regions blurred
    deleted_prediction: Tensor
    deletion_drop: Tensor  # original_score - deleted_score
    control_deleted_score: Tensor | None = None  # only the control regions blurred
    control_deleted_prediction: Tensor | None = None
    control_inserted_score: Tensor | None = None  # only the control over its blurred image
    control_inserted_prediction: Tensor | None = None


def region_tests(
    model: nn.Module,
    images: Tensor,
    targets: Tensor | int | list[int],
    regions: Tensor | Boxes,
    *,
    control: Tensor | Boxes | None = None,
    baseline: Tensor | None = None,
    control_baseline: Tensor | None = None,
    batch_size: int = 64,
) -> RegionTests:
    """Region-only insertion and region deletion (and, when `control` regions are given, the
    same two on them, from `control_baseline`, default `baseline`); all the variants of the N
    images go through the model together."""
    images, targets = validate_inputs(images, targets)
    r = as_region_masks(regions, images).to(images.dtype)  # (N, 1, H, W)
    base = blurred_baseline(images) if baseline is None else baseline.to(images)
    variants = [images, base, base + (images - base) * r, images + (base - images) * r]
    if control is not None:
        rc = as_region_masks(control, images).to(images.dtype)
        other = base if control_baseline is None else control_baseline.to(images)
        variants += [images + (other - images) * rc, other + (images - other) * rc]
    batch = torch.cat(variants)
    runner = ModelRunner(model, batch_size, softmax=True)
    n, k = images.shape[0], len(variants)
    probs = []
    with model_guard(model), torch.no_grad():
        for rows in chunks(k * n, batch_size):
            probs.append(torch.softmax(runner.logits(batch[rows]), 1))
    runner.check()
    p = torch.cat(probs)  # (kN, K)
    score = p.gather(1, targets.repeat(k).view(-1, 1)).squeeze(1).view(k, n)
    pred = p.argmax(1).view(k, n)
    return RegionTests(
        original_score=score[0],
        baseline_score=score[1],
        baseline_prediction=pred[1],
        inserted_score=score[2],
        inserted_prediction=pred[2],
        inserted_keeps_class=pred[2] == targets,
        deleted_score=score[3],
        deleted_prediction=pred[3],
        deletion_drop=score[0] - score[3],
        control_deleted_score=score[4] if control is not None else None,
        control_deleted_prediction=pred[4] if control is not None else None,
        control_inserted_score=score[5] if control is not None else None,
        control_inserted_prediction=pred[5] if control is not None else None,
    )


@dataclass(frozen=True)
class ShortcutEvidence:
    """Saliency shares and region tests together."""

    share: dict[str, Tensor]
    tests: RegionTests


def shortcut_evidence(
    model: nn.Module,
    images: Tensor,
    targets: Tensor | int | list[int],
    saliency: Tensor,
    regions: Tensor | Boxes,
    *,
    top_k: float = 0.05,
    baseline: Tensor | None = None,
    batch_size: int = 64,
) -> ShortcutEvidence:
    """How much of the decision rests on the regions, from the saliency and from the model."""
    masks = as_region_masks(regions, images)
    return ShortcutEvidence(
        share=saliency_share(saliency, masks, top_k),
        tests=region_tests(model, images, targets, masks, baseline=baseline, batch_size=batch_size),
    )


LEVELS = ("none", "weak", "moderate", "strong")  # in rising order
INCONCLUSIVE = "inconclusive"  # the evidence cannot tell the levels apart
# Films (or patients) in an arm before a figure can reach or rule out a level: with 30, a
# proportion near one half has a 95% interval about ±0.18 wide — the distance between "none"
# and "strong" — so fewer films cannot tell the levels apart whatever they show.
MIN_FILMS = 30


def highest(levels: Sequence[str]) -> str:
    """The highest of some levels: a level reached wins, then "inconclusive" (nothing reached,
    something not ruled out), then "none"; unknown words ("not measured") rank lowest."""
    rank = {level: k for k, level in enumerate(LEVELS)}
    reached = [level for level in levels if rank.get(level, 0) > 0]
    if reached:
        return max(reached, key=rank.__getitem__)
    if INCONCLUSIVE in levels:
        return INCONCLUSIVE
    return max(levels, key=lambda level: rank.get(level, -1), default="none")


def lowest_of_both(a: str, b: str) -> str:
    """Two figures that must both show reliance (the region tests' 'needed' and 'suffices'):
    the lower level when both reach one, "none" when either rules it out, else inconclusive."""
    if a in LEVELS[1:] and b in LEVELS[1:]:
        return min(a, b, key=LEVELS.index)
    return "none" if "none" in (a, b) else INCONCLUSIVE


@dataclass(frozen=True)
class RelianceThresholds:
    """Per strength level, the (flip excess, insertion gain, follow excess) thresholds, which a
    figure's lower 95% bound must clear.

    The region tests say the model relies on text when both say so: the text is needed (blurring it
    changes decisions more than blurring a control region) and it suffices (alone, it keeps
    decisions more often than the blurred image does). The strength is the lower of the two
    levels reached.

    Transplant follow excess: how much more often a decision moves to another class when a
    film carries that class's hospital text than when it carries text of its own class: the
    share of decisions the text decides. A fifth of them is strong, a tenth moderate.
    The verdict is the higher of the transplant's level and the region tests' level.

    Flip excess: share of decisions that change when only the text is blurred, minus the
    share that change when a matched control region is blurred (the same shapes and area,
    where other films carry text and this one has none). Insertion gain: how much more often
    the text alone, over the blurred image, reproduces the decision than the control region
    alone does. A figure reaches the highest level whose threshold the lower bound of its
    interval clears.
    """

    weak: tuple[float, float, float] = (0.03, 0.05, 0.05)
    moderate: tuple[float, float, float] = (0.08, 0.15, 0.10)
    strong: tuple[float, float, float] = (0.15, 0.30, 0.20)
    confidence: float = 0.95

    FIGURES = ("flip_excess", "insertion_gain", "follow_excess")

    def levels(self) -> list[tuple[str, tuple[float, float, float]]]:
        return [("strong", self.strong), ("moderate", self.moderate), ("weak", self.weak)]

    def table(self) -> dict[str, float]:
        """The figures by name, as the report prints them beside the verdict."""
        return {
            **{
                f"{level}_{figure}": v[k]
                for k, figure in enumerate(self.FIGURES)
                for level, v in self.levels()
            },
            "confidence": self.confidence,
        }

    def level_of(self, value: float, ci: Sequence[float], which: int, n: int | None = None) -> str:
        """The highest level figure `which` (0: flip excess, 1: insertion gain, 2: transplant
        follow excess) reaches with its lower 95% bound; "inconclusive" when it reaches none
        but its upper bound reaches "moderate" (a real effect is not ruled out), or when it
        rests on fewer than MIN_FILMS films or patients (`n`)."""
        del value  # the point estimate decides nothing: a bias would make it "strong"
        if (n is not None and n < MIN_FILMS) or not all(np.isfinite(ci)):
            return INCONCLUSIVE
        lower = next((lvl for lvl, mins in self.levels() if ci[0] >= mins[which]), "none")
        if lower == "none" and ci[1] >= self.moderate[which]:
            return INCONCLUSIVE
        return lower

    def inconclusive_reason(self, ci: Sequence[float], which: int, n: int | None) -> str:
        """Why `level_of` said inconclusive ("" when it did not)."""
        if n is not None and n < MIN_FILMS:
            return f"{n} films or patients, fewer than the {MIN_FILMS} a level needs"
        if not all(np.isfinite(ci)):
            return "no interval"
        if self.level_of(0.0, ci, which, n) == INCONCLUSIVE:
            return (
                f"the interval [{ci[0]:+.2f}, {ci[1]:+.2f}] reaches no level but does not rule "
                f"out a moderate one (≥ {self.moderate[which]:+.2f})"
            )
        return ""


@dataclass(frozen=True)
class RegionDeletion:
    """Blurring only the text against blurring the control region, over images with text."""

    flip_rate: float
    flip_ci: Interval
    control_flip_rate: float
    control_flip_ci: Interval
    flip_excess: float
    flip_excess_ci: Interval
    mean_drop: float  # of the decided class's probability
    ci: Interval  # of mean_drop
    drop_excess: float = float("nan")  # mean_drop minus the control's, paired per film
    drop_excess_ci: Interval = (float("nan"), float("nan"))


@dataclass(frozen=True)
class RegionInsertion:
    """The text alone over the blurred image against the control region alone over it (and
    the blurred image alone, which shows how much room the test has)."""

    keeps_class_rate: float
    ci: Interval
    baseline_keeps_class_rate: float
    baseline_ci: Interval
    gain: float  # keeps_class_rate − control_keeps_class_rate, paired per film
    gain_ci: Interval
    control_keeps_class_rate: float = float("nan")
    control_ci: Interval = (float("nan"), float("nan"))


@dataclass(frozen=True)
class Reliance:
    """The region-test figures and the levels they reach; `strength` is the verdict."""

    relies_on_text: bool
    strength: str  # strong, moderate, weak, none or inconclusive
    excess_level: str  # the level the flip excess reaches alone
    gain_level: str  # the level the insertion gain reaches alone
    region_deletion: RegionDeletion
    region_insertion: RegionInsertion
    n_images: int
    unit: str = "film"  # what the bootstrap resampled
    n_clusters: int | None = None  # how many of them
    inconclusive: str = ""  # why the strength is inconclusive
    rare: str = ""  # why too few films to test still make "none": the cue is that rare
    n_unmatched: int = 0  # films with regions but no matched control, left out of the tests


def text_reliance(
    flipped: np.ndarray,
    control_flipped: np.ndarray,
    inserted_keeps: np.ndarray,
    control_keeps: np.ndarray,
    deletion_drop: np.ndarray,
    thresholds: RelianceThresholds = RelianceThresholds(),
    n_bootstrap: int = 1000,
    seed: int = 0,
    clusters: Clusters | None = None,
    n_films: int | None = None,
    *,
    baseline_keeps: np.ndarray | None = None,
    control_drop: np.ndarray | None = None,
    n_unmatched: int = 0,
) -> Reliance:
    """Region-test figures over the images that carry text, with CIs, and the verdict on them.
    `n_films`: every test film, those without text too (a rare cue decides few decisions).

    Inputs are per image (target = the model's own decision): did blurring the text change the
    decision; did blurring the control region change it; does the text alone (over the
    blurred image) keep it; does the control region alone keep it; the drop of the decided
    class's probability when the text is blurred; optionally, whether the blurred image
    alone keeps it (default: as the control does) and the drop when the control is blurred
    (default: none). Differences are paired per image, so their CIs come from resampling
    patients (`clusters`) with their images.
    """
    flipped, control_flipped, inserted_keeps, control_keeps, deletion_drop = (
        np.asarray(v, dtype=float)
        for v in (flipped, control_flipped, inserted_keeps, control_keeps, deletion_drop)
    )
    baseline_keeps = control_keeps if baseline_keeps is None else np.asarray(baseline_keeps, float)
    control_drop = np.zeros_like(deletion_drop) if control_drop is None else control_drop
    clusters = resolve(clusters, flipped.size)

    def mean_ci(values: np.ndarray, offset: int) -> tuple[float, Interval]:
        return bootstrap_mean(values, n_bootstrap, thresholds.confidence, seed + offset, clusters)

    flip, control, excess = (
        mean_ci(v, k) for k, v in enumerate((flipped, control_flipped, flipped - control_flipped))
    )
    keeps, held, gain, base = (
        mean_ci(v, 3 + k)
        for k, v in enumerate(
            (inserted_keeps, control_keeps, inserted_keeps - control_keeps, baseline_keeps)
        )
    )
    drop, drop_excess = mean_ci(deletion_drop, 7), mean_ci(deletion_drop - control_drop, 8)
    deletion = RegionDeletion(*flip, *control, *excess, *drop, *drop_excess)
    insertion = RegionInsertion(*keeps, *base, *gain, *held)
    n = clusters.count
    excess_level = thresholds.level_of(excess[0], excess[1], 0, n)
    gain_level = thresholds.level_of(gain[0], gain[1], 1, n)
    why = thresholds.inconclusive_reason(excess[1], 0, n) or thresholds.inconclusive_reason(
        gain[1], 1, n
    )
    if gain_level == "none" and 1 - held[0] < thresholds.moderate[1]:
        gain_level = INCONCLUSIVE  # the control alone keeps almost every decision
        why = why or (
            f"insertion is degenerate: the control region alone over the blurred film keeps "
            f"{held[0]:.0%} of the decisions, leaving no room to show the regions suffice"
        )
    strength = lowest_of_both(excess_level, gain_level)
    rare = rare_cue(n, n_films, thresholds)
    if strength == INCONCLUSIVE and rare:
        strength, why = "none", rare
    return Reliance(
        strength in LEVELS[1:], strength, excess_level, gain_level, deletion, insertion,
        int(flipped.size), clusters.unit, n, why if strength == INCONCLUSIVE else "", rare,
        n_unmatched,
    )  # fmt: skip


def rare_cue(n: int, n_films: int | None, thresholds: RelianceThresholds) -> str:
    """Why a cue on too few films to test is still "none": carried by fewer than MIN_FILMS
    films and by a smaller share of the test films than the weak follow excess, it can decide
    no more of the decisions than that level ("" when the cue is not that rare)."""
    if not n_films or n >= MIN_FILMS or n / n_films >= thresholds.weak[2]:
        return ""
    return (
        f"only {n} of {n_films} test films carry it: it can decide at most {n / n_films:.0%} of "
        f"the decisions, below the weak level ({thresholds.weak[2]:.0%})"
    )


@dataclass(frozen=True)
class TransplantFollow:
    """How often decisions follow transplanted text, against the control transplant."""

    n: int
    follow_rate: float  # swap arm: the decision moves to the donor source's class
    follow_ci: Interval
    control_follow_rate: float  # control arm (own-class text): the same move
    control_follow_ci: Interval
    follow_excess: float
    follow_excess_ci: Interval
    prob_shift: float  # the target class's probability, swap minus control arm
    prob_shift_ci: Interval
    unit: str = "film"  # what the bootstrap resampled
    n_clusters: int | None = None  # how many of them

    @property
    def n_units(self) -> int:
        """Patients (or films) the figures rest on: what the evidence minimum counts."""
        return self.n if self.n_clusters is None else self.n_clusters


def transplant_follow(
    follows: np.ndarray, control_follows: np.ndarray, prob_shift: np.ndarray,
    n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
    clusters: Clusters | None = None,
) -> TransplantFollow:  # fmt: skip
    """Paired per film, so the CIs come from resampling patients (`clusters`) with their films."""
    follows, control_follows, prob_shift = (
        np.asarray(v, dtype=float) for v in (follows, control_follows, prob_shift)
    )
    clusters = resolve(clusters, follows.size)
    figures = [
        bootstrap_mean(values, n_bootstrap, confidence, seed + k, clusters)
        for k, values in enumerate(
            (follows, control_follows, follows - control_follows, prob_shift)
        )
    ]
    return TransplantFollow(
        int(follows.size), *(x for pair in figures for x in pair), clusters.unit, clusters.count
    )


def follow_level(
    follow: TransplantFollow | None, thresholds: RelianceThresholds, needed: bool = True
) -> str:
    """The level a transplant's follow excess reaches. When it could not run: inconclusive if
    it was `needed` (sources are tied to classes, but no film had donors for both arms), else
    "none" (no source is tied to a class, so a hospital's text carries no class to follow)."""
    if follow is None or not follow.n:
        return INCONCLUSIVE if needed else "none"
    return thresholds.level_of(follow.follow_excess, follow.follow_excess_ci, 2, follow.n_units)


def combined_strength(
    reliance: Reliance, transplant: TransplantFollow | None, thresholds: RelianceThresholds,
    needed: bool = True,
) -> tuple[str, str]:  # fmt: skip
    """(verdict strength, the transplant's own level): the higher of the transplant's level
    and the region tests' joint level (inconclusive when neither reaches a level and either
    could not rule one out; `needed`: see `follow_level`)."""
    moved = follow_level(transplant, thresholds, needed)
    return highest([reliance.strength, moved]), moved


def did_not_learn(evaluation: Evaluation, classes: Sequence[str], split: str) -> str:
    """Why a model learned nothing on `split` ("" when it did): one class for every film, or a
    macro-F1 whose CI reaches what guessing scores: predicting the majority class, or guessing
    by the class prior (whose macro-F1 is 1/K for K classes, whatever the prior)."""
    if len(set(evaluation.predictions)) == 1:
        return f"it predicts {classes[evaluation.predictions[0]]} for every film of {split}"
    labels = [classes[k] for k in evaluation.labels]
    chance = max(chance_level_f1(labels), 1 / max(len(set(labels)), 1))
    metrics = evaluation.metrics
    low = metrics.ci.macro_f1[0] if metrics.ci else metrics.macro_f1
    if low > chance:
        return ""
    return (
        f"its macro-F1 on {split} ({metrics.macro_f1:.2f}, CI from {low:.2f}) reaches what "
        f"guessing scores ({chance:.2f})"
    )
