"""The perturbation core shared by Mask, I-GOS, iGOS++, SIGCAM and the causal metrics.

Notation follows ALGORITHMS.md: image I (model-normalised), baseline B, low-resolution mask M
(a LOW value marks an IMPORTANT pixel), U(M) bilinear upsampling, Phi(A, B, M) = A*M + B*(1-M).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from medxai.explain.base import ModelRunner


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


class IntegratedObjective:
    """L(masks) = sum_t sign_t * S_t(derived_t) + R(masks), per image, batched over everything.

    S_del(M) = mean_k p_c(Phi(I, B, a_k U(M)) + eps_k) and S_ins(M) = mean_k p_c(Phi(B, I,
    a_k U(M)) + eps_k) (ALGORITHMS.md; eqs. 2 and 5 of the iGOS++ paper). All images x terms
    x integration steps go through the model as one batch chunked by the runner's batch_size;
    the backward runs per chunk into the upsampled masks, then once into the masks.
    Image indices may repeat (several candidate steps per image): each copy reads its image's
    current noise draw, so candidates and the reference loss see the same noise.
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
        self._insertion = torch.tensor([t.insertion for t in terms], device=dev)  # (T,)
        self._sign = torch.tensor([t.sign for t in terms], device=dev, dtype=images.dtype)
        self.noise: Tensor | None = None
        self.set_baseline(baseline)
        if noise_std > 0:
            n, c, h, w = images.shape
            self.noise = images.new_empty(n, len(terms) * steps, c, h, w)  # (N, T*S, C, H, W)
            self.redraw(torch.arange(n, device=dev))
        self.evaluations = 0
        self.passes = 0

    def set_baseline(self, baseline: Tensor) -> None:
        """Changes B (the AOP warm-up switches from a light blur to the full one)."""
        self.baseline = baseline
        self.delta = self.images - baseline  # (N, C, H, W)

    def redraw(self, idx: Tensor) -> None:
        """Fresh noise eps ~ N(0, std^2) for images `idx`."""
        if self.noise is None:
            return
        shape = (idx.numel(), *self.noise.shape[1:])
        fresh = torch.randn(
            shape, generator=self.generator, device=self.noise.device, dtype=self.noise.dtype
        )
        self.noise[idx] = fresh * self.noise_std

    def evaluate(
        self, masks: list[Tensor], idx: Tensor, grad: bool
    ) -> tuple[Tensor, list[Tensor] | None]:
        """Loss (n,) of masks (each (n, 1, h, w)) for images idx (n,), and its gradient."""
        n, t_count, s_count = idx.numel(), len(self.terms), self.steps
        size = self.images.shape[-2:]
        self.evaluations += n
        self.passes += 1
        with torch.enable_grad() if grad else torch.no_grad():
            leaves = [m.detach().requires_grad_(grad) for m in masks]
            derived = self.derive(leaves)
            ups = torch.stack([upsample(derived[t.mask], size) for t in self.terms], 1)
            flat_ups = ups.detach()  # (n, T, 1, H, W)
            data = ups.new_zeros(n)
            g_ups = torch.zeros_like(ups) if grad else None
            total = n * t_count * s_count
            for start in range(0, total, self.runner.batch_size):
                flat = torch.arange(
                    start, min(total, start + self.runner.batch_size), device=ups.device
                )  # (b,)
                i, t, k = flat // (t_count * s_count), (flat // s_count) % t_count, flat % s_count
                img = idx[i]
                u_leaf = flat_ups[i, t].requires_grad_(grad)  # (b, 1, H, W)
                u = u_leaf * self.alphas[k].view(-1, 1, 1, 1)
                w = torch.where(self._insertion[t].view(-1, 1, 1, 1), 1 - u, u)
                x = self.baseline[img] + self.delta[img] * w  # (b, C, H, W)
                if self.noise is not None:
                    x = x + self.noise[img, t * s_count + k]
                p = self.runner.scores(x, self.targets[img])  # (b,)
                contrib = self._sign[t] * p / s_count
                # Segment sums as one-hot matmuls: deterministic, unlike atomic index_add.
                pairs = i * t_count + t
                onehot = pairs == torch.arange(n * t_count, device=ups.device)[:, None]
                onehot = onehot.to(ups.dtype)  # (n*T, b)
                if grad:
                    (g,) = torch.autograd.grad(contrib.sum(), u_leaf)
                    g_ups.view(n * t_count, -1).add_(onehot @ g.flatten(1))
                data = data + onehot.view(n, t_count, -1).sum(1) @ contrib.detach()
            reg = self.regularizer(derived, idx)  # (n,)
            loss = data + reg.detach()
            if not grad:
                return loss, None
            grads = torch.autograd.grad(
                [ups, reg.sum()], leaves, grad_outputs=[g_ups, torch.ones_like(reg.sum())]
            )
        return loss, list(grads)


