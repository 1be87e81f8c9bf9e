"""A user's own classifier, importable as `user_models:build` (tests/pipelines is on sys.path
while its tests run): torchvision's ResNet-18, two outputs, as a user would write it."""

from __future__ import annotations

import torchvision


def build():
    return torchvision.models.resnet18(weights=None, num_classes=2)
