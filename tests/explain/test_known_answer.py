"""Known answer: the model's evidence lies only in a square; the top 5% must fall inside it."""

import pytest
import torch
from explain_helpers import fast_params

from medxai.explain import get_explainer

# Share of images whose top-5% pixels all lie in the square. The issue fixes 0.9 for the
# perturbation methods; the gradient and CAM methods meet the same bar on this model
# (their evidence path is exactly the square), so they are held to it too.
THRESHOLDS = {
    "igos": 0.9,
    "igos++": 0.9,
    "sigcam": 0.9,
    "rise": 0.9,
    "mask": 0.9,
    "gradcam": 0.9,
    "gradcam++": 0.9,
    "wgradcam": 0.9,
    "gradient": 0.9,
    "ig": 0.9,
    "smoothgrad": 0.9,
}


def top_inside(maps: torch.Tensor, region: torch.Tensor, share: float = 0.05) -> torch.Tensor:
    flat = maps.flatten(1)
    k = int(share * flat.shape[1])
    top = flat.topk(k, dim=1).indices
    return region.flatten()[top].all(1)


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_top5_percent_inside_square(name, square_model, square_batch, region):
    images, targets = square_batch
    maps = get_explainer(name, **fast_params(name))(square_model, images, targets)
    assert top_inside(maps, region).float().mean().item() >= THRESHOLDS[name]


def test_top_inside_fails_for_a_wrong_map(region):
    wrong = torch.zeros(2, 1, 32, 32)
    wrong[:, :, 24:, 24:] = 1.0
    assert not top_inside(wrong, region).any()


def test_igos_plus_plus_deletion_and_insertion_masks_agree(square_model, square_batch, region):
    images, targets = square_batch
    exp = get_explainer("igos++", **fast_params("igos++"))
    maps = exp(square_model, images[:2], targets[:2])
    inside = maps[:, 0][:, region].mean()
    outside = maps[:, 0][:, ~region].mean()
    assert inside > 0.5 > outside
