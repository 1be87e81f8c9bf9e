"""The kinds of model medxai explains, one record each: what a kind is called, how it is
loaded, and what can be asked of it.

A user's model comes in four kinds, each given with its own CLI option: a medxai
`checkpoint`, an `import`ed factory, a `torchscript` file and an `onnx` file. The audit adds
a fifth, `train`: the covidnet it trains itself (no option: it is what the audit does when
no model is given). Everything that differs between kinds is a field of `ModelKind`, so a
new kind is one more entry in `MODEL_KINDS` (plus its loader) — and a CLI option on the
commands that take one.

This module imports nothing heavy (the CLI reads it at start-up) and nothing from the rest
of `medxai.models` (`checkpoint` reads `can_retrain`): each loader imports what it needs
when it runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medxai.errors import MedxaiError, first_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from medxai.models.checkpoint import ModelSpec

    Loader = Callable[["ModelSource", torch.device], tuple[nn.Module, ModelSpec | None]]

NO_GRADIENTS = "the model gives no input gradients"  # a probe on a blank image found none
NO_TARGET_LAYER = "none found (give --target-layer)"  # an eager module without a 4-D block


@dataclass(frozen=True)
class ModelKind:
    """One kind of model and everything medxai does differently for it.

    name: what ModelSource, the audit's config and its report call it.
    option: the CLI option that gives a model of this kind (None: no user gives it).
    label: how messages and the report name such a model ("ONNX model m.onnx").
    load: (source, device) → (the module in eval mode on the device, the spec the file
        carries — a medxai checkpoint's — or None).
    eager: a Python nn.Module: forward hooks (the CAM methods) and per-layer
        re-initialisation (the model-randomisation sanity check) work on it.
    gradients: autograd may run through it (probed on a blank image); False: never.
    own_spec: it brings its own architecture, classes and preprocessing (a medxai
        checkpoint): no preprocessing file, and options that differ are errors.
    weights: it takes a state-dict file (`--weights`).
    can_retrain: the audit can rebuild its architecture with fresh weights (`--retrain`).
    no_retrain: the `--retrain` error for a kind that cannot be retrained ("" if it can).
    no_sanity: why the sanity check does not run on it ("" when it is eager: it runs).
    no_gradients: the note for a gradient method it cannot run.
    no_target_layer: the note for a CAM method it cannot run (for an eager kind: no layer
        was found); also the `--target-layer` error of a kind without layers to hook.
    """

    name: str
    option: str | None
    label: str
    load: Loader
    eager: bool
    gradients: bool
    own_spec: bool = False
    weights: bool = False
    can_retrain: bool = True
    no_retrain: str = ""
    no_sanity: str = ""
    no_gradients: str = NO_GRADIENTS
    no_target_layer: str = NO_TARGET_LAYER

    @property
    def user(self) -> bool:
        """A user's model (given with an option), not the one the audit trains."""
        return self.option is not None


# -- the loaders -------------------------------------------------------------------------------
def _load_checkpoint(source: ModelSource, device: torch.device):
    from medxai.models.checkpoint import load_checkpoint

    return load_checkpoint(source.location, device)


def _load_import(source: ModelSource, device: torch.device):
    from medxai.models import zoo

    module = zoo.build_imported(source.location)
    if source.weights is not None:
        zoo.load_strict(module, zoo.load_weights_file(source.weights), str(source.weights))
    return module.to(device).eval(), None


def _load_torchscript(source: ModelSource, device: torch.device):
    import torch

    path = Path(source.location)
    if not path.is_file():
        raise MedxaiError(f"{path}: TorchScript file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise MedxaiError(
            f"{path}: not a readable TorchScript file ({first_line(err)}); write one with "
            "torch.jit.save(torch.jit.trace(model, example), path)"
        ) from err
    return module.eval(), None


def _load_onnx(source: ModelSource, device: torch.device):
    from medxai.models.onnx_model import OnnxClassifier

    return OnnxClassifier(source.location, device), None


def _no_retrain(file: str) -> str:
    return (
        f"--retrain: {file} file holds no architecture to rebuild; give it with "
        "--model-import package.module:factory (or --checkpoint)"
    )


# -- the table -----------------------------------------------------------------------------------
MODEL_KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("train", None, "model trained by the audit", _load_checkpoint,
                  eager=True, gradients=True, own_spec=True),
        ModelKind("checkpoint", "--checkpoint", "medxai checkpoint", _load_checkpoint,
                  eager=True, gradients=True, own_spec=True),
        ModelKind("import", "--model-import", "imported model", _load_import,
                  eager=True, gradients=True, weights=True),
        ModelKind("torchscript", "--torchscript", "TorchScript model", _load_torchscript,
                  eager=False, gradients=True, can_retrain=False,
                  no_retrain=_no_retrain("a TorchScript"),
                  no_sanity="a TorchScript model's layers cannot be re-initialised one by one",
                  no_target_layer="a TorchScript model runs no forward hooks on its layers"),
        ModelKind("onnx", "--onnx", "ONNX model", _load_onnx,
                  eager=False, gradients=False, can_retrain=False,
                  no_retrain=_no_retrain("an ONNX"),
                  no_sanity="an ONNX model's weights cannot be re-initialised from medxai",
                  no_gradients="an ONNX model runs forward only",
                  no_target_layer="an ONNX model has no layers to hook"),
    )
}  # fmt: skip
USER_KINDS = tuple(name for name, kind in MODEL_KINDS.items() if kind.user)


def model_kind(name: str, *, audit: bool = False) -> ModelKind:
    """The record of kind `name`: one of a user's kinds (USER_KINDS, what ModelSource and the
    commands' options take), or with `audit` any of MODEL_KINDS (`train` too, what the
    audit's config takes). Any other name is an error listing the names it takes."""
    names = tuple(MODEL_KINDS) if audit else USER_KINDS
    if name not in names:
        raise MedxaiError(f"unknown model kind {name!r}; use {', '.join(names)}")
    return MODEL_KINDS[name]


# -- where the model comes from ----------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """The user's model: its kind, where it is, and what goes with it.

    location: a file (checkpoint, TorchScript, ONNX) or `package.module:factory` (import).
    weights: a state-dict file for an imported model (loaded strictly).
    preprocessing: a JSON or YAML preprocessing file (not for a checkpoint: it has its own).
    """

    kind: str
    location: str
    weights: Path | None = None
    preprocessing: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "location", str(self.location))  # a Path is welcome too
        for key in ("weights", "preprocessing"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, Path(getattr(self, key)))
        kind = model_kind(self.kind)
        if self.weights is not None and not kind.weights:
            raise MedxaiError(f"--weights goes with --model-import, not with a {self.label}")
        if self.preprocessing is not None and kind.own_spec:
            raise MedxaiError(
                f"{self.location}: a medxai checkpoint carries its own preprocessing and "
                "classes; drop --preprocessing"
            )

    @property
    def model_kind(self) -> ModelKind:
        """The record of this source's kind."""
        return MODEL_KINDS[self.kind]

    @property
    def label(self) -> str:
        """`ONNX model m.onnx`: how messages and the report name it."""
        return f"{self.model_kind.label} {self.location}"
