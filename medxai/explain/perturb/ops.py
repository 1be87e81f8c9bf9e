"""Tensor operations of the perturbation core: blur and baseline, blend, upsampling, TV/BTV,
integration points. Notation: `medxai.explain.perturb`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
