"""Model-randomisation sanity check (Adebayo et al. 2018): do the maps depend on the weights?

On a deep copy of the model (the caller's model is never touched) the layers are
re-initialised with their own `reset_parameters`, cascading from the output back, each
seeded on its own (the global RNG is left as it was). At each depth the maps are made again
and compared, image by image, with the maps of the trained model: Spearman rank correlation
with and without absolute values, SSIM and top-k overlap. A map that is constant on the
randomised model (or on the trained one) is *degenerate*: it ranks no pixel, so its low
similarity shows nothing, and it is left out of the figures. The outcome, read once every
layer above and including the CAM target layer (all layers for other methods) is random:
"degenerate" when more than half of the films are degenerate there, else "insensitive" when
the maps stay similar (mean |map| Spearman over the other films > 0.5), else
"model-sensitive". The mean comes with a percentile bootstrap interval over films.
Details: docs/algorithms.md, Model-randomisation sanity check.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter
from scipy.stats import rankdata
from torch import Tensor, nn

from medxai.errors import MedxaiError
from medxai.explain.base import (
    FLAT_SPAN,
    Explainer,
    check_float,
    check_int,
    model_guard,
    validate_inputs,
)
from medxai.explain.cam import CamExplainer
from medxai.statistics.bootstrap import Interval, bootstrap_mean

THRESHOLD = 0.5  # mean Spearman (of |maps|) above which maps count as "stayed similar"
SSIM_WINDOW = 7  # scikit-image's default window, uniform, sample covariance
DEFAULT_DEPTHS = 6  # geometric steps of the cascade when `depths` is None
# A map on the randomised model is (nearly) constant, "degenerate", when its max - min is at
# most DEGENERATE_SPAN of the trained map's. Below 1% of that range its variations are under
# SSIM's stabilising constant c2 = (0.03 * range)^2, so SSIM itself reads it as a flat field,
# and on the trained map's colour scale it is one colour (under 3 of 256 levels): the method
# found (almost) nothing on the random model, and the low rank correlation of that residue
# shows nothing about the weights. Most methods min-max normalise their maps, which then span
# exactly 1 or 0, so the bound only decides for unnormalised maps (SIGCAM, the I-GOS family),
# whose amplitude collapses when the model no longer responds to the perturbation.
DEGENERATE_SPAN = 1e-2
DEGENERATE_SHARE = 0.5  # above this share of degenerate films the outcome is "degenerate"
SENSITIVE, INSENSITIVE, DEGENERATE = "model-sensitive", "insensitive", "degenerate"


def outcome_of(model_sensitive: bool, degenerate: bool) -> str:
    """The check's verdict in words: DEGENERATE (the maps on the random model are constant:
    the check shows nothing), else SENSITIVE or INSENSITIVE."""
    return DEGENERATE if degenerate else SENSITIVE if model_sensitive else INSENSITIVE


@dataclass(frozen=True)
class DepthSimilarity:
    """Maps after randomising the top `depth` layers against the trained model's maps.

    layers: the layers randomised so far, output first. Figures are means over the images
    that are not degenerate (NaN when none is); spearman: rank correlation of the maps as
    returned; spearman_abs: of their absolute values (equal for medxai's non-negative maps),
    with its percentile bootstrap interval over those images (`spearman_abs_ci`).
    spearman_abs_per_image: every image's, as computed (a constant map correlates 0);
    degenerate_per_image: True where the map on this model (or the trained model's) is
    constant, so the comparison shows nothing (`degenerate_pairs`). no_map: the images for
    which the method found no map on this model (`Explainer.no_map`).
    """

    depth: int
    layers: tuple[str, ...]
    spearman: float
    spearman_abs: float
    ssim: float
    top_k_overlap: float
    spearman_abs_per_image: tuple[float, ...]
    no_map: int = 0
    degenerate_per_image: tuple[bool, ...] = ()
    spearman_abs_ci: Interval | None = None  # None: no image compared

    @property
    def degenerate(self) -> int:
        """Images whose comparison is degenerate at this depth."""
        return sum(self.degenerate_per_image)

    @property
    def degenerate_share(self) -> float:
        """Their share of the images (0 in a record without per-image flags)."""
        return self.degenerate / max(1, len(self.degenerate_per_image))


@dataclass(frozen=True, eq=False)
class SanityResult:
    """The cascade for one method. `degenerate`: more than DEGENERATE_SHARE of the images
    are degenerate at `verdict_depth`; `model_sensitive`: not degenerate and the mean
    spearman_abs there is at most `threshold` (`outcome` says which in words). Maps
    (N, H, W): `original_maps` of the trained model, `first_maps` and `last_maps` at the
    first and last depth of `depths`."""

    method: str
    layers: tuple[str, ...]  # every randomisable layer, output first (the cascade order)
    fixed_layers: tuple[str, ...]  # layers with parameters but no reset_parameters: kept
    depths: tuple[DepthSimilarity, ...]
    verdict_depth: int
    verdict_layer: str | None  # the CAM target layer, None for other methods
    threshold: float
    model_sensitive: bool
    degenerate: bool
    top_k: float
    seed: int
    seconds: float
    original_maps: np.ndarray
    first_maps: np.ndarray
    last_maps: np.ndarray

    @property
    def verdict(self) -> DepthSimilarity:
        """The figures at the verdict depth."""
        return next(d for d in self.depths if d.depth == self.verdict_depth)

    @property
    def outcome(self) -> str:
        return outcome_of(self.model_sensitive, self.degenerate)


@dataclass(frozen=True)
class _Layers:
    order: tuple[str, ...]  # randomisable layers in forward order
    fixed: tuple[str, ...]
    target_start: int | None  # layers run before the target layer starts


def _probe(model: nn.Module, images: Tensor, target: str | None) -> _Layers:
    """Layers with their own parameters, in the order a one-image forward first runs them."""
    modules = dict(model.named_modules())
    owners = {n: m for n, m in modules.items() if any(True for _ in m.parameters(recurse=False))}
    seen: list[str] = []
    start: list[int] = []

    def record(name: str):
        def hook(module: nn.Module, args: object, out: object) -> None:
            if name not in seen:
                seen.append(name)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in owners.items()]
    if target is not None:
        handles.append(
            modules[target].register_forward_pre_hook(lambda m, a: start.append(len(seen)))
        )
    try:
        with model_guard(model), torch.no_grad():
            model(images[:1])
    finally:
        for h in handles:
            h.remove()
    resettable = tuple(n for n in seen if callable(getattr(owners[n], "reset_parameters", None)))
    fixed = tuple(n for n in seen if n not in resettable)
    first = None if target is None else (start[0] if start else len(seen))
    before = None if first is None else sum(n in resettable for n in seen[:first])
    return _Layers(resettable, fixed, before)


def _layer_seed(seed: int, position: int) -> int:
    """The seed of the layer at cascade `position`: the same whichever depths are run."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


def _reset(module: nn.Module, seed: int) -> None:
    """module.reset_parameters() under its own seed; the global RNG state is restored."""
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        module.reset_parameters()


def _depths(depths: Sequence[int] | None, total: int, verdict: int) -> tuple[int, ...]:
    """Sorted cascade depths to run, the verdict depth always among them."""
    if depths is None:
        steps = min(total, DEFAULT_DEPTHS)
        depths = np.unique(np.round(np.geomspace(1, total, steps)).astype(int)).tolist()
    chosen = {int(d) for d in depths}
    bad = sorted(d for d in chosen if not 1 <= d <= total)
    if bad or any(isinstance(d, bool) or not isinstance(d, int | np.integer) for d in depths):
        raise MedxaiError(
            f"depths must be integers in 1..{total} (layers randomised from the output); "
            f"got {list(depths)}"
        )
    return tuple(sorted(chosen | {verdict}))


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rank correlation per row of (N, P) arrays (average ranks for ties); 0 where a row
    is constant."""
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    out = np.zeros(a.shape[0])
    ok = denom > 0
    out[ok] = (ra * rb).sum(1)[ok] / denom[ok]
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean SSIM of two 2-D maps as scikit-image's `structural_similarity` computes it by
    default: 7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, borders cropped."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    n = SSIM_WINDOW**2
    mean = [uniform_filter(v, SSIM_WINDOW) for v in (a, b, a * a, b * b, a * b)]
    ux, uy, uxx, uyy, uxy = mean
    norm = n / (n - 1)
    vx, vy, vxy = norm * (uxx - ux * ux), norm * (uyy - uy * uy), norm * (uxy - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def _top_overlap(a: np.ndarray, b: np.ndarray, share: float) -> np.ndarray:
    """|top-k(a) & top-k(b)| / k per row, k = share of the pixels (at least 1)."""
    k = max(1, int(share * a.shape[1]))
    ta = np.argpartition(-a, k - 1, axis=1)[:, :k]
    tb = np.argpartition(-b, k - 1, axis=1)[:, :k]
    return np.array([np.intersect1d(x, y).size / k for x, y in zip(ta, tb, strict=True)])


def degenerate_pairs(original: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """(N,) bool for (N, P) rows: the map on the randomised model spans at most
    DEGENERATE_SPAN of the trained map's range, or the trained map is itself flat
    (FLAT_SPAN): either way one map ranks no pixel and the comparison shows nothing."""
    reference = np.ptp(original, axis=1)
    return (np.ptp(maps, axis=1) <= DEGENERATE_SPAN * reference) | (reference <= FLAT_SPAN)


def _mean(values: np.ndarray, keep: np.ndarray) -> float:
    return float(values[keep].mean()) if keep.any() else float("nan")


@dataclass(frozen=True)
class _Compare:
    """How the maps of one depth are compared with the trained model's."""

    top_k: float  # share of pixels in the top-k overlap
    n_bootstrap: int
    seed: int


def _similarity(
    original: np.ndarray,
    maps: np.ndarray,
    depth: int,
    layers: tuple[str, ...],
    compare: _Compare,
    no_map: int = 0,
) -> DepthSimilarity:
    """Per-image figures of (N, H, W) maps against the originals, averaged over the images
    that are not degenerate."""
    a, b = original.reshape(len(original), -1), maps.reshape(len(maps), -1)
    degenerate = degenerate_pairs(a, b)
    keep = ~degenerate
    rho = _spearman(np.abs(a), np.abs(b))
    spans = np.ptp(a, axis=1)
    pairs = zip(original, maps, spans, strict=True)
    ssims = np.array([ssim(x, y, float(r) if r > 0 else 1.0) for x, y, r in pairs])
    mean, interval = bootstrap_mean(rho[keep], compare.n_bootstrap, seed=compare.seed)
    ci = interval if keep.any() else None
    return DepthSimilarity(
        depth=depth,
        layers=layers,
        spearman=_mean(_spearman(a, b), keep),
        spearman_abs=mean,
        ssim=_mean(ssims, keep),
        top_k_overlap=_mean(_top_overlap(a, b, compare.top_k), keep),
        spearman_abs_per_image=tuple(float(v) for v in rho),
        no_map=no_map,
        degenerate_per_image=tuple(bool(v) for v in degenerate),
        spearman_abs_ci=ci,
    )


def _as_numpy(maps: Tensor) -> np.ndarray:
    return maps.detach().float().cpu().numpy()[:, 0]  # (N, H, W)


def randomisation_check(
    model: nn.Module,
    images: Tensor,
    targets: Tensor | int | list[int],
    explainer: Explainer,
    *,
    depths: Sequence[int] | None = None,
    seed: int = 0,
    top_k: float = 0.05,
    n_bootstrap: int = 1000,
) -> SanityResult:
    """Cascading model randomisation (Adebayo et al. 2018) for `explainer` on `images`.

    depths: how many layers (output first, see `SanityResult.layers`) are random at each
    comparison; None takes up to 6 geometric steps from 1 to all; the verdict depth is always
    added. seed: re-initialisation seed (layer i gets its own, whatever the depths), and the
    bootstrap's. top_k: the share of pixels whose overlap is reported. n_bootstrap: resamples
    of the images for the interval of the mean Spearman. The explainer runs 1 + len(depths)
    times.
    """
    images, targets = validate_inputs(images, targets)
    top_k = check_float("top_k", top_k, 1e-9, 1.0)
    compare = _Compare(top_k, check_int("n_bootstrap", n_bootstrap, 1), seed)
    start = time.perf_counter()
    work = copy.deepcopy(model)  # the caller's model is never touched
    original = _as_numpy(explainer(work, images, targets))
    target = explainer.layer if isinstance(explainer, CamExplainer) else None
    found = _probe(work, images, target)
    cascade = found.order[::-1]  # output first
    if not cascade:
        raise MedxaiError("the model has no layer with reset_parameters to randomise")
    total = len(cascade)
    verdict = total if found.target_start is None else max(1, total - found.target_start)
    steps = _depths(depths, total, verdict)
    modules = dict(work.named_modules())
    done, results, kept = 0, [], {}
    for depth in steps:
        for position in range(done, depth):
            _reset(modules[cascade[position]], _layer_seed(seed, position))
        done = depth
        maps = _as_numpy(explainer(work, images, targets))
        if depth in (steps[0], steps[-1]):
            kept[depth] = maps
        missing = sum(why is not None for why in explainer.no_map)
        results.append(_similarity(original, maps, depth, cascade[:depth], compare, missing))
    at_verdict = next(r for r in results if r.depth == verdict)
    degenerate = at_verdict.degenerate_share > DEGENERATE_SHARE
    return SanityResult(
        method=explainer.name,
        layers=cascade,
        fixed_layers=found.fixed,
        depths=tuple(results),
        verdict_depth=verdict,
        verdict_layer=target,
        threshold=THRESHOLD,
        model_sensitive=not degenerate and at_verdict.spearman_abs <= THRESHOLD,
        degenerate=degenerate,
        top_k=top_k,
        seed=seed,
        seconds=time.perf_counter() - start,
        original_maps=original,
        first_maps=kept[steps[0]],
        last_maps=kept[steps[-1]],
    )


def randomisable_layers(model: nn.Module, images: Tensor) -> tuple[str, ...]:
    """The layers `randomisation_check` re-initialises, output first; depth d randomises the
    first d of them. Found by a one-image forward on `images` (model left unchanged)."""
    return _probe(model, images, None).order[::-1]
