"""The perturbation core shared by Mask, I-GOS, iGOS++, SIGCAM and the causal metrics.

Notation (as in the iGOS++ paper): image I (model-normalised), baseline B, low-resolution mask M
(a LOW value marks an IMPORTANT pixel), U(M) bilinear upsampling, Phi(A, B, M) = A*M + B*(1-M).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx.experimental.optimization import fuse

from medxai.device import conv_layout
from medxai.explain.base import ModelRunner, chunk_rows, chunks


def blur_kernel_for(size: int) -> tuple[int, float]:
    """Blur kernel and sigma of the iGOS++ code: 51 below 500 px, then 151, then 201."""
    kernel = 51 if size < 500 else 151 if size < 1000 else 201
    return kernel, float(kernel - 1)


def _reflect_index(n: int, pad: int, device: torch.device) -> Tensor:
    # Reflect-101 (OpenCV's default border) for any pad, even pad >= n.
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def gaussian_blur(images: Tensor, kernel: int, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect-101 borders, (N, C, H, W) -> (N, C, H, W)."""
    n, c, h, w = images.shape
    pad = kernel // 2
    x = torch.arange(kernel, device=images.device, dtype=images.dtype) - pad
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    flat = images.reshape(n * c, 1, h, w)
    rows = flat.index_select(2, _reflect_index(h, pad, images.device))  # (N*C, 1, H+2p, W)
    flat = F.conv2d(rows, g.view(1, 1, kernel, 1))  # (N*C, 1, H, W)
    cols = flat.index_select(3, _reflect_index(w, pad, images.device))  # (N*C, 1, H, W+2p)
    flat = F.conv2d(cols, g.view(1, 1, 1, kernel))
    return flat.reshape(n, c, h, w)


def blurred_baseline(
    images: Tensor, kernel: int | None = None, sigma: float | None = None
) -> Tensor:
    """Blurred baseline B at model input size (kernel 51, sigma 50 below 500 px).

    Blurring the normalised image equals normalising the blurred image: the per-channel
    normalisation is affine and the Gaussian weights sum to one.
    """
    if kernel is None:
        kernel, default_sigma = blur_kernel_for(max(images.shape[-2:]))
        sigma = default_sigma if sigma is None else sigma
    if sigma is None:
        sigma = float(kernel - 1)
    return gaussian_blur(images, kernel, sigma)


def blend(a: Tensor, b: Tensor, m: Tensor) -> Tensor:
    """Phi(A, B, M) = A*M + B*(1-M)."""
    return b + (a - b) * m


