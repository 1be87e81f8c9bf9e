"""The state one audit run shares between its stages: settings, output folder, device, the
caller's hooks, and what is loaded or decoded once (models, test images)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from medxai.data.covidx import Record, SplitIndex, default_image_dir, read_splits
from medxai.errors import DatasetError
from medxai.models.checkpoint import ModelSpec, load_checkpoint
from medxai.models.training import TrainConfig, evaluate, fit
from medxai.report.record import (
    AuditConfig,
    DataSummary,
    EvaluatedSplits,
    SanityChecks,
    TrainedModel,
)
from medxai.statistics.classification import Evaluation, PairedComparison, paired_comparison
from pipelines.audit_inputs import ModelInputs, TestImage
from pipelines.stages import StageCache

COVIDX_HELP = (
    "expected ROOT/train.txt and ROOT/test.txt (lines 'patient_id filename label [source]') "
    "with the images in ROOT/train/ and ROOT/test/; COVIDx comes from "
    "https://github.com/lindawangg/COVID-Net (docs/COVIDx.md) or Kaggle's 'COVIDx CXR'"
)
BALANCED_SPLIT = "test_balanced.txt"


@dataclass
class Hooks:
    """How the pipeline talks to its caller: stage starts, progress, log lines."""

    stage: Callable[[str], None] = lambda name: None
    progress: Callable[[str, int, int | None], None] = lambda what, advance, total: None
    log: Callable[[str], None] = lambda line: None


@dataclass
class AuditRun:
    """One audit's shared state; `pipelines.covidx_audit.Audit` runs its stages in order."""

    config: AuditConfig
    out: Path
    device: torch.device
    hooks: Hooks = field(default_factory=Hooks)

    def __post_init__(self) -> None:
        self.stages = StageCache(self.out, self.hooks.stage)
        self.detector = "fused" if self.config.detector == "auto" else self.config.detector
        self._models: dict[str, tuple[nn.Module, ModelSpec]] = {}
        self.classes: list[str] = []
        self.test: dict[str, list[TestImage]] = {}  # test split -> its readable images
        self.baseline: TrainedModel | None = None
        self.data: DataSummary | None = None
        self.sanity: SanityChecks | None = None

    # -- data ---------------------------------------------------------------------------
    def dataset_root(self) -> Path:
        if self.config.dataset == "phantom":
            return self.out / "dataset"
        root = Path(self.config.root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset root not found; {COVIDX_HELP}")
        if not (root / self.config.train_split).is_file():
            raise DatasetError(f"{root}: no {self.config.train_split}; {COVIDX_HELP}")
        return root

    def test_splits(self, root: Path) -> list[str]:
        if self.config.test_splits:
            return list(self.config.test_splits)
        return ["test.txt"] + ([BALANCED_SPLIT] if (root / BALANCED_SPLIT).is_file() else [])

    def read_index(self, root: Path, splits: list[str]) -> SplitIndex:
        """Every split file, parsed once for the whole run; its first problem stops it."""
        for split in splits:
            if not (root / split).is_file():
                raise DatasetError(f"{root / split}: split file not found; {COVIDX_HELP}")
        index = read_splits(root, splits)
        index.raise_problems()
        return index

    @staticmethod
    def readable(index: SplitIndex, data: DataSummary) -> dict[str, list[Record]]:
        """Each split's readable records (unreadable ones are listed in the report)."""
        bad = {u.file for u in data.unreadable}
        return {
            split: [r for r in records if str(r.path) not in bad]
            for split, records in index.records.items()
        }

    @staticmethod
    def test_images(split: str, records: list[Record]) -> list[TestImage]:
        folder = default_image_dir(split)
        return [TestImage(r, f"{folder}/{r.filename}") for r in records]

    def cleaned_records(self, records: list[Record], usable: set[str]) -> list[Record]:
        """The records, pointing into the cleaned copy (images it could not clean left out)."""
        cleaned = self.out / "cleaned"
        out = []
        for r in records:
            relative = f"{default_image_dir(r.split)}/{r.filename}"
            if relative in usable:
                out.append(replace(r, path=cleaned / relative))
        return out

    # -- models -------------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        """The one training setup both models share."""
        c = self.config
        return TrainConfig(
            model=c.model, epochs=c.epochs, batch_size=c.batch_size, image_size=c.image_size,
            lr=c.lr, patience=c.patience, seed=c.seed,
        )  # fmt: skip

    def train(self, records: list[Record], folder: str) -> TrainedModel:
        c, out = self.config, self.out / folder

        def on_epoch(entry: dict) -> None:
            self.hooks.progress(f"training {folder}", 1, c.epochs)
            self.hooks.log(
                f"{folder}: epoch {entry['epoch']}/{c.epochs}, loss {entry['loss']:.3f}, "
                f"val macro-F1 {entry['val_macro_f1']:.3f}"
            )

        state, _ = fit(
            self.train_config(), records, out, self.device, resume=(out / "last.pt").is_file(),
            on_epoch=on_epoch,
        )  # fmt: skip
        if state.warning:
            self.hooks.log(f"{folder}: {state.warning}")
        return TrainedModel(
            str(out / "model.pt"), state.best_epoch, state.best_f1, state.epoch, state.balance,
            state.warning,
        )  # fmt: skip

    def model(self, trained: TrainedModel) -> tuple[nn.Module, ModelSpec]:
        """The trained model and its spec (classes, preprocessing), loaded once per run."""
        if trained.checkpoint not in self._models:
            self._models[trained.checkpoint] = load_checkpoint(trained.checkpoint, self.device)
        return self._models[trained.checkpoint]

    @cached_property
    def inputs(self) -> ModelInputs:
        """The test images as the baseline's input, decoded once, with the baseline's own
        preprocessing (the one stored in its checkpoint)."""
        prep = self.model(self.baseline)[1].preprocessing
        images = [image for split in self.test.values() for image in split]
        total = len({image.relative for image in images})
        return ModelInputs(
            images, prep, lambda k: self.hooks.progress("reading test images", k, total)
        )

    def evaluate_baseline(self) -> EvaluatedSplits:
        """The baseline on every test split, from the test images decoded once."""
        splits = {s: [i.record for i in images] for s, images in self.test.items()}
        decoded = {s: [i.relative for i in images] for s, images in self.test.items()}
        return self.evaluate(self.baseline, splits, decoded)

    def evaluate(
        self, trained: TrainedModel, splits: dict[str, list[Record]],
        decoded: dict[str, list[str]] | None = None,
    ) -> EvaluatedSplits:  # fmt: skip
        """`trained` on each split; `decoded` (split -> relative paths) reads `self.inputs`."""
        model, spec = self.model(trained)
        results = {}
        for split, records in splits.items():
            pairs = None
            if decoded is not None:
                labels = [spec.classes.index(r.label) for r in records]
                pairs = self.inputs.dataset(decoded[split], labels)
            results[split] = evaluate(
                model, records, spec, self.device, n_bootstrap=self.config.n_bootstrap,
                seed=self.config.seed, inputs=pairs,
            )  # fmt: skip
        return EvaluatedSplits(results)

    def compare(self, before: Evaluation, after: Evaluation) -> PairedComparison:
        """Baseline on the original images vs the retrained model on their cleaned copies."""
        by_file = dict(zip(before.files, before.predictions, strict=True))
        return paired_comparison(
            after.labels, [by_file[f] for f in after.files], after.predictions, self.classes,
            n_bootstrap=self.config.n_bootstrap, seed=self.config.seed,
        )  # fmt: skip

    def make_detector(self):
        from data_cleaning.detect import make_detector

        return make_detector(self.detector, self.config.text_threshold, self.device.type == "cuda")
