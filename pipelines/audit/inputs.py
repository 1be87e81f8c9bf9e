"""The audit's test images, decoded once and kept as model input for every stage that needs
them (baseline evaluation, saliency, region tests, the report's gallery)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from monai.transforms import Compose
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from medxai.data.covidx import Record
from medxai.data.imageio import read_image, to_channels
from medxai.data.transforms import Preprocessing, build_transforms, intensity_steps


@dataclass(frozen=True)
class TestImage:
    """A test image, with its path relative to the dataset root (the cleaner's key)."""

    __test__ = False  # not a pytest class

    record: Record
    relative: str


class ModelInputs:
    """Per relative path: the image after crop/resize (`pixels`, (C, S, S) in [0, 1]), the model
    input (`tensors`, the intensity steps on top) and the original (H, W); each read once."""

    def __init__(
        self, images: Sequence[TestImage], prep: Preprocessing,
        progress: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        geometry = build_transforms(replace(prep, intensity="none"))
        self.prep = prep
        self._intensity = Compose(intensity_steps(prep))
        self.pixels: dict[str, torch.Tensor] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[int, int]] = {}
        for image in images:
            if image.relative in self.tensors:
                continue
            pixels = read_image(image.record.path)
            self.shapes[image.relative] = tuple(pixels.shape[:2])
            resized = geometry(to_channels(pixels, prep.channels))
            self.pixels[image.relative] = _tensor(resized)
            self.tensors[image.relative] = self.intensity(resized)
            if progress:
                progress(1)

    def intensity(self, pixels) -> torch.Tensor:
        """The preprocessing's intensity steps on resized pixels: the model's input."""
        return _tensor(self._intensity(pixels))

    def batch(self, relatives: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.tensors[r] for r in relatives])

    def dataset(self, relatives: Sequence[str], labels: Sequence[int]) -> Dataset:
        """(input, label) pairs in the given order, as `medxai.models.training.predict` reads."""
        return _Pairs([self.tensors[r] for r in relatives], list(labels))


def _tensor(array) -> torch.Tensor:
    return convert_to_tensor(array, dtype=torch.float32, track_meta=False)


class _Pairs(Dataset):
    def __init__(self, tensors: list[torch.Tensor], labels: list[int]) -> None:
        self.tensors, self.labels = tensors, labels

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tensors[index], self.labels[index]
