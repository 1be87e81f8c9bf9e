"""Projected descent on masks in [0, 1] with a batched Armijo line search (`minimize`).

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
only compare rounding noise. Each iteration's search carries the profiler label
"line search".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.profiler import record_function

from medxai.explain.perturb.objective import IntegratedObjective

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
    """Projected descent on masks in [0, 1] with a batched Armijo line search (module doc).

    Returns the masks and the search's counts per image and iteration.
    `warmup=(iters, baseline)` switches to `baseline` after `iters` iterations.
    """
    state = _State.start(objective, masks, search)
    evals0, passes0 = objective.evaluations - state.n, objective.passes - 1
    for it in range(iterations):
        with record_function("line search"):
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
