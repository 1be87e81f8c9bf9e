"""`medxai audit`: the COVIDx case study end to end, each stage cached in the output folder.

phantom (when no dataset is given) → data check → baseline training and evaluation →
saliency on K test images per class → shortcut analysis (text detection, region tests,
verdict) → cleaning (Telea) → retraining with the same settings and seed → evaluation of
the cleaned model on the cleaned test splits and the paired comparison → HTML report.

Each stage returns a typed record (medxai.report.record); split files are parsed, the
baseline loaded, and the test images decoded once per run, and handed to the stages.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from data_cleaning.detect import DETECTORS as DETECTOR_NAMES
from medxai.codec import encode
from medxai.data.classes import class_order
from medxai.data.layouts import LAYOUTS, detect_layout
from medxai.data.records import Record
from medxai.errors import MedxaiError
from medxai.outputs import check_output, output_lock
from medxai.report.record import (
    AuditConfig,
    AuditedModel,
    AuditResult,
    CleaningEffect,
    CleaningStage,
    DataSummary,
    EvaluatedSplits,
    ExplainedSet,
    PhantomSummary,
    SanityChecks,
    ShortcutResult,
    TrainedModel,
)
from medxai.statistics.bootstrap import bootstrap_mean
from medxai.statistics.classification import Evaluation
from pipelines import audit_stages as stages
from pipelines.audit_inputs import TestImage
from pipelines.audit_model import trained_record, user_record
from pipelines.audit_report import assemble, write_outputs
from pipelines.audit_run import COVIDX_HELP, AuditRun, Hooks
from pipelines.audit_sanity import sanity
from pipelines.stages import claim_folder

DETECTORS = ("auto", *DETECTOR_NAMES)  # auto = fused, the recommended detector
MODEL_KINDS = ("train", "checkpoint", "import", "torchscript", "onnx")
FILE_KINDS = {"torchscript": "a TorchScript", "onnx": "an ONNX"}  # kinds that cannot retrain

__all__ = ["DETECTORS", "QUICK", "Audit", "Hooks", "audit_config"]

QUICK = {
    "epochs": 20, "batch_size": 16, "patience": 10, "image_size": 96,
    "methods": ("sigcam", "gradcam"), "n_explain": 1, "phantom_n_per_class": 80,
    "n_bootstrap": 500,
}  # fmt: skip


def audit_config(quick: bool = False, **options) -> AuditConfig:
    """Defaults, then the --quick sizes, then the options the user gave (None = not given).

    dataset "auto" becomes the layout found at root; retraining defaults to on for the model
    the audit trains and off for a user's model."""
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if v is not None}
    unknown = set(given) - set(AuditConfig.__dataclass_fields__)
    if unknown:
        raise MedxaiError(f"unknown audit settings {sorted(unknown)}")
    config = replace(AuditConfig(quick=quick, **(QUICK if quick else {})), **given)
    if "retrain" not in given:
        config = replace(config, retrain=config.model_kind == "train")
    _check_dataset(config)
    if config.dataset == "auto":
        config = replace(config, dataset=detect_layout(config.root))
    if config.model_kind not in MODEL_KINDS:
        raise MedxaiError(f"unknown model kind {config.model_kind!r}; use {', '.join(MODEL_KINDS)}")
    if config.retrain and config.model_kind in FILE_KINDS:
        raise MedxaiError(
            f"--retrain: {FILE_KINDS[config.model_kind]} file holds no architecture to "
            "rebuild; give it with --model-import package.module:factory (or --checkpoint)"
        )
    if config.detector not in DETECTORS:
        raise MedxaiError(f"unknown detector {config.detector!r}; use {', '.join(DETECTORS)}")
    if config.n_explain < 1 or not config.methods:
        raise MedxaiError("an audit explains at least 1 image per class with at least 1 method")
    return config


def _check_dataset(config: AuditConfig) -> None:
    if config.dataset not in ("phantom", "auto", *LAYOUTS):
        raise MedxaiError(
            f"unknown dataset {config.dataset!r}; use phantom, or a dataset at --root laid out "
            f"as auto, {', '.join(LAYOUTS)}"
        )
    if config.dataset != "phantom" and config.root is None:
        raise MedxaiError(f"--dataset {config.dataset} needs --root DIR: {COVIDX_HELP}")
    if config.dataset == "phantom" and config.root is not None:
        raise MedxaiError("--root is for a dataset on disk; the phantom is generated in --out")


