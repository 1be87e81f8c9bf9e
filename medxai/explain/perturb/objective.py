"""The integrated objective of I-GOS and iGOS++, batched over images, terms and steps.

Its parts carry `torch.profiler.record_function` labels ("blend", "noise", "forward",
"backward", "sums", "regulariser", "evaluate") that `benchmarks/bench_explain.py --profile`
reads; they cost next to nothing when no profiler runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.profiler import record_function

from medxai.explain.base import ModelRunner, chunk_rows, chunks
from medxai.explain.perturb.ops import integration_alphas, upsample


@dataclass(frozen=True)
class Term:
    """One data term of an objective: sign * S(path)(derived mask `mask`)."""

    mask: int
    insertion: bool
    sign: float


Derive = Callable[[list[Tensor]], list[Tensor]]
Regularizer = Callable[[list[Tensor], Tensor], Tensor]

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
        with record_function("blend"):
            w = ups[i, t] * (self._path[t] * self.alphas[k]).view(-1, 1, 1, 1)  # (b, 1, H, W)
            x = self._starts[self._insertion[t].long(), img].addcmul_(self.delta[img], w)
        if self.noise:
            with record_function("noise"):
                self._noise(img, t * self.steps + k, x)
        return x

    def _upsampled(self, derived: list[Tensor]) -> Tensor:
        with record_function("blend"):
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
            with record_function("forward"):
                p = self.runner.scores(x, self.targets[idx[i]])  # (b,)
            with record_function("sums"):
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
                with record_function("forward"):
                    p = self.runner.scores(x, self.targets[idx[i]])  # (b,)
                with record_function("backward"):
                    (gx,) = torch.autograd.grad(p.sum(), x)
            coef = self._sign[t] * self._path[t] * self.alphas[k] / ks.numel()  # (b,)
            with record_function("blend"):
                g = (gx * self.delta[idx[i]]).sum(1).flatten(1)  # (b, H*W)
            with record_function("sums"):
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
        with record_function("evaluate"):
            if not grad:
                with torch.inference_mode():
                    derived = self.derive(masks)
                    data = self._data(self._upsampled(derived), idx, self._all_steps)
                    with record_function("regulariser"):
                        return data + self.regularizer(derived, idx), None
            with torch.enable_grad():
                leaves = [m.detach().requires_grad_(True) for m in masks]
                derived = self.derive(leaves)
                ups = self._upsampled(derived)
            with torch.no_grad():
                data, g_ups = self._data_and_grad(ups.detach(), idx)
            with torch.enable_grad(), record_function("blend"):
                grads = torch.autograd.grad(ups, leaves, g_ups, retain_graph=True)
            with torch.enable_grad(), record_function("regulariser"):
                reg = self.regularizer(derived, idx)  # (n,)
                reg_grads = torch.autograd.grad(reg.sum(), leaves, allow_unused=True)
        grads = [g if r is None else g + r for g, r in zip(grads, reg_grads, strict=True)]
        return data + reg.detach(), grads
