"""The user's own classifier, of four kinds, with the preprocessing it expects.

- `checkpoint`: a medxai `model.pt`; it brings its architecture, classes and preprocessing.
- `import`: `package.module:factory`, called with no arguments (the user's nn.Module),
  optionally with a state-dict file (`weights`, loaded strictly).
- `torchscript`: a `torch.jit.save` file (traced or scripted).
- `onnx`: an `.onnx` file, run by ONNX Runtime (`OnnxClassifier`): forward passes only.

The preprocessing of the last three comes from a JSON or YAML file (`read_preprocessing_file`)
or from the command's options; their classes from the caller (`--classes`), the file's
`classes`, or a caller's default. `load_user_model` is the one entry: it loads, runs one
forward pass on a blank image to check the output width against the classes, finds out
whether the model gives gradients, and picks the CAM target layer.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medxai.data.transforms import INTENSITY_MODES, Preprocessing
from medxai.errors import MedxaiError
from medxai.explain.layers import find_target_layer
from medxai.explain.registry import supported_methods
from medxai.models import zoo
from medxai.models.checkpoint import (
    ModelSpec,
    blank_input,
    check_width,
    forward_blank,
    load_checkpoint,
    output_width,
    read_checkpoint,
)

KINDS = ("checkpoint", "import", "torchscript", "onnx")
SPEC_KEYS = ("image_size", "channels", "intensity", "mean", "std", "resize", "top_crop", "classes")
_KIND_NAMES = {"checkpoint": "medxai checkpoint", "import": "imported model",
               "torchscript": "TorchScript model", "onnx": "ONNX model"}  # fmt: skip
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
               "tensor(double)": np.float64}  # fmt: skip


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


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
        if self.kind not in KINDS:
            raise MedxaiError(f"unknown model kind {self.kind!r}; use {', '.join(KINDS)}")
        if self.weights is not None and self.kind != "import":
            raise MedxaiError(f"--weights goes with --model-import, not with a {self.label}")
        if self.preprocessing is not None and self.kind == "checkpoint":
            raise MedxaiError(
                f"{self.location}: a medxai checkpoint carries its own preprocessing and "
                "classes; drop --preprocessing"
            )

    @property
    def label(self) -> str:
        """`ONNX model m.onnx`: how messages and the report name it."""
        return f"{_KIND_NAMES[self.kind]} {self.location}"


# -- preprocessing files -------------------------------------------------------------------
@dataclass(frozen=True)
class PreprocessingFile:
    """What a preprocessing file says: the input chain and, optionally, the class names."""

    preprocessing: Preprocessing
    classes: tuple[str, ...] | None


def _parse(path: Path, text: str) -> object:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise MedxaiError(f"{path}: not valid JSON ({err})") from err
    if suffix not in (".yaml", ".yml"):
        raise MedxaiError(f"{path}: a preprocessing file ends in .json, .yaml or .yml")
    try:
        import yaml
    except ImportError as err:  # PyYAML is a dependency; a stripped install may lack it
        raise MedxaiError(f"{path}: PyYAML is not installed; write the file as JSON") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise MedxaiError(f"{path}: not valid YAML ({_first_line(err)})") from err


def _number(path: Path, key: str, value: object, kind: type) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or (kind is int and not isinstance(value, int)):
        raise MedxaiError(f"{path}: {key} must be {'an integer' if kind is int else 'a number'}")
    return value


def _numbers(path: Path, key: str, value: object) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(float(_number(path, key, v, float)) for v in values)


def _names(path: Path, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise MedxaiError(f"{path}: classes must be a list of names, in output order")
    return check_classes(value, str(path))


def _fields(path: Path, values: dict) -> dict:
    """The file's entries as Preprocessing fields, each checked for its type."""
    fields: dict = {}
    for key, value in values.items():
        if key in ("image_size", "channels", "resize"):
            fields[key] = _number(path, key, value, int)
        elif key == "top_crop":
            fields[key] = float(_number(path, key, value, float))
        elif key in ("mean", "std"):
            fields[key] = _numbers(path, key, value)
        elif key == "intensity":
            if value not in INTENSITY_MODES:
                raise MedxaiError(
                    f"{path}: unknown intensity {value!r}; use {', '.join(INTENSITY_MODES)}"
                )
            fields[key] = value
    return fields


