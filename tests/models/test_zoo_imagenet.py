from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from medxai.data.imagefolder import load_image
from medxai.models.lite import efficientnet_lite0_weights
from medxai.models.zoo import build_model, head_layer, natural_preprocessing, target_layer

ESPRESSO = 967


@pytest.mark.parametrize(
    "name, layer, head",
    [
        ("vgg19", "features.36", "classifier.6"),
        ("densenet201", "features.norm5", "classifier"),
        ("inception_v3", "Mixed_7c", "fc"),
        ("efficientnet-lite0", "_head_act", "_fc"),
    ],
)
def test_imagenet_models_name_their_cam_layer_and_head(name, layer, head):
    model = build_model(name, 80, 3)
    modules = dict(model.named_modules())
    assert target_layer(name) == layer and layer in modules
    assert head_layer(name) == head and modules[head].out_features == 80


def test_real_efficientnet_lite0_knows_espresso_with_its_own_normalisation(tmp_path):
    path = tmp_path / "coffee.png"
    Image.fromarray(skdata.coffee()).save(path)
    model = build_model("efficientnet-lite0", 1000, 3, efficientnet_lite0_weights()).eval()
    lite = natural_preprocessing("efficientnet-lite0")
    assert lite.intensity == "lite"
    probs = {}
    for norm in ("lite", "imagenet"):
        prep = replace(lite, intensity=norm)
        with torch.no_grad():
            probs[norm] = torch.softmax(model(load_image(path, prep)[None]), 1)[0]
    assert int(probs["lite"].argmax()) == ESPRESSO and float(probs["lite"][ESPRESSO]) > 0.9
    assert float(probs["lite"][ESPRESSO]) > float(probs["imagenet"][ESPRESSO])


def test_one_channel_lite0_keeps_same_padding():
    model = build_model("efficientnet-lite0", 3, 1).eval()
    x = torch.from_numpy(np.ones((2, 1, 224, 224), np.float32))
    with torch.no_grad():
        assert model._conv_stem(x).shape == (2, 32, 112, 112)  # "same" padding kept
        assert model(x).shape == (2, 3)
