"""Build any supported classifier by name, optionally from a local weights file.

Nothing is downloaded: `weights=` is a state-dict file on disk (e.g. torchvision's
ImageNet weights). A classifier whose shape does not fit `num_classes` is left freshly
initialised (fine-tuning); a 3-channel first convolution is averaged down to 1 channel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torchvision
from monai.networks.nets import DenseNet121
from torch import nn

from medxai.data.imagefolder import NaturalPreprocessing
from medxai.errors import MedxaiError
from medxai.models.covidnet import WIDTHS, COVIDNet
from medxai.models.lite import build_efficientnet_lite0


def _torchvision(builder: Callable[..., nn.Module], head: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        model = builder(weights=None)
        old = model.get_submodule(head)
        _set_submodule(model, head, nn.Linear(old.in_features, num_classes))
        return model

    return build


BUILDERS: dict[str, tuple[Callable[[int], nn.Module], str, str]] = {
    # name: (builder taking num_classes, first conv, target layer for CAMs)
    "resnet18": (_torchvision(torchvision.models.resnet18, "fc"), "conv1", "layer4"),
    "resnet50": (_torchvision(torchvision.models.resnet50, "fc"), "conv1", "layer4"),
    "densenet121": (
        _torchvision(torchvision.models.densenet121, "classifier"),
        "features.conv0",
        "features.norm5",
    ),
    "densenet201": (
        _torchvision(torchvision.models.densenet201, "classifier"),
        "features.conv0",
        "features.norm5",
    ),
    "vgg19": (_torchvision(torchvision.models.vgg19, "classifier.6"), "features.0", "features.36"),
    # transform_input=True: torchvision's ImageNet Inception weights expect it (ported from TF).
    "inception_v3": (
        _torchvision(
            partial(torchvision.models.inception_v3, init_weights=False, transform_input=True),
            "fc",
        ),
        "Conv2d_1a_3x3.conv",
        "Mixed_7c",
    ),
    "efficientnet-lite0": (build_efficientnet_lite0, "_conv_stem", "_head_act"),
    "monai-densenet121": (
        lambda n: DenseNet121(spatial_dims=2, in_channels=3, out_channels=n),
        "features.conv0",
        "features.norm5",
    ),
    **{
        name: ((lambda n, v=name: COVIDNet(v, n, 3)), "features.stem.0", "features.stage4")
        for name in WIDTHS
    },
}
MODEL_NAMES = tuple(BUILDERS)
HEAD_PREFIXES = ("fc", "classifier", "_fc", "AuxLogits")  # layers fine-tuning may reshape


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def target_layer(name: str) -> str:
    """The module name whose activations CAM methods use for this architecture."""
    return BUILDERS[_check_name(name)][2]


def head_layer(name: str) -> str:
    """The module name of the output layer (what COCO fine-tuning trains)."""
    heads = {"vgg19": "classifier.6", "efficientnet-lite0": "_fc"}
    return heads.get(_check_name(name), "classifier" if "densenet" in name else "fc")


def natural_preprocessing(name: str) -> NaturalPreprocessing:
    """Standard ImageNet evaluation input per model: 256 -> 224 crop, Inception 342 -> 299,
    EfficientNet-Lite normalised (x - 127) / 128 as in its TF code (checked: the shipped
    weights are more confident on real photographs with it than with ImageNet mean/std)."""
    if _check_name(name) == "inception_v3":
        return NaturalPreprocessing(crop=299, resize=342)
    if name == "efficientnet-lite0":
        return NaturalPreprocessing(normalise="lite")
    return NaturalPreprocessing()


def _check_name(name: str) -> str:
    if name not in BUILDERS:
        raise MedxaiError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return name


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


def _load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor whose name and shape fit; the classifier may differ, nothing else."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected:
        raise MedxaiError(
            f"{source}: weights do not fit this architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    head_only = all(k.split(".")[0] in HEAD_PREFIXES for k in mismatched)
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
    seed: int | None = None,
) -> nn.Module:
    """A model by name; `weights` is a local state-dict file for the 3-channel architecture."""
    builder, first_conv, _ = BUILDERS[_check_name(name)]
    if num_classes < 2:
        raise MedxaiError(f"num_classes must be at least 2, got {num_classes}")
    if seed is not None:
        torch.manual_seed(seed)
    model = builder(num_classes)
    if weights is not None:
        _load_matching(model, load_weights_file(weights), str(weights))
    _adapt_first_conv(model, first_conv, in_channels)
    return model
