"""The audit's last stage: the `AuditResult` (audit.json) and the pictures the report shows."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from medxai import __version__
from medxai.codec import write_record
from medxai.data.imageio import read_image
from medxai.report import (
    AuditArtifacts,
    CleaningExample,
    Curves,
    GalleryItem,
    verdict,
    write_report,
)
from medxai.report.figures import to_display
from medxai.report.record import (
    SCHEMA,
    AuditedModel,
    AuditResult,
    CleaningEffect,
    CleaningResult,
    DatasetInfo,
    DataSummary,
    Environment,
    EvaluatedSplits,
    Evaluations,
    ExplainedImage,
    ExplainedSet,
    PhantomSettings,
    RegionRow,
    ShortcutResult,
    TrainedModel,
    Training,
)
from medxai.statistics.classification import PairedComparison
from pipelines.audit_run import AuditRun
from pipelines.explain_images import curve_path, map_path

N_CLEANING_EXAMPLES = 3


def environment(device) -> Environment:
    import cv2
    import monai
    import torch
    import torchvision

    return Environment(
        python=platform.python_version(), platform=platform.platform(),
        torch=torch.__version__, torchvision=torchvision.__version__,
        monai=monai.__version__, numpy=np.__version__, opencv=cv2.__version__,
        device=str(device),
        cuda=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        threads=torch.get_num_threads(), cpus=os.cpu_count(), command=" ".join(sys.argv),
    )  # fmt: skip


def dataset_info(audit: AuditRun, root: Path, tests: list[str]) -> DatasetInfo:
    c = audit.config
    phantom = None
    if c.dataset == "phantom":
        phantom = PhantomSettings(
            c.shortcut_strength, c.phantom_n_per_class, c.phantom_size, c.seed
        )
    return DatasetInfo(
        name=c.dataset, root=str(root), train_split=audit.train_split, test_splits=tests,
        primary_test_split=tests[0],
        balanced_split=next((s for s in tests if "balanced" in s), None),
        classes=list(audit.classes), phantom=phantom,
    )  # fmt: skip


def assemble(
    audit: AuditRun, root: Path, tests: list[str], data: DataSummary,
    trained: tuple[TrainedModel | AuditedModel, TrainedModel | None],
    evaluated: tuple[EvaluatedSplits, EvaluatedSplits],
    comparison: dict[str, PairedComparison], effect: dict[str, CleaningEffect],
    shortcut: ShortcutResult, cleaning: CleaningResult,
) -> AuditResult:  # fmt: skip
    """The audit record; the verdict's summary gains what retraining did to macro-F1."""
    dataset = dataset_info(audit, root, tests)
    key = dataset.balanced_split or dataset.primary_test_split
    summary = shortcut.summary
    if key in comparison:
        summary += " " + verdict.retrain_sentence(key, comparison[key].macro_f1)
    before, after = ({s: e.metrics for s, e in x.splits.items()} for x in evaluated)
    baseline, retrained = trained
    return AuditResult(
        schema=SCHEMA, medxai_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=dataset, config=audit.config, detector_used=audit.detector, data=data,
        model=audit.audited, baseline=before[tests[0]], cleaned=after.get(tests[0]),
        evaluations=Evaluations(before, after), comparison=comparison, cleaning_effect=effect,
        shortcut=replace(shortcut, summary=summary), cleaning=cleaning,
        training=Training(baseline if isinstance(baseline, TrainedModel) else None, retrained),
        sanity=audit.sanity,
        environment=environment(audit.device), timings=dict(audit.stages.timings),
    )  # fmt: skip


def write_outputs(
    audit: AuditRun, root: Path, result: AuditResult, explained: ExplainedSet
) -> AuditResult:
    """The HTML report and audit.json (with every stage's seconds, the report's too)."""
    started = time.perf_counter()
    timings = dict(result.timings)
    result = replace(result, timings=timings | {"total": sum(timings.values())})
    write_report(audit.out, result, build_artifacts(audit, root, result, explained))
    timings["report"] = time.perf_counter() - started
    result = replace(result, timings=timings | {"total": sum(timings.values())})
    write_record(audit.out / "audit.json", result)
    return result


def _curves(audit: AuditRun, image: ExplainedImage) -> dict[str, Curves]:
    """Each method's curves of one explained image; none for a method that found no map."""
    curves = {}
    for method in audit.methods:
        if method in image.no_map:
            continue
        score = image.scores[method]
        with np.load(curve_path(audit.out / "explain" / "curves", image.name, method)) as stored:
            curves[method] = Curves(
                stored["fractions"], stored["deletion"], stored["insertion"],
                score.deletion_auc, score.insertion_auc,
            )  # fmt: skip
    return curves


def build_artifacts(
    audit: AuditRun, root: Path, result: AuditResult, explained: ExplainedSet
) -> AuditArtifacts:
    """Gallery rows, mean maps, text frequency and before/after pictures for the report."""
    rows = {row.relative: row for row in result.shortcut.images}
    maps_dir, shortcut_dir = audit.out / "explain" / "maps", audit.out / "shortcut"
    gallery = []
    for image in explained.images:
        picture = audit.inputs.batch([image.relative])[0]
        gallery.append(
            GalleryItem(
                file=image.file,
                label=image.label,
                predicted=image.predicted,
                source=image.source,
                image=to_display(picture.numpy()),
                boxes=rows[image.relative].model_boxes,
                maps={m: np.load(map_path(maps_dir, image.name, m)) for m in audit.methods},
                curves=_curves(audit, image),
                insensitive=tuple(
                    m for m, check in result.sanity.methods.items() if not check.model_sensitive
                ),
                no_map=image.no_map,
            )  # fmt: skip
        )
    methods = audit.methods
    sanity_dir = audit.out / "sanity"
    return AuditArtifacts(
        gallery=gallery,
        mean_maps={m: np.load(map_path(shortcut_dir, "mean_map", m)) for m in methods},
        text_frequency=np.load(shortcut_dir / "text_frequency.npy"),
        cleaning_examples=cleaning_examples(
            root, Path(result.cleaning.root), result.shortcut.images
        ),
        sanity_maps={
            m: tuple(np.load(map_path(sanity_dir, name, m)) for name in ("original", "random"))
            for m in methods
            if m in result.sanity.methods
        },
    )


def _gray(path: Path) -> np.ndarray:
    image = read_image(path)
    return image.mean(axis=2) if image.ndim == 3 else image


def cleaning_examples(root: Path, cleaned: Path, rows: list[RegionRow]) -> list[CleaningExample]:
    """A few test images with text: one per source first, most boxes first."""
    candidates = sorted((r for r in rows if r.n_boxes), key=lambda r: -len(r.boxes))
    first: dict = {}
    for row in candidates:
        first.setdefault(row.source, row)
    picked = list(first.values())[:N_CLEANING_EXAMPLES]
    picked += [r for r in candidates if r not in picked][: N_CLEANING_EXAMPLES - len(picked)]
    return [
        CleaningExample(
            file=row.file,
            before=_gray(root / row.relative),
            after=_gray(cleaned / row.relative),
            boxes=list(row.boxes),
        )  # fmt: skip
        for row in picked
        if (cleaned / row.relative).is_file()
    ]