def upsample(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """U(M): bilinear upsampling of (N, 1, h, w) masks to (N, 1, H, W)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False)


def tv(mask: Tensor, beta: float = 2.0) -> Tensor:
    """Total variation per mask: mean |vertical diff|^beta + mean |horizontal diff|^beta, (N,)."""
    dv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(beta).flatten(1).mean(1)
    dh = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(beta).flatten(1).mean(1)
    return dv + dh


def btv_weights(images: Tensor, sigma: float = 0.01) -> tuple[Tensor, Tensor]:
    """Image weights exp(-(dI)^2 / sigma) of eq. 7 of the iGOS++ paper, computed once per image.

    dI is the neighbour difference averaged over channels. Returns the vertical
    (N, 1, H-1, W) and horizontal (N, 1, H, W-1) weights.
    """
    dv = (images[..., 1:, :] - images[..., :-1, :]).mean(1, keepdim=True)
    dh = (images[..., :, 1:] - images[..., :, :-1]).mean(1, keepdim=True)
    return torch.exp(-(dv**2) / sigma), torch.exp(-(dh**2) / sigma)


def btv(mask: Tensor, weights: tuple[Tensor, Tensor], beta: float = 2.0) -> Tensor:
    """Bilateral TV (eq. 7 of the iGOS++ paper) of U(M) plus plain TV of the low-res mask, (N,)."""
    wv, wh = weights
    up = upsample(mask, (wh.shape[-2], wv.shape[-1]))  # (N, 1, H, W)
    dv = (up[..., 1:, :] - up[..., :-1, :]).abs().pow(beta)
    dh = (up[..., :, 1:] - up[..., :, :-1]).abs().pow(beta)
    bilateral = (wv * dv).flatten(1).mean(1) + (wh * dh).flatten(1).mean(1)
    return bilateral + tv(mask, beta)


def integration_alphas(steps: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """alpha_k = k / n, k = 1..n: the points of the integrated score."""
    return torch.arange(1, steps + 1, device=device, dtype=dtype) / steps


def log_steps(alpha_start: float, alpha_stop: float, shrink: float) -> int:
    """How many shrinks take alpha_start below alpha_stop."""
    return max(1, math.ceil(math.log(alpha_stop / alpha_start) / math.log(shrink)))


@dataclass(frozen=True)
class Term:
    """One data term of an objective: sign * S(path)(derived mask `mask`)."""

    mask: int
    insertion: bool
    sign: float


Derive = Callable[[list[Tensor]], list[Tensor]]
Regularizer = Callable[[list[Tensor], Tensor], Tensor]


class Profiler:
    """Seconds per named section, exclusive of the sections nested inside it."""

    def __init__(self, device: torch.device) -> None:
        self.sync = device.type == "cuda"
        self.seconds: dict[str, float] = {}
        self._stack: list[list[float]] = []  # [start, seconds of nested sections]

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        self._stack.append([self._now(), 0.0])
        try:
            yield
        finally:
            start, nested = self._stack.pop()
            spent = self._now() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - nested
            if self._stack:
                self._stack[-1][1] += spent

    def shares(self, total: float) -> dict[str, float]:
        """Share of `total` seconds per section; the rest is "other"."""
        out = {k: v / total for k, v in self.seconds.items()}
        out["other"] = max(0.0, 1.0 - sum(out.values()))
        return out


_PROFILER: Profiler | None = None
_NO_SECTION = nullcontext()


@contextmanager
def profiling(device: torch.device) -> Iterator[Profiler]:
    """Times the perturbation core's parts (benchmarks/bench_explain.py --profile)."""
    global _PROFILER
    _PROFILER = Profiler(device)
    try:
        yield _PROFILER
    finally:
        _PROFILER = None


def section(name: str) -> AbstractContextManager:
    return _NO_SECTION if _PROFILER is None else _PROFILER.section(name)


FAST_COPY = True  # benchmarks/bench_explain.py --plain-model turns it off to measure it


def _has_hooks(model: nn.Module) -> bool:
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in model.modules()
    )


def inference_copy(model: nn.Module, probe: Tensor) -> nn.Module | None:
    """A faster copy of `model` (in eval mode), for scores and input gradients; or None.

    Each batch norm is folded into the convolution before it (a `torch.fx` trace), and on a
    CPU the weights are stored channels-last: covidnet-s at 224 px runs a forward 2x and a
    forward with its input gradient 2.3x faster (README "Speed design"). None, so that the
    model itself is used, when FAST_COPY is off, the model has hooks (they are part of its
    behaviour), cannot be traced or copied, or the copy's output on `probe` differs from the
    model's by more than rounding (the check's two one-image forwards are not counted). The
    copy's parameters need no gradient.
    """
    if not FAST_COPY or _has_hooks(model):
        return None
    try:
        copy = fuse(model)  # a deep copy; conv + batch norm pairs folded (eval mode)
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
def faster(runner: ModelRunner, probe: Tensor) -> Iterator[None]:
    """Within the block the runner runs `inference_copy` of its model when there is one."""
    with section("model copy"):
        copy = inference_copy(runner.model, probe)
    if copy is None:
        yield
        return
    original, runner.model = runner.model, copy
    try:
        yield
    finally:
        runner.model = original


_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _row_seed(*key: int) -> int:
    """A 63-bit seed mixed from integers (splitmix64 steps)."""
    h = _MIX[0]
    for k in key:
        h = (h ^ (k + _MIX[0])) * _MIX[1] & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * _MIX[2] & 0xFFFFFFFFFFFFFFFF
    return h >> 1


