"""The audit's stages that are more than a call: each takes the `Audit` it runs for and
returns its typed record (medxai.report.record)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medxai.atomic import atomic_save_npy
from medxai.data.check import DatasetReport, check_dataset
from medxai.data.covidx import SplitIndex
from medxai.errors import DatasetError
from medxai.metrics.shortcut import (
    Reliance,
    RelianceThresholds,
    combined_strength,
    did_not_learn,
)
from medxai.report import verdict
from medxai.report.record import (
    CausalScores,
    CleaningResult,
    CleaningStage,
    DataSummary,
    EvaluatedSplits,
    Evidence,
    ExplainedEntry,
    ExplainedImage,
    ExplainedSet,
    FileNote,
    MethodNumbers,
    PhantomSummary,
    RegionRow,
    ShortcutResult,
    SplitCounts,
    Transplant,
)
from medxai.statistics.confound import informative, source_classes
from pipelines import shortcut_analysis as sa
from pipelines.audit_inputs import TestImage
from pipelines.audit_run import AuditRun
from pipelines.explain_images import explain_images, items_from_records, map_path
from pipelines.transplant import transplant_rows

RANKING = "mask"  # see `explain`


def make_phantom(audit: AuditRun) -> PhantomSummary:
    from medxai.data.phantom import synthesize

    c = audit.config
    total = 3 * c.phantom_n_per_class + 3 * round(0.2 * c.phantom_n_per_class)
    summary = synthesize(
        audit.dataset_root(), n_per_class=c.phantom_n_per_class, size=c.phantom_size,
        seed=c.seed, shortcut_strength=c.shortcut_strength,
        progress=lambda k: audit.hooks.progress("synthesising phantom", k, total),
    )  # fmt: skip
    return PhantomSummary(summary.n_images, summary.counts)


def check(audit: AuditRun, index: SplitIndex) -> DataSummary:
    """Read every image once; log warnings and unreadable files; summarise the dataset."""
    report = check_dataset(
        index.root, list(index.records), index=index,
        progress=lambda k, n: audit.hooks.progress("checking data", k, n),
    )  # fmt: skip
    for split in report.splits:
        if split.line_problems:
            raise DatasetError(str(split.line_problems[0]))
    for line in report.warnings:
        audit.hooks.log(f"warning: {line}")
    for split in report.splits:
        for skipped in split.unreadable:
            audit.hooks.log(f"skipping unreadable {skipped.record.path}: {skipped.reason}")
    return data_summary(report)


def _merge(counters: Iterable[Counter]) -> Counter:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return total


def _split_counts(split, classes: list[str]) -> SplitCounts:
    """Images per class, and per source and class (every class listed, zeros too)."""
    return SplitCounts(
        n=len(split.records),
        classes={name: split.classes[name] for name in classes},
        sources=split.source_label_counts(classes),
    )


def data_summary(report: DatasetReport) -> DataSummary:
    """Stage 1's figures: counts per split, class and source; formats; DICOM burned-in tags."""
    classes = report.label_order()
    splits = {split.split: _split_counts(split, classes) for split in report.splits}
    formats = _merge(s.formats for s in report.splits)
    burned = _merge(s.burned_in for s in report.splits)
    dicom = formats["dicom"]
    return DataSummary(
        splits=splits,
        classes=classes,
        formats={k.upper(): v for k, v in formats.items()},
        bit_depths={str(k): v for k, v in _merge(s.bit_depths for s in report.splits).items()},
        sizes={f"{w}x{h}": n for (w, h), n in _merge(s.sizes for s in report.splits).items()},
        burned_in_annotation={
            "YES": burned["YES"],
            "NO": burned["NO"],
            "absent": dicom - burned["YES"] - burned["NO"],
            "not DICOM": sum(formats.values()) - dicom,
        },  # fmt: skip
        unreadable=[
            FileNote(str(k.record.path), k.reason) for s in report.splits for k in s.unreadable
        ],
        shared_patients=sorted(
            {p for patients in report.shared_patients().values() for p in patients}
        ),
        confound={split.split: split.confound(classes) for split in report.splits},
    )


def chosen_images(audit: AuditRun, images: list[TestImage]) -> list[TestImage]:
    """K images per class of the first test split, drawn with the audit's seed."""
    c = audit.config
    rng = np.random.default_rng(c.seed)
    chosen: list[TestImage] = []
    for name in audit.classes:
        pool = [i for i in images if i.record.label == name]
        picks = sorted(rng.choice(len(pool), min(c.n_explain, len(pool)), replace=False))
        chosen += [pool[i] for i in picks]
    return chosen


