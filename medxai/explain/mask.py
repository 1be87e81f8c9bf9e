"""Meaningful Perturbation (Fong and Vedaldi 2017): Adam on a blur-deletion mask.

min_M p_c(Phi(I, B, U(M))) + L1 mean|1-M| + L2 TV_beta(M), M in [0, 1] (clamped after each
step); all images' masks are one tensor, so each iteration is one batched forward/backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medxai.explain.base import ModelRunner, check_float, check_int
from medxai.explain.igos import MaskOptimizer, Warmup
from medxai.explain.perturb import blend, blurred_baseline, tv, upsample


class MeaningfulPerturbation(MaskOptimizer):
    """Meaningful Perturbation (Fong and Vedaldi 2017): Adam on a deletion mask.

    Defaults: 28x28 mask, 300 Adam iterations at lr 0.1, L1 = 1, L2 = 20, TV beta = 3.
    """

    name = "mask"

    def __init__(
        self,
        *,
        resolution: int = 28,
        iterations: int = 300,
        lr: float = 0.1,
        l1: float = 1.0,
        l2: float = 20.0,
        tv_beta: float = 3.0,
        noise: float = 0.0,
        softmax: bool = True,
        blur_kernel: int | None = None,
        blur_sigma: float | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(
            resolution=resolution,
            iterations=iterations,
            blur_kernel=blur_kernel,
            blur_sigma=blur_sigma,
            batch_size=batch_size,
            seed=seed,
        )
        self.lr = check_float("lr", lr, 1e-12)
        self.l1 = check_float("l1", l1, 0.0)
        self.l2 = check_float("l2", l2, 0.0)
        self.tv_beta = check_float("tv_beta", tv_beta, 1.0)
        self.noise = check_float("noise", noise, 0.0)
        self.softmax = bool(softmax)
        check_int("iterations", iterations, 1)

    def optimize(
        self,
        runner: ModelRunner,
        images: Tensor,
        targets: Tensor,
        init: Tensor | None = None,
        warmup: Warmup | None = None,
    ) -> Tensor:
        runner.softmax = self.softmax
        n = images.shape[0]
        h, w = self.mask_size(images)
        full = self.baseline(images)
        base = full if warmup is None else blurred_baseline(images, warmup[1], warmup[2])
        start = images.new_ones(n, 1, h, w) if init is None else init
        mask = start.detach().clone().requires_grad_(True)  # (N, 1, r, r)
        with runner.frozen():
            self._descend(runner, images, targets, mask, base, full, warmup)
        self._extra["iterations"] = float(self.iterations)
        return mask.detach()

    def _descend(self, runner, images, targets, mask, base, full, warmup) -> None:
        """Adam on `mask` in place (parameters frozen: only input gradients are taken)."""
        n, size = images.shape[0], tuple(images.shape[-2:])
        opt = torch.optim.Adam([mask], lr=self.lr)
        gen = self.generator(images.device)
        for it in range(self.iterations):
            if warmup is not None and it == warmup[0]:
                base = full
            with torch.enable_grad():
                # |1 - M| with autograd's zero slope at the kink M = 1, as in Fong and
                # Vedaldi's formulation: Adam then leaves the all-ones start on the data term.
                reg = self.l1 * (1 - mask).abs().flatten(1).mean(1)
                reg = reg + self.l2 * tv(mask, self.tv_beta)  # (N,)
                (grad,) = torch.autograd.grad(reg.sum(), mask)
                for s in range(0, n, runner.batch_size):
                    sl = slice(s, s + runner.batch_size)
                    x = blend(images[sl], base[sl], upsample(mask[sl], size))  # (b, C, H, W)
                    if self.noise > 0:
                        x = x + self.noise * torch.randn(
                            x.shape, generator=gen, device=x.device, dtype=x.dtype
                        )
                    (g,) = torch.autograd.grad(runner.scores(x, targets[sl]).sum(), mask)
                    grad = grad + g
            mask.grad = grad  # autograd.grad keeps the model's own .grad untouched
            opt.step()
            with torch.no_grad():
                mask.clamp_(0, 1)
