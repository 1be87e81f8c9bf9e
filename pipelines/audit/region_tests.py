"""The region tests of the shortcut stage, for one region kind (text first).

The model alone answers, per test image with regions and for its own decision: does
blurring only the regions change it more often than blurring the kind's matched control (for
text: the same shapes where other films carry text and this one has none), and do the regions
alone over the blurred image reproduce it more often than the control alone does (region-only
insertion, iGOS++ paper Fig. 12)? Images without a matched control are left out of both. The
saliency maps of the explained images add how much saliency lands in the regions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from medxai import distributed
from medxai.boxes import Box
from medxai.explain.perturb import blurred_baseline
from medxai.metrics.shortcut import (
    RegionTests,
    Reliance,
    RelianceThresholds,
    boxes_to_masks,
    region_tests,
    saliency_share,
    text_reliance,
)
from medxai.report.record import (
    ExplainedImage,
    GroupRates,
    RegionRow,
    RegionScores,
    SaliencySummary,
)
from medxai.statistics.bootstrap import Clusters
from pipelines.audit.controls import MATCH
from pipelines.audit.inputs import ModelInputs, TestImage


def _scores(tests: RegionTests, k: int, control_area: float, classes: Sequence[str]):
    name = lambda t: classes[int(t[k])]  # noqa: E731
    return RegionScores(
        original_score=float(tests.original_score[k]),
        baseline_score=float(tests.baseline_score[k]),
        baseline_prediction=name(tests.baseline_prediction),
        inserted_score=float(tests.inserted_score[k]),
        inserted_prediction=name(tests.inserted_prediction),
        deleted_score=float(tests.deleted_score[k]),
        deleted_prediction=name(tests.deleted_prediction),
        control_area_share=control_area,
        control_deleted_score=float(tests.control_deleted_score[k]),
        control_deleted_prediction=name(tests.control_deleted_prediction),
        control_inserted_score=float(tests.control_inserted_score[k]),
        control_inserted_prediction=name(tests.control_inserted_prediction),
    )


def region_test_rows(
    model: nn.Module,
    images: Sequence[TestImage],
    boxes: dict[str, list[Box]],
    inputs: ModelInputs,
    decisions: dict[str, int],
    classes: Sequence[str],
    device: torch.device,
    control: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    removed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    exclude: dict[str, list[Box]] | None = None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[RegionRow], np.ndarray]:
    """Per test image: its decision and the region tests on it; and the regions' frequency
    map. `control`: a chunk's region masks (N, 1, S, S) and the regions' counts over every
    film (S, S) -> their matched control masks; `removed`: (films, masks) -> the films without
    the kind (default: blurred); `exclude`: boxes per film taken out of its regions (another
    kind's, tested on its own). Under torchrun the chunks of films are dealt to the ranks."""
    size = inputs.prep.image_size
    mapped = {
        i.relative: inputs.prep.map_boxes(boxes[i.relative], inputs.shapes[i.relative])
        for i in images
    }
    taken = {
        i.relative: inputs.prep.map_boxes(exclude[i.relative], inputs.shapes[i.relative])
        for i in images
    } if exclude else {}  # fmt: skip
    counts = torch.zeros(size, size)  # the kind's regions over every film
    for start in range(0, len(images), batch_size):
        chunk = [i.relative for i in images[start : start + batch_size]]
        counts += region_masks(mapped, taken, chunk, size, torch.device("cpu")).sum((0, 1))
    tests = ChunkTests(
        model, mapped, taken, counts, control, removed or default_removed, size, batch_size,
        device, list(classes),
    )  # fmt: skip
    chunks = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    payloads = (
        ([i.relative for i in chunk], inputs.batch([i.relative for i in chunk]),
         torch.tensor([decisions[i.relative] for i in chunk]))
        for chunk in chunks
    )  # fmt: skip
    done = partial(_films_done, progress) if progress else None
    scored = distributed.run_everywhere(
        distributed.dealt_rounds, _test_chunk, tests, len(chunks),
        local={"payloads": payloads, "progress": done},
    )  # fmt: skip
    rows = [
        RegionRow(
            file=image.record.filename,
            relative=image.relative,
            label=image.record.label,
            source=image.record.source,
            predicted=classes[decisions[image.relative]],
            shape=inputs.shapes[image.relative],
            boxes=boxes[image.relative],
            model_boxes=mapped[image.relative],
            text_area_share=area,
            tests=found,
        )  # fmt: skip
        for image, (area, found) in zip(images, (s for part in scored for s in part), strict=True)
    ]
    return rows, counts.numpy() / max(len(images), 1)


@dataclass(frozen=True)
class ChunkTests:
    """What testing a chunk of films needs besides the films (sent once to every rank): the
    model, each film's regions at model input, and the kind's control and removal."""

    model: nn.Module
    mapped: dict[str, list[Box]]  # the kind's boxes per film, at model input
    taken: dict[str, list[Box]]  # boxes taken out of them (another kind's)
    counts: torch.Tensor  # (S, S) the kind's regions over every film
    control: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    removed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    size: int
    batch_size: int
    device: torch.device  # the one-process run's (each rank uses its own)
    classes: list[str]


def region_masks(
    mapped: dict[str, list[Box]], taken: dict[str, list[Box]], relatives: Sequence[str],
    size: int, device: torch.device,
) -> torch.Tensor:  # fmt: skip
    """(N, 1, S, S) the films' regions, less the boxes taken out of them."""
    masks = boxes_to_masks([mapped[r] for r in relatives], (size, size), device)
    if taken:
        masks &= ~boxes_to_masks([taken[r] for r in relatives], (size, size), device)
    return masks


def _test_chunk(
    tests: ChunkTests, payload: tuple[list[str], torch.Tensor, torch.Tensor]
) -> list[tuple[float, RegionScores | None]]:
    """Per film of the chunk (relative paths, model inputs, decisions): its regions' share of
    the area, and its scores when it has regions (a film without the kind's regions is not
    put through the tests)."""
    relatives, batch, decided = payload
    model, device = distributed.on_rank(tests.model, tests.device)  # in eval mode
    batch, decided = batch.to(device), decided.to(device)
    masks = region_masks(tests.mapped, tests.taken, relatives, tests.size, device)
    controls = tests.control(masks, tests.counts.to(device))
    area = masks.flatten(1).float().mean(1)
    carry = torch.nonzero(area > 0).flatten()
    if not len(carry):
        return [(float(a), None) for a in area]
    found = region_tests(
        model, batch[carry], decided[carry], masks[carry], control=controls[carry],
        baseline=tests.removed(batch[carry], masks[carry]),
        control_baseline=tests.removed(batch[carry], controls[carry]),
        batch_size=tests.batch_size,
    )  # fmt: skip
    at = {int(k): j for j, k in enumerate(carry)}
    return [
        (float(area[k]), _scores(found, at[k], float(controls[k].float().mean()), tests.classes)
         if k in at else None)
        for k in range(len(relatives))
    ]  # fmt: skip


def _films_done(progress: Callable[[int], None], round_results: list[list]) -> None:
    progress(sum(len(part) for part in round_results))


def default_removed(batch: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return blurred_baseline(batch)


def matched(row: RegionRow) -> bool:
    """The image has regions and a control covering at least MATCH of their area."""
    return row.tests is not None and (
        row.tests.control_area_share >= MATCH * row.text_area_share - 1e-9
    )


@dataclass(frozen=True)
class Outcomes:
    """Per tested image (its decision as target): the region tests' outcomes."""

    flipped: np.ndarray  # blurring the regions changed the decision
    control_flipped: np.ndarray  # blurring the control did
    inserted_keeps: np.ndarray  # the regions alone over the blurred image keep it
    control_keeps: np.ndarray  # the control alone over the blurred image keeps it
    baseline_keeps: np.ndarray  # the blurred image alone keeps it
    deletion_drop: np.ndarray  # score lost when the regions are blurred
    control_drop: np.ndarray  # score lost when the control is blurred

    @classmethod
    def of(cls, rows: Sequence[RegionRow]) -> Outcomes:
        tested = [(r.predicted, r.tests) for r in rows if matched(r)]
        return cls(
            np.array([t.deleted_prediction != p for p, t in tested], dtype=bool),
            np.array([t.control_deleted_prediction != p for p, t in tested], dtype=bool),
            np.array([t.inserted_prediction == p for p, t in tested], dtype=bool),
            np.array([t.control_inserted_prediction == p for p, t in tested], dtype=bool),
            np.array([t.baseline_prediction == p for p, t in tested], dtype=bool),
            np.array([t.original_score - t.deleted_score for _, t in tested], dtype=float),
            np.array([t.original_score - t.control_deleted_score for _, t in tested], dtype=float),
        )


def breakdown(rows: Sequence[RegionRow], key: str) -> dict[str, GroupRates]:
    """Region-test rates per source (or class) over that group's images with regions."""
    groups: dict[str, list[RegionRow]] = defaultdict(list)
    for row in rows:
        groups[str(getattr(row, key) or "-")].append(row)
    return {name: _rates(members) for name, members in sorted(groups.items())}


def _rates(members: list[RegionRow]) -> GroupRates:
    n_tested = sum(1 for r in members if matched(r))
    area = float(np.mean([r.text_area_share for r in members]))
    if not n_tested:
        return GroupRates(n=len(members), n_with_text=0, text_area_share=area)
    o = Outcomes.of(members)
    return GroupRates(
        n=len(members), n_with_text=n_tested, text_area_share=area,
        flip_rate=float(o.flipped.mean()), control_flip_rate=float(o.control_flipped.mean()),
        keeps_class_rate=float(o.inserted_keeps.mean()),
        control_keeps_class_rate=float(o.control_keeps.mean()),
        mean_drop=float(o.deletion_drop.mean()),
    )  # fmt: skip


def saliency_shares(
    explained: Sequence[ExplainedImage],
    rows: dict[str, RegionRow],
    maps: dict[str, np.ndarray],
    size: int,
    top_k: float,
) -> dict[str, dict[str, list[float]]]:
    """Per method: each explained image's saliency share in its text (`maps`: method →
    (N, S, S) in the order of `explained`)."""
    masks = boxes_to_masks([rows[e.relative].model_boxes for e in explained], (size, size))
    shares = {}
    for method, stack in maps.items():
        share = saliency_share(torch.from_numpy(stack)[:, None], masks, top_k)
        shares[method] = {key: value.tolist() for key, value in share.items()}
    return shares


def summarise_saliency(
    shares: dict[str, dict[str, list[float]]], with_text: np.ndarray
) -> dict[str, SaliencySummary]:
    """Mean figures per method over the explained images that carry regions."""
    n = int(with_text.sum())

    def mean(values: list[float]) -> float | None:
        return float(np.nanmean(np.asarray(values)[with_text])) if n else None

    return {
        method: SaliencySummary(
            n=n,
            mass_share=mean(share["mass_share"]),
            area_share=mean(share["area_share"]),
            top_k_overlap=mean(share["top_k_overlap"]),
            lift=mean(share["lift"]),
        )  # fmt: skip
        for method, share in shares.items()
    }


def reliance(
    rows: Sequence[RegionRow], thresholds: RelianceThresholds, n_bootstrap: int, seed: int,
    clusters_of: Callable[[Sequence[str]], Clusters] | None = None,
) -> Reliance:  # fmt: skip
    """The region-test figures over all test images with regions, and the level they give;
    `clusters_of` gives the films' patients, resampled together."""
    o = Outcomes.of(rows)
    tested = [r.relative for r in rows if matched(r)]
    return text_reliance(
        o.flipped, o.control_flipped, o.inserted_keeps, o.control_keeps, o.deletion_drop,
        thresholds=thresholds, n_bootstrap=n_bootstrap, seed=seed,
        clusters=clusters_of(tested) if clusters_of else None, n_films=len(rows),
        baseline_keeps=o.baseline_keeps, control_drop=o.control_drop,
        n_unmatched=sum(1 for r in rows if r.tests and not matched(r)),
    )  # fmt: skip
