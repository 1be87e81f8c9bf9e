"""The audit's test images, decoded once and kept as model input for every stage that needs
them (baseline evaluation, saliency, region tests, the report's gallery): in memory, or, when
they would take more than MEMORY_LIMIT, in a file under OUT (see FilmStore), so that memory
stays flat in the number of films."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from monai.transforms import Compose
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from medxai.data.covidx import Record
from medxai.data.film_store import FilmStore
from medxai.data.imageio import read_image, to_channels
from medxai.data.transforms import Preprocessing, build_transforms, intensity_steps


@dataclass(frozen=True)
class TestImage:
    """A test image, with its path relative to the dataset root (the cleaner's key)."""

    __test__ = False  # not a pytest class

    record: Record
    relative: str


MEMORY_LIMIT = 256 << 20  # bytes of decoded films kept in memory; beyond, a file under OUT


class Intensity:
    """The preprocessing's intensity steps on resized pixels: the model's input. It pickles
    as its preprocessing (for torchrun's ranks), the steps built again where it lands."""

    def __init__(self, prep: Preprocessing) -> None:
        self.prep, self._steps = prep, Compose(intensity_steps(prep))

    def __call__(self, pixels) -> torch.Tensor:
        return _tensor(self._steps(pixels))

    def __reduce__(self):
        return Intensity, (self.prep,)


class ModelInputs:
    """Per relative path: the image after crop/resize (`pixels`, (C, S, S) in [0, 1]), the model
    input (`tensors`, the intensity steps on top) and the original (H, W); each read once.
    `spill`: a folder for the films when they outgrow `limit` bytes (see FilmStore)."""

    def __init__(
        self, images: Sequence[TestImage], prep: Preprocessing,
        progress: Callable[[int], None] | None = None, spill: Path | None = None,
        limit: int = MEMORY_LIMIT,
    ) -> None:  # fmt: skip
        geometry = build_transforms(replace(prep, intensity="none"))
        self.prep, self.intensity = prep, Intensity(prep)
        self.spill, self.store_limit = spill, limit // 2  # each store's share of `limit`
        keys = [image.relative for image in images]
        self.pixels = FilmStore(keys, prep.input_shape, spill, self.store_limit)
        self.tensors = FilmStore(keys, prep.input_shape, spill, self.store_limit)
        self.shapes: dict[str, tuple[int, int]] = {}
        for image in images:
            if image.relative in self.shapes:
                continue
            pixels = read_image(image.record.path)
            self.shapes[image.relative] = tuple(pixels.shape[:2])
            resized = geometry(to_channels(pixels, prep.channels))
            self.pixels[image.relative] = _tensor(resized)
            self.tensors[image.relative] = self.intensity(resized)
            if progress:
                progress(1)

    def batch(self, relatives: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.tensors[r] for r in relatives])

    def dataset(self, relatives: Sequence[str], labels: Sequence[int]) -> Dataset:
        """(input, label) pairs in the given order, as `medxai.models.training.predict` reads."""
        return _Pairs(self.tensors, list(relatives), list(labels))


def _tensor(array) -> torch.Tensor:
    return convert_to_tensor(array, dtype=torch.float32, track_meta=False)


class _Pairs(Dataset):
    """Reads each input from the store when asked, so a spilled split is never all in memory."""

    def __init__(self, tensors: FilmStore, relatives: list[str], labels: list[int]) -> None:
        self.tensors, self.relatives, self.labels = tensors, relatives, labels

    def __len__(self) -> int:
        return len(self.relatives)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tensors[self.relatives[index]], self.labels[index]
