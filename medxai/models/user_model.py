"""The user's own classifier, of four kinds (`medxai.models.kinds`), with the preprocessing it
expects.

- `checkpoint`: a medxai `model.pt`; it brings its architecture, classes and preprocessing.
- `import`: `package.module:factory`, called with no arguments (the user's nn.Module),
  optionally with a state-dict file (`weights`, loaded strictly).
- `torchscript`: a `torch.jit.save` file (traced or scripted).
- `onnx`: an `.onnx` file, run by ONNX Runtime (`OnnxClassifier`): forward passes only.

The preprocessing of the last three comes from a JSON or YAML file (`read_preprocessing_file`)
or from the command's options; their classes from the caller (`--classes`), the file's
`classes`, or a caller's default. `load_model` loads, runs one forward pass on a blank image
to check the output width against the classes and finds out whether the model gives
gradients. What explaining it needs on top (the CAM target layer, the methods it supports)
is `medxai.explain.user_model.load_user_model`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.models.checkpoint import (
    ModelSpec,
    blank_input,
    check_width,
    forward_blank,
    output_width,
    read_checkpoint,
)
from medxai.models.kinds import MODEL_KINDS, ModelKind, ModelSource
from medxai.models.onnx_model import OnnxClassifier
from medxai.models.preprocessing_file import (
    SPEC_KEYS,
    PreprocessingFile,
    check_classes,
    read_preprocessing_file,
)

__all__ = [
    "SPEC_KEYS",
    "ModelSource",
    "OnnxClassifier",
    "PreprocessingFile",
    "UserModel",
    "architecture_name",
    "check_classes",
    "fresh_model",
    "load_model",
    "read_preprocessing_file",
    "spec_name",
]


# -- loading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserModel:
    """A user's model, loaded and checked: the module (eval mode, on the device), its spec,
    whether autograd runs through it and one line describing it for the report."""

    kind: str
    module: nn.Module
    spec: ModelSpec
    gradients: bool
    description: str

    @property
    def model_kind(self) -> ModelKind:
        """The record of this model's kind."""
        return MODEL_KINDS[self.kind]


def _preprocessing(source: ModelSource, given: Preprocessing | None) -> PreprocessingFile:
    """The source's preprocessing file, else the command's preprocessing, else the defaults."""
    if source.preprocessing is not None:
        return read_preprocessing_file(source.preprocessing)
    return PreprocessingFile(given or Preprocessing(), None)


def _class_names(
    classes: Iterable[str] | None, from_file: tuple[str, ...] | None, source: ModelSource
) -> tuple[str, ...] | None:
    """--classes, else the file's; both given must agree."""
    names = None if classes is None else check_classes(classes, "--classes")
    if names is not None and from_file is not None and names != from_file:
        raise MedxaiError(
            f"--classes {','.join(names)} contradict {source.preprocessing}'s classes "
            f"({', '.join(from_file)})"
        )
    return names or from_file


def _check_fixed_input(module: nn.Module, prep: Preprocessing, source: ModelSource) -> None:
    """An ONNX file's fixed (C, H, W) must be what the preprocessing gives."""
    fixed = getattr(module, "input_shape", None)
    if fixed is None:
        return
    given = prep.input_shape
    if any(f is not None and f != g for f, g in zip(fixed[1:], given, strict=True)):
        wanted = "×".join("?" if f is None else str(f) for f in fixed[1:])
        raise MedxaiError(
            f"{source.location}: the model takes {wanted} inputs but the preprocessing gives "
            f"{'×'.join(map(str, given))}; set channels and image_size to match"
        )


def _probe(module: nn.Module, prep: Preprocessing, device: torch.device,
           source: ModelSource) -> tuple[int, bool]:  # fmt: skip
    """(output width, whether input gradients flow) from one forward on a blank image."""
    x = blank_input(prep, device)
    grad = source.model_kind.gradients
    x.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = forward_blank(module, prep, source.label, x)
    width = output_width(out, source.label)
    if width < 2:
        raise MedxaiError(
            f"{source.label}: the model gives {width} score per image; medxai explains "
            "classifiers with one score per class (two or more)"
        )
    if not (grad and out.requires_grad):
        return width, False
    try:
        (g,) = torch.autograd.grad(out[:, 0].sum(), x, allow_unused=True)
    except RuntimeError:  # e.g. an op without a derivative in a frozen TorchScript graph
        return width, False
    return width, g is not None


