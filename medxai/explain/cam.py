"""Activation maps: Grad-CAM, Grad-CAM++ and WGradCAM, one weight rule each.

Map = ReLU(sum_k w_k A^k) at the target layer (eq. 3 of the AOP paper), upsampled
bilinearly to the image and min-max normalised (eq. 4). F_c is the raw logit.
Details: docs/algorithms.md, Grad-CAM family.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medxai.explain.base import Explainer, ModelRunner, chunks, minmax
from medxai.explain.layers import capture, find_target_layer
from medxai.explain.perturb import upsample


class CamExplainer(Explainer):
    """Template: a CAM variant overrides `_weights(acts, grads) -> (N, K)` only."""

    uses_softmax = False

    def __init__(
        self, *, target_layer: str | None = None, batch_size: int = 64, seed: int = 0
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.target_layer = target_layer
        self.layer: str | None = None

    def _weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        raise NotImplementedError

    def raw_maps(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        """ReLU(sum_k w_k A^k) at the target layer's resolution, (N, 1, h, w), unnormalised."""
        self.layer = find_target_layer(runner.model, images, self.target_layer)
        maps = []
        with capture(runner.model, self.layer) as store, torch.enable_grad():
            for chunk in chunks(images.shape[0], runner.batch_size):
                x = images[chunk].clone().requires_grad_(True)
                store.clear()
                logits = runner.logits(x)  # (b, K)
                score = logits.gather(1, targets[chunk, None])
                acts = store[-1]  # (b, K, h, w)
                (grads,) = torch.autograd.grad(score.sum(), acts)
                w = self._weights(acts.detach(), grads)  # (b, K)
                cam = (w[:, :, None, None] * acts.detach()).sum(1, keepdim=True)
                maps.append(torch.relu(cam))
        return torch.cat(maps)

    def base_maps(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        """Min-max normalised maps at the target layer's resolution (eq. 4), (N, 1, h, w)."""
        return minmax(self.raw_maps(runner, images, targets))

    def _explain(self, runner: ModelRunner, images: Tensor, targets: Tensor) -> Tensor:
        raw = self.raw_maps(runner, images, targets)
        return minmax(upsample(raw, tuple(images.shape[-2:])))  # (N, 1, H, W)


class GradCAM(CamExplainer):
    """Grad-CAM (Selvaraju et al. 2017): w_k = mean_ij dF_c/dA^k_ij (eq. 1 of the AOP paper)."""

    name = "gradcam"

    def _weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        return grads.mean((2, 3))


class WGradCAM(CamExplainer):
    """WGradCAM (AOP paper): w_k = mean_ij (dF_c/dA^k_ij * A^k_ij) (eq. 2)."""

    name = "wgradcam"

    def _weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        return (grads * acts).mean((2, 3))


class GradCAMPlusPlus(CamExplainer):
    """Grad-CAM++ (Chattopadhyay et al. 2018): w_k = sum_ij a_ij ReLU(g_ij).

    a_ij = g^2 / (2 g^2 + sum_ab A_ab g^3), g = dF_c/dA: the higher derivatives are those of
    exp(F_c) written through g (their eq. 19).
    """

    name = "gradcam++"

    def _weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        g2 = grads.pow(2)
        denom = 2 * g2 + acts.sum((2, 3), keepdim=True) * grads.pow(3)  # (b, K, h, w)
        safe = torch.where(denom != 0, denom, torch.ones_like(denom))
        alpha = torch.where(denom != 0, g2 / safe, torch.zeros_like(denom))
        return (alpha * torch.relu(grads)).sum((2, 3))
