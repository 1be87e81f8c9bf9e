"""Build any supported classifier by name, optionally from a local weights file.

Nothing is downloaded: `weights=` is a state-dict file on disk (e.g. torchvision's
ImageNet weights). A classifier whose shape does not fit `num_classes` is left freshly
initialised (fine-tuning); a 3-channel first convolution is averaged down to 1 channel.

A name `import:package.module:factory` is the user's own architecture: `factory()` is
called with no arguments and must build the model for its classes and channels; a weights
file then loads strictly (every name and shape must match).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torchvision
from monai.networks.nets import DenseNet121
from torch import nn

from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.models.covidnet import WIDTHS, COVIDNet
from medxai.models.lite import build_efficientnet_lite0


@dataclass(frozen=True)
class Architecture:
    """What the rest of medxai needs to know of one architecture, declared once."""

    build: Callable[[int], nn.Module]  # num_classes -> a fresh model (3 input channels)
    first_conv: str  # adapted to 1 channel for grayscale input
    target_layer: str  # whose activations CAM methods use
    head_layer: str  # the output layer: reshaped for num_classes, trained by fine-tuning
    other_heads: tuple[str, ...] = ()  # further layers a weights file may shape differently


def _torchvision(builder: Callable[..., nn.Module], head: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        model = builder(weights=None)
        old = model.get_submodule(head)
        _set_submodule(model, head, nn.Linear(old.in_features, num_classes))
        return model

    return build


def _tv(builder: Callable[..., nn.Module], first: str, target: str, head: str, *others: str):
    return Architecture(_torchvision(builder, head), first, target, head, others)


ARCHITECTURES: dict[str, Architecture] = {
    "resnet18": _tv(torchvision.models.resnet18, "conv1", "layer4", "fc"),
    "resnet50": _tv(torchvision.models.resnet50, "conv1", "layer4", "fc"),
    "densenet121": _tv(
        torchvision.models.densenet121, "features.conv0", "features.norm5", "classifier"
    ),
    "densenet201": _tv(
        torchvision.models.densenet201, "features.conv0", "features.norm5", "classifier"
    ),
    "vgg19": _tv(torchvision.models.vgg19, "features.0", "features.36", "classifier.6"),
    # transform_input=True: torchvision's ImageNet Inception weights expect it (ported from TF).
    "inception_v3": _tv(
        partial(torchvision.models.inception_v3, init_weights=False, transform_input=True),
        "Conv2d_1a_3x3.conv",
        "Mixed_7c",
        "fc",
        "AuxLogits.fc",
    ),  # fmt: skip
    "efficientnet-lite0": Architecture(build_efficientnet_lite0, "_conv_stem", "_head_act", "_fc"),
    "monai-densenet121": Architecture(
        lambda n: DenseNet121(spatial_dims=2, in_channels=3, out_channels=n),
        "features.conv0",
        "features.norm5",
        "class_layers.out",
    ),  # fmt: skip
    **{
        name: Architecture(
            (lambda n, v=name: COVIDNet(v, n, 3)),
            "features.stem.0",
            "features.stage4",
            "classifier.6",
        )  # fmt: skip
        for name in WIDTHS
    },
}
MODEL_NAMES = tuple(ARCHITECTURES)
IMPORT_PREFIX = "import:"  # + package.module:factory, the user's own architecture


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def is_imported(name: str) -> bool:
    """Whether `name` is an `import:package.module:factory` architecture."""
    return name.startswith(IMPORT_PREFIX)


def import_factory(location: str) -> Callable[[], object]:
    """`package.module:factory` → the factory (a function or class), imported."""
    module_name, _, attribute = location.partition(":")
    if not module_name or not attribute:
        raise MedxaiError(f"--model-import expects package.module:factory, got {location!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise MedxaiError(f"cannot import {location!r}: {err}") from err
    if not callable(factory):
        raise MedxaiError(f"{location}: not callable (expected a factory returning the model)")
    return factory


def build_imported(location: str) -> nn.Module:
    """`factory()` of `package.module:factory`: the model it returns, freshly built."""
    factory = import_factory(location)
    try:
        model = factory()
    except Exception as err:  # the user's code may raise anything
        failure = f"{type(err).__name__}: {err}"
        raise MedxaiError(f"{location}(): the factory failed ({failure})") from err
    if not isinstance(model, nn.Module):
        raise MedxaiError(f"{location}() returned {type(model).__name__}, not a torch nn.Module")
    return model


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model`: every name and shape must match (a few keys listed if not)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        found = [
            f"{what} {keys[:3]}{' …' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected),
                               ("other shapes for", shapes))
            if keys
        ]  # fmt: skip
        raise MedxaiError(f"{source}: weights do not fit the model ({'; '.join(found)})")
    model.load_state_dict(state)


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise MedxaiError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return ARCHITECTURES[name]


def target_layer(name: str) -> str:
    """The module name whose activations CAM methods use for this architecture."""
    return architecture(name).target_layer


def head_layer(name: str) -> str:
    """The module name of the output layer (what COCO fine-tuning trains)."""
    return architecture(name).head_layer


def natural_preprocessing(name: str) -> Preprocessing:
    """Standard ImageNet evaluation input per model: 256 -> 224 crop, Inception 342 -> 299,
    EfficientNet-Lite normalised (x - 127) / 128 as in its TF code (checked: the shipped
    weights are more confident on real photographs with it than with ImageNet mean/std)."""
    if architecture(name) is ARCHITECTURES["inception_v3"]:
        return Preprocessing(image_size=299, channels=3, intensity="imagenet", resize=342)
    intensity = "lite" if name == "efficientnet-lite0" else "imagenet"
    return Preprocessing(image_size=224, channels=3, intensity=intensity, resize=256)


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (or a checkpoint holding one under 'state_dict'/'model')."""
    path = Path(path)
    if not path.is_file():
        raise MedxaiError(f"{path}: weights file not found")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise MedxaiError(f"{path}: not a readable PyTorch weights file ({err})") from err
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise MedxaiError(f"{path}: does not hold a state dict of tensors")
    return loaded