def explain(audit: AuditRun, images: list[TestImage], decisions: dict[str, int]) -> ExplainedSet:
    """Every method on the chosen images, at once, for the baseline's own decisions.

    Deletion/insertion rank the cells of a `resolution` grid by the soft map's mean in each
    cell (the iGOS++ authors' protocol): ranking single pixels would order the tied pixels of
    a saturated mask (the I-GOS family's plateaus at 0 and 1) by raster position, not by the
    method's evidence."""
    c, classes = audit.config, audit.classes
    chosen = chosen_images(audit, images)
    model, spec = audit.model(audit.baseline)
    items = items_from_records([image.record for image in chosen], classes)
    targets = [decisions[image.relative] for image in chosen]
    scores = explain_images(
        model, items, audit.methods, spec.preprocessing, audit.out / "explain", audit.device,
        classes=classes, resolution=c.resolution, ranking=RANKING,
        batch_size=max(1, min(len(items), 16)), seed=c.seed,
        target_layer=audit.audited.target_layer,
        inputs=audit.inputs.batch([i.relative for i in chosen]), targets=targets,
        progress=lambda k: audit.hooks.progress("explaining", k, len(items) * len(audit.methods)),
    )  # fmt: skip
    return ExplainedSet([
        ExplainedImage(
            file=image.record.filename, relative=image.relative, name=item.name,
            label=image.record.label, source=image.record.source,
            predicted=classes[decisions[image.relative]],
            scores={
                row.method: CausalScores(row.deletion_auc, row.insertion_auc)
                for row in scores if row.image == item.name
            },
            no_map={row.method: row.note for row in scores if row.image == item.name and row.note},
        )  # fmt: skip
        for image, item in zip(chosen, items, strict=True)
    ])  # fmt: skip


def load_maps(audit: AuditRun, explained: ExplainedSet) -> dict[str, np.ndarray]:
    """Method -> (N, S, S) saliency maps of the explained images, in their order."""
    folder = audit.out / "explain" / "maps"
    return {
        m: np.stack([np.load(map_path(folder, e.name, m)) for e in explained.images])
        for m in audit.methods
    }


def shortcut(
    audit: AuditRun, root: Path, explained: ExplainedSet, decisions: dict[str, int],
    evaluated: EvaluatedSplits,
) -> ShortcutResult:  # fmt: skip
    """Detect text on every test image; region tests and the transplant; the verdict."""
    folder = audit.out / "shortcut"
    folder.mkdir(parents=True, exist_ok=True)
    ordered = list({i.relative: i for split in audit.test.values() for i in split}.values())
    detector = audit.make_detector()
    boxes = sa.detect_text(
        ordered, root, detector, folder / "boxes.jsonl",
        lambda k: audit.hooks.progress("detecting text", k, len(ordered)),
    )  # fmt: skip
    model, _ = audit.model(audit.baseline)
    rows, frequency = sa.region_test_rows(
        model, ordered, boxes, audit.inputs, decisions, audit.classes, audit.device,
        progress=lambda k: audit.hooks.progress("region tests", k, len(ordered)),
    )  # fmt: skip
    by_relative = {row.relative: row for row in rows}
    maps = load_maps(audit, explained)
    shares = sa.saliency_shares(
        explained.images, by_relative, maps, audit.inputs.prep.image_size, audit.config.top_k
    )
    atomic_save_npy(folder / "text_frequency.npy", frequency)
    for method, stack in maps.items():
        atomic_save_npy(map_path(folder, "mean_map", method), stack.mean(0))
    c = audit.config
    reliance = sa.reliance(rows, RelianceThresholds(), c.n_bootstrap, c.seed)
    moved = transplant(audit, ordered, by_relative, decisions)
    evidence = gather_evidence(rows, explained, shares, reliance, moved)
    return ShortcutResult(
        **verdict_fields(audit, reliance, moved, evaluated), evidence=evidence, images=rows,
        explained=explained_entries(explained, shares), detector=detector.describe(),
    )  # fmt: skip