def _describe(source: ModelSource, module: nn.Module, spec: ModelSpec) -> str:
    """One line: kind, file, parameters, input, classes."""
    prep = spec.preprocessing
    intensity = prep.intensity
    if intensity == "custom":
        intensity = f"mean {list(prep.mean)}, std {list(prep.std)}"
    if isinstance(module, OnnxClassifier):
        weights = f"run by ONNX Runtime ({module.provider})"
    else:
        weights = f"{sum(p.numel() for p in module.parameters()):,} parameters"
    if source.weights is not None:
        weights += f" from {source.weights}"
    return (
        f"{source.label}: {weights}; input {prep.channels}×{prep.image_size}×{prep.image_size} "
        f"({intensity}); {len(spec.classes)} classes: {', '.join(spec.classes)}"
    )


def _self_described(
    source: ModelSource, classes: Iterable[str] | None, given: Preprocessing | None,
    device: torch.device,
) -> UserModel:  # fmt: skip
    """A medxai checkpoint: its own classes and preprocessing (others given must agree)."""
    module, spec = source.model_kind.load(source, device)
    if classes is not None and tuple(classes) != spec.classes:
        raise MedxaiError(
            f"--classes {','.join(classes)} contradict the checkpoint's classes "
            f"({', '.join(spec.classes)}); a checkpoint names its own"
        )
    if given is not None and given != spec.preprocessing:
        raise MedxaiError(
            f"{source.location}: a medxai checkpoint brings its own preprocessing "
            f"({spec.preprocessing.to_dict()}); drop the preprocessing options"
        )
    return UserModel(source.kind, module, spec, True, _describe(source, module, spec))


def load_model(
    source: ModelSource,
    classes: Iterable[str] | None,
    device: torch.device | str = "cpu",
    *,
    preprocessing: Preprocessing | None = None,
    default_classes: Iterable[str] | None = None,
    numbered: bool = False,
) -> UserModel:
    """The user's model, checked, with its spec and a one-line description.

    Classes, for every kind but a checkpoint (whose own are kept; `classes` must agree):
    `classes` (--classes), else the preprocessing file's, else `default_classes` (e.g. the
    dataset's labels), else with `numbered` "0".."K-1" for the K outputs; else an error.
    `preprocessing`: the command's own (from its options) when the source has no file; by
    default Preprocessing() (224 px, 1 channel, per-image standardisation). The output
    width must equal the number of classes (one forward pass on a blank image).
    """
    device = torch.device(device)
    if source.model_kind.own_spec:
        return _self_described(source, classes, preprocessing, device)
    wanted = _preprocessing(source, preprocessing)
    names = _class_names(classes, wanted.classes, source)
    if names is None and default_classes is not None:
        names = check_classes(default_classes, "the default classes")
    if names is None and not numbered:
        raise MedxaiError(
            f"{source.label}: name its outputs in order with --classes a,b,... or "
            "`classes:` in a --preprocessing file"
        )
    prep = wanted.preprocessing
    prep.check()
    module, _ = source.model_kind.load(source, device)
    _check_fixed_input(module, prep, source)
    width, gradients = _probe(module, prep, device, source)
    names = names or tuple(str(k) for k in range(width))
    check_width(width, names, source.label)
    spec = ModelSpec(spec_name(source), names, prep)
    return UserModel(source.kind, module, spec, gradients, _describe(source, module, spec))


# -- retraining ------------------------------------------------------------------------------
def spec_name(source: ModelSource) -> str:
    """The ModelSpec name: a checkpoint's own architecture name, else `kind:location`:
    `import:package.module:factory` (zoo.IMPORT_PREFIX: rebuildable), `torchscript:FILE` or
    `onnx:FILE` (not rebuildable)."""
    if source.model_kind.own_spec:
        return str(read_checkpoint(source.location)["model"])
    return f"{source.kind}:{source.location}"


def architecture_name(source: ModelSource) -> str:
    """The architecture `--retrain` rebuilds with fresh weights: a zoo name or
    `import:package.module:factory` (what TrainConfig.model takes); TorchScript and ONNX
    files hold no rebuildable architecture (an error)."""
    if not source.model_kind.can_retrain:
        raise MedxaiError(
            f"{source.label}: cannot be retrained (the file holds no rebuildable architecture); "
            "give the architecture with --model-import package.module:factory"
        )
    return spec_name(source)


def fresh_model(
    source: ModelSource, classes: Iterable[str], preprocessing: Preprocessing
) -> tuple[nn.Module, ModelSpec]:
    """The source's architecture with fresh weights (torch's global RNG: seed it first) for
    `classes` and `preprocessing`, and the spec its checkpoint is saved under (a checkpoint
    written with it loads back with `load_checkpoint`)."""
    spec = ModelSpec(architecture_name(source), check_classes(classes, "classes"), preprocessing)
    return spec.build(), spec
