"""The Explainer contract for every registry name: shape, range, seeds, batching, errors."""

import pytest
import torch
from explain_helpers import METHODS, fast_params
from torch import nn

from medxai.errors import MedxaiError, ModelOutputError
from medxai.explain import get_explainer, method_names

ALL = method_names()
STOCHASTIC = ["rise", "smoothgrad", "igos", "igos++", "sigcam"]
DETERMINISTIC = ["gradcam", "gradcam++", "wgradcam", "gradient", "ig"]


class NaNNet(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.value = value

    def forward(self, x):
        a = self.conv(x)
        return torch.stack([a.mean((1, 2, 3)), a.mean((1, 2, 3)) * self.value], 1)


def test_registry_names_cover_the_issue():
    assert set(METHODS) <= set(ALL)
    assert {
        f"aop:{b}+{o}"
        for b in ("gradcam", "gradcam++", "wgradcam")
        for o in ("igos", "igos++", "mask")
    } <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_output_contract_and_model_untouched(name, square_model, square_batch):
    images, targets = square_batch[0][:3].clone(), square_batch[1][:3]
    model = square_model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explainer = get_explainer(name, batch_size=37, **fast_params(name))
    maps = explainer(model, images, targets)
    assert maps.shape == (3, 1, 32, 32)
    assert maps.dtype == images.dtype
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert maps.flatten(1).amax(1).gt(0).all(), "a map of zeros says nothing"
    assert torch.equal(images, square_batch[0][:3])
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert explainer.stats["model_images"] > 0
    model.eval()


@pytest.mark.parametrize("name", STOCHASTIC)
def test_same_seed_same_map(name, square_model, square_batch):
    images, targets = square_batch[0][:2], square_batch[1][:2]
    a = get_explainer(name, seed=3, **fast_params(name))(square_model, images, targets)
    b = get_explainer(name, seed=3, **fast_params(name))(square_model, images, targets)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["rise", "smoothgrad"])
def test_other_seed_other_map(name, square_model, square_batch):
    images, targets = square_batch[0][:2], square_batch[1][:2]
    a = get_explainer(name, seed=1, **fast_params(name))(square_model, images, targets)
    b = get_explainer(name, seed=2, **fast_params(name))(square_model, images, targets)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", [*DETERMINISTIC, "igos"])
def test_batch_equals_single_calls(name, square_model, square_batch):
    images, targets = square_batch[0][:4], square_batch[1][:4]
    params = fast_params(name)
    if name == "igos":
        params["noise"] = 0.0  # without noise I-GOS is deterministic per image
    explainer = get_explainer(name, batch_size=5, **params)
    batch = explainer(square_model, images, targets)
    single = torch.cat(
        [explainer(square_model, images[i : i + 1], targets[i : i + 1]) for i in range(4)]
    )
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_model_output_raises(name, value):
    model = NaNNet(value)
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ModelOutputError):
        get_explainer(name, **fast_params(name))(model, images, torch.tensor([1, 1]))
    assert not model.conv._forward_hooks


def test_unknown_method_and_parameters_raise():
    with pytest.raises(MedxaiError, match=r"unknown saliency method 'gradcam\+'"):
        get_explainer("gradcam+")
    with pytest.raises(MedxaiError, match="aop:<base>"):
        get_explainer("aop:gradient+igos")
    with pytest.raises(MedxaiError, match="unknown parameter"):
        get_explainer("igos", stepz=3)
    with pytest.raises(MedxaiError, match="resolution"):
        get_explainer("igos++", resolution=0)
    with pytest.raises(MedxaiError, match="batch_size"):
        get_explainer("gradcam", batch_size=0)
    with pytest.raises(MedxaiError, match=r"unknown parameter\(s\) optimizer for sigcam"):
        get_explainer("sigcam", optimizer="mask")
    with pytest.raises(MedxaiError, match="warmup_iterations"):
        get_explainer("sigcam", iterations=5)


def test_bad_inputs_raise(square_model, square_batch):
    images, targets = square_batch
    exp = get_explainer("gradcam")
    with pytest.raises(MedxaiError, match="targets"):
        exp(square_model, images, torch.tensor([0.5] * 10))
    with pytest.raises(MedxaiError, match="targets must lie in 0..1"):
        exp(square_model, images, torch.full((10,), 7))
    with pytest.raises(MedxaiError, match=r"\(N, C, H, W\)"):
        exp(square_model, images[0], targets[0])
    with pytest.raises(MedxaiError, match="exceeds the image size"):
        get_explainer("igos", resolution=64)(square_model, images[:1], targets[:1])


def test_aop_parses_plus_plus_names():
    exp = get_explainer("aop:gradcam+++igos++", theta=0.6, lam=0.25)
    assert exp.name == "aop:gradcam+++igos++"
    assert exp.base.name == "gradcam++" and exp.optimizer.name == "igos++"


def test_repeated_calls_leave_no_hooks_and_no_growth(square_model, square_batch):
    images, targets = square_batch[0][:1], square_batch[1][:1]
    exp = get_explainer("gradcam")
    for _ in range(100):
        exp(square_model, images, targets)
    assert all(not m._forward_hooks and not m._backward_hooks for m in square_model.modules())
    assert all(p.grad is None for p in square_model.parameters())


def test_stats_count_model_images(square_model, square_batch):
    images, targets = square_batch[0][:2], square_batch[1][:2]
    ig = get_explainer("ig", steps=16)
    ig(square_model, images, targets)
    assert ig.stats["model_images"] == 2 * 16
    igos = get_explainer("igos++", iterations=5, steps=4, resolution=8)
    igos(square_model, images, targets)
    s = igos.stats
    assert s["model_images"] == s["loss_evaluations"] * 4 * 4
    assert s["loss_evaluations_per_iteration"] == s["loss_evaluations"] / (2 * 5)


def test_every_method_has_a_summary():
    from medxai.explain import method_summaries

    summaries = method_summaries()
    assert set(summaries) == set(method_names(aop=False)) | {"aop:<base>+<optimizer>"}
    assert all(len(line) > 20 for line in summaries.values())


@pytest.mark.parametrize("name", ALL)
def test_method_parameters_are_accepted(name):
    from medxai.explain import method_parameters

    params = method_parameters(name)
    assert {"batch_size", "seed"} <= params
    assert ("resolution" in params) == (name not in DETERMINISTIC + ["smoothgrad", "rise"])
    assert ("target_layer" in params) == (
        name.startswith(("gradcam", "wgradcam", "aop:")) or name == "sigcam"
    )
    get_explainer(name, batch_size=8, seed=1)
