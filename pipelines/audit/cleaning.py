"""The audit's cleaning stage (every film's text inpainted, Telea, into OUT/cleaned), what
cleaning alone does to the model's decisions, and the retraining on the cleaned films."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from medxai import distributed
from medxai.data.records import Record
from medxai.models.checkpoint import load_checkpoint
from medxai.report.record import (
    CleaningEffect,
    CleaningResult,
    CleaningStage,
    EvaluatedSplits,
    FileNote,
    ShortcutResult,
    TrainedModel,
)
from medxai.statistics.bootstrap import Clusters, bootstrap_mean
from medxai.statistics.classification import Evaluation, PairedComparison, paired_comparison
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.subject import Subject, evaluate_splits, fit_model, training_config


@dataclass(frozen=True)
class Cleaned:
    """The cleaned copy of the dataset."""

    result: CleaningResult
    records: dict[str, list[Record]]  # split -> its records, pointing into the cleaned copy


@dataclass(frozen=True)
class Retrained:
    """The model retrained on the cleaned films (None when the audit does not retrain)."""

    trained: TrainedModel | None
    evaluated: EvaluatedSplits  # on the cleaned test splits ({} when not retrained)
    comparison: dict[str, PairedComparison]  # test split -> before vs after


def clean(run: Run, data: Data, shortcut: ShortcutResult) -> Cleaned:
    """Clean every film, reusing the shortcut stage's boxes; films it could not clean are
    left out of the cleaned splits."""
    stage = run.cache.run("clean", CleaningStage, lambda: clean_films(run, data, shortcut))
    usable, folder = set(stage.cleaned), run.out / "cleaned"
    records = {}
    for split, rows in data.records.items():
        relative = [(r, data.index.relative(r)) for r in rows]
        records[split] = [replace(r, path=folder / rel) for r, rel in relative if rel in usable]
    return Cleaned(stage.result, records)


def cleaning_effects(
    run: Run, data: Data, subject: Subject, cleaned: Cleaned
) -> dict[str, CleaningEffect]:
    """The model under audit on each cleaned test split: how many decisions cleaning changed."""
    tests = {s: cleaned.records[s] for s in data.tests}
    on_cleaned = run.cache.run(
        "baseline_on_cleaned", EvaluatedSplits,
        lambda: evaluate_splits(run, subject.scorer, subject.spec, tests),
    )  # fmt: skip
    return {
        s: cleaning_effect(subject.evaluated.splits[s], on_cleaned.splits[s], data.classes, run)
        for s in data.tests
    }


def clean_films(run: Run, data: Data, shortcut: ShortcutResult) -> CleaningStage:
    from data_cleaning.clean import MANIFEST, clean_dataset, read_manifest

    settings, dst = replace(run.config.clean, gpu=run.gpu), run.out / "cleaned"
    summary = distributed.run_everywhere(
        clean_dataset, data.root, dst, list(data.index.records), settings,
        workers(run, data), index=data.index,
        known_boxes={row.relative: row.boxes for row in shortcut.images},
        local={"progress": lambda k, n: run.hooks.progress("cleaning", k, n)},
    )  # fmt: skip  # under torchrun the films are dealt to the ranks
    entries = read_manifest(dst / MANIFEST)
    result = CleaningResult(
        root=str(dst), detector=settings.detector, inpainting="telea", radius=settings.radius,
        dilate=settings.dilate, n_images=summary.images, n_with_text=summary.with_text,
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


def workers(run: Run, data: Data) -> int:
    """The worker processes each rank cleans its share of the films with."""
    from data_cleaning.clean import cleaning_workers

    return cleaning_workers(data.n_films // distributed.world_size(), run.gpu)


def cleaning_effect(
    original: Evaluation, cleaned: Evaluation, classes: list[str], run: Run
) -> CleaningEffect:
    """How many of the model's decisions change when only the text is inpainted."""
    before = dict(zip(original.files, original.predictions, strict=True))
    changed = np.array(
        [before[f] != p for f, p in zip(cleaned.files, cleaned.predictions, strict=True)]
    )
    labels = np.array(cleaned.labels)
    patients = Clusters.of(cleaned.patients) if cleaned.patients else None
    rate, ci = bootstrap_mean(
        changed, run.config.n_bootstrap, seed=run.config.seed, clusters=patients
    )
    per_class = {
        classes[k]: float(changed[labels == k].mean()) for k in sorted(set(cleaned.labels))
    }
    return CleaningEffect(
        len(changed), rate, ci, per_class, original.metrics.accuracy, cleaned.metrics.accuracy
    )


def retrain(run: Run, data: Data, subject: Subject, cleaned: Cleaned) -> Retrained:
    """The same architecture, fresh weights, trained on the cleaned train split; evaluated on
    the cleaned test splits and compared, film by film, with the model under audit."""
    if not run.config.retrain:
        return Retrained(None, EvaluatedSplits({}), {})
    spec = None if run.config.model is None else subject.spec
    config = training_config(run, data.classes, spec)
    train = cleaned.records[data.train_split]
    trained = run.cache.run(
        "train_cleaned", TrainedModel, lambda: fit_model(run, config, train, "cleaned_model")
    )
    tests = {s: cleaned.records[s] for s in data.tests}

    def evaluated_now() -> EvaluatedSplits:
        module, spec = load_checkpoint(trained.checkpoint, run.device)
        return evaluate_splits(run, module, spec, tests)

    evaluated = run.cache.run("evaluate_cleaned", EvaluatedSplits, evaluated_now)
    comparison = {
        s: compare(run, data, subject.evaluated.splits[s], evaluated.splits[s]) for s in data.tests
    }
    return Retrained(trained, evaluated, comparison)


def compare(run: Run, data: Data, before: Evaluation, after: Evaluation) -> PairedComparison:
    """The model under audit on the original films vs the retrained one on their copies."""
    by_file = dict(zip(before.files, before.predictions, strict=True))
    return paired_comparison(
        after.labels, [by_file[f] for f in after.files], after.predictions, data.classes,
        n_bootstrap=run.config.n_bootstrap, seed=run.config.seed,
        clusters=Clusters.of(after.patients) if after.patients else None,
    )  # fmt: skip
