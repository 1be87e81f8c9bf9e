"""The Explainer contract kept in one place: validation, model guard, counting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from medxai.errors import MedxaiError, ModelOutputError
from medxai.models.checkpoint import eval_mode as model_guard  # every module in eval mode

GRADIENT_PASS = 3.0  # forward equivalents of a forward pass with its backward


class ModelRunner:
    """Runs the model on chunks, counts the images it sees, and watches for NaN/inf outputs.

    The finiteness flag stays on the device; `check()` is the one host sync, called by the
    explainers at points where they synchronise anyway.
    """

    def __init__(self, model: nn.Module, batch_size: int, softmax: bool = True) -> None:
        self.model = model
        self.batch_size = batch_size
        self.softmax = softmax
        self.images = 0
        self.forward_equivalents = 0
        self._bad: Tensor | None = None

    def logits(self, x: Tensor) -> Tensor:
        """Raw model output for one chunk, (B, C, H, W) -> (B, K)."""
        out = self.model(x)
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise MedxaiError(
                "model output must be a (batch, classes) tensor of scores; got "
                + (f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__)
            )
        self.images += x.shape[0]
        self.forward_equivalents += x.shape[0] * (GRADIENT_PASS if out.requires_grad else 1)
        bad = ~torch.isfinite(out.detach()).all()
        self._bad = bad if self._bad is None else self._bad | bad
        return out

    def scores(self, x: Tensor, targets: Tensor) -> Tensor:
        """p_c = softmax(model(x))[c], or the raw logit when softmax=False, (B,)."""
        out = self.logits(x)
        if self.softmax:
            out = torch.softmax(out, dim=1)
        return out.gather(1, targets.view(-1, 1)).squeeze(1)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Parameters need no gradient while only input gradients are taken: a backward then
        skips every weight gradient. The flags are restored after."""
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    def check(self) -> None:
        """Raises ModelOutputError if any output seen so far was NaN or infinite."""
        if self._bad is not None and bool(self._bad):
            raise ModelOutputError("model produced NaN or infinite scores; saliency undefined")


CPU_CHUNK_PIXELS = 20 * 224 * 224  # docs/benchmarks.md: larger CPU chunks run slower per row


def chunk_rows(batch_size: int, images: Tensor) -> int:
    """Rows per model chunk: `batch_size`, capped on a CPU at CPU_CHUNK_PIXELS of input.

    Measured on 2 CPU cores, EfficientNet-Lite0 at 224 px (folded copy): a forward with its
    input gradient costs 28 ms per image in chunks of 20 and 125 ms in chunks of 64, as the
    activations outgrow the caches and every chunk's buffers are fresh pages.
    """
    if images.device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_CHUNK_PIXELS // (images.shape[-2] * images.shape[-1])))


def chunks(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most `size` items covering 0..total-1, in order: the batches
    in which every method and metric sends its (image, variant) rows through the model."""
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def validate_inputs(images: Tensor, targets: Tensor | int | list[int]) -> tuple[Tensor, Tensor]:
    """Checks the contract's inputs: images (N, C, H, W) float, one integer target per sample."""
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise MedxaiError("images must be a float tensor of shape (N, C, H, W)")
    if images.shape[0] == 0:
        raise MedxaiError("images is an empty batch")
    targets = torch.as_tensor(targets, device=images.device)
    if targets.dim() == 0:
        targets = targets.expand(images.shape[0])
    if targets.dtype.is_floating_point or targets.shape != (images.shape[0],):
        raise MedxaiError(
            f"targets must be integer class indices, one per image ({images.shape[0]}); "
            f"got shape {tuple(targets.shape)}"
        )
    return images.detach(), targets.long()


def check_targets(logits: Tensor, targets: Tensor) -> None:
    """Targets must index the model's classes."""
    k = logits.shape[1]
    if bool(((targets < 0) | (targets >= k)).any()):
        raise MedxaiError(f"targets must lie in 0..{k - 1} (the model has {k} classes)")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """An integer parameter within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise MedxaiError(f"{name} must be an integer >= {low}; got {value!r}")
    if high is not None and value > high:
        raise MedxaiError(f"{name} must be an integer in {low}..{high}; got {value!r}")
    return value


def check_float(name: str, value: Any, low: float, high: float | None = None) -> float:
    """A real parameter within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise MedxaiError(f"{name} must be a number >= {low}; got {value!r}")
    if high is not None and value > high:
        raise MedxaiError(f"{name} must be a number in [{low}, {high}]; got {value!r}")
    return float(value)


def minmax(maps: Tensor) -> Tensor:
    """Per-map min-max normalisation to [0, 1]; a constant map becomes zeros, (N, 1, H, W)."""
    flat = maps.flatten(1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-30), torch.zeros_like(flat))
    return out.view_as(maps)


