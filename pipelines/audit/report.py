"""The audit's last stage: the `AuditResult` (audit.json) and the pictures the report shows."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from medxai import __version__
from medxai.codec import write_record
from medxai.data.imageio import read_image, to_channels
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
    AuditResult,
    CleaningEffect,
    CostEstimate,
    DatasetInfo,
    Environment,
    Evaluations,
    ExplainedImage,
    ExplainedSet,
    NegativeControl,
    RegionRow,
    SanityChecks,
    ShortcutResult,
    Training,
)
from pipelines.audit.cleaning import Cleaned, Retrained
from pipelines.audit.config import AuditConfig
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.subject import Subject
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


@dataclass(frozen=True)
class Findings:
    """Every stage's result, in the order the audit produced them."""

    data: Data
    subject: Subject
    explained: ExplainedSet
    sanity: SanityChecks
    shortcut: ShortcutResult
    cleaned: Cleaned
    retrained: Retrained
    effect: dict[str, CleaningEffect]  # test split -> what cleaning alone changed
    negative: NegativeControl | None  # the text's tests on the retrained model
    estimate: CostEstimate | None = None  # what the stages were estimated to take


def dataset_info(config: AuditConfig, data: Data) -> DatasetInfo:
    tests = data.tests
    return DatasetInfo(
        name=config.data.dataset, root=str(data.root), train_split=data.train_split,
        test_splits=list(tests), primary_test_split=tests[0],
        balanced_split=next((s for s in tests if "balanced" in s), None),
        classes=list(data.classes),
        phantom=config.phantom if config.data.dataset == "phantom" else None,
        sample=data.sample, layout=f"{data.index.layout}, {data.index.layout_why}",
        ties=data.ties,
    )  # fmt: skip


def assemble(run: Run, f: Findings) -> AuditResult[AuditConfig]:
    """The audit record; the verdict's summary gains what retraining did to macro-F1."""
    dataset, tests = dataset_info(run.config, f.data), f.data.tests
    key = dataset.balanced_split or dataset.primary_test_split
    summary, comparison = f.shortcut.summary, f.retrained.comparison
    if key in comparison:
        summary += " " + verdict.retrain_sentence(key, comparison[key].macro_f1)
    summary += " " + verdict.negative_sentence(f.shortcut, f.negative)
    before = {s: e.metrics for s, e in f.subject.evaluated.splits.items()}
    after = {s: e.metrics for s, e in f.retrained.evaluated.splits.items()}
    return AuditResult(
        schema=SCHEMA, medxai_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=dataset, config=run.config, detector_used=run.config.clean.detector,
        data=f.data.summary, model=f.subject.audited, baseline=before[tests[0]],
        cleaned=after.get(tests[0]), evaluations=Evaluations(before, after),
        comparison=comparison, cleaning_effect=f.effect,
        shortcut=replace(f.shortcut, summary=summary), cleaning=f.cleaned.result,
        training=Training(f.subject.trained, f.retrained.trained), sanity=f.sanity,
        environment=environment(run.device), timings=dict(run.cache.timings),
        negative_control=f.negative, estimate=f.estimate,
    )  # fmt: skip


def report(run: Run, findings: Findings) -> AuditResult[AuditConfig]:
    """The HTML report and audit.json (with every stage's seconds, the report's too)."""
    started = time.perf_counter()
    result = assemble(run, findings)
    timings = dict(result.timings)
    result = replace(result, timings=timings | {"total": sum(timings.values())})
    write_report(run.out, result, build_artifacts(run, findings, result))
    timings["report"] = time.perf_counter() - started
    result = replace(result, timings=timings | {"total": sum(timings.values())})
    write_record(run.out / "audit.json", result)
    return result


def _curves(run: Run, image: ExplainedImage, methods: list[str]) -> dict[str, Curves]:
    """Each method's curves of one explained image; none for a method that found no map."""
    curves = {}
    for method in methods:
        if method in image.no_map:
            continue
        score = image.scores[method]
        with np.load(curve_path(run.out / "explain" / "curves", image.name, method)) as stored:
            curves[method] = Curves(
                stored["fractions"], stored["deletion"], stored["insertion"],
                score.deletion_auc, score.insertion_auc,
            )  # fmt: skip
    return curves


def _gallery_item(
    run: Run, subject: Subject, image: ExplainedImage, row: RegionRow, insensitive: tuple
) -> GalleryItem:
    maps_dir, methods = run.out / "explain" / "maps", subject.methods
    return GalleryItem(
        file=image.file, label=image.label, predicted=image.predicted, source=image.source,
        image=to_display(subject.inputs.batch([image.relative])[0].numpy()),
        boxes=row.model_boxes,
        maps={m: np.load(map_path(maps_dir, image.name, m)) for m in methods},
        curves=_curves(run, image, methods), insensitive=insensitive, no_map=image.no_map,
    )  # fmt: skip


def build_artifacts(run: Run, f: Findings, result: AuditResult) -> AuditArtifacts:
    """Gallery rows, mean maps, text frequency and before/after pictures for the report."""
    rows = {row.relative: row for row in result.shortcut.images}
    insensitive = tuple(m for m, check in f.sanity.methods.items() if not check.model_sensitive)
    methods, shortcut_dir, sanity_dir = f.subject.methods, run.out / "shortcut", run.out / "sanity"
    return AuditArtifacts(
        gallery=[
            _gallery_item(run, f.subject, image, rows[image.relative], insensitive)
            for image in f.explained.images
        ],
        mean_maps={m: np.load(map_path(shortcut_dir, "mean_map", m)) for m in methods},
        text_frequency=np.load(shortcut_dir / "text_frequency.npy"),
        cleaning_examples=cleaning_examples(
            f.data.root, Path(result.cleaning.root), result.shortcut.images
        ),
        sanity_maps={
            m: tuple(np.load(map_path(sanity_dir, name, m)) for name in ("original", "random"))
            for m in methods
            if m in f.sanity.methods
        },
    )


def _gray(path: Path) -> np.ndarray:
    return to_channels(read_image(path), 1)[0]


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
