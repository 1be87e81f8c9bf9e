"""Stage 4 of the audit: how much of the model's decisions rests on burned-in text.

Text is detected on every test image (once; the cleaning stage reuses the boxes). The model
alone then answers, per image with text and for its own decision: does blurring only the
text change it more often than blurring another film's text boxes (a control of the same
kind of size and place, where this film has no text), and does the text alone over the
blurred image reproduce it more often than the blurred image alone (region-only insertion,
iGOS++ paper Fig. 12)? Those causal tests decide the verdict; the saliency maps of the
explained images add how much saliency lands on the text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data_cleaning.clean import detection_image
from data_cleaning.detect import TextDetector
from medxai.boxes import Box
from medxai.explain.perturb import blurred_baseline
from medxai.journal import journal, read_journal
from medxai.metrics.shortcut import (
    RegionTests,
    Reliance,
    RelianceThresholds,
    TransplantFollow,
    boxes_to_masks,
    region_tests,
    saliency_share,
    text_reliance,
    transplant_follow,
)
from medxai.report.record import (
    ClassFollow,
    ExplainedImage,
    GroupRates,
    RegionRow,
    RegionScores,
    SaliencySummary,
    Transplant,
    TransplantRow,
    TransplantSplit,
)
from medxai.statistics.confound import informative
from pipelines.audit_inputs import ModelInputs, TestImage


def detect_text(
    images: Sequence[TestImage],
    root: Path,
    detector: TextDetector,
    journal_path: Path,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[Box]]:
    """Boxes per relative path; journalled per image, so a killed run resumes."""
    found = {e["relative"]: [tuple(b) for b in e["boxes"]] for e in read_journal(journal_path)}
    todo = [image for image in images if image.relative not in found]
    if progress and found:
        progress(len(images) - len(todo))
    with journal(journal_path) as out:
        for image in todo:
            pixels = detection_image(root / image.relative)
            boxes = [tuple(map(int, b)) for b in detector.detect(pixels)]
            found[image.relative] = boxes
            out.append({"relative": image.relative, "boxes": boxes})
            if progress:
                progress(1)
    return {image.relative: found[image.relative] for image in images}


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
    )


def region_test_rows(
    model: nn.Module,
    images: Sequence[TestImage],
    boxes: dict[str, list[Box]],
    inputs: ModelInputs,
    decisions: dict[str, int],
    classes: Sequence[str],
    device: torch.device,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[RegionRow], np.ndarray]:
    """Per test image: its decision and the region tests on it; and the text-frequency map."""
    rows: list[RegionRow] = []
    size = inputs.prep.image_size
    frequency = np.zeros((size, size))
    model = model.to(device).eval()
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = inputs.batch([i.relative for i in chunk]).to(device)
        mapped = [
            inputs.prep.map_boxes(boxes[i.relative], inputs.shapes[i.relative]) for i in chunk
        ]
        masks = boxes_to_masks(mapped, (size, size), device)
        frequency += masks.float().sum((0, 1)).cpu().numpy()
        decided = torch.tensor([decisions[i.relative] for i in chunk], device=device)
        control = masks.roll(1, 0) & ~masks  # where the previous film has text, this one not
        tests = region_tests(
            model, batch, decided, masks, control=control, baseline=blurred_baseline(batch),
            batch_size=batch_size,
        )  # fmt: skip
        area = masks.flatten(1).float().mean(1)
        for k, image in enumerate(chunk):
            control_area = float(control[k].float().mean())
            rows.append(
                RegionRow(
                    file=image.record.filename,
                    relative=image.relative,
                    label=image.record.label,
                    source=image.record.source,
                    predicted=classes[int(decided[k])],
                    shape=inputs.shapes[image.relative],
                    boxes=boxes[image.relative],
                    model_boxes=mapped[k],
                    text_area_share=float(area[k]),
                    tests=_scores(tests, k, control_area, classes) if mapped[k] else None,
                )  # fmt: skip
            )
        if progress:
            progress(len(chunk))
    return rows, frequency / max(len(images), 1)


def _test_arrays(rows: Sequence[RegionRow]) -> dict[str, np.ndarray]:
    tested = [(r.predicted, r.tests) for r in rows if r.tests]
    return {
        "flipped": np.array([t.deleted_prediction != p for p, t in tested]),
        "control_flipped": np.array([t.control_deleted_prediction != p for p, t in tested]),
        "inserted_keeps": np.array([t.inserted_prediction == p for p, t in tested]),
        "baseline_keeps": np.array([t.baseline_prediction == p for p, t in tested]),
        "deletion_drop": np.array([t.original_score - t.deleted_score for _, t in tested]),
    }


def breakdown(rows: Sequence[RegionRow], key: str) -> dict[str, GroupRates]:
    """Region-test rates per source (or class) over that group's images with text."""
    groups: dict[str, list[RegionRow]] = defaultdict(list)
    for row in rows:
        groups[str(getattr(row, key) or "-")].append(row)
    out = {}
    for name, members in sorted(groups.items()):
        rates = {}
        if any(r.tests for r in members):
            arrays = _test_arrays(members)
            rates = {
                "flip_rate": float(arrays["flipped"].mean()),
                "control_flip_rate": float(arrays["control_flipped"].mean()),
                "keeps_class_rate": float(arrays["inserted_keeps"].mean()),
                "baseline_keeps_class_rate": float(arrays["baseline_keeps"].mean()),
                "mean_drop": float(arrays["deletion_drop"].mean()),
            }
        out[name] = GroupRates(
            n=len(members),
            n_with_text=sum(1 for r in members if r.tests),
            text_area_share=float(np.mean([r.text_area_share for r in members])),
            **rates,
        )
    return out


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
    """Mean figures per method over the explained images that carry text."""
    out = {}
    n = int(with_text.sum())
    for method, share in shares.items():
        means = {
            key: (float(np.nanmean(np.asarray(values)[with_text])) if n else None)
            for key, values in share.items()
        }
        out[method] = SaliencySummary(n=n, **means)
    return out


