"""The audit's model stage: the model it explains — the covidnet it trains, or the user's own
(a medxai checkpoint, an imported factory, TorchScript or ONNX) — loaded once, with the test
images decoded once as its input and its decision on every test film."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from medxai import distributed
from medxai.data.records import Record
from medxai.errors import MedxaiError
from medxai.explain.perturb import inference_copy
from medxai.explain.user_model import LoadedModel, load_user_model
from medxai.models.checkpoint import ModelSpec, load_checkpoint
from medxai.models.kinds import model_kind
from medxai.models.training import TrainConfig, TrainState, evaluate, fit
from medxai.models.zoo import target_layer
from medxai.report.record import AuditedModel, EvaluatedSplits, TrainedModel
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.inputs import ModelInputs

FORWARD_ONLY_DEFAULT = ("rise",)  # what a model without gradients is explained with


@dataclass(frozen=True)
class Subject:
    """The model under audit, and what every later stage asks of it."""

    module: nn.Module  # eval mode, on the run's device
    scorer: nn.Module  # what forward-only passes run (`forward_copy`)
    spec: ModelSpec  # classes and preprocessing
    audited: AuditedModel  # what the report says of it
    trained: TrainedModel | None  # the audit's own training run (None: the user's model)
    inputs: ModelInputs  # the test images as its input, decoded once
    evaluated: EvaluatedSplits  # on every test split
    decisions: dict[str, int]  # relative path -> decided class

    @property
    def methods(self) -> list[str]:
        """The saliency methods it supports, of those asked for."""
        return self.audited.methods


def model_stage(run: Run, data: Data) -> Subject:
    """Train (or load the user's) model, decode the test images, evaluate it on them."""
    trained = None
    if run.config.model is None:
        train = data.records[data.train_split]
        config = training_config(run, data.classes, None)
        trained = run.cache.run(
            "train_baseline", TrainedModel, lambda: fit_model(run, config, train, "baseline")
        )
        module, spec = load_checkpoint(trained.checkpoint, run.device)
        audited = trained_record(run, data, trained)
    else:
        loaded = load_user(run, data.classes)
        module, spec = loaded.module, loaded.spec
        audited = run.cache.run("model", AuditedModel, lambda: user_record(run, data, loaded))
    for method, why in audited.skipped_methods.items():
        run.hooks.log(f"not run: {method}: {why}")
    inputs = decode_inputs(run, data, spec)
    scorer = forward_copy(module, inputs, data.test_images[0].relative, run.device)
    evaluated = run.cache.run(
        "evaluate_baseline",
        EvaluatedSplits,
        lambda: evaluate_decoded(run, scorer, spec, data, inputs),
    )
    decisions = decisions_of(evaluated, data)
    return Subject(module, scorer, spec, audited, trained, inputs, evaluated, decisions)


def forward_copy(
    module: nn.Module, inputs: ModelInputs, probe: str, device: torch.device
) -> nn.Module:
    """The module the forward-only stages (evaluation, region tests, transplants) run: its
    inference copy (batch norms folded into the convolutions, channels-last weights on a
    CPU: ResNet50 scores about 1.5x faster) when one can be made with the same outputs to
    rounding (checked on the film `probe`), else the module itself. Saliency runs on the
    module (its hooks)."""
    return inference_copy(module, inputs.batch([probe]).to(device)) or module


def training_config(run: Run, classes: Sequence[str], spec: ModelSpec | None) -> TrainConfig:
    """The one training setup both models share. A user's model is retrained as its own
    architecture (`spec`), with fresh weights and its own preprocessing and classes."""
    train = replace(run.config.train, classes=tuple(classes))
    if spec is not None:
        train = replace(
            train, model=spec.name, model_input=spec.preprocessing, classes=spec.classes
        )
    return train


def fit_model(run: Run, config: TrainConfig, records: list[Record], folder: str) -> TrainedModel:
    out, epochs = run.out / folder, config.epochs

    def on_epoch(entry: dict) -> None:
        run.hooks.progress(f"training {folder}", 1, epochs)
        run.hooks.log(
            f"{folder}: epoch {entry['epoch']}/{epochs}, loss {entry['loss']:.3f}, "
            f"val macro-F1 {entry['val_macro_f1']:.3f}"
        )

    resume = (out / "last.pt").is_file()
    state = distributed.run_everywhere(
        _fit_on_rank, config, records, out, run.device, resume, local={"on_epoch": on_epoch}
    )  # under torchrun: DDP, every rank on its own device, rank 0 writes
    if state.warning:
        run.hooks.log(f"{folder}: {state.warning}")
    return TrainedModel(
        str(out / "model.pt"), state.best_epoch, state.best_f1, state.epoch, state.balance,
        state.warning,
    )  # fmt: skip


def _fit_on_rank(
    config: TrainConfig, records: list[Record], out: Path, device: torch.device, resume: bool,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainState:  # fmt: skip
    return fit(config, records, out, distributed.local_device(device), resume, 0, on_epoch)[0]


def evaluate_splits(
    run: Run, module: nn.Module, spec: ModelSpec, splits: dict[str, list[Record]],
    inputs: dict | None = None,
) -> EvaluatedSplits:  # fmt: skip
    """`module` on each split; `inputs` (split -> decoded (input, label) pairs) skips reading."""
    return EvaluatedSplits({
        split: evaluate(
            module, records, spec, run.device, n_bootstrap=run.config.n_bootstrap,
            seed=run.config.seed, inputs=(inputs or {}).get(split),
        )  # fmt: skip
        for split, records in splits.items()
    })  # fmt: skip


def evaluate_decoded(
    run: Run, module: nn.Module, spec: ModelSpec, data: Data, inputs: ModelInputs
) -> EvaluatedSplits:
    """The model on every test split, from the test images decoded once."""
    splits = {s: [i.record for i in images] for s, images in data.test.items()}
    pairs = {
        s: inputs.dataset(
            [i.relative for i in images], [spec.classes.index(i.record.label) for i in images]
        )
        for s, images in data.test.items()
    }
    return evaluate_splits(run, module, spec, splits, pairs)


def decode_inputs(run: Run, data: Data, spec: ModelSpec) -> ModelInputs:
    """The test images with the model's own preprocessing (the one stored with it)."""
    images = [image for split in data.test.values() for image in split]
    total = len({image.relative for image in images})
    return ModelInputs(
        images, spec.preprocessing, run.progress("reading test images", total),
        spill=run.out / "cache",
    )  # fmt: skip


def decisions_of(evaluated: EvaluatedSplits, data: Data) -> dict[str, int]:
    """The decided class per relative path, from the evaluation."""
    decided: dict[str, int] = {}
    for split, images in data.test.items():
        predictions = evaluated.splits[split].predictions
        for image, predicted in zip(images, predictions, strict=True):
            decided.setdefault(image.relative, predicted)
    return decided


def load_user(run: Run, classes: Sequence[str]) -> LoadedModel:
    """The user's model; its classes: the configured ones, else its preprocessing file's,
    else the dataset's (then its output width must match them)."""
    given = tuple(run.config.data.classes) or None
    return load_user_model(run.config.model, given, run.device, default_classes=list(classes))


def trained_record(run: Run, data: Data, trained: TrainedModel) -> AuditedModel:
    """The covidnet the audit trained: every method runs, the sanity check too."""
    c = run.config
    description = (
        f"{c.train.model} trained by this audit on {data.train_split} ({trained.epochs_run} "
        f"epochs, best validation macro-F1 {trained.best_val_macro_f1:.2f} at epoch "
        f"{trained.best_epoch}; {trained.balance})"
    )
    return AuditedModel(
        kind="train", location=trained.checkpoint, description=description,
        classes=list(data.classes), gradients=True, target_layer=target_layer(c.train.model),
        methods=list(c.explain.methods), skipped_methods={}, retrained=c.retrain,
    )  # fmt: skip


def user_record(run: Run, data: Data, loaded: LoadedModel) -> AuditedModel:
    """The user's model, checked against the data's classes; the methods it supports (a
    forward-only model with none of those asked for is explained with RISE)."""
    c, classes = run.config, list(loaded.spec.classes)
    unknown = sorted(set(data.classes) - set(classes))
    if unknown:
        raise MedxaiError(
            f"the dataset's labels {unknown} are not among the model's classes {classes}; "
            "name the model's outputs in order with --classes"
        )
    kept, notes = loaded.supported(c.explain.methods)
    return AuditedModel(
        kind=loaded.kind, location=str(c.model.location), description=loaded.description,
        classes=classes, gradients=loaded.gradients, target_layer=loaded.target_layer,
        methods=kept or list(FORWARD_ONLY_DEFAULT),
        skipped_methods=dict(note.split(": ", 1) for note in notes), retrained=c.retrain,
        sanity_note=model_kind(loaded.kind).no_sanity,
    )  # fmt: skip
