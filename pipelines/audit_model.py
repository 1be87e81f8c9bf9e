"""Which model an audit explains: the covidnet it trains, or the user's own (a medxai
checkpoint, an imported factory, TorchScript or ONNX), and what each can be asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from medxai.errors import MedxaiError
from medxai.explain.user_model import LoadedModel, ModelSource, load_user_model
from medxai.models.checkpoint import ModelSpec, load_checkpoint
from medxai.models.zoo import target_layer
from medxai.report.record import AuditedModel, TrainedModel

if TYPE_CHECKING:
    from pipelines.audit_run import AuditRun

FORWARD_ONLY_DEFAULT = ("rise",)  # what a model without gradients is explained with
NO_SANITY = {
    "torchscript": "a TorchScript model's layers cannot be re-initialised one by one",
    "onnx": "an ONNX model's weights cannot be re-initialised from medxai",
}


def source_of(audit: AuditRun) -> ModelSource:
    c = audit.config
    return ModelSource(c.model_kind, c.model_path, c.weights, c.preprocessing)


def load(audit: AuditRun, which: TrainedModel | AuditedModel) -> tuple[nn.Module, ModelSpec]:
    """The module (eval mode, on the audit's device) and its classes and preprocessing."""
    if isinstance(which, TrainedModel):
        return load_checkpoint(which.checkpoint, audit.device)
    loaded = _load_user(audit)
    return loaded.module, loaded.spec


def _load_user(audit: AuditRun) -> LoadedModel:
    """The user's model; its classes: --classes, else its preprocessing file's, else the
    dataset's (then its output width must match them)."""
    given = tuple(audit.config.classes) or None
    return load_user_model(source_of(audit), given, audit.device, default_classes=audit.classes)


def trained_record(audit: AuditRun, trained: TrainedModel) -> AuditedModel:
    """The covidnet the audit trained: every method runs, the sanity check too."""
    c = audit.config
    description = (
        f"{c.model} trained by this audit on {audit.train_split} ({trained.epochs_run} epochs, "
        f"best validation macro-F1 {trained.best_val_macro_f1:.2f} at epoch "
        f"{trained.best_epoch}; {trained.balance})"
    )
    return AuditedModel(
        kind="train", location=trained.checkpoint, description=description,
        classes=list(audit.classes), gradients=True, target_layer=target_layer(c.model),
        methods=list(c.methods), skipped_methods={}, retrained=c.retrain,
    )  # fmt: skip


def user_record(audit: AuditRun) -> AuditedModel:
    """The user's model, checked against the data's classes; the methods it supports (a
    forward-only model with none of those asked for is explained with RISE)."""
    loaded = _load_user(audit)
    audit.keep_model(str(audit.config.model_path), loaded.module, loaded.spec)
    classes = list(loaded.spec.classes)
    unknown = sorted(set(audit.classes) - set(classes))
    if unknown:
        raise MedxaiError(
            f"the dataset's labels {unknown} are not among the model's classes {classes}; "
            "name the model's outputs in order with --classes"
        )
    kept, notes = loaded.supported(audit.config.methods)
    return AuditedModel(
        kind=loaded.kind, location=str(audit.config.model_path),
        description=loaded.description, classes=classes, gradients=loaded.gradients,
        target_layer=loaded.target_layer, methods=kept or list(FORWARD_ONLY_DEFAULT),
        skipped_methods=dict(note.split(": ", 1) for note in notes),
        retrained=audit.config.retrain, sanity_note="" if loaded.eager else NO_SANITY[loaded.kind],
    )  # fmt: skip
