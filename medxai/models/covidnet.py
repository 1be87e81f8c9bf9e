"""COVID-Net (Wang, Lin & Wong, Sci. Rep. 2020), rebuilt from the paper's description.

The network is a stem convolution followed by four stages of PEPX modules
(projection → expansion → depth-wise → projection → extension). Inside a stage every
module reads the sum of a 1×1-projected copy of the stage input and the outputs of all
modules before it: the paper's dense additive long-range connections. The head pools
globally (so any input size works) and has the paper's three fully connected layers.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

STAGE_DEPTHS = (3, 4, 6, 3)  # PEPX modules per stage, as in the paper's Fig. 2
WIDTHS = {
    "covidnet-l": (256, 512, 1024, 2048),
    "covidnet-s": (32, 64, 128, 256),
}
HEAD_UNITS = {"covidnet-l": (1024, 256), "covidnet-s": (256, 64)}


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class PEPX(nn.Module):
    """Projection–Expansion–Projection–eXtension module.

    1×1 first-stage projection to out/4 channels, 1×1 expansion to out/2, 3×3 depth-wise
    convolution (carries the stride), 1×1 second-stage projection to out/4, 1×1 extension
    to `out`; each followed by batch norm, all but the extension by ReLU (the stage adds
    the extension's output to its running sum and applies the ReLU there).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        low, high = max(cout // 4, 4), max(cout // 2, 8)
        relu = nn.ReLU
        self.layers = nn.Sequential(
            *conv_bn(cin, low), relu(),  # first-stage projection
            *conv_bn(low, high), relu(),  # expansion
            *conv_bn(high, high, 3, stride, groups=high), relu(),  # depth-wise representation
            *conv_bn(high, low), relu(),  # second-stage projection
            *conv_bn(low, cout),  # extension
        )  # fmt: skip
        # Start each module as a no-op on the stage's running sum (as ResNet's zero-init
        # residual): the sum of up to six branches then trains from a well-scaled start.
        nn.init.zeros_(self.layers[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PEPXStage(nn.Module):
    """PEPX modules joined by dense additive connections; downsamples by `stride`."""

    def __init__(self, cin: int, cout: int, depth: int, stride: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride))
        self.blocks = nn.ModuleList(
            [PEPX(cin, cout, stride)] + [PEPX(cout, cout) for _ in range(depth - 1)]
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.shortcut(x) + self.blocks[0](x)  # (N, cout, H/stride, W/stride)
        for block in self.blocks[1:]:
            total = total + block(self.relu(total))
        return self.relu(total)


class COVIDNet(nn.Module):
    """COVID-Net for `num_classes` classes on `in_channels`-channel images of any size."""

    def __init__(self, variant: str = "covidnet-s", num_classes: int = 3, in_channels: int = 1):
        super().__init__()
        widths, (fc1, fc2) = WIDTHS[variant], HEAD_UNITS[variant]
        stem = widths[0] // 4 if variant == "covidnet-s" else 64
        stages: list[tuple[str, nn.Module]] = [
            ("stem", nn.Sequential(*conv_bn(in_channels, stem, 7, 2), nn.ReLU(), nn.MaxPool2d(2)))
        ]
        cin = stem
        for index, (width, depth) in enumerate(zip(widths, STAGE_DEPTHS, strict=True)):
            stages.append(
                (f"stage{index + 1}", PEPXStage(cin, width, depth, 1 if index == 0 else 2))
            )
            cin = width
        self.features = nn.Sequential(OrderedDict(stages))
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(cin, fc1), nn.ReLU(),
            nn.Linear(fc1, fc2), nn.ReLU(),
            nn.Linear(fc2, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
