"""Input-gradient methods: vanilla gradient, Integrated Gradients, SmoothGrad (on the logit).

Constants: docs/algorithms.md, Integrated Gradients and SmoothGrad.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from medxai.explain.base import (
    GRADIENT_PASS,
    Explainer,
    ModelRunner,
    check_float,
    check_int,
    chunks,
    minmax,
)
from medxai.explain.perturb import integration_alphas

# flat sample indices (b,) -> (inputs (b, C, H, W), image index (b,))
Sampler = Callable[[Tensor], tuple[Tensor, Tensor]]


def input_gradients(
    runner: ModelRunner, total: int, sample: Sampler, targets: Tensor, n_images: int
) -> Tensor:
    """Sum over samples of dF_c/dx per image, (N, C, H, W); all samples batched in chunks."""
    acc: Tensor | None = None
    rows = torch.arange(total, device=targets.device)
    with runner.frozen():
        for chunk in chunks(total, runner.batch_size):
            x, img = sample(rows[chunk])
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                score = runner.scores(x, targets[img])  # (b,)
                (g,) = torch.autograd.grad(score.sum(), x)  # (b, C, H, W)
            if acc is None:
                acc = g.new_zeros(n_images, *g.shape[1:])
            onehot = (img == torch.arange(n_images, device=img.device)[:, None]).to(g.dtype)
            acc.view(n_images, -1).add_(onehot @ g.flatten(1))  # deterministic segment sum
    assert acc is not None
    return acc


class Gradient(Explainer):
    """Vanilla gradient (Simonyan et al. 2014): max over channels of |dF_c/dx|."""

    name = "gradient"
    uses_softmax = False

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        g = input_gradients(
            runner, images.shape[0], lambda f: (images[f], f), targets, images.shape[0]
        )
        return minmax(g.abs().amax(1, keepdim=True))


class IntegratedGradients(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017): right Riemann sum, zero baseline.

    attr = (x - x0) * mean_k dF_c/dx(x0 + a_k (x - x0)); map = |sum over channels of attr|.
    x0 = 0 in model-input space (black for unnormalised inputs).
    """

    name = "ig"
    uses_softmax = False

    def __init__(self, *, steps: int = 50, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, 1)

    def attributions(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        """Raw IG attributions, (N, C, H, W)."""
        n, s = images.shape[0], self.steps
        alphas = integration_alphas(s, images.device, images.dtype)

        def sample(flat: Tensor) -> tuple[Tensor, Tensor]:
            img = flat // s
            return images[img] * alphas[flat % s].view(-1, 1, 1, 1), img  # (b, C, H, W)

        return images * input_gradients(runner, n * s, sample, targets, n) / s

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        return minmax(self.attributions(runner, images, targets).sum(1, keepdim=True).abs())

    def forward_equivalents(self) -> float:
        return GRADIENT_PASS * self.steps


class SmoothGrad(Explainer):
    """SmoothGrad (Smilkov et al. 2017): gradient averaged over noisy copies.

    Noise sd = `noise` x (max - min) of each image; map = max over channels of |mean grad|.
    """

    name = "smoothgrad"
    uses_softmax = False

    def __init__(
        self, *, samples: int = 25, noise: float = 0.15, batch_size: int = 64, seed: int = 0
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.samples = check_int("samples", samples, 1)
        self.noise = check_float("noise", noise, 0.0)

    def forward_equivalents(self) -> float:
        return GRADIENT_PASS * self.samples

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        n, s = images.shape[0], self.samples
        flat_img = images.flatten(1)
        sd = (flat_img.amax(1) - flat_img.amin(1)) * self.noise  # (N,)
        noise = torch.randn(
            (n * s, *images.shape[1:]),
            generator=self.generator(images.device),
            device=images.device,
            dtype=images.dtype,
        )  # (N*S, C, H, W)

        def sample(flat: Tensor) -> tuple[Tensor, Tensor]:
            img = flat // s
            return images[img] + noise[flat] * sd[img].view(-1, 1, 1, 1), img

        g = input_gradients(runner, n * s, sample, targets, n) / s
        return minmax(g.abs().amax(1, keepdim=True))