class IntegratedObjective:
    """L(masks) = sum_t sign_t * S_t(derived_t) + R(masks), per image, batched over everything.

    S_del(M) = mean_k p_c(Phi(I, B, a_k U(M)) + eps_k) and S_ins(M) = mean_k p_c(Phi(B, I,
    a_k U(M)) + eps_k) (eqs. 2 and 5 of the iGOS++ paper). All images x terms
    x integration steps go through the model as one batch chunked by the runner's batch_size.
    Each derived mask is upsampled once per evaluation; a gradient pass takes the model's
    input gradient per chunk, turns it into the upsampled masks' gradient by hand (the blend
    is linear in U(M)) and backpropagates once into the masks. Without a gradient the pass
    runs under inference mode.

    The loss always uses all `steps`; the gradient uses at most `gradient_steps` of them,
    evenly spaced and ending at a = 1 (every 2nd of 20: the 10-step grid), the others going
    through the model forward-only: it is the gradient of the mean over those steps, the
    search direction, while the line search judges every step by the full loss.

    Noise eps is generated per chunk, never stored: row (image i, term t, step k) of draw d
    is seeded by (seed, i, d, t, k), so the same row reads the same noise in every pass and
    at any chunking, and candidates and the reference loss compare under one draw. Image
    indices may repeat (several candidate steps per image).
    """

    def __init__(
        self,
        runner: ModelRunner,
        images: Tensor,
        baseline: Tensor,
        targets: Tensor,
        *,
        terms: list[Term],
        derive: Derive,
        regularizer: Regularizer,
        steps: int,
        noise_std: float,
        generator: torch.Generator,
        gradient_steps: int | None = None,
    ) -> None:
        self.runner = runner
        self.images = images
        self.targets = targets
        self.terms = terms
        self.derive = derive
        self.regularizer = regularizer
        self.steps = steps
        self.noise_std = noise_std
        self.generator = generator
        self.alphas = integration_alphas(steps, images.device, images.dtype)  # (S,)
        dev = images.device
        stride = math.ceil(steps / min(steps, gradient_steps or steps))
        on = (steps - 1 - torch.arange(steps, device=dev)) % stride == 0  # k = S-1, S-1-stride..
        self._grad_steps, self._rest_steps = on.nonzero().squeeze(1), (~on).nonzero().squeeze(1)
        self._all_steps = torch.arange(steps, device=dev)
        self._insertion = torch.tensor([t.insertion for t in terms], device=dev)  # (T,)
        self._sign = torch.tensor([t.sign for t in terms], device=dev, dtype=images.dtype)
        # x = start + path * D * a_k U(M): start B and path +1 (deletion), I and -1 (insertion)
        self._path = 1 - 2 * self._insertion.to(images.dtype)  # (T,)
        self.noise = noise_std > 0 or None  # truthy when noise is on (minimize asks)
        self._seed = int(torch.randint(2**62, (1,), generator=generator, device=dev))
        self._draw = [0] * images.shape[0]  # the current noise draw of each image
        self.set_baseline(baseline)
        self.evaluations = 0
        self.passes = 0

    def set_baseline(self, baseline: Tensor) -> None:
        """Changes B (the AOP warm-up switches from a light blur to the full one)."""
        self.baseline = baseline
        self.delta = self.images - baseline  # (N, C, H, W)
        self._starts = torch.stack([baseline, self.images])  # (2, N, C, H, W)

    def redraw(self, idx: Tensor) -> None:
        """Fresh noise eps ~ N(0, std^2) for images `idx`."""
        for i in idx.tolist():
            self._draw[i] += 1

    def _noise(self, img: Tensor, row: Tensor, out: Tensor) -> None:
        """Adds each row's noise to out (b, C, H, W) in place."""
        buf = torch.empty(out.shape[1:], device=out.device, dtype=out.dtype)
        for j, (i, r) in enumerate(zip(img.tolist(), row.tolist(), strict=True)):
            self.generator.manual_seed(_row_seed(self._seed, i, self._draw[i], r))
            torch.randn(buf.shape, generator=self.generator, out=buf)
            out[j].add_(buf, alpha=self.noise_std)

    def _chunks(self, n: int, ks: Tensor) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Rows (image slot i, term t, step k), k in `ks`, per model chunk, in (i, t, k) order."""
        per_term = ks.numel()
        ts = len(self.terms) * per_term
        rows = torch.arange(n * ts, device=self.images.device)
        for chunk in chunks(n * ts, chunk_rows(self.runner.batch_size, self.images)):
            flat = rows[chunk]
            yield flat // ts, (flat // per_term) % len(self.terms), ks[flat % per_term]

    def _inputs(self, ups: Tensor, idx: Tensor, i: Tensor, t: Tensor, k: Tensor) -> Tensor:
        """Model inputs of one chunk, (b, C, H, W)."""
        img = idx[i]
        with section("blend"):
            w = ups[i, t] * (self._path[t] * self.alphas[k]).view(-1, 1, 1, 1)  # (b, 1, H, W)
            x = self._starts[self._insertion[t].long(), img].addcmul_(self.delta[img], w)
        if self.noise:
            with section("noise"):
                self._noise(img, t * self.steps + k, x)
        return x

    def _upsampled(self, derived: list[Tensor]) -> Tensor:
        with section("blend"):
            size = self.images.shape[-2:]
            ups = {j: upsample(derived[j], size) for j in {t.mask for t in self.terms}}
            return torch.stack([ups[t.mask] for t in self.terms], 1)  # (n, T, 1, H, W)

    def _data(self, ups: Tensor, idx: Tensor, ks: Tensor) -> Tensor:
        """The data terms' share of steps `ks`, forward-only, (n,)."""
        n = idx.numel()
        data = ups.new_zeros(n)
        slots = torch.arange(n, device=ups.device)[:, None]
        for i, t, k in self._chunks(n, ks):
            x = self._inputs(ups, idx, i, t, k)
            with section("forward"):
                p = self.runner.scores(x, self.targets[idx[i]])  # (b,)
            with section("sums"):
                data += (slots == i).to(p.dtype) @ (self._sign[t] * p / self.steps)
        return data

    def _data_and_grad(self, ups: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Data terms (n,) and their gradient w.r.t. the upsampled masks (n, T, 1, H, W)."""
        n, t_count, ks = idx.numel(), len(self.terms), self._grad_steps
        data = ups.new_zeros(n)
        g_ups = torch.zeros_like(ups)
        pairs = torch.arange(n * t_count, device=ups.device)[:, None]
        for i, t, k in self._chunks(n, ks):
            x = self._inputs(ups, idx, i, t, k).requires_grad_(True)
            with torch.enable_grad():
                with section("forward"):
                    p = self.runner.scores(x, self.targets[idx[i]])  # (b,)
                with section("backward"):
                    (gx,) = torch.autograd.grad(p.sum(), x)
            coef = self._sign[t] * self._path[t] * self.alphas[k] / ks.numel()  # (b,)
            with section("blend"):
                g = (gx * self.delta[idx[i]]).sum(1).flatten(1)  # (b, H*W)
            with section("sums"):
                # Segment sums as matmuls: deterministic, unlike atomic index_add on a GPU.
                onehot = (pairs == (i * t_count + t)).to(ups.dtype)  # (n*T, b)
                g_ups.view(n * t_count, -1).add_((onehot * coef) @ g)
                contrib = self._sign[t] * p.detach() / self.steps
                data += onehot.view(n, t_count, -1).sum(1) @ contrib
        if self._rest_steps.numel():
            with torch.inference_mode():
                data = data + self._data(ups, idx, self._rest_steps)
        return data, g_ups

    def evaluate(
        self, masks: list[Tensor], idx: Tensor, grad: bool
    ) -> tuple[Tensor, list[Tensor] | None]:
        """Loss (n,) of masks (each (n, 1, h, w)) for images idx (n,), and its gradient."""
        self.evaluations += idx.numel()
        self.passes += 1
        with section("evaluate"):
            if not grad:
                with torch.inference_mode():
                    derived = self.derive(masks)
                    data = self._data(self._upsampled(derived), idx, self._all_steps)
                    with section("regulariser"):
                        return data + self.regularizer(derived, idx), None
            with torch.enable_grad():
                leaves = [m.detach().requires_grad_(True) for m in masks]
                derived = self.derive(leaves)
                ups = self._upsampled(derived)
            with torch.no_grad():
                data, g_ups = self._data_and_grad(ups.detach(), idx)
            with torch.enable_grad(), section("blend"):
                grads = torch.autograd.grad(ups, leaves, g_ups, retain_graph=True)
            with torch.enable_grad(), section("regulariser"):
                reg = self.regularizer(derived, idx)  # (n,)
                reg_grads = torch.autograd.grad(reg.sum(), leaves, allow_unused=True)
        grads = [g if r is None else g + r for g, r in zip(grads, reg_grads, strict=True)]
        return data + reg.detach(), grads


_RESOLUTION = 64  # float eps multiples below which two losses are not told apart


def _projected(mask: Tensor, grad: Tensor) -> Tensor:
    """The gradient without the components that a step would push out of [0, 1]."""
    blocked = ((mask >= 1) & (grad < 0)) | ((mask <= 0) & (grad > 0))
    return torch.where(blocked, torch.zeros_like(grad), grad)


@dataclass
class LineSearch:
    """Backtracking Armijo line search (eq. 8 of the iGOS++ paper).

    Constants: docs/algorithms.md, iGOS++.
    """

    alpha0: float = 1000.0
    armijo: float = 1e-4
    shrink: float = 0.2
    alpha_min: float = 1e-5
    growth: float = 1.0
    retry_candidates: int = 2
    noise_refresh: int = 0
    speculate: bool = True


def _armijo(masks: list[Tensor], grads: list[Tensor], cand: list[Tensor], rep: Tensor) -> Tensor:
    """g.(M - M') per candidate, (n*c,); = a |g|^2 without clamping."""
    return sum(
        (g[rep] * (m[rep] - cm)).flatten(1).sum(1)
        for m, g, cm in zip(masks, grads, cand, strict=True)
    )


def _candidates(
    objective: IntegratedObjective,
    cand: list[Tensor],
    rep: Tensor,
    with_grad: Tensor,
) -> tuple[Tensor, list[Tensor] | None]:
    """Losses of candidates (n*c,); those flagged `with_grad` also get their gradient."""
    loss = cand[0].new_empty(rep.numel())
    grads = None
    if with_grad.any():
        loss[with_grad], g = objective.evaluate([c[with_grad] for c in cand], rep[with_grad], True)
        grads = [torch.zeros_like(c) for c in cand]
        for full, part in zip(grads, g, strict=True):
            full[with_grad] = part
    rest = ~with_grad
    if rest.any():
        loss[rest] = objective.evaluate([c[rest] for c in cand], rep[rest], False)[0]
    return loss, grads


@dataclass
class _State:
    """Per-image state of the search: masks, their loss and gradient, warm-started steps."""

    masks: list[Tensor]
    loss: Tensor
    grads: list[Tensor]
    alpha: Tensor  # (N,) the next first try
    active: Tensor  # (N,) bool: still moving
    hopeful: Tensor  # (N,) bool: the last first try passed, so speculate on the next
    accepted: Tensor
    tries: int = 0

    @classmethod
    def start(
        cls, objective: IntegratedObjective, masks: list[Tensor], search: LineSearch
    ) -> _State:
        masks = [m.detach().clone() for m in masks]
        n, dev = masks[0].shape[0], masks[0].device
        loss, grads = objective.evaluate(masks, torch.arange(n, device=dev), grad=True)
        assert grads is not None
        alpha = torch.full((n,), search.alpha0, device=dev, dtype=loss.dtype)
        on = torch.ones(n, dtype=torch.bool, device=dev)
        # alpha0 is a guess: the first iteration's first try is forward-only
        return cls(masks, loss, grads, alpha, on, ~on, torch.zeros((), device=dev))

    @property
    def n(self) -> int:
        return self.masks[0].shape[0]

    def regrad(self, objective: IntegratedObjective, idx: Tensor) -> None:
        """Loss and gradient afresh for images idx (after a forward-only move or a redraw)."""
        loss, grads = objective.evaluate([m[idx] for m in self.masks], idx, grad=True)
        assert grads is not None
        self.loss[idx] = loss
        for g, sg in zip(self.grads, grads, strict=True):
            g[idx] = sg


def _refresh(
    objective: IntegratedObjective,
    state: _State,
    search: LineSearch,
    it: int,
    warmup: tuple[int, Tensor] | None,
) -> None:
    """Noise refresh and warm-up switch (each a gradient pass for everyone), then who moves."""
    everyone = torch.arange(state.n, device=state.loss.device)
    refresh = search.noise_refresh > 0 and it > 0 and it % search.noise_refresh == 0
    refresh = refresh and objective.noise is not None
    if refresh:
        objective.redraw(everyone)
    switch = warmup is not None and it == warmup[0]
    if switch:
        objective.set_baseline(warmup[1])
    if refresh or switch:
        state.regrad(objective, everyone)
    free = sum(
        _projected(m, g).pow(2).flatten(1).sum(1)
        for m, g in zip(state.masks, state.grads, strict=True)
    )
    state.active &= free > 0  # a zero projected gradient is a stationary point
    objective.runner.check()


def _search(
    objective: IntegratedObjective, state: _State, search: LineSearch, speculate: bool
) -> Tensor:
    """One line search for every active image; returns the images whose gradient is stale."""
    pending = state.active.nonzero().squeeze(1)
    steps = state.alpha[pending].unsqueeze(1)  # (n, 1): first try, the warm-started step
    with_grad = state.hopeful[pending] & speculate
    failed, blind = [pending[:0]], [pending[:0]]
    first = True
    while pending.numel():
        hit, more, moved_blind = _round(objective, state, search, pending, steps, with_grad)
        blind.append(moved_blind)
        if first:
            state.hopeful[pending] = hit & search.speculate
            first = False
        failed.append(pending[~hit & ~more])
        ladder = search.shrink ** torch.arange(
            search.retry_candidates, device=steps.device, dtype=steps.dtype
        )
        steps = steps[more, -1:] * search.shrink * ladder  # (n', retry_candidates)
        pending = pending[more]
        with_grad = torch.zeros_like(pending, dtype=torch.bool)
    gave_up = torch.cat(failed)
    if gave_up.numel() and objective.noise is None:
        state.active[gave_up] = False  # converged: no fresh draw can help
        gave_up = gave_up[:0]
    if gave_up.numel():
        objective.redraw(gave_up)
    return torch.cat([*blind, gave_up])


def _round(
    objective: IntegratedObjective,
    state: _State,
    search: LineSearch,
    pending: Tensor,
    steps: Tensor,
    with_grad: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Tries steps (n, c) for images pending (n,); moves the winners.

    Returns which images found a passing step, which should try smaller ones, and the
    winners whose gradient is not known yet.
    """
    c = steps.shape[1]
    rep = pending.repeat_interleave(c)  # (n*c,)
    a = steps.reshape(-1).view(-1, 1, 1, 1)
    masks, grads, loss = state.masks, state.grads, state.loss
    cand = [(m[rep] - a * g[rep]).clamp(0, 1) for m, g in zip(masks, grads, strict=True)]
    graded = with_grad.repeat_interleave(c)
    c_loss, c_grads = _candidates(objective, cand, rep, graded)
    state.tries += rep.numel()
    decrease = _armijo(masks, grads, cand, rep)
    ok = (c_loss <= loss[rep] - search.armijo * decrease).view(-1, c)  # decreasing steps
    hit = ok.any(1)
    j = ok.float().argmax(1)  # first (largest) passing step
    sel = (torch.arange(pending.numel(), device=rep.device) * c + j)[hit]
    win = pending[hit]
    for m, cm in zip(masks, cand, strict=True):
        m[win] = cm[sel]
    loss[win] = c_loss[sel]
    known = graded[sel]
    if c_grads is not None:
        for g, cg in zip(grads, c_grads, strict=True):
            g[win[known]] = cg[sel[known]]
    chosen = steps[hit].gather(1, j[hit].view(-1, 1)).squeeze(1)
    state.alpha[win] = (chosen * search.growth).clamp(max=search.alpha0)
    state.accepted = state.accepted + hit.sum()
    # Stop at alpha_min, or once the smallest step tried changed the loss by less than its
    # float resolution and predicts no more for the next: smaller steps would only compare
    # rounding noise.
    last = decrease.view(-1, c)[:, -1]
    moved = (c_loss.view(-1, c)[:, -1] - loss[pending]).abs()
    resolution = _RESOLUTION * torch.finfo(loss.dtype).eps * (1 + loss[pending].abs())
    more = ~hit & (steps[:, -1] * search.shrink >= search.alpha_min)
    more &= (search.shrink * last > resolution) | (moved > resolution)
    return hit, more, win[~known]


def minimize(
    objective: IntegratedObjective,
    masks: list[Tensor],
    iterations: int,
    search: LineSearch,
    *,
    warmup: tuple[int, Tensor] | None = None,
) -> tuple[list[Tensor], dict[str, float]]:
    """Projected descent on masks in [0, 1] with a batched Armijo line search.

    Each iteration first tries M' = clamp(M - a g, 0, 1) at the image's warm-started step (last
    accepted a times `growth`), under the same noise draw as L(M). When that first try passed
    in the image's previous iteration (and `speculate`), it is evaluated with its gradient:
    accepted, that evaluation is the next iteration's gradient pass, so the iteration costs
    one gradient pass. Otherwise candidates are forward-only: after a rejection the next
    `retry_candidates` smaller steps go through the model together without gradient, the
    largest passing one wins, and one gradient pass at the new masks follows for all images
    that moved that way. No passing step above alpha_min leaves M unchanged; the image then
    gets a fresh noise draw and gradient (or, without noise, is converged and leaves the
    batch). Accepted steps keep the noise draw (the comparison must be like with like);
    `noise_refresh=k` also redraws it every k iterations, at one extra gradient pass each
    time. `warmup=(iters, baseline)` switches to `baseline` after `iters` iterations.

    Armijo test: L(M') <= L(M) - c g.(M - M'), the projected form of the rule (Bertsekas):
    it equals c a |g|^2 when no component is clamped, and does not reject every step when
    some components push against the bounds 0 or 1 (where a|g|^2 overstates the change).
    Besides a < alpha_min, the search also stops when a step neither changed the loss nor
    predicts a change (g.(M - M')) above the loss's float resolution: smaller steps would
    only compare rounding noise.
    """
    state = _State.start(objective, masks, search)
    evals0, passes0 = objective.evaluations - state.n, objective.passes - 1
    for it in range(iterations):
        with section("line search"):
            _refresh(objective, state, search, it, warmup)
            stale = _search(objective, state, search, speculate=it < iterations - 1)
        if stale.numel() and it < iterations - 1:
            state.regrad(objective, stale)
    objective.runner.check()
    evals, n = objective.evaluations - evals0, state.n
    stats = {
        "iterations": float(iterations),
        "loss_evaluations": float(evals),
        "loss_evaluations_per_iteration": evals / (n * iterations),
        "candidates_per_iteration": state.tries / (n * iterations),
        "passes": float(objective.passes - passes0),
        "accepted_steps_per_image": float(state.accepted) / n,
    }
    return state.masks, stats