def transplant(
    audit: AuditRun, images: list[TestImage], rows: dict[str, RegionRow],
    decisions: dict[str, int],
) -> Transplant:  # fmt: skip
    """The counterfactual transplant, with donors tied to classes by the training split."""
    c = audit.config
    associations = source_classes(audit.data.splits[audit.train_split].sources)
    found = []
    if informative(associations):
        model, _ = audit.model(audit.baseline)
        found = transplant_rows(
            model, images, rows, audit.inputs, decisions, audit.classes, associations,
            (c.radius, c.dilate, c.seed), audit.device,
        )  # fmt: skip
    return sa.summarise_transplant(found, audit.test, associations, c.n_bootstrap, c.seed)


def gather_evidence(
    rows: list[RegionRow], explained: ExplainedSet, shares: dict, reliance: Reliance,
    moved: Transplant,
) -> Evidence:  # fmt: skip
    with_text = [row for row in rows if row.tests]
    by_relative = {row.relative: row for row in rows}
    has_text = np.array([by_relative[e.relative].tests is not None for e in explained.images])
    return Evidence(
        n_images=len(rows), n_with_text=len(with_text),
        mean_text_area_share=float(np.mean([r.text_area_share for r in with_text]))
        if with_text
        else 0.0,
        region_insertion=reliance.region_insertion, region_deletion=reliance.region_deletion,
        saliency=sa.summarise_saliency(shares, has_text),
        per_source=sa.breakdown(rows, "source"), per_class=sa.breakdown(rows, "label"),
        transplant=moved,
    )  # fmt: skip


def verdict_fields(
    audit: AuditRun, reliance: Reliance, moved: Transplant, evaluated: EvaluatedSplits
) -> dict:
    """The one verdict from all the evidence ("not applicable" on a model that did not
    learn), with its words (medxai.report.verdict)."""
    thresholds = RelianceThresholds()
    strength, follow_level = combined_strength(reliance, moved.pooled, thresholds)
    split = next(iter(audit.test))
    reason = did_not_learn(evaluated.splits[split], audit.classes, split)
    if reason:
        strength = "not applicable"
    return {
        "relies_on_text": strength not in ("none", "not applicable"),
        "strength": strength,
        "applicable": not reason,
        "region_level": reliance.strength,
        "transplant_level": follow_level,
        "summary": verdict.summary(reliance, moved, strength, reason),
        "reasons": verdict.reasons(reliance, moved, follow_level),
        "thresholds": thresholds.table(),
    }


def explained_entries(explained: ExplainedSet, shares: dict) -> list[ExplainedEntry]:
    """Per explained image: its decision and, per method, saliency shares and causal AUCs."""
    return [
        ExplainedEntry(
            file=image.file,
            label=image.label,
            source=image.source,
            predicted=image.predicted,
            methods={
                method: MethodNumbers(
                    **{key: values[k] for key, values in shares[method].items()},
                    deletion_auc=score.deletion_auc,
                    insertion_auc=score.insertion_auc,
                )
                for method, score in image.scores.items()
            },
        )  # fmt: skip
        for k, image in enumerate(explained.images)
    ]


def clean(
    audit: AuditRun, root: Path, index: SplitIndex, shortcut: ShortcutResult
) -> CleaningStage:
    from data_cleaning.clean import MANIFEST, CleanSettings, clean_dataset, read_manifest

    c, dst = audit.config, audit.out / "cleaned"
    settings = CleanSettings(
        detector=audit.detector, text_threshold=c.text_threshold, radius=c.radius,
        dilate=c.dilate, gpu=audit.device.type == "cuda",
    )  # fmt: skip
    summary = clean_dataset(
        root, dst, list(index.records), settings, index=index,
        known_boxes={row.relative: row.boxes for row in shortcut.images},
        progress=lambda k, n: audit.hooks.progress("cleaning", k, n),
    )  # fmt: skip
    entries = read_manifest(dst / MANIFEST)
    result = CleaningResult(
        root=str(dst), detector=audit.detector, inpainting="telea", radius=c.radius,
        dilate=c.dilate, n_images=summary.images, n_with_text=summary.with_text,
        n_boxes=summary.boxes,
        failed=[FileNote(f["source"], f["reason"]) for f in summary.failed],
        n_residual_boxes=summary.residual_boxes,
        with_residual=[
            FileNote(r["source"], f"{r['boxes']} box(es) still detected")
            for r in summary.with_residual
        ],
        needs_review=[FileNote(r["source"], r["reason"]) for r in summary.needs_review],
    )  # fmt: skip
    return CleaningStage(result, sorted(k for k, e in entries.items() if e["status"] != "failed"))