class Audit(AuditRun):
    """`medxai audit`: every stage in order, each read back when a previous run finished it."""

    def run(self, until_verdict: bool = False) -> AuditResult | ShortcutResult:
        """Every stage in order (finished ones are read back); returns what audit.json holds.

        `until_verdict` stops after the shortcut analysis and returns its record (no cleaning,
        retraining or report: what the dose-response benchmark needs)."""
        root = self.dataset_root()  # a bad --root fails before anything is written
        check_output(self.out, [root if self.config.dataset != "phantom" else None])
        with output_lock(self.out):
            return self._run(root, until_verdict)

    def _run(self, root: Path, until_verdict: bool) -> AuditResult | ShortcutResult:
        c = self.config
        claim_folder(self.out, encode(c))
        if c.dataset == "phantom":
            self.stages.run("dataset", PhantomSummary, lambda: stages.make_phantom(self))
        index = self.read_index(root)
        self.train_split, tests = self.split_names(index)
        data = self.stages.run("data_check", DataSummary, lambda: stages.check(self, index))
        self.data = data
        split = self.readable(index, data)
        self.classes = list(index.classes or class_order(r.label for r in split[self.train_split]))
        self.test = {s: self.test_images(index, split[s]) for s in tests}
        baseline, base_eval, explained, shortcut = self.baseline_half(root, split[self.train_split])
        if until_verdict:
            return shortcut
        cleaning = self.stages.run(
            "clean", CleaningStage, lambda: stages.clean(self, root, index, shortcut)
        )
        usable = set(cleaning.cleaned)
        cleaned = {s: self.cleaned_records(index, r, usable) for s, r in split.items()}
        retrained, clean_eval, comparison = None, EvaluatedSplits({}), {}
        if c.retrain:
            retrained, clean_eval = self.cleaned_half(cleaned, tests)
            before, after = base_eval.splits, clean_eval.splits
            comparison = {s: self.compare(before[s], after[s]) for s in tests}
        on_cleaned = self.stages.run(
            "baseline_on_cleaned", EvaluatedSplits,
            lambda: self.evaluate(baseline, {s: cleaned[s] for s in tests}),
        )  # fmt: skip
        effect = {
            s: cleaning_effect(base_eval.splits[s], on_cleaned.splits[s], self.classes, c)
            for s in tests
        }
        result = assemble(
            self, root, tests, data, (baseline, retrained), (base_eval, clean_eval), comparison,
            effect, shortcut, cleaning.result,
        )  # fmt: skip
        return write_outputs(self, root, result, explained)

    def baseline_half(self, root: Path, train: list[Record]):
        """Train (or load the user's), evaluate and explain the baseline; the shortcut
        analysis of its decisions."""
        run, first = self.stages.run, next(iter(self.test.values()))
        if self.config.model_kind == "train":
            baseline = run("train_baseline", TrainedModel, lambda: self.train(train, "baseline"))
            self.audited = trained_record(self, baseline)
        else:
            self.audited = baseline = run("model", AuditedModel, lambda: user_record(self))
        self.baseline = baseline
        for method, why in self.audited.skipped_methods.items():
            self.hooks.log(f"not run: {method}: {why}")
        evaluated = run("evaluate_baseline", EvaluatedSplits, self.evaluate_baseline)
        decisions = decisions_of(evaluated, self.test)
        explained = run("explain", ExplainedSet, lambda: stages.explain(self, first, decisions))
        self.sanity = run("sanity", SanityChecks, lambda: sanity(self, explained, decisions))
        shortcut = run(
            "shortcut",
            ShortcutResult,
            lambda: stages.shortcut(self, root, explained, decisions, evaluated),
        )
        return baseline, evaluated, explained, shortcut

    def cleaned_half(self, cleaned: dict[str, list[Record]], tests: list[str]):
        """Retrain (the same architecture, fresh weights) on the cleaned train split; evaluate
        on the cleaned test splits."""
        run, train = self.stages.run, cleaned[self.train_split]
        retrained = run("train_cleaned", TrainedModel, lambda: self.train(train, "cleaned_model"))
        evaluated = run(
            "evaluate_cleaned", EvaluatedSplits,
            lambda: self.evaluate(retrained, {s: cleaned[s] for s in tests}),
        )  # fmt: skip
        return retrained, evaluated


def cleaning_effect(
    original: Evaluation, cleaned: Evaluation, classes: list[str], config: AuditConfig
) -> CleaningEffect:
    """How many of the baseline's decisions change when only the text is inpainted."""
    before = dict(zip(original.files, original.predictions, strict=True))
    changed = np.array(
        [before[f] != p for f, p in zip(cleaned.files, cleaned.predictions, strict=True)]
    )
    labels = np.array(cleaned.labels)
    rate, ci = bootstrap_mean(changed, config.n_bootstrap, seed=config.seed)
    per_class = {
        classes[k]: float(changed[labels == k].mean()) for k in sorted(set(cleaned.labels))
    }
    return CleaningEffect(
        len(changed), rate, ci, per_class, original.metrics.accuracy, cleaned.metrics.accuracy
    )


def decisions_of(evaluated: EvaluatedSplits, test: dict[str, list[TestImage]]) -> dict[str, int]:
    """The baseline's decided class per relative path, from its evaluation."""
    decided: dict[str, int] = {}
    for split, images in test.items():
        predictions = evaluated.splits[split].predictions
        for image, predicted in zip(images, predictions, strict=True):
            decided.setdefault(image.relative, predicted)
    return decided
