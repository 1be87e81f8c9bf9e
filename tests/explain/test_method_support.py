"""Which methods run on which models: the declared needs, and what TorchScript really runs."""

import warnings

import pytest
import torch
import torchvision

from medxai.errors import MedxaiError
from medxai.explain import get_explainer, method_names, perturb
from medxai.explain.registry import METHOD_NEEDS, method_needs, supported_methods

SIZE = 32


def test_every_method_declares_its_needs_and_only_rise_runs_forward_only():
    assert set(METHOD_NEEDS) == {n for n in method_names() if not n.startswith("aop:")}
    forward_only = [n for n in method_names() if not method_needs(n).gradients]
    assert forward_only == ["rise"]
    layered = [n for n in method_names(aop=False) if method_needs(n).target_layer]
    assert layered == ["gradcam", "gradcam++", "wgradcam", "sigcam"]
    assert method_needs("aop:gradcam++ +igos".replace(" ", "")).target_layer
    with pytest.raises(MedxaiError, match="unknown saliency method 'lime'"):
        method_needs("lime")


def test_supported_methods_keep_the_order_and_say_why_others_are_left_out():
    asked = ["gradcam", "rise", "ig", "aop:wgradcam+mask"]
    assert supported_methods(asked, gradients=True, has_target_layer=True) == (asked, [])
    kept, notes = supported_methods(asked, gradients=True, has_target_layer=False,
                                    no_target_layer="TorchScript runs no hooks")  # fmt: skip
    assert kept == ["rise", "ig"]
    assert notes == [
        "gradcam: needs a CAM target layer; TorchScript runs no hooks",
        "aop:wgradcam+mask: needs a CAM target layer; TorchScript runs no hooks",
    ]
    kept, notes = supported_methods(asked, gradients=False, has_target_layer=False)
    assert kept == ["rise"] and notes[0] == "gradcam: needs gradients; the model runs forward only"


@pytest.fixture(scope="module")
def models():
    """A seeded resnet18 (2 classes), its traced and scripted TorchScript, and 2 images."""
    torch.manual_seed(0)
    eager = torchvision.models.resnet18(weights=None, num_classes=2).eval()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        traced, scripted = torch.jit.trace(eager, x[:1]), torch.jit.script(eager)
    return eager, traced, scripted, x


@pytest.mark.parametrize("method", ["gradient", "ig", "smoothgrad"])
def test_gradient_maps_on_torchscript_equal_the_eager_ones(models, method):
    eager, traced, scripted, x = models
    params = {"steps": 8} if method == "ig" else {"samples": 4} if method == "smoothgrad" else {}
    expected = get_explainer(method, **params)(eager, x, 1)
    for module in (traced, scripted):
        torch.testing.assert_close(
            get_explainer(method, **params)(module, x, 1), expected, rtol=0, atol=1e-5
        )


def test_perturbation_methods_run_torchscript_itself_without_the_folded_copy(models):
    """inference_copy cannot fold a TorchScript module (torch.fx does not trace it): iGOS++
    runs on the module itself and gives the eager model's maps without the copy."""
    eager, traced, scripted, x = models
    assert perturb.inference_copy(traced, x[:1]) is None
    assert perturb.inference_copy(scripted, x[:1]) is None
    params = {"iterations": 2, "steps": 4, "resolution": 8, "batch_size": 32}
    explainer = get_explainer("igos++", fast_copy=False, **params)
    expected = explainer(eager, x, 1)
    assert explainer.stats["accepted_steps_per_image"] > 0, "the masks moved"
    torch.testing.assert_close(
        get_explainer("igos++", **params)(traced, x, 1), expected, rtol=0, atol=1e-4
    )


def test_cam_methods_refuse_torchscript_in_one_line(models):
    _, traced, scripted, x = models
    for module in (traced, scripted):
        with pytest.raises(MedxaiError, match="forward hook, which a TorchScript module never"):
            get_explainer("gradcam")(module, x, 1)
        with pytest.raises(MedxaiError, match="TorchScript"):
            get_explainer("gradcam", target_layer="layer4")(module, x, 1)
