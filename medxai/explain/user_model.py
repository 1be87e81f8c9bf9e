"""The user's own classifier, ready to explain: `medxai.models.user_model` loads and checks it;
this adds what needs the explanation methods — the CAM target layer and the methods the
model supports. `load_user_model` is the one entry the commands and the audit use.

The loading names (`ModelSource`, `read_preprocessing_file`, `OnnxClassifier`, ...) are
importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
from torch import nn

from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.explain.layers import find_target_layer
from medxai.explain.registry import supported_methods
from medxai.models import zoo
from medxai.models.checkpoint import ModelSpec, blank_input
from medxai.models.kinds import MODEL_KINDS, ModelKind
from medxai.models.user_model import (
    SPEC_KEYS,
    ModelSource,
    OnnxClassifier,
    PreprocessingFile,
    UserModel,
    architecture_name,
    check_classes,
    fresh_model,
    load_model,
    read_preprocessing_file,
    spec_name,
)

__all__ = [
    "SPEC_KEYS",
    "LoadedModel",
    "ModelSource",
    "OnnxClassifier",
    "PreprocessingFile",
    "architecture_name",
    "check_classes",
    "fresh_model",
    "load_user_model",
    "read_preprocessing_file",
    "spec_name",
]


@dataclass(frozen=True)
class LoadedModel:
    """A user's model ready to explain: the module (eval mode, on the device), its spec,
    whether autograd runs through it, its CAM layer (None: no CAM methods) and one line
    describing it for the report."""

    kind: str
    module: nn.Module
    spec: ModelSpec
    gradients: bool
    target_layer: str | None
    description: str

    @property
    def model_kind(self) -> ModelKind:
        """The record of this model's kind."""
        return MODEL_KINDS[self.kind]

    @property
    def eager(self) -> bool:
        """A Python nn.Module: forward hooks and per-layer re-initialisation work on it (the
        CAM methods and the model-randomisation sanity check need them)."""
        return self.model_kind.eager

    @property
    def retrainable(self) -> bool:
        """Whether `fresh_model` can rebuild its architecture with fresh weights."""
        return self.model_kind.can_retrain

    def supported(self, methods: Iterable[str]) -> tuple[list[str], list[str]]:
        """(the methods that run on this model, one note per method left out)."""
        kind = self.model_kind
        return supported_methods(
            methods, self.gradients, self.target_layer is not None,
            no_gradients=kind.no_gradients, no_target_layer=kind.no_target_layer,
        )  # fmt: skip

    def with_target_layer(self, name: str | None) -> LoadedModel:
        """The same model with the CAM layer `name` (None: unchanged); a name the module does
        not have, or a model that runs no hooks, is an error."""
        if name is None:
            return self
        if not self.eager:
            raise MedxaiError(f"--target-layer {name}: {self.model_kind.no_target_layer}")
        find_target_layer(self.module, torch.empty(0), name)  # the name check and its message
        return replace(self, target_layer=name)


def _cam_layer(model: UserModel, device: torch.device) -> str | None:
    """The zoo's CAM layer for its architectures; the automatic search for other eager
    modules (None where it finds no 4-D output); None for a model that runs no hooks."""
    if not model.model_kind.eager:
        return None
    if not zoo.is_imported(model.spec.name):  # an eager module's spec names a zoo architecture
        return zoo.target_layer(model.spec.name)
    try:
        return find_target_layer(model.module, blank_input(model.spec.preprocessing, device))
    except MedxaiError:
        return None


def load_user_model(
    source: ModelSource,
    classes: Iterable[str] | None,
    device: torch.device | str = "cpu",
    *,
    preprocessing: Preprocessing | None = None,
    default_classes: Iterable[str] | None = None,
    numbered: bool = False,
) -> LoadedModel:
    """The user's model, checked (`medxai.models.user_model.load_model`: classes,
    preprocessing and the output-width check are described there), with its CAM target
    layer, what it supports and a one-line description."""
    device = torch.device(device)
    model = load_model(
        source, classes, device, preprocessing=preprocessing, default_classes=default_classes,
        numbered=numbered,
    )  # fmt: skip
    layer = _cam_layer(model, device)
    return LoadedModel(
        model.kind, model.module, model.spec, model.gradients, layer, model.description
    )
