"""The state one audit run shares between its stages: settings, output folder, device, the
caller's hooks, and what is loaded or decoded once (models, test images)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from medxai.data.layouts import dataset_root, read_dataset
from medxai.data.records import Record, SplitIndex
from medxai.errors import DatasetError
from medxai.models.checkpoint import ModelSpec
from medxai.models.training import TrainConfig, evaluate, fit
from medxai.report.record import (
    AuditConfig,
    AuditedModel,
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
        self.train_split = self.config.train_split  # the dataset's, once it is read
        self.test: dict[str, list[TestImage]] = {}  # test split -> its readable images
        self.baseline: TrainedModel | AuditedModel | None = None  # the model explained
        self.audited: AuditedModel | None = None  # what the report says of it
        self.data: DataSummary | None = None
        self.sanity: SanityChecks | None = None

    # -- data ---------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        return "covidx" if self.config.dataset == "phantom" else self.config.dataset

    def location(self) -> Path:
        """What the dataset is read from: its folder, or its CSV manifest."""
        if self.config.dataset == "phantom":
            return self.out / "dataset"
        return Path(self.config.root)

    def dataset_root(self) -> Path:
        """The folder the images are relative to (a CSV manifest's folder); never written."""
        location, c = self.location(), self.config
        if c.dataset == "phantom":
            return location
        if not location.exists():
            raise DatasetError(f"{location}: dataset root not found; {COVIDX_HELP}")
        if c.dataset == "covidx" and not (location / c.train_split).is_file():
            raise DatasetError(f"{location / c.train_split}: split file not found; {COVIDX_HELP}")
        return dataset_root(location)

    def read_index(self, root: Path) -> SplitIndex:
        """The dataset, read once for the whole run; its first problem stops it. COVIDx: the
        training split and the test splits only (test.txt, and test_balanced.txt if there)."""
        c, splits = self.config, None
        if self.layout == "covidx":
            splits = [c.train_split, *self.covidx_tests(root)]
            for split in splits:
                if not (root / split).is_file():
                    raise DatasetError(f"{root / split}: split file not found; {COVIDX_HELP}")
        index = read_dataset(self.location(), self.layout, splits, c.classes or None, c.source_from)
        index.raise_problems()
        return index

    def covidx_tests(self, root: Path) -> list[str]:
        if self.config.test_splits:
            return list(self.config.test_splits)
        return ["test.txt"] + ([BALANCED_SPLIT] if (root / BALANCED_SPLIT).is_file() else [])

    def split_names(self, index: SplitIndex) -> tuple[str, list[str]]:
        """The training split (--train-split if the dataset has it, else its train* split)
        and the test splits (--test-split, else every test* split)."""
        c = self.config
        train = c.train_split if c.train_split in index.records else index.train_split()
        tests = list(c.test_splits) or index.test_splits()
        missing = [s for s in tests if s not in index.records]
        if missing or not tests:
            where = index.listing or index.root
            raise DatasetError(
                f"{where}: no test split {missing or '(a split named test*)'} among "
                f"{', '.join(index.records)}"
            )
        return train, tests

    @staticmethod
    def readable(index: SplitIndex, data: DataSummary) -> dict[str, list[Record]]:
        """Each split's readable records (unreadable ones are listed in the report)."""
        bad = {u.file for u in data.unreadable}
        return {
            split: [r for r in records if str(r.path) not in bad]
            for split, records in index.records.items()
        }

    @staticmethod
    def test_images(index: SplitIndex, records: list[Record]) -> list[TestImage]:
        return [TestImage(r, index.relative(r)) for r in records]

    def cleaned_records(
        self, index: SplitIndex, records: list[Record], usable: set[str]
    ) -> list[Record]:
        """The records, pointing into the cleaned copy (images it could not clean left out)."""
        cleaned = self.out / "cleaned"
        out = []
        for r in records:
            relative = index.relative(r)
            if relative in usable:
                out.append(replace(r, path=cleaned / relative))
        return out

    # -- models -------------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        """The one training setup both models share. A user's model is retrained as its own
        architecture, with fresh weights and its own preprocessing and classes."""
        c = self.config
        model, model_input, classes = c.model, None, tuple(self.classes)
        if c.model_kind != "train":
            spec = self.model(self.baseline)[1]
            model, model_input, classes = spec.name, spec.preprocessing, spec.classes
        return TrainConfig(
            model=model, epochs=c.epochs, batch_size=c.batch_size, image_size=c.image_size,
            lr=c.lr, patience=c.patience, seed=c.seed, classes=classes,
            positive_class=c.positive_class, model_input=model_input,
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

    @property
    def methods(self) -> list[str]:
        """The saliency methods the audited model supports, of those asked for."""
        return self.audited.methods

    def keep_model(self, key: str, model: nn.Module, spec: ModelSpec) -> None:
        """A model already loaded (the user's, when its stage checks it), so `model` reuses it."""
        self._models[key] = (model, spec)

    def model(self, which: TrainedModel | AuditedModel) -> tuple[nn.Module, ModelSpec]:
        """A model and its spec (classes, preprocessing), loaded once per run."""
        from pipelines.audit_model import load

        key = which.checkpoint if isinstance(which, TrainedModel) else which.location
        if key not in self._models:
            self._models[key] = load(self, which)
        return self._models[key]

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
        self, trained: TrainedModel | AuditedModel, splits: dict[str, list[Record]],
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
