"""Automatic target layers match the AOP paper's choices on the torchvision models."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
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


class ForeignConv(nn.Module):
    """A convolution from another framework's port: its own 4-D weight, no torch conv class."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.conv2d(x, self.weight, padding=1))


class ForeignNet(nn.Module):
    """Leaf modules only, wired in `forward`: the probe sees no conv, norm or block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ForeignConv(3, 4)
        self.body = ForeignConv(4, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(self.stem(x)).mean((2, 3)))


def test_failed_search_lists_the_candidate_conv_layers():
    model, images = ForeignNet().eval(), torch.randn(2, 3, 16, 16)
    with pytest.raises(MedxaiError, match="give target_layer by name.*: stem, body$"):
        find_target_layer(model, images)
    with pytest.raises(MedxaiError, match="unknown target layer 'head'.*: stem, body$"):
        find_target_layer(model, images, "head")
    exp = get_explainer("gradcam", target_layer="body")  # a listed name works
    assert exp(model, images, torch.tensor([0, 1])).shape == (2, 1, 16, 16)


def test_candidate_list_says_none_or_ends_with_the_last_twelve():
    flat = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))  # no conv at all
    with pytest.raises(MedxaiError, match="layers: none found$"):
        find_target_layer(flat, torch.randn(1, 3, 4, 4))
    convs = nn.Sequential(*[nn.Conv2d(1, 1, 1) for _ in range(15)])
    with pytest.raises(MedxaiError, match=r": 3, 4, .*, 14 \(and 3 earlier\)$"):
        find_target_layer(convs, torch.randn(1, 1, 4, 4), "nope")
