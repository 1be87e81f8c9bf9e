"""Model-randomisation sanity check: known answers, the verdict rule, degenerate maps, the
interval over films, and no side effects."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from medxai.codec import decode, encode
from medxai.errors import MedxaiError
from medxai.explain import get_explainer
from medxai.explain.base import Explainer, ModelRunner, minmax
from medxai.explain.toy import square_images
from medxai.metrics.sanity import (
    DEGENERATE,
    INSENSITIVE,
    SENSITIVE,
    _spearman,
    degenerate_pairs,
    randomisation_check,
    ssim,
)
from medxai.report.record import ExplainedImage, ExplainedSet, MethodSanity
from medxai.statistics.bootstrap import bootstrap_mean
from pipelines.audit.sanity import FILMS, record_of, sanity_films


class Intensity(Explainer):
    """Not a saliency method: the image's own mean |intensity|, whatever the model."""

    name = "intensity"

    def _explain(self, runner: ModelRunner, images: torch.Tensor, targets: torch.Tensor):
        return minmax(images.abs().mean(1, keepdim=True))


class FlatOnRandom(Explainer):
    """The image's mean |intensity| on the trained weights; on any other weights a constant
    map for the first `flat` images (as an optimiser that finds nothing to delete on a
    random network returns its starting mask), the same intensity map for the rest."""

    name = "flat-on-random"

    def __init__(self, model: nn.Module, flat: int) -> None:
        super().__init__()
        self.weights = {k: v.clone() for k, v in model.state_dict().items()}
        self.flat = flat

    def _explain(self, runner: ModelRunner, images: torch.Tensor, targets: torch.Tensor):
        maps = minmax(images.abs().mean(1, keepdim=True))
        state = runner.model.state_dict()
        if any(not torch.equal(v, self.weights[k]) for k, v in state.items()):
            maps[: self.flat] = 0.0
        return maps


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
    assert not result.model_sensitive and result.outcome == INSENSITIVE
    assert not result.degenerate and all(d.degenerate == 0 for d in result.depths)
    assert result.verdict.spearman_abs_ci == pytest.approx((1.0, 1.0))
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


def test_gradcam_is_model_sensitive(trained):
    model, images, targets = trained
    result = randomisation_check(model, images, targets, get_explainer("gradcam"))
    assert result.model_sensitive, [d.spearman_abs for d in result.depths]
    assert result.outcome == SENSITIVE and result.verdict.spearman_abs <= 0.5
    n = images.shape[0]
    assert result.original_maps.shape == result.first_maps.shape == (n, 32, 32)
    assert result.last_maps.shape == (n, 32, 32) and result.original_maps.max() > 0


def test_igos_plus_plus_finds_nothing_on_a_random_model_so_the_check_is_degenerate(trained):
    """On the random model the masks stay at their start (map 0 everywhere): Spearman against
    a constant map is 0, which used to read as "model-sensitive"; now no figure counts and
    the outcome is degenerate."""
    model, images, targets = trained
    params = {"iterations": 10, "steps": 8, "resolution": 16}
    result = randomisation_check(model, images, targets, get_explainer("igos++", **params))
    assert result.original_maps.max() > 0 and np.ptp(result.last_maps) == 0
    assert result.outcome == DEGENERATE and result.degenerate and not result.model_sensitive
    verdict = result.verdict
    assert verdict.degenerate == images.shape[0] and verdict.degenerate_share == 1.0
    assert verdict.spearman_abs_per_image == (0.0,) * images.shape[0]  # kept, not counted
    assert np.isnan(verdict.spearman_abs) and np.isnan(verdict.ssim)
    assert verdict.spearman_abs_ci is None


def test_a_map_that_goes_constant_on_the_random_model_is_degenerate_not_sensitive(trained):
    model, images, targets = trained
    result = randomisation_check(model, images, targets, FlatOnRandom(model, flat=6))
    assert result.outcome == DEGENERATE and not result.model_sensitive
    assert all(d.degenerate_per_image == (True,) * 6 for d in result.depths)
    assert all(d.no_map == 6 for d in result.depths)  # the explainer's own flag agrees
    assert all(rho == 0.0 for rho in result.verdict.spearman_abs_per_image)


