"""The speed targets of the issue, counted: loss evaluations per iteration and model images."""

import torch

from medxai.explain import get_explainer
from medxai.explain.base import ModelRunner
from medxai.explain.perturb import LineSearch, minimize


def test_igos_plus_plus_budget_at_20_iterations_by_20_steps(square_model, square_batch):
    images, targets = square_batch[0][:3], square_batch[1][:3]
    exp = get_explainer("igos++", iterations=20, steps=20, resolution=16, batch_size=256)
    exp(square_model, images, targets)
    s = exp.stats
    # gradient pass included: every loss evaluation is 4 terms x 20 steps images
    assert s["model_images"] == s["loss_evaluations"] * 4 * 20
    assert s["loss_evaluations_per_iteration"] <= 2.0
    assert s["model_images_per_image"] <= 2500
    assert s["accepted_steps_per_image"] >= 15


class _Quadratic:
    """Fake objective: L = sum (M - 0.3)^2 per image; counts passes and noise redraws."""

    def __init__(self) -> None:
        self.runner = ModelRunner(torch.nn.Identity(), 1)
        self.noise = torch.zeros(1)
        self.evaluations = self.passes = self.redraws = 0

    def redraw(self, idx):
        self.redraws += 1

    def evaluate(self, masks, idx, grad):
        self.evaluations += idx.numel()
        self.passes += 1
        d = masks[0] - 0.3
        return d.pow(2).flatten(1).sum(1), [2 * d]


def test_noise_refresh_costs_one_pass_per_refresh():
    obj = _Quadratic()
    search = LineSearch(alpha0=0.25, noise_refresh=2)
    (mask,), stats = minimize(obj, [torch.ones(2, 1, 3, 3)], iterations=6, search=search)
    # every first try passes: 1 initial pass + 6 speculative passes + refreshes at it 2 and 4
    assert obj.redraws == 2 and stats["passes"] == 1 + 6 + 2
    assert stats["loss_evaluations_per_iteration"] == 9 / 6
    torch.testing.assert_close(mask, torch.full((2, 1, 3, 3), 0.3 + 0.7 * 0.5**6))


def test_aop_initial_mask_follows_eq_5(square_model, square_batch):
    images, targets = square_batch[0][:2], square_batch[1][:2]
    exp = get_explainer("sigcam", resolution=8, theta=0.7, lam=0.15)
    runner = ModelRunner(square_model, 64)
    base = exp.base.base_maps(runner, images, targets)  # (2, 1, 8, 8): feature map is 8x8
    init = exp.initial_masks(runner, images, targets)
    expected = 1 - 0.15 * base * (base >= 0.7)
    torch.testing.assert_close(init, expected)
    assert (init < 1).any() and init.min() >= 0.85
