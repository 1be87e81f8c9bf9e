"""The folded, channels-last inference copy of a model, and the runner swapped onto it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.fx.experimental.optimization import fuse
from torch.profiler import record_function

from medxai.device import conv_layout
from medxai.explain.base import ModelRunner


def _has_hooks(model: nn.Module) -> bool:
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in model.modules()
    )


def inference_copy(model: nn.Module, probe: Tensor) -> nn.Module | None:
    """A faster copy of `model` (in eval mode), for scores and input gradients; or None.

    Each batch norm is folded into the convolution before it (a `torch.fx` trace; a model
    that already is a `torch.fx.GraphModule`, such as onnx2torch's, is folded on its own
    graph, since its modules' Python control flow cannot be traced again), and on a
    CPU the weights are stored channels-last: covidnet-s at 224 px runs a forward 2x and a
    forward with its input gradient 2.3x faster (docs/benchmarks.md). None, so that the
    model itself is used, when the model has hooks (they are part of its behaviour), cannot
    be traced or copied, or the copy's output on `probe` differs from the model's by more
    than rounding (the check's two one-image forwards are not counted). The copy's
    parameters need no gradient.
    """
    if _has_hooks(model):
        return None
    try:
        graph = isinstance(model, torch.fx.GraphModule)
        copy = fuse(model, no_trace=graph)  # a deep copy; conv + BN pairs folded (eval mode)
        copy = copy.to(memory_format=conv_layout(probe.device))
        copy.requires_grad_(False)
        with torch.no_grad():
            out = copy(probe)
    except Exception:  # untraceable (Python control flow on tensors, ...): use the model
        return None
    with torch.no_grad():
        reference = model(probe)
    if not isinstance(out, Tensor) or not isinstance(reference, Tensor):
        return None
    if out.shape != reference.shape or not bool(torch.isfinite(reference).all()):
        return None
    atol = 1e-3 * float(reference.abs().max().clamp(min=1.0))
    return copy if torch.allclose(out, reference, rtol=1e-3, atol=atol) else None


@contextmanager
def faster(runner: ModelRunner, probe: Tensor, enabled: bool = True) -> Iterator[None]:
    """Within the block the runner runs `inference_copy` of its model when there is one.

    enabled=False (an explainer's or metric's `fast_copy=False`) keeps the model itself.
    """
    copy = None
    if enabled:
        with record_function("model copy"):
            copy = inference_copy(runner.model, probe)
    if copy is None:
        yield
        return
    original, runner.model = runner.model, copy
    try:
        yield
    finally:
        runner.model = original
