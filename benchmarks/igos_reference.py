"""The iGOS++ authors' optimisation schedule, restated step by step for side-by-side benchmarks.

This is not medxai's method: it reproduces what the authors' public iGOS++ code
(Khorram et al. 2021, `iGOS_pp` with line search) computes, so that medxai can be compared
with it on the same machine, model, images and metric. Written from a reading of that code,
with its behaviour kept where medxai departs from it:

- one image at a time; each of the four data terms' integrated gradient is its own
  forward+backward of the `steps` path images (one batch per term);
- the data terms' gradient is halved before the regulariser's gradient is added, while the
  line search judges the full loss;
- regulariser L1 * mean|1 - Mxy| + L2 * BTV, with BTV = 0.5 * (TV of the low-resolution mask
  + bilateral TV of its upsampling), image weights exp(-(dI)^2 / 0.01) (vertical: channel mean
  of dI, then squared; horizontal: squared, then channel mean);
- bilinear upsampling with aligned corners;
- noise N(0, 0.2^2) drawn afresh for every loss evaluation, gradient and line search alike;
- line search restarted at alpha0 = 1000 every iteration, the loss at the current masks
  recomputed, candidates tried one at a time (alpha * 0.2) until
  L(M') <= L(M) - 1e-4 * alpha * |g|^2; when none passes above 1e-5, the last (rejected)
  alpha is applied anyway.

Returns the explanation mask Mdel * Mins at mask resolution (low = important).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARMIJO = 1e-4
SHRINK = 0.2
ALPHA_MIN = 1e-5
NOISE = 0.2


def _up(mask: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=True)


def _tv(mask: Tensor, beta: float = 2.0) -> tuple[Tensor, Tensor]:
    m = mask[:, 0]
    vertical = (m[:, :-1, :] - m[:, 1:, :]).abs().pow(beta).flatten(1).mean(1)
    horizontal = (m[:, :, :-1] - m[:, :, 1:]).abs().pow(beta).flatten(1).mean(1)
    return vertical, horizontal


def _bilateral_tv(image: Tensor, mask: Tensor, size: tuple[int, int], sigma=0.01) -> Tensor:
    tv_v, tv_h = _tv(mask)
    up = _up(mask, size)
    w_v = torch.exp(-((image[:, :, :-1, :] - image[:, :, 1:, :]).mean(1) ** 2) / sigma)
    w_h = torch.exp(-((image[:, :, :, :-1] - image[:, :, :, 1:]) ** 2) / sigma).mean(1)
    d_v = (up[:, 0, :-1, :] - up[:, 0, 1:, :]).abs().pow(2)
    d_h = (up[:, 0, :, :-1] - up[:, 0, :, 1:]).abs().pow(2)
    bil_v = (w_v * d_v).flatten(1).mean(1)
    bil_h = (w_h * d_h).flatten(1).mean(1)
    return 0.5 * (tv_v + tv_h + bil_v + bil_h)


class AuthorsIGOSPlusPlus:
    """iGOS++ as the authors' code runs it (see the module docstring); counts model images."""

    def __init__(
        self,
        model: nn.Module,
        *,
        resolution: int = 28,
        iterations: int = 20,
        steps: int = 20,
        l1: float = 1.0,
        l2: float = 20.0,
        alpha0: float = 1000.0,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.resolution = resolution
        self.iterations = iterations
        self.steps = steps
        self.l1 = l1
        self.l2 = l2
        self.alpha0 = alpha0
        self.seed = seed
        self.images = 0
        self.forward_equivalents = 0
        self.candidates = 0

    def _path_score(self, start: Tensor, end: Tensor, up_mask: Tensor, label: int) -> Tensor:
        """mean_k p_c(end * a_k U + start * (1 - a_k U) + eps), as a (1,) tensor."""
        alphas = torch.linspace(1 / self.steps, 1, self.steps, device=end.device)
        m = up_mask * alphas.view(-1, 1, 1, 1)  # (S, 1, H, W)
        x = end * m + start * (1 - m)
        x = x + torch.randn(x.shape, generator=self._gen, device=x.device) * NOISE
        p = torch.softmax(self.model(x), 1)[:, label]
        self.images += self.steps
        self.forward_equivalents += self.steps * (3 if p.requires_grad else 1)
        return (p / self.steps).sum().view(1)

    def _loss(self, image, base, label, mdel, mins) -> Tensor:
        size = tuple(image.shape[-2:])
        u_del, u_ins = _up(mdel, size), _up(mins, size)
        both = u_del * u_ins
        loss = self._path_score(base, image, u_del, label)
        loss = loss - self._path_score(image, base, u_ins, label)
        loss = loss + self._path_score(base, image, both, label)
        loss = loss - self._path_score(image, base, both, label)
        mxy = mdel * mins
        reg = self.l1 * (1 - mxy).abs().flatten(1).mean(1)
        return loss + reg + self.l2 * _bilateral_tv(image, mxy, size)

    def _gradient(self, image, base, label, mdel, mins) -> tuple[Tensor, Tensor]:
        size = tuple(image.shape[-2:])
        mdel = mdel.detach().requires_grad_(True)
        mins = mins.detach().requires_grad_(True)
        terms = [  # (start, end, which masks, sign): deletion paths start at B
            (base, image, "both", 1.0),
            (image, base, "both", -1.0),
            (base, image, "del", 1.0),
            (image, base, "ins", -1.0),
        ]
        g_del, g_ins = torch.zeros_like(mdel), torch.zeros_like(mins)
        for start, end, which, sign in terms:
            u_del, u_ins = _up(mdel, size), _up(mins, size)
            up = {"both": u_del * u_ins, "del": u_del, "ins": u_ins}[which]
            score = self._path_score(start, end, up, label)
            grads = torch.autograd.grad(score.sum(), [mdel, mins], allow_unused=True)
            if grads[0] is not None:
                g_del += sign * grads[0]
            if grads[1] is not None:
                g_ins += sign * grads[1]
        g_del, g_ins = g_del / 2, g_ins / 2  # the authors' halving of the data terms
        mxy = mdel * mins
        reg = self.l1 * (1 - mxy).abs().flatten(1).mean(1)
        reg = reg + self.l2 * _bilateral_tv(image, mxy, size)
        r_del, r_ins = torch.autograd.grad(reg.sum(), [mdel, mins])
        return g_del + r_del, g_ins + r_ins

    def _line_search(self, image, base, label, mdel, mins, g_del, g_ins) -> float:
        with torch.no_grad():
            reference = self._loss(image, base, label, mdel, mins)
            slope = -ARMIJO * (g_del.pow(2).sum() + g_ins.pow(2).sum())
            alpha = self.alpha0
            while True:
                cand_del = (mdel - alpha * g_del).clamp(0, 1)
                cand_ins = (mins - alpha * g_ins).clamp(0, 1)
                loss = self._loss(image, base, label, cand_del, cand_ins)
                self.candidates += 1
                if bool(loss <= reference + alpha * slope) or alpha < ALPHA_MIN:
                    return alpha
                alpha *= SHRINK

    def explain_one(self, image: Tensor, base: Tensor, label: int) -> Tensor:
        """Explanation mask (1, 1, r, r) of one image (1, C, H, W), low = important."""
        r = self.resolution
        mdel = image.new_ones(1, 1, r, r)
        mins = image.new_ones(1, 1, r, r)
        for _ in range(self.iterations):
            g_del, g_ins = self._gradient(image, base, label, mdel, mins)
            alpha = self._line_search(image, base, label, mdel, mins, g_del, g_ins)
            mdel = (mdel - alpha * g_del).clamp(0, 1)
            mins = (mins - alpha * g_ins).clamp(0, 1)
        return (mdel * mins).detach()

    def __call__(self, images: Tensor, baselines: Tensor, targets: Tensor) -> Tensor:
        """Masks (N, 1, r, r) for a batch, one image after another, parameters frozen."""
        self._gen = torch.Generator(device=images.device).manual_seed(self.seed)
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            return torch.cat(
                [
                    self.explain_one(images[i : i + 1], baselines[i : i + 1], int(targets[i]))
                    for i in range(images.shape[0])
                ]
            )
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
