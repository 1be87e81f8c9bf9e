"""The perturbation core: blur vs OpenCV, TV/BTV by hand, objective gradient, line search."""

import cv2
import numpy as np
import pytest
import torch

from medxai.explain.base import ModelRunner, chunks
from medxai.explain.perturb import (
    IntegratedObjective,
    LineSearch,
    Term,
    blend,
    blur_kernel_for,
    blurred_baseline,
    btv,
    btv_weights,
    gaussian_blur,
    minimize,
    tv,
)
from medxai.explain.toy import SquareEvidenceNet, box_mask, square_images


@pytest.mark.parametrize("total, size", [(10, 4), (8, 4), (3, 64), (0, 5)])
def test_chunks_cover_every_row_once_in_order(total, size):
    slices = list(chunks(total, size))
    assert [i for s in slices for i in range(total)[s]] == list(range(total))
    assert all(0 < s.stop - s.start <= size for s in slices)


def test_toy_boxes_are_x0_y0_x1_y1():
    m = box_mask(8, (1, 2, 3, 6))  # columns 1..2, rows 2..5
    assert m.sum() == 2 * 4 and m[2:6, 1:3].all()


@pytest.mark.parametrize("size, kernel, sigma", [(40, 51, 50.0), (30, 11, 5.0), (17, 9, 2.0)])
def test_blur_matches_opencv_reflect101(size, kernel, sigma):
    img = np.random.default_rng(0).normal(size=(size, size + 3)).astype(np.float64)
    ours = gaussian_blur(torch.from_numpy(img)[None, None], kernel, sigma)[0, 0].numpy()
    theirs = cv2.GaussianBlur(img, (kernel, kernel), sigma, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_blur_kernel_sizes_follow_the_igos_code():
    assert blur_kernel_for(224) == (51, 50.0)
    assert blur_kernel_for(600) == (151, 150.0)
    assert blur_kernel_for(1200) == (201, 200.0)
    flat = torch.full((1, 3, 20, 20), 0.7)
    torch.testing.assert_close(blurred_baseline(flat), flat)


def test_blend_and_tv_by_hand():
    a, b = torch.tensor([2.0]), torch.tensor([10.0])
    assert blend(a, b, torch.tensor([0.25])).item() == pytest.approx(8.0)
    m = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # vertical diffs (1, 0), horizontal diffs (1, 0): mean squares 0.5 + 0.5
    assert tv(m).item() == pytest.approx(1.0)


def test_btv_weights_and_value_by_hand():
    img = torch.zeros(1, 2, 2, 2)
    img[:, :, :, 1] = 0.1  # a horizontal step of 0.1 in both channels
    wv, wh = btv_weights(img, sigma=0.01)
    assert torch.allclose(wv, torch.ones_like(wv))
    assert torch.allclose(wh, torch.full_like(wh, float(np.exp(-1.0))))
    m = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # horizontal: e^-1 * 1 on both rows; vertical: 0; plus plain TV (0 + 1)
    assert btv(m, (wv, wh)).item() == pytest.approx(np.exp(-1.0) + 1.0)


def _objective(model, images, terms, derive, noise=0.0, steps=5):
    runner = ModelRunner(model, batch_size=7)
    return IntegratedObjective(
        runner,
        images,
        blurred_baseline(images),
        torch.ones(images.shape[0], dtype=torch.long),
        terms=terms,
        derive=derive,
        regularizer=lambda d, idx: 0.3 * tv(d[0]),
        steps=steps,
        noise_std=noise,
        generator=torch.Generator().manual_seed(0),
    )


def test_objective_gradient_matches_finite_differences():
    model = SquareEvidenceNet(gain=2.0, offset=1.0).double().eval()  # p_c far from 0 and 1
    images = square_images(2).double()
    terms = [Term(0, False, 1.0), Term(1, True, -1.0), Term(2, False, 1.0), Term(2, True, -1.0)]
    obj = _objective(model, images, terms, lambda m: [m[0], m[1], m[0] * m[1]], noise=0.2)
    gen = torch.Generator().manual_seed(1)
    masks = [torch.rand(2, 1, 4, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    idx = torch.arange(2)
    loss, grads = obj.evaluate(masks, idx, grad=True)
    assert obj.runner.images == 2 * 4 * 5
    eps = 1e-6
    for which, (i, y, x) in [(0, (0, 1, 2)), (1, (1, 1, 1))]:
        plus = [m.clone() for m in masks]
        plus[which][i, 0, y, x] += eps
        minus = [m.clone() for m in masks]
        minus[which][i, 0, y, x] -= eps
        numeric = (obj.evaluate(plus, idx, False)[0] - obj.evaluate(minus, idx, False)[0]) / (
            2 * eps
        )
        assert abs(grads[which][i, 0, y, x].item()) > 1e-4
        assert grads[which][i, 0, y, x].item() == pytest.approx(numeric[i].item(), rel=1e-6)
    # the loss the gradient pass reports is the objective itself (same noise draw)
    torch.testing.assert_close(loss, obj.evaluate(masks, idx, False)[0])
    # repeated indices read the same image's noise: candidates see the reference's draw
    twice, _ = obj.evaluate([m[[1, 1]] for m in masks], torch.tensor([1, 1]), False)
    torch.testing.assert_close(twice, loss[[1, 1]])


class _NeverBetter:
    """Fake objective whose candidates never pass Armijo: loss 0 at the start, `worse` after."""

    def __init__(self, slope: float = -0.1, worse: float = 1.0) -> None:
        self.slope, self.worse = slope, worse
        self.runner = ModelRunner(torch.nn.Identity(), 1)
        self.noise = None
        self.evaluations = 0
        self.passes = 0
        self.first = True
        self.grads = []

    def evaluate(self, masks, idx, grad):
        self.evaluations += idx.numel()
        self.passes += 1
        self.grads.append(grad)
        loss = torch.full((idx.numel(),), 0.0 if self.first else self.worse)
        self.first = False
        return loss, [torch.full_like(masks[0], self.slope)]


def test_line_search_keeps_mask_when_no_step_passes():
    obj = _NeverBetter()
    start = torch.full((2, 1, 3, 3), 0.5)
    search = LineSearch(alpha0=1.0, shrink=0.2, alpha_min=1e-3, retry_candidates=2)
    (mask,), stats = minimize(obj, [start], iterations=3, search=search)
    torch.testing.assert_close(mask, start)
    # a = 1 alone, then (0.2, 0.04) together, then (0.008, 0.0016): 5 candidates; no noise,
    # so the images leave as converged after the first iteration
    assert stats["loss_evaluations"] == 2 * (1 + 5)
    assert stats["passes"] == 1 + 3
    # the gradient pass at the start, then forward-only candidates
    assert obj.grads == [True, False, False, False]
    assert stats["accepted_steps_per_image"] == 0


def test_minimize_decreases_the_objective_and_counts_evaluations():
    model = SquareEvidenceNet().eval()
    images = square_images(3)
    obj = _objective(model, images, [Term(0, False, 1.0)], lambda m: m)
    ones = [torch.ones(3, 1, 8, 8)]
    start = obj.evaluate(ones, torch.arange(3), False)[0]
    (mask,), stats = minimize(obj, ones, iterations=6, search=LineSearch())
    end = obj.evaluate([mask], torch.arange(3), False)[0]
    assert (end < start - 0.2).all()
    assert stats["accepted_steps_per_image"] >= 5
    assert stats["loss_evaluations"] == obj.evaluations - 6  # minus the probes (3 + 3)
    # forward-equivalents per image and iteration, in loss evaluations (steps images each):
    # one gradient pass (3) plus forward-only candidates; all-gradient candidates cost 7.5
    per_iteration = obj.runner.forward_equivalents / (3 * 5 * 6)
    assert per_iteration <= 6.0


@pytest.mark.parametrize("batch_size", [7, 13, 400])
def test_noise_rows_do_not_depend_on_chunking_or_company(batch_size):
    images = square_images(3)
    terms = [Term(0, False, 1.0), Term(0, True, -1.0)]
    ref = _objective(SquareEvidenceNet().eval(), images, terms, lambda m: m, noise=0.2)
    obj = _objective(SquareEvidenceNet().eval(), images, terms, lambda m: m, noise=0.2)
    obj.runner.batch_size = batch_size
    masks = [torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))]
    loss, _ = ref.evaluate(masks, torch.arange(3), False)
    alone, _ = obj.evaluate([masks[0][[2, 0]]], torch.tensor([2, 0]), False)
    torch.testing.assert_close(alone, loss[[2, 0]])
    with_grad, _ = obj.evaluate(masks, torch.arange(3), True)
    torch.testing.assert_close(with_grad, loss)
    obj.redraw(torch.tensor([1]))  # a new draw for image 1 only
    after, _ = obj.evaluate(masks, torch.arange(3), False)
    assert after[1] != loss[1]
    torch.testing.assert_close(after[[0, 2]], loss[[0, 2]])


def test_line_search_stops_when_the_change_is_below_float_resolution():
    obj = _NeverBetter(slope=-1e-9, worse=1e-12)
    start = torch.full((2, 1, 3, 3), 0.5)
    search = LineSearch(alpha0=1.0, alpha_min=1e-5, retry_candidates=2)
    (mask,), stats = minimize(obj, [start], iterations=3, search=search)
    torch.testing.assert_close(mask, start)
    # the step moved the loss by 1e-12 and predicts g.(M - M') ~ 1e-17: one try, then no
    # chase of rounding noise down to alpha_min
    assert stats["loss_evaluations"] == 2 * (1 + 1)


def test_l1_pull_survives_the_kink_at_one():
    from medxai.explain.igos import l1_norm

    ones = torch.ones(1, 1, 2, 2, requires_grad=True)
    (g,) = torch.autograd.grad(l1_norm(ones).sum(), ones)
    # |1 - M| has a kink at M = 1 where autograd reports 0; on [0, 1] the slope is -1/4 here
    torch.testing.assert_close(g, torch.full((1, 1, 2, 2), -0.25))