@pytest.mark.parametrize("flat, expected", [(3, INSENSITIVE), (4, DEGENERATE)])
def test_the_outcome_is_degenerate_when_more_than_half_of_the_films_are(trained, flat, expected):
    """3 of 6 constant: the other 3 decide (their maps ignore the weights: Spearman 1, mean
    over 3 films, the constant films left out); 4 of 6: degenerate."""
    model, images, targets = trained
    result = randomisation_check(model, images, targets, FlatOnRandom(model, flat=flat))
    assert result.outcome == expected
    verdict = result.verdict
    assert verdict.degenerate == flat
    assert verdict.spearman_abs == pytest.approx(1.0)  # the constant films' 0s left out
    assert verdict.ssim == pytest.approx(1.0) and verdict.top_k_overlap == pytest.approx(1.0)


def test_degenerate_pairs_tolerance_is_relative_to_the_trained_map():
    rng = np.random.default_rng(0)
    trained = rng.random((5, 64)) * np.array([[1.0], [1.0], [1.0], [0.01], [0.0]])
    random = rng.random((5, 64)) * np.array([[0.0], [0.005], [0.05], [0.005], [1.0]])
    # constant; 0.5% of the range; 5%: kept; a weak trained map's 50%: kept; flat trained map
    assert degenerate_pairs(trained, random).tolist() == [True, True, False, False, True]


def test_the_gradient_is_model_sensitive_with_an_interval_over_eight_films(trained):
    model, _, _ = trained
    images, targets = square_images(FILMS, seed=11), torch.ones(FILMS, dtype=torch.long)
    result = randomisation_check(model, images, targets, get_explainer("gradient"))
    assert result.outcome == SENSITIVE and not result.degenerate
    verdict = result.verdict
    lo, hi = verdict.spearman_abs_ci
    assert lo <= verdict.spearman_abs <= hi < result.threshold
    mean, interval = bootstrap_mean(np.array(verdict.spearman_abs_per_image), 1000, seed=0)
    assert verdict.spearman_abs == pytest.approx(mean)
    assert verdict.spearman_abs_ci == pytest.approx(interval)
    for depth in result.depths:
        low, high = depth.spearman_abs_ci
        assert low <= depth.spearman_abs <= high


def test_the_audit_record_keeps_the_outcome_and_interval_through_audit_json(trained):
    model, images, targets = trained
    for explainer, outcome in ((FlatOnRandom(model, flat=6), DEGENERATE),
                               (get_explainer("gradient"), SENSITIVE)):  # fmt: skip
        record = record_of(randomisation_check(model, images, targets, explainer), 6)
        again = decode(MethodSanity, encode(record))
        assert again.outcome == record.outcome == outcome
        assert again.verdict.spearman_abs_ci == record.verdict.spearman_abs_ci
        assert again.n_compared == (0 if outcome == DEGENERATE else 6)
        assert again.degenerate_share == (1.0 if outcome == DEGENERATE else 0.0)


def _explained(labels: list[str]) -> ExplainedSet:
    return ExplainedSet([
        ExplainedImage(f"{k}.png", f"test/{k}.png", str(k), label, None, label, {})
        for k, label in enumerate(labels)
    ])  # fmt: skip


def test_the_audit_checks_the_explained_films_class_by_class_then_other_test_films():
    explained = _explained(["a", "a", "b", "b", "c"])
    decisions = {f"test/{k}.png": 0 for k in range(20)}
    films = sanity_films(explained, decisions, seed=0)
    assert len(films) == FILMS == 8
    assert films[:5] == ["test/0.png", "test/2.png", "test/4.png", "test/1.png", "test/3.png"]
    assert len(set(films)) == 8 and films == sanity_films(explained, decisions, seed=0)
    assert sanity_films(explained, dict(list(decisions.items())[:6]), seed=0)[5:] == [
        "test/5.png"
    ]  # fewer test films than FILMS: those there are


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
