"""Target-layer lookup for the activation methods, and an owned activation hook."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from medxai.errors import MedxaiError

_LAYER_TYPES = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm)
_SHOWN = 12  # candidates listed in an error


def conv_candidates(model: nn.Module) -> list[str]:
    """Names of the convolution-like modules, in definition order: torch convolutions and
    any module holding its own weight of 4 or more dimensions (a foreign conv class)."""
    return [
        n
        for n, m in model.named_modules()
        if n
        and (
            isinstance(m, nn.modules.conv._ConvNd)
            or any(p.dim() >= 4 for p in m.parameters(recurse=False))
        )
    ]


def _listing(names: list[str]) -> str:
    """The last `_SHOWN` names, with how many more there are."""
    if not names:
        return "none found"
    shown = ", ".join(names[-_SHOWN:])
    more = len(names) - _SHOWN
    return f"{shown} (and {more} earlier)" if more > 0 else shown


def find_target_layer(model: nn.Module, images: Tensor, name: str | None = None) -> str:
    """Name of the module whose activations a CAM reads: `name` if given, else the last block.

    The default is found by a one-image forward probe: among convolutions, norms and
    container blocks (not the model itself) whose output is a 4-D tensor, the one that
    finishes last, preferring maps larger than 1x1. A block finishes after its children,
    so this gives ResNet50 `layer4`, torchvision DenseNet `features` (ending in norm5),
    VGG19 `features` (ending in features.36) and Inception v3 `Mixed_7c`.

    A TorchScript module raises: its compiled forward runs no Python hooks on submodules.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise MedxaiError(
            "a CAM reads its target layer through a forward hook, which a TorchScript module "
            "never runs; use a method without a target layer (gradient, ig, smoothgrad, rise, "
            "mask, igos, igos++) or the model's nn.Module"
        )
    modules = dict(model.named_modules())
    if name is not None:
        if name not in modules or name == "":
            raise MedxaiError(
                f"unknown target layer {name!r}; expected a module name of the model, "
                f"e.g. one of its convolution-like layers: {_listing(conv_candidates(model))}"
            )
        return name
    finished: list[tuple[str, bool]] = []

    def record(label: str):
        def hook(module: nn.Module, args: object, out: object) -> None:
            if isinstance(out, Tensor) and out.dim() == 4:
                finished.append((label, out.shape[-2] * out.shape[-1] > 1))

        return hook

    handles = [
        m.register_forward_hook(record(n))
        for n, m in modules.items()
        if n and (isinstance(m, _LAYER_TYPES) or len(m._modules) > 0)
    ]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for h in handles:
            h.remove()
    if not finished:
        raise MedxaiError(
            "no convolution, norm or block with a 4-D output found; give target_layer by name, "
            f"e.g. one of the convolution-like layers: {_listing(conv_candidates(model))}"
        )
    spatial = [n for n, big in finished if big]
    return (spatial or [n for n, _ in finished])[-1]


@contextmanager
def capture(model: nn.Module, name: str) -> Iterator[list[Tensor]]:
    """Collects the outputs of module `name` during forwards; the hook is removed on exit."""
    store: list[Tensor] = []

    def hook(module: nn.Module, args: object, out: object) -> None:
        if not isinstance(out, Tensor) or out.dim() != 4:
            raise MedxaiError(f"target layer {name!r} must output a (N, K, h, w) tensor")
        store.append(out)

    handle = dict(model.named_modules())[name].register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