def reliance(
    rows: Sequence[RegionRow], thresholds: RelianceThresholds, n_bootstrap: int, seed: int
) -> Reliance:
    """The region-test figures over all test images with text, and the verdict they give."""
    return text_reliance(
        **_test_arrays(rows), thresholds=thresholds, n_bootstrap=n_bootstrap, seed=seed
    )


def _follow(rows: Sequence[TransplantRow], n_bootstrap: int, seed: int) -> TransplantFollow:
    return transplant_follow(
        np.array([r.swap_prediction in r.targets for r in rows]),
        np.array([r.control_prediction in r.targets for r in rows]),
        np.array([r.swap_target_prob - r.control_target_prob for r in rows]),
        n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip


def _per_class(rows: Sequence[TransplantRow]) -> list[ClassFollow]:
    """Per (true class, donor source's classes): how often films follow, in each arm."""
    groups: dict[tuple[str, str], list[TransplantRow]] = defaultdict(list)
    for row in rows:
        groups[(row.label, " or ".join(row.targets))].append(row)
    return [
        ClassFollow(
            label,
            target,
            len(members),
            float(np.mean([r.swap_prediction in r.targets for r in members])),
            float(np.mean([r.control_prediction in r.targets for r in members])),
        )  # fmt: skip
        for (label, target), members in sorted(groups.items())
    ]


def summarise_transplant(
    rows: Sequence[TransplantRow], test: dict[str, Sequence[TestImage]],
    associations: dict[str, list[str]], n_bootstrap: int, seed: int,
) -> Transplant:  # fmt: skip
    """Follow rates over all test films (pooled) and per test split, with paired CIs."""
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
            per_split[split] = TransplantSplit(_follow(mine, n_bootstrap, seed), _per_class(mine))
    pooled = _follow(rows, n_bootstrap, seed) if rows else None
    return Transplant(associations, skipped, pooled, per_split, list(rows))
