"""Model-randomisation sanity check: known answers, the verdict rule, and no side effects."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from medxai.errors import MedxaiError
from medxai.explain import get_explainer
from medxai.explain.base import Explainer, ModelRunner, minmax
from medxai.explain.toy import square_images
from medxai.metrics.sanity import _spearman, randomisation_check, ssim


class Intensity(Explainer):
    """Not a saliency method: the image's own mean |intensity|, whatever the model."""

    name = "intensity"

    def _explain(self, runner: ModelRunner, images: torch.Tensor, targets: torch.Tensor):
        return minmax(images.abs().mean(1, keepdim=True))


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained for ~0.5 s to tell square_images (class 1) from noise (class 0);
    layers in forward order: features.0, features.3 (convolutions), head (linear)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential()
        model.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        model.pool, model.flat, model.head = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2)
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        g = torch.Generator().manual_seed(0)
        for step in range(60):
            x = torch.cat(
                [square_images(16, seed=100 + step), torch.randn(16, 3, 32, 32, generator=g) * 0.5]
            )
            y = torch.cat([torch.ones(16), torch.zeros(16)]).long()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    images = square_images(6, seed=7)
    assert (model(images).argmax(1) == 1).all()
    return model, images, torch.ones(6, dtype=torch.long)


def test_a_map_that_ignores_the_model_is_caught(trained):
    """The intensity "explainer" never calls the model: its maps are identical at every
    depth (Spearman 1), so it is not model-sensitive by construction."""
    model, images, targets = trained
    result = randomisation_check(model, images, targets, Intensity())
    assert not result.model_sensitive
    assert result.layers == ("head", "features.3", "features.0")
    assert [d.depth for d in result.depths] == [1, 2, 3] and result.verdict_depth == 3
    for d in result.depths:
        assert d.spearman == pytest.approx(1.0) and d.ssim == pytest.approx(1.0)
        assert d.top_k_overlap == pytest.approx(1.0)


def test_integrated_gradients_on_sparse_images_is_caught(trained):
    """IG (zero baseline) is x * mean gradient: on images that are 0 at 90% of the pixels the
    map is 0 there under any weights, and those pixels tie at the bottom of every map, so the
    rank correlation stays near 1 however random the model (input-dominated by construction).
    The vanilla gradient, which has no x factor, passes on the same images."""
    model, _, targets = trained
    g = torch.Generator().manual_seed(3)
    sparse = torch.randn(6, 3, 32, 32, generator=g) * (torch.rand(6, 1, 32, 32, generator=g) < 0.1)
    ig = randomisation_check(model, sparse, targets, get_explainer("ig", steps=16))
    assert not ig.model_sensitive and ig.verdict.spearman_abs > 0.9
    assert randomisation_check(model, sparse, targets, get_explainer("gradient")).model_sensitive


@pytest.mark.parametrize(
    "name, params",
    [("gradcam", {}), ("igos++", {"iterations": 10, "steps": 8, "resolution": 16})],
)
def test_gradcam_and_igos_plus_plus_are_model_sensitive(trained, name, params):
    model, images, targets = trained
    result = randomisation_check(model, images, targets, get_explainer(name, **params))
    assert result.model_sensitive, [d.spearman_abs for d in result.depths]
    assert result.verdict.spearman_abs <= 0.5
    n = images.shape[0]
    assert result.original_maps.shape == result.first_maps.shape == (n, 32, 32)
    assert result.last_maps.shape == (n, 32, 32) and result.original_maps.max() > 0


def test_cam_verdict_counts_layers_from_the_target_layer_up(trained):
    model, images, targets = trained
    exp = get_explainer("gradcam", target_layer="features.3")
    result = randomisation_check(model, images, targets, exp, depths=[3])
    assert result.verdict_layer == "features.3" and result.verdict_depth == 2
    assert [d.depth for d in result.depths] == [2, 3]
    assert result.verdict.layers == ("head", "features.3")


def test_callers_model_and_global_rng_are_untouched(trained):
    model, images, targets = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    randomisation_check(model.train(), images, targets, get_explainer("gradient"))
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_same_seed_same_result_other_seed_other_result(trained):
    model, images, targets = trained
    a, b, c = (
        randomisation_check(model, images, targets, get_explainer("gradient"), seed=s)
        for s in (5, 5, 6)
    )
    assert a.depths == b.depths
    np.testing.assert_array_equal(a.last_maps, b.last_maps)
    assert a.depths != c.depths


def test_spearman_and_ssim_match_scipy_and_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.random((3, 20, 24))
    b = 0.5 * a + rng.random((3, 20, 24))
    b[0, :5] = 0.0  # ties
    rho = _spearman(a.reshape(3, -1), b.reshape(3, -1))
    for i in range(3):
        assert rho[i] == pytest.approx(spearmanr(a[i].ravel(), b[i].ravel())[0])
        expected = skimage_metrics.structural_similarity(a[i], b[i], data_range=1.0)
        assert ssim(a[i], b[i], 1.0) == pytest.approx(expected)
    assert _spearman(np.ones((1, 5)), rng.random((1, 5)))[0] == 0.0  # a flat map: 0


def test_bad_depths_raise(trained):
    model, images, targets = trained
    with pytest.raises(MedxaiError, match=r"depths must be integers in 1\.\.3"):
        randomisation_check(model, images, targets, get_explainer("gradient"), depths=[4])