def _load_matching(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, heads: tuple[str, ...]
) -> None:
    """Load every tensor whose name and shape fit; the output layers may differ, nothing else."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected:
        raise MedxaiError(
            f"{source}: weights do not fit this architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    head_only = all(k.rpartition(".")[0] in heads for k in mismatched)
    if mismatched and not head_only:
        raise MedxaiError(f"{source}: weights have other shapes for {mismatched[:3]}")
    model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)


def _adapt_first_conv(model: nn.Module, name: str, in_channels: int) -> None:
    conv = model.get_submodule(name)
    if in_channels == conv.in_channels:
        return
    if in_channels != 1:
        raise MedxaiError(f"in_channels must be 1 or {conv.in_channels}, got {in_channels}")
    new = copy.deepcopy(conv)  # keeps the class, so "same"-padding convolutions stay so
    new.in_channels = 1
    new.weight = nn.Parameter(conv.weight.detach().mean(dim=1, keepdim=True))
    _set_submodule(model, name, new)


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 1,
    weights: str | Path | None = None,
) -> nn.Module:
    """A model by name; `weights` is a local state-dict file for the 3-channel architecture.

    An `import:package.module:factory` name calls the factory (which fixes the classes and
    channels itself: `ModelSpec.build` checks the output width) and loads `weights` strictly.
    Fresh layers draw from torch's global RNG: seed it first for a reproducible model.
    """
    arch = None if is_imported(name) else architecture(name)
    if num_classes < 2:
        raise MedxaiError(f"num_classes must be at least 2, got {num_classes}")
    if arch is None:
        model = build_imported(name[len(IMPORT_PREFIX) :])
        if weights is not None:
            load_strict(model, load_weights_file(weights), str(weights))
        return model
    model = arch.build(num_classes)
    if weights is not None:
        heads = (arch.head_layer, *arch.other_heads)
        _load_matching(model, load_weights_file(weights), str(weights), heads)
    _adapt_first_conv(model, arch.first_conv, in_channels)
    return model
