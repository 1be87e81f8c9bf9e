"""Automatic target layers match the AOP paper's choices on the torchvision models."""

import pytest
import torch
from torchvision import models

from medxai.errors import MedxaiError
from medxai.explain import find_target_layer, get_explainer


@pytest.mark.parametrize(
    "build, size, expected",
    [
        (lambda: models.resnet18(weights=None), 64, "layer4"),
        (lambda: models.densenet121(weights=None), 64, "features"),
        (lambda: models.vgg11(weights=None), 64, "features"),
        (
            lambda: models.inception_v3(weights=None, aux_logits=False, init_weights=False),
            160,
            "Mixed_7c",
        ),
    ],
)
def test_last_conv_block_is_found(build, size, expected):
    model = build().eval()
    assert find_target_layer(model, torch.randn(1, 3, size, size)) == expected
    assert not any(m._forward_hooks for m in model.modules())


def test_densenet_features_end_in_norm5():
    model = models.densenet121(weights=None).eval()
    assert list(model.features.named_children())[-1][0] == "norm5"


def test_target_layer_override_and_unknown_name(square_model, square_batch):
    images, targets = square_batch[0][:2], square_batch[1][:2]
    exp = get_explainer("gradcam", target_layer="features.conv")
    maps = exp(square_model, images, targets)
    assert exp.layer == "features.conv" and maps.shape == (2, 1, 32, 32)
    with pytest.raises(MedxaiError, match="unknown target layer 'layer9'"):
        get_explainer("gradcam", target_layer="layer9")(square_model, images, targets)
