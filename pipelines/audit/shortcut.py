"""The audit's shortcut stage, in order: find the regions of each kind on every test film →
region tests → counterfactual transplant → the verdict, with one set of thresholds for the
figures and the verdict alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medxai.atomic import atomic_save_npy
from medxai.metrics.shortcut import (
    Reliance,
    RelianceThresholds,
    combined_strength,
    did_not_learn,
)
from medxai.report import verdict as words
from medxai.report.record import (
    Evidence,
    ExplainedEntry,
    ExplainedSet,
    MethodNumbers,
    RegionRow,
    ShortcutResult,
    Transplant,
)
from medxai.statistics.confound import informative, source_classes
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.inputs import TestImage
from pipelines.audit.region_tests import (
    breakdown,
    region_test_rows,
    reliance,
    saliency_shares,
    summarise_saliency,
)
from pipelines.audit.regions import region_kinds
from pipelines.audit.saliency import load_maps
from pipelines.audit.subject import Subject
from pipelines.audit.transplant import summarise_transplant, transplant_rows
from pipelines.explain_images import map_path


@dataclass(frozen=True)
class Verdict:
    strength: str  # strong, moderate, weak, none, or "not applicable"
    applicable: bool
    region_level: str
    transplant_level: str
    summary: str
    reasons: list[str]


def shortcut(run: Run, data: Data, subject: Subject, explained: ExplainedSet) -> ShortcutResult:
    """Find the regions on every test image; region tests and the transplant; the verdict."""
    c, thresholds = run.config, RelianceThresholds()
    folder = run.out / "shortcut"
    folder.mkdir(parents=True, exist_ok=True)
    images = data.test_images
    (kind,) = region_kinds(run)  # text: the one kind the record holds today
    boxes = kind.find(images, data.root, folder, run.progress("detecting text", len(images)))
    rows, frequency = region_test_rows(
        subject.module, images, boxes, subject.inputs, subject.decisions, data.classes,
        run.device, kind.control, progress=run.progress("region tests", len(images)),
    )  # fmt: skip
    by_relative = {row.relative: row for row in rows}
    maps = load_maps(run, explained, subject.methods)
    size = subject.inputs.prep.image_size
    shares = saliency_shares(explained.images, by_relative, maps, size, c.explain.top_k)
    atomic_save_npy(folder / "text_frequency.npy", frequency)
    for method, stack in maps.items():
        atomic_save_npy(map_path(folder, "mean_map", method), stack.mean(0))
    found = reliance(rows, thresholds, c.n_bootstrap, c.seed)
    moved = transplant(run, data, subject, images, by_relative)
    evidence = gather_evidence(rows, explained, shares, found, moved)
    v = decide(found, moved, thresholds, subject, data)
    return ShortcutResult(
        relies_on_text=v.strength not in ("none", "not applicable"), strength=v.strength,
        applicable=v.applicable, region_level=v.region_level,
        transplant_level=v.transplant_level, summary=v.summary, reasons=v.reasons,
        thresholds=thresholds.table(), evidence=evidence, images=rows,
        explained=explained_entries(explained, shares), detector=kind.describe(),
    )  # fmt: skip


def transplant(
    run: Run, data: Data, subject: Subject, images: list[TestImage], rows: dict[str, RegionRow]
) -> Transplant:
    """The counterfactual transplant, with donors tied to classes by the training split."""
    c = run.config
    associations = source_classes(data.summary.splits[data.train_split].sources)
    found = []
    if informative(associations):
        found = transplant_rows(
            subject.module, images, rows, subject.inputs, subject.decisions, data.classes,
            associations, (c.clean.radius, c.clean.dilate, c.seed), run.device,
        )  # fmt: skip
    return summarise_transplant(found, data.test, associations, c.n_bootstrap, c.seed)


def gather_evidence(
    rows: list[RegionRow], explained: ExplainedSet, shares: dict, found: Reliance,
    moved: Transplant,
) -> Evidence:  # fmt: skip
    with_text = [row for row in rows if row.tests]
    by_relative = {row.relative: row for row in rows}
    has_text = np.array([by_relative[e.relative].tests is not None for e in explained.images])
    area = float(np.mean([r.text_area_share for r in with_text])) if with_text else 0.0
    return Evidence(
        n_images=len(rows), n_with_text=len(with_text), mean_text_area_share=area,
        region_insertion=found.region_insertion, region_deletion=found.region_deletion,
        saliency=summarise_saliency(shares, has_text),
        per_source=breakdown(rows, "source"), per_class=breakdown(rows, "label"),
        transplant=moved,
    )  # fmt: skip


def decide(
    found: Reliance, moved: Transplant, thresholds: RelianceThresholds, subject: Subject,
    data: Data,
) -> Verdict:  # fmt: skip
    """The one verdict from all the evidence ("not applicable" on a model that did not
    learn), with its words (medxai.report.verdict)."""
    strength, follow_level = combined_strength(found, moved.pooled, thresholds)
    split = data.tests[0]
    reason = did_not_learn(subject.evaluated.splits[split], data.classes, split)
    if reason:
        strength = "not applicable"
    return Verdict(
        strength=strength, applicable=not reason, region_level=found.strength,
        transplant_level=follow_level, summary=words.summary(found, moved, strength, reason),
        reasons=words.reasons(found, moved, follow_level),
    )  # fmt: skip


def explained_entries(explained: ExplainedSet, shares: dict) -> list[ExplainedEntry]:
    """Per explained image: its decision and, per method, saliency shares and causal AUCs."""

    def numbers(method: str, k: int, score) -> MethodNumbers:
        share = shares[method]
        return MethodNumbers(
            mass_share=share["mass_share"][k], area_share=share["area_share"][k],
            top_k_overlap=share["top_k_overlap"][k], lift=share["lift"][k],
            deletion_auc=score.deletion_auc, insertion_auc=score.insertion_auc,
        )  # fmt: skip

    return [
        ExplainedEntry(
            file=image.file,
            label=image.label,
            source=image.source,
            predicted=image.predicted,
            methods={m: numbers(m, k, score) for m, score in image.scores.items()},
        )  # fmt: skip
        for k, image in enumerate(explained.images)
    ]
