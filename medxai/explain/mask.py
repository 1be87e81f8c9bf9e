"""Meaningful Perturbation (Fong and Vedaldi 2017): Adam on a blur-deletion mask.

min_M l1 * sum|1 - M| + l2 * sum_u (|dM_v(u)|^beta + |dM_h(u)|^beta) + p_c(Phi(I, B, J(U(M))))
with the paper's constants (l1 1e-4, l2 1e-2, beta 3, sums over the 28x28 mask, Adam at lr
0.1); J shifts each upsampled mask by a random integer jitter every iteration (their
E_tau), and M is clamped to [0, 1] after each step. All images' masks are one tensor, so
each iteration is one batched forward/backward. Details: docs/algorithms.md, Meaningful
Perturbation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from medxai.explain.base import GRADIENT_PASS, ModelRunner, check_float, check_int, chunks
from medxai.explain.igos import Baselines, MaskOptimizer
from medxai.explain.perturb import blend, upsample

PAPER_SIZE = 224  # the input side at which the paper's jitter tau = 4 px is stated


def tv_sum(mask: Tensor, beta: float) -> Tensor:
    """sum_u |dM_v(u)|^beta + |dM_h(u)|^beta over neighbour differences, per mask, (N,)."""
    dv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(beta).flatten(1).sum(1)
    dh = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(beta).flatten(1).sum(1)
    return dv + dh


def default_jitter(size: tuple[int, int]) -> int:
    """tau = 4 px at 224 px (the paper), scaled with the image side; 1 means no jitter."""
    return max(1, round(4 * max(size) / PAPER_SIZE))


def jitter(masks: Tensor, tau: int, generator: torch.Generator) -> Tensor:
    """Each upsampled mask (N, 1, H, W) shifted by its own integer offset in
    [0, tau)^2 - (tau - 1) // 2 (a draw per image per call), edges replicated."""
    if tau <= 1:
        return masks
    n, _, h, w = masks.shape
    pad = tau - 1
    padded = F.pad(masks, (pad, pad, pad, pad), mode="replicate")  # (N, 1, H+2p, W+2p)
    shift = torch.randint(0, tau, (n, 2), generator=generator, device=masks.device)
    start = pad - shift + (tau - 1) // 2  # (N, 2), within [0, 2p]
    rows = (start[:, :1] + torch.arange(h, device=masks.device))[:, :, None]  # (N, H, 1)
    cols = (start[:, 1:] + torch.arange(w, device=masks.device))[:, None, :]  # (N, 1, W)
    index = torch.arange(n, device=masks.device)[:, None, None]
    return padded[index, 0, rows, cols].unsqueeze(1)  # (N, 1, H, W)


@dataclass(kw_only=True, eq=False, repr=False)
class MeaningfulPerturbation(MaskOptimizer):
    """Meaningful Perturbation (Fong and Vedaldi 2017): Adam on a deletion mask.

    Defaults (the paper's): 28x28 mask, 500 Adam iterations at lr 0.1, l1 = 1e-4 and
    l2 = 1e-2 on sums over the mask, TV beta = 3, jitter tau = 4 px at 224 px (`jitter`:
    None scales it with the image side, an integer gives it in pixels, 1 disables), blurred
    baseline, softmax probability, no input noise (docs/algorithms.md).
    """

    name = "mask"

    iterations: int = 500
    l1: float = 1e-4
    l2: float = 1e-2
    noise: float = 0.0
    lr: float = 0.1
    tv_beta: float = 3.0
    jitter: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lr = check_float("lr", self.lr, 1e-12)
        self.l1 = check_float("l1", self.l1, 0.0)
        self.tv_beta = check_float("tv_beta", self.tv_beta, 1.0)
        if self.jitter is not None:
            self.jitter = check_int("jitter", self.jitter, 1)

    def regulariser(self, mask: Tensor) -> Tensor:
        """l1 * sum|1 - M| + l2 * TV_beta(M) per mask, (N,). |1 - M| keeps autograd's zero
        slope at M = 1, so the all-ones start moves on the data term alone."""
        return self.l1 * (1 - mask).abs().flatten(1).sum(1) + self.l2 * tv_sum(mask, self.tv_beta)

    def forward_equivalents(self) -> float:
        return GRADIENT_PASS * self.iterations  # one gradient pass per Adam step

    def _descend(
        self, runner: ModelRunner, images: Tensor, targets: Tensor, init: Tensor, base: Baselines
    ) -> Tensor:
        """Adam on the mask (N, 1, r, r); only input gradients are taken."""
        n, size = images.shape[0], tuple(images.shape[-2:])
        tau = default_jitter(size) if self.jitter is None else self.jitter
        mask = init.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([mask], lr=self.lr)
        gen = self.generator(images.device)
        baseline = base.start
        for it in range(self.iterations):
            if base.switch is not None and it == base.switch[0]:
                baseline = base.switch[1]
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self.regulariser(mask).sum(), mask)
                shifted = jitter(upsample(mask, size), tau, gen)  # (N, 1, H, W)
                for chunk in chunks(n, runner.batch_size):
                    x = blend(images[chunk], baseline[chunk], shifted[chunk])  # (b, C, H, W)
                    if self.noise > 0:
                        x = x + self.noise * torch.randn(
                            x.shape, generator=gen, device=x.device, dtype=x.dtype
                        )
                    score = runner.scores(x, targets[chunk]).sum()
                    (g,) = torch.autograd.grad(score, mask, retain_graph=True)
                    grad = grad + g
            mask.grad = grad  # autograd.grad keeps the model's own .grad untouched
            opt.step()
            with torch.no_grad():
                mask.clamp_(0, 1)
        self._extra.update(iterations=float(self.iterations), jitter=float(tau))
        return mask.detach()