def read_preprocessing_file(path: str | Path) -> PreprocessingFile:
    """A JSON or YAML mapping with some of SPEC_KEYS; missing keys keep Preprocessing's
    defaults (224 px, 1 channel, per-image standardisation). `mean`/`std` alone mean
    intensity `custom`. Any problem is one line naming the file (and the key)."""
    path = Path(path)
    if not path.is_file():
        raise MedxaiError(f"{path}: preprocessing file not found")
    try:
        values = _parse(path, path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise MedxaiError(f"{path}: not a text file") from err
    if not isinstance(values, dict):
        raise MedxaiError(f"{path}: expected a mapping of {', '.join(SPEC_KEYS)}")
    unknown = [key for key in values if key not in SPEC_KEYS]
    if unknown:
        raise MedxaiError(
            f"{path}: unknown key {unknown[0]!r} (expected some of {', '.join(SPEC_KEYS)})"
        )
    fields = _fields(path, values)
    if "mean" in fields or "std" in fields:
        if fields.setdefault("intensity", "custom") != "custom":
            raise MedxaiError(
                f"{path}: mean/std go with intensity custom, not {values['intensity']!r}"
            )
    if fields.get("channels", 1) not in (1, 3):
        raise MedxaiError(f"{path}: channels must be 1 or 3, got {fields['channels']}")
    prep = Preprocessing(**fields)
    try:
        prep.check()
    except MedxaiError as err:
        raise MedxaiError(f"{path}: {err}") from err
    classes = _names(path, values["classes"]) if "classes" in values else None
    return PreprocessingFile(prep, classes)


def check_classes(classes: Iterable[str], source: str) -> tuple[str, ...]:
    """Class names as a tuple: two at least, none twice."""
    names = tuple(classes)
    if len(names) < 2 or len(set(names)) != len(names):
        raise MedxaiError(f"{source}: name two or more distinct classes, got {list(names)}")
    return names


# -- ONNX ------------------------------------------------------------------------------------
def _providers(device: torch.device) -> list[str]:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(path: Path, device: torch.device):
    import onnxruntime as ort

    if not path.is_file():
        raise MedxaiError(f"{path}: ONNX file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # share the cores as torch does
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=_providers(device))
    except Exception as err:  # ONNX Runtime raises its own types for corrupt or foreign files
        raise MedxaiError(f"{path}: not a readable ONNX model ({_first_line(err)})") from err


class OnnxClassifier(nn.Module):
    """An ONNX classifier as a forward-only nn.Module (ONNX Runtime; no parameters, no
    autograd): forward(x) runs the session on x's values and returns float scores on x's
    device. A batch dimension fixed in the file is served in chunks of that size (the last
    one padded)."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path, torch.device(device))
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [tuple(i.shape) for i in inputs]
            raise MedxaiError(
                f"{self.path}: expected one (batch, channels, height, width) input, got {shapes}"
            )
        self.input_name = inputs[0].name
        self.input_shape = tuple(
            d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape
        )
        if inputs[0].type not in _ONNX_TYPES:
            raise MedxaiError(f"{self.path}: input type {inputs[0].type} is not a float tensor")
        self.input_type = _ONNX_TYPES[inputs[0].type]
        self.provider = self.session.get_providers()[0]

    def __deepcopy__(self, memo: dict) -> OnnxClassifier:
        """A copy sharing the session (no forward changes it; it cannot be copied)."""
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = value if key == "session" else copy.deepcopy(value, memo)
        return clone

    def _run(self, array: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.session.run(None, {self.input_name: array})[0])
        except Exception as err:  # shape or type refused by the model
            raise MedxaiError(
                f"{self.path}: ONNX Runtime failed on a {array.shape} batch ({_first_line(err)})"
            ) from err

    def _run_fixed(self, array: np.ndarray, batch: int) -> np.ndarray:
        outs = []
        for start in range(0, len(array), batch):
            part = array[start : start + batch]
            n = len(part)
            if n < batch:
                part = np.concatenate([part, np.repeat(part[-1:], batch - n, axis=0)])
            outs.append(self._run(part)[:n])
        return np.concatenate(outs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=self.input_type)
        batch = self.input_shape[0]
        out = self._run(array) if batch is None else self._run_fixed(array, batch)
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=dtype)


# -- loading ---------------------------------------------------------------------------------
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
    def eager(self) -> bool:
        """A Python nn.Module: forward hooks and per-layer re-initialisation work on it (the
        CAM methods and the model-randomisation sanity check need them)."""
        return self.kind in ("checkpoint", "import")

    @property
    def retrainable(self) -> bool:
        """Whether `fresh_model` can rebuild its architecture with fresh weights."""
        return self.eager

    def supported(self, methods: Iterable[str]) -> tuple[list[str], list[str]]:
        """(the methods that run on this model, one note per method left out)."""
        return supported_methods(
            methods, self.gradients, self.target_layer is not None,
            no_gradients=_NO_GRADIENTS.get(self.kind, "the model gives no input gradients"),
            no_target_layer=_NO_LAYER.get(self.kind, "none found (give --target-layer)"),
        )  # fmt: skip

    def with_target_layer(self, name: str | None) -> LoadedModel:
        """The same model with the CAM layer `name` (None: unchanged); a name the module does
        not have, or a model that runs no hooks, is an error."""
        if name is None:
            return self
        if not self.eager:
            raise MedxaiError(f"--target-layer {name}: {_NO_LAYER[self.kind]}")
        find_target_layer(self.module, torch.empty(0), name)  # the name check and its message
        return replace(self, target_layer=name)


_NO_GRADIENTS = {"onnx": "an ONNX model runs forward only"}
_NO_LAYER = {
    "torchscript": "a TorchScript model runs no forward hooks on its layers",
    "onnx": "an ONNX model has no layers to hook",
}


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


def _load_module(source: ModelSource, device: torch.device) -> nn.Module:
    if source.kind == "onnx":
        return OnnxClassifier(source.location, device)
    if source.kind == "import":
        module = zoo.build_imported(source.location)
        if source.weights is not None:
            zoo.load_strict(module, zoo.load_weights_file(source.weights), str(source.weights))
        return module.to(device).eval()
    path = Path(source.location)
    if not path.is_file():
        raise MedxaiError(f"{path}: TorchScript file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise MedxaiError(
            f"{path}: not a readable TorchScript file ({_first_line(err)}); write one with "
            "torch.jit.save(torch.jit.trace(model, example), path)"
        ) from err
    return module.eval()


def _check_fixed_input(module: nn.Module, prep: Preprocessing, source: ModelSource) -> None:
    """An ONNX file's fixed (C, H, W) must be what the preprocessing gives."""
    fixed = getattr(module, "input_shape", None)
    if fixed is None:
        return
    given = (prep.channels, prep.image_size, prep.image_size)
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
    grad = source.kind != "onnx"
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


def _cam_layer(module: nn.Module, spec: ModelSpec, kind: str, device: torch.device) -> str | None:
    """The zoo's CAM layer for its architectures; the automatic search for other eager
    modules (None where it finds no 4-D output); None for TorchScript and ONNX."""
    if kind not in ("checkpoint", "import"):
        return None
    if not zoo.is_imported(spec.name) and kind == "checkpoint":
        return zoo.target_layer(spec.name)
    try:
        return find_target_layer(module, blank_input(spec.preprocessing, device))
    except MedxaiError:
        return None


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


def _from_checkpoint(
    source: ModelSource, classes: Iterable[str] | None, given: Preprocessing | None,
    device: torch.device,
) -> LoadedModel:  # fmt: skip
    """A medxai checkpoint: its own classes and preprocessing (others given must agree)."""
    module, spec = load_checkpoint(source.location, device)
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
    layer = _cam_layer(module, spec, source.kind, device)
    return LoadedModel(source.kind, module, spec, True, layer, _describe(source, module, spec))


def load_user_model(
    source: ModelSource,
    classes: Iterable[str] | None,
    device: torch.device | str = "cpu",
    *,
    preprocessing: Preprocessing | None = None,
    default_classes: Iterable[str] | None = None,
    numbered: bool = False,
) -> LoadedModel:
    """The user's model, checked, with its spec, what it supports and a one-line description.

    Classes, for every kind but a checkpoint (whose own are kept; `classes` must agree):
    `classes` (--classes), else the preprocessing file's, else `default_classes` (e.g. the
    dataset's labels), else with `numbered` "0".."K-1" for the K outputs; else an error.
    `preprocessing`: the command's own (from its options) when the source has no file; by
    default Preprocessing() (224 px, 1 channel, per-image standardisation). The output
    width must equal the number of classes (one forward pass on a blank image).
    """
    device = torch.device(device)
    if source.kind == "checkpoint":
        return _from_checkpoint(source, classes, preprocessing, device)
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
    module = _load_module(source, device)
    _check_fixed_input(module, prep, source)
    width, gradients = _probe(module, prep, device, source)
    names = names or tuple(str(k) for k in range(width))
    check_width(width, names, source.label)
    spec = ModelSpec(spec_name(source), names, prep)
    layer = _cam_layer(module, spec, source.kind, device)
    return LoadedModel(source.kind, module, spec, gradients, layer, _describe(source, module, spec))


# -- retraining ------------------------------------------------------------------------------
def spec_name(source: ModelSource) -> str:
    """The ModelSpec name: `import:package.module:factory` (rebuildable), `torchscript:FILE`
    or `onnx:FILE` (not rebuildable), or a checkpoint's own architecture name."""
    if source.kind == "checkpoint":
        return str(read_checkpoint(source.location)["model"])
    if source.kind == "import":
        return zoo.IMPORT_PREFIX + source.location
    return f"{source.kind}:{source.location}"


def architecture_name(source: ModelSource) -> str:
    """The architecture `--retrain` rebuilds with fresh weights: a zoo name or
    `import:package.module:factory` (what TrainConfig.model takes); TorchScript and ONNX
    files hold no rebuildable architecture (an error)."""
    if source.kind in ("torchscript", "onnx"):
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
