"""The audit's shortcut stage, in order: find the regions of each kind on every test film →
region tests → counterfactual transplant → the verdict, with one set of thresholds for the
figures and the verdict alike."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medxai.atomic import atomic_save_npy
from medxai.boxes import Box
from medxai.metrics.shortcut import (
    INCONCLUSIVE,
    LEVELS,
    MIN_FILMS,
    Reliance,
    RelianceThresholds,
    combined_strength,
    did_not_learn,
    follow_level,
    highest,
)
from medxai.report import verdict as words
from medxai.report.record import (
    Evidence,
    ExplainedEntry,
    ExplainedSet,
    KindResult,
    MethodNumbers,
    RegionRow,
    ShortcutResult,
    SourceResult,
    StyleTransplant,
    Transplant,
    VerdictRow,
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
from pipelines.audit.regions import RegionKind, region_kinds
from pipelines.audit.saliency import load_maps
from pipelines.audit.source import NOT_MEASURED, source_result
from pipelines.audit.style import CUES, Restyling, style_transplant
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
    unsure: str = ""  # why the verdict is inconclusive


def shortcut(run: Run, data: Data, subject: Subject, explained: ExplainedSet) -> ShortcutResult:
    """Per region kind, its regions on every test film and the region tests; the text
    transplant; whether decisions follow the source; the verdict table."""
    c, thresholds = run.config, RelianceThresholds()
    folder = run.out / "shortcut"
    folder.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, KindResult] = {}
    for kind in region_kinds(run, subject.inputs.shapes, data.known):
        taken = [kinds[name].rows for name in kind.excludes if name in kinds]
        kinds[kind.name] = test_kind(run, data, subject, kind, folder, boxes_of(*taken))
    text = kinds["text"]
    by_relative = {row.relative: row for row in text.rows}
    maps = load_maps(run, explained, subject.methods)
    size = subject.inputs.prep.image_size
    shares = saliency_shares(explained.images, by_relative, maps, size, c.explain.top_k)
    for method, stack in maps.items():
        atomic_save_npy(map_path(folder, "mean_map", method), stack.mean(0))
    moved = transplant(run, data, subject, data.test_images, by_relative)
    evidence = gather_evidence(text.rows, explained, shares, text.reliance, moved)
    v = decide(text.reliance, moved, thresholds, subject, data)
    source = source_result(data, subject.decisions, thresholds, c.n_bootstrap, c.seed)
    styles = style_transplants(run, data, subject, kinds["border"].rows)
    rows = verdict_table(v, moved, kinds, source, styles, thresholds)
    overall = "not applicable" if not v.applicable else highest([r.level for r in rows])
    # green only with nothing found and the source either read or telling nothing
    cleared = overall == "none" and (source.level != NOT_MEASURED or not source.associations)
    return ShortcutResult(
        relies_on_text=v.strength in LEVELS[1:], strength=v.strength,
        applicable=v.applicable, region_level=v.region_level,
        transplant_level=v.transplant_level, summary=v.summary, reasons=v.reasons,
        thresholds=thresholds.table(), evidence=evidence, images=text.rows,
        explained=explained_entries(explained, shares), detector=text.finder,
        kinds={name: kind if name != "text" else replace(kind, rows=[])
               for name, kind in kinds.items()},
        source=source, styles=styles, table=rows, overall=overall,
        headline=words.headline(rows, overall, cleared), cleared=cleared,
        resampled=data.clusters([i.relative for i in data.test_images]).describe(),
        min_films=MIN_FILMS,
    )  # fmt: skip


def test_kind(
    run: Run, data: Data, subject: Subject, kind: RegionKind, folder: Path,
    exclude: dict[str, list[Box]],
) -> KindResult:  # fmt: skip
    """One kind: its regions on every test film (less `exclude`), the region tests, the
    figures."""
    c, images = run.config, data.test_images
    boxes = kind.find(images, data.root, folder, run.progress(f"finding {kind.name}", len(images)))
    rows, frequency = region_test_rows(
        subject.scorer, images, boxes, subject.inputs, subject.decisions, data.classes,
        run.device, kind.control, kind.removed, exclude=exclude,
        progress=run.progress(f"region tests: {kind.name}", len(images)),
    )  # fmt: skip
    atomic_save_npy(folder / f"{kind.name.replace(':', '_')}_frequency.npy", frequency)
    found = reliance(rows, RelianceThresholds(), c.n_bootstrap, c.seed, data.clusters)
    return KindResult(
        kind.name, kind.cue, kind.describe(), found, breakdown(rows, "source"), rows
    )  # fmt: skip


def boxes_of(*kinds: list[RegionRow]) -> dict[str, list[Box]]:
    """Per film, the boxes of some kinds together (original pixels)."""
    boxes: dict[str, list[Box]] = defaultdict(list)
    for rows in kinds:
        for row in rows:
            boxes[row.relative] += row.boxes
    return boxes


def style_transplants(
    run: Run, data: Data, subject: Subject, border: list[RegionRow]
) -> dict[str, StyleTransplant]:
    """The tone and frame transplants, donors tied to classes by the ties' split."""
    c, inputs = run.config, subject.inputs
    associations = informative(source_classes(data.ties_counts))
    boxes = {r.relative: r.model_boxes for r in border}
    moved = {}
    for trait in CUES:
        shared = Restyling(trait, subject.scorer, boxes, inputs.intensity,
                           inputs.prep.image_size, list(data.classes), run.device)  # fmt: skip
        moved[trait] = style_transplant(
            shared, data.test_images, inputs, subject.decisions, associations,
            (c.n_bootstrap, c.seed),
        )  # fmt: skip
    return moved