FLAT_SPAN = 1e-6  # a map whose values span no more than this ranks no pixel above another


def flat_maps(maps: Tensor) -> Tensor:
    """(N,) bool: the maps (N, 1, H, W) whose values are all equal, up to FLAT_SPAN."""
    flat = maps.flatten(1)
    return (flat.max(1).values - flat.min(1).values) <= FLAT_SPAN


NO_STEP = "its line search accepted no step, so the mask stayed where it started"
FLAT = "the map is constant, so it ranks no pixel above another"


def no_map_message(method: str, reason: str, subject: str = "image") -> str:
    """The line shown instead of a map that is no explanation."""
    return f"{method} found no map for this {subject}: {reason}"


class Explainer:
    """Base of every method: `explainer(model, images, targets) -> Tensor[N, 1, H, W]` in [0, 1].

    Subclasses implement `_explain(runner, images, targets)`; this class validates inputs,
    keeps the model in eval mode without changing it, times the call and fills `stats`
    (images through the model, per explained image, seconds, plus method figures) and
    `no_map`: per image, None when a map was found, else why not (a mask optimiser that never
    moved, or a constant map). Such a map is returned but is no explanation: callers report
    `no_map_message` instead of showing it.
    """

    name: ClassVar[str] = ""
    uses_softmax: ClassVar[bool] = True

    def __init__(self, *, batch_size: int = 64, seed: int = 0) -> None:
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)
        self.stats: dict[str, float] = {}
        self.no_map: tuple[str | None, ...] = ()
        self._extra: dict[str, float] = {}
        self._stuck: tuple[str | None, ...] | None = None  # per image, why it did not move

    def generator(self, device: torch.device) -> torch.Generator:
        """A fresh generator seeded with `seed`, on the images' device."""
        return torch.Generator(device=device).manual_seed(self.seed)

    def __call__(
        self, model: nn.Module, images: Tensor, targets: Tensor | int | list[int]
    ) -> Tensor:
        images, targets = validate_inputs(images, targets)
        runner = ModelRunner(model, self.batch_size, softmax=self.uses_softmax)
        self._extra, self._stuck = {}, None
        start = time.perf_counter()
        with model_guard(model):
            with torch.no_grad():
                check_targets(runner.logits(images[:1]), targets)
            runner.images = runner.forward_equivalents = 0
            maps = self._explain(runner, images, targets)
        runner.check()
        maps = maps.detach()
        if not bool(torch.isfinite(maps).all()):
            raise ModelOutputError(f"{self.name} produced a non-finite saliency map")
        maps = maps.clamp(0.0, 1.0)
        self.no_map = self._why_no_map(maps)
        n = images.shape[0]
        self.stats = {
            "images": float(n),
            "seconds": time.perf_counter() - start,
            "model_images": float(runner.images),
            "model_images_per_image": runner.images / n,
            "forward_equivalents_per_image": runner.forward_equivalents / n,
            "images_without_map": float(sum(r is not None for r in self.no_map)),
            **self._extra,
        }
        return maps

    def _why_no_map(self, maps: Tensor) -> tuple[str | None, ...]:
        stuck = self._stuck or (None,) * maps.shape[0]
        flat = flat_maps(maps).tolist()
        return tuple(s or (FLAT if f else None) for s, f in zip(stuck, flat, strict=True))

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_equivalents(self) -> float:
        """What one image's explanation will cost before it runs, in the runner's unit (a
        forward pass 1, a forward with a backward 3): `stats` measures the same afterwards.
        One gradient pass here; methods that do more say so."""
        return GRADIENT_PASS

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
