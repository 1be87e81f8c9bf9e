"""AOP (Activation Optimised with Perturbation) and its instance SIGCAM (the AOP paper).

A CAM base mask M is filtered and scaled, M = lambda * filter(M < theta) (eq. 5), upsampled
to the optimiser's resolution and inverted, M0 = 1 - up(M); a perturbation optimiser then
refines M0, using a lighter blur for the baseline during the first warm-up iterations.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from medxai.errors import MedxaiError
from medxai.explain.base import Explainer, ModelRunner, check_float, check_int
from medxai.explain.cam import CamExplainer, GradCAM, GradCAMPlusPlus, WGradCAM
from medxai.explain.igos import IGOS, IGOSPlusPlus, MaskOptimizer, Warmup
from medxai.explain.mask import MeaningfulPerturbation
from medxai.explain.perturb import upsample

AOP_BASES: dict[str, type[CamExplainer]] = {c.name: c for c in (GradCAM, GradCAMPlusPlus, WGradCAM)}
AOP_OPTIMIZERS: dict[str, type[MaskOptimizer]] = {
    c.name: c for c in (IGOS, IGOSPlusPlus, MeaningfulPerturbation)
}


class AOP(Explainer):
    """AOP: a CAM base mask refined by a perturbation optimiser (AOP paper, eq. 5-6).

    Parameters other than AOP's go to the optimiser.

    theta, lam: eq. 5 (ImageNet 0.7 / 0.15, COCO 0.6 / 0.25); warmup_iterations with the
    light blur (warmup_kernel, warmup_sigma) before the full one. Constants: docs/algorithms.md,
    SIGCAM / AOP.
    """

    name = "aop"

    def __init__(
        self,
        *,
        base: str = "wgradcam",
        optimizer: str = "igos",
        theta: float = 0.7,
        lam: float = 0.15,
        warmup_iterations: int = 5,
        warmup_kernel: int = 11,
        warmup_sigma: float = 5.0,
        target_layer: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        **optimizer_params: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        if base not in AOP_BASES:
            raise MedxaiError(f"unknown AOP base {base!r}; expected one of {', '.join(AOP_BASES)}")
        if optimizer not in AOP_OPTIMIZERS:
            raise MedxaiError(
                f"unknown AOP optimizer {optimizer!r}; expected one of {', '.join(AOP_OPTIMIZERS)}"
            )
        self.name = f"aop:{base}+{optimizer}"
        self.theta = check_float("theta", theta, 0.0, 1.0)
        self.lam = check_float("lam", lam, 0.0, 1.0)
        check_int("warmup_iterations", warmup_iterations, 0)
        check_int("warmup_kernel", warmup_kernel, 1)
        if warmup_kernel % 2 == 0:
            raise MedxaiError(f"warmup_kernel must be odd; got {warmup_kernel}")
        self.warmup: Warmup | None = None
        if warmup_iterations > 0:
            sigma = check_float("warmup_sigma", warmup_sigma, 1e-6)
            self.warmup = (warmup_iterations, warmup_kernel, sigma)
        self.base = AOP_BASES[base](target_layer=target_layer, batch_size=batch_size, seed=seed)
        self.optimizer = AOP_OPTIMIZERS[optimizer](
            batch_size=batch_size, seed=seed, **optimizer_params
        )
        if warmup_iterations >= self.optimizer.iterations:
            raise MedxaiError(
                f"warmup_iterations ({warmup_iterations}) must be below the optimiser's "
                f"iterations ({self.optimizer.iterations})"
            )

    def initial_masks(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        """M0 = 1 - up(lambda * filter(M < theta)) at the optimiser's resolution, (N, 1, r, r)."""
        m = self.base.base_maps(runner, images, targets)  # (N, 1, h, w) in [0, 1], eq. 4
        m = self.lam * m * (m >= self.theta)  # eq. 5
        return 1 - upsample(m, self.optimizer.mask_size(images)).clamp(0, 1)

    def forward_equivalents(self) -> float:
        return self.base.forward_equivalents() + self.optimizer.forward_equivalents()

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        init = self.initial_masks(runner, images, targets)
        self.optimizer._extra, self.optimizer._stuck = {}, None
        mask = self.optimizer.optimize(runner, images, targets, init=init, warmup=self.warmup)
        self._extra.update(self.optimizer._extra)
        self._stuck = self.optimizer._stuck
        return 1 - upsample(mask, tuple(images.shape[-2:]))  # (N, 1, H, W)


class SIGCAM(AOP):
    """SIGCAM (AOP paper): a WGradCAM base mask refined by I-GOS, ImageNet theta and lambda."""

    def __init__(self, **params: Any) -> None:
        for fixed in ("base", "optimizer"):
            if fixed in params:
                raise MedxaiError(f"sigcam fixes {fixed}; use aop:<base>+<optimizer> to change it")
        super().__init__(base="wgradcam", optimizer="igos", **params)
        self.name = "sigcam"