def verdict_table(
    text: Verdict, moved: Transplant, kinds: dict[str, KindResult], source: SourceResult,
    styles: dict[str, StyleTransplant], thresholds: RelianceThresholds,
) -> list[VerdictRow]:  # fmt: skip
    """One row per cue: the source first, then text (region tests and transplant), the other
    region kinds (the border with its frame transplant), then the tone transplant."""
    rows = [source_row(source)]
    pooled, tested = moved.pooled, kinds["text"].reliance.region_deletion
    by_transplant = pooled is not None and text.transplant_level == text.strength
    rows.append(
        VerdictRow(
            "text",
            kinds["text"].cue,
            text.strength if text.applicable else "none",
            "transplant follow excess" if by_transplant else "flip excess",
            pooled.follow_excess if by_transplant else tested.flip_excess,
            pooled.follow_excess_ci if by_transplant else tested.flip_excess_ci,
            "; ".join(dict.fromkeys([text.unsure] * bool(text.unsure) + text.reasons)),
        )  # fmt: skip
    )
    for name, kind in kinds.items():
        if name != "text":
            rows.append(kind_row(kind, styles["frame"] if name == "border" else None, thresholds))
    rows.append(style_row(styles["tone"], thresholds))
    return rows


def kind_row(
    kind: KindResult, style: StyleTransplant | None, thresholds: RelianceThresholds
) -> VerdictRow:
    """A region kind's row: its region tests, and its style transplant when it has one (the
    higher of the two levels, with that test's figure)."""
    d = kind.reliance.region_deletion
    row = VerdictRow(
        kind.kind, kind.cue, kind.reliance.strength, "flip excess", d.flip_excess,
        d.flip_excess_ci, words.kind_reason(kind),
    )  # fmt: skip
    if style is None:
        return row
    moved = style_row(style, thresholds)
    level = highest([row.level, moved.level])
    best = moved if level == moved.level and level != "none" else row
    reason = f"{row.reason}; {moved.reason}"
    return replace(best, kind=kind.kind, cue=kind.cue, level=level, reason=reason)


def style_row(style: StyleTransplant, thresholds: RelianceThresholds) -> VerdictRow:
    """A style transplant's row ("not measured" when no film had donors for both arms)."""
    f = style.follow
    if f is None:
        return VerdictRow(style.trait, style.cue, NOT_MEASURED, "", None, None, style.skipped)
    level = follow_level(f, thresholds)
    reason = words.style_reason(style, level)
    if level == INCONCLUSIVE:
        reason += "; inconclusive: " + thresholds.inconclusive_reason(
            f.follow_excess_ci, 2, f.n_units
        )
    return VerdictRow(
        style.trait, style.cue, level, f"{style.trait} transplant follow excess",
        f.follow_excess, f.follow_excess_ci, reason,
    )  # fmt: skip


def source_row(source: SourceResult) -> VerdictRow:
    measured = [f for f in source.per_split.values() if f.measured]
    best = max(measured, key=lambda f: f.gap, default=None)
    return VerdictRow(
        "source", "something tied to the source", source.level,
        "accuracy gap, own-class against other-class sources",
        best.gap if best else None, best.gap_ci if best else None, source.reason,
    )  # fmt: skip


def transplant(
    run: Run, data: Data, subject: Subject, images: list[TestImage], rows: dict[str, RegionRow]
) -> Transplant:
    """The counterfactual transplant, with donors tied to classes by the ties' split."""
    c = run.config
    associations = source_classes(data.ties_counts)
    found = []
    if informative(associations):
        found = transplant_rows(
            subject.scorer, images, rows, subject.inputs, subject.decisions, data.classes,
            associations, (c.clean.radius, c.clean.dilate, c.seed), run.device,
        )  # fmt: skip
    return summarise_transplant(
        found, data.test, associations, c.n_bootstrap, c.seed, data.clusters, data.ties.split
    )  # fmt: skip


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
    needed = bool(informative(moved.associations))  # else text carries no class to follow
    strength, follow_level = combined_strength(found, moved.pooled, thresholds, needed)
    # at chance on every test split: on a balanced split alone, a shortcut model is at chance
    reasons = [did_not_learn(subject.evaluated.splits[s], data.classes, s) for s in data.tests]
    reason = "; ".join(reasons) if all(reasons) else ""
    if reason:
        strength = "not applicable"
    unsure = inconclusive_reason(found, moved, thresholds) if strength == INCONCLUSIVE else ""
    return Verdict(
        strength=strength, applicable=not reason, region_level=found.strength,
        transplant_level=follow_level,
        summary=words.summary(found, moved, strength, reason, unsure),
        reasons=words.reasons(found, moved, follow_level), unsure=unsure,
    )  # fmt: skip


def inconclusive_reason(found: Reliance, moved: Transplant, thresholds: RelianceThresholds) -> str:
    """Why neither the region tests nor the transplant could settle the text verdict."""
    if found.strength == INCONCLUSIVE:
        return found.inconclusive
    f = moved.pooled
    if f is None:
        return moved.skipped or "no transplant could be made"
    return "transplant: " + thresholds.inconclusive_reason(f.follow_excess_ci, 2, f.n_units)


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