_RESOLUTION = 64  # float eps multiples below which two losses are not told apart


def _projected(mask: Tensor, grad: Tensor) -> Tensor:
    """The gradient without the components that a step would push out of [0, 1]."""
    blocked = ((mask >= 1) & (grad < 0)) | ((mask <= 0) & (grad > 0))
    return torch.where(blocked, torch.zeros_like(grad), grad)


@dataclass
class LineSearch:
    """Backtracking Armijo line search (ALGORITHMS.md; eq. 8 of the iGOS++ paper)."""

    alpha0: float = 1000.0
    armijo: float = 1e-4
    shrink: float = 0.2
    alpha_min: float = 1e-5
    growth: float = 1.0
    retry_candidates: int = 2
    noise_refresh: int = 0


def minimize(
    objective: IntegratedObjective,
    masks: list[Tensor],
    iterations: int,
    search: LineSearch,
    *,
    warmup: tuple[int, Tensor] | None = None,
) -> tuple[list[Tensor], dict[str, float]]:
    """Projected descent on masks in [0, 1] with a batched, speculative Armijo line search.

    Each candidate M' = clamp(M - a g, 0, 1) is evaluated with its gradient under the same
    noise draw as L(M); when it passes, that evaluation is the next iteration's gradient pass,
    so an accepted first try costs one loss evaluation per iteration. The first try uses the
    image's warm-started step (last accepted a times `growth`); after a rejection the next
    `retry_candidates` smaller steps go through the model together and the largest passing
    one wins. No passing step above alpha_min leaves M unchanged; the image then gets a fresh
    noise draw and gradient (or, without noise, is converged and leaves the batch). Accepted
    steps keep the noise draw (the comparison must be like with like); `noise_refresh=k`
    also redraws it every k iterations, at one extra gradient pass each time.
    `warmup=(iters, baseline)` switches to `baseline` after `iters` iterations (AOP warm-up).

    Armijo test: L(M') <= L(M) - c g.(M - M'), the projected form of the rule (Bertsekas):
    it equals c a |g|^2 when no component is clamped, and does not reject every step when
    some components push against the bounds 0 or 1 (where a|g|^2 overstates the change).
    Besides a < alpha_min, the search also stops when a step neither changed the loss nor
    predicts a change (g.(M - M')) above the loss's float resolution: smaller steps would
    only compare rounding noise.
    """
    n = masks[0].shape[0]
    dev = masks[0].device
    masks = [m.detach().clone() for m in masks]
    evals0, passes0 = objective.evaluations, objective.passes
    everyone = torch.arange(n, device=dev)
    loss, grads = objective.evaluate(masks, everyone, grad=True)
    assert grads is not None
    alpha = torch.full((n,), search.alpha0, device=dev, dtype=loss.dtype)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    accepted = torch.zeros((), device=dev)
    for it in range(iterations):
        refresh = search.noise_refresh > 0 and it > 0 and it % search.noise_refresh == 0
        refresh = refresh and objective.noise is not None
        if refresh:
            objective.redraw(everyone)
        if refresh or (warmup is not None and it == warmup[0]):
            if warmup is not None and it == warmup[0]:
                objective.set_baseline(warmup[1])
            loss, grads = objective.evaluate(masks, everyone, grad=True)
            assert grads is not None
        free = sum(
            _projected(m, g).pow(2).flatten(1).sum(1) for m, g in zip(masks, grads, strict=True)
        )
        active &= free > 0  # (N,): a zero projected gradient is a stationary point
        objective.runner.check()
        pending = active.nonzero().squeeze(1)
        steps = alpha[pending].unsqueeze(1)  # (n, 1): first try, the warm-started step
        failed = []
        while pending.numel():
            c = steps.shape[1]
            rep = pending.repeat_interleave(c)  # (n*c,)
            a = steps.reshape(-1).view(-1, 1, 1, 1)
            cand = [(m[rep] - a * g[rep]).clamp(0, 1) for m, g in zip(masks, grads, strict=True)]
            c_loss, c_grads = objective.evaluate(cand, rep, grad=True)
            assert c_grads is not None
            decrease = sum(
                (g[rep] * (m[rep] - cm)).flatten(1).sum(1)
                for m, g, cm in zip(masks, grads, cand, strict=True)
            )  # (n*c,): g.(M - M'), = a |g|^2 without clamping
            bound = loss[rep] - search.armijo * decrease
            ok = (c_loss <= bound).view(-1, c)  # (n, c), step sizes in decreasing order
            hit = ok.any(1)
            j = ok.float().argmax(1)  # first (largest) passing step
            pick = torch.arange(pending.numel(), device=dev) * c + j
            win, sel = pending[hit], pick[hit]
            for m, cm in zip(masks, cand, strict=True):
                m[win] = cm[sel]
            for g, cg in zip(grads, c_grads, strict=True):
                g[win] = cg[sel]
            loss[win] = c_loss[sel]
            chosen = steps[hit].gather(1, j[hit].view(-1, 1)).squeeze(1)
            alpha[win] = (chosen * search.growth).clamp(max=search.alpha0)
            accepted = accepted + hit.sum()
            smallest = steps[:, -1] * search.shrink
            # Stop at alpha_min, or once the smallest step tried changed the loss by less than
            # its float resolution and predicts no more for the next: smaller steps would only
            # compare rounding noise.
            last = decrease.view(-1, c)[:, -1]  # (n,)
            moved = (c_loss.view(-1, c)[:, -1] - loss[pending]).abs()
            resolution = _RESOLUTION * torch.finfo(loss.dtype).eps * (1 + loss[pending].abs())
            more = ~hit & (smallest >= search.alpha_min)
            more &= (search.shrink * last > resolution) | (moved > resolution)
            failed.append(pending[~hit & ~more])
            ladder = search.shrink ** torch.arange(
                search.retry_candidates, device=dev, dtype=steps.dtype
            )
            steps = smallest[more].unsqueeze(1) * ladder  # (n', retry_candidates)
            pending = pending[more]
        gave_up = torch.cat(failed) if failed else everyone[:0]
        if gave_up.numel():
            if objective.noise is None:
                active[gave_up] = False
            else:
                objective.redraw(gave_up)
                sub = [m[gave_up] for m in masks]
                g_loss, g_grads = objective.evaluate(sub, gave_up, grad=True)
                assert g_grads is not None
                loss[gave_up] = g_loss
                for g, sg in zip(grads, g_grads, strict=True):
                    g[gave_up] = sg
    objective.runner.check()
    evals = objective.evaluations - evals0
    stats = {
        "iterations": float(iterations),
        "loss_evaluations": float(evals),
        "loss_evaluations_per_iteration": evals / (n * iterations),
        "passes": float(objective.passes - passes0),
        "accepted_steps_per_image": float(accepted) / n,
    }
    return masks, stats
