"""What turns a decoded image into model input: one `Preprocessing` for radiographs and photos.

Radiographs go through a MONAI chain (`build_transforms`: numpy (C, H, W) float32 in [0, 1]
in, area resampling); photographs through torchvision (`Preprocessing.geometry`, bilinear,
used by `medxai.data.imagefolder.load_image`). The preprocessing is a plain dict
(`Preprocessing.to_dict`) so a checkpoint can carry it and `explain`/`evaluate` rebuild
exactly the chain the model was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from monai.transforms import (
    Compose,
    NormalizeIntensity,
    RandAffine,
    RandScaleIntensity,
    RandShiftIntensity,
    Resize,
    ScaleIntensity,
    Transform,
)
from torchvision.transforms import functional as TF

from medxai.errors import MedxaiError

EPS = 1e-9  # rounding slack: 99 * (100 / 180) must map to 55, not 56
COVIDNET_TOP_CROP = 0.08  # COVID-Net crops the top 8% of every radiograph
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORMALISATIONS = {  # fixed per-channel (mean, std) of photograph models
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "lite": ((127 / 255,) * 3, (128 / 255,) * 3),  # EfficientNet-Lite's TF preprocessing
    "none": ((0.0,) * 3, (1.0,) * 3),
}
INTENSITY_MODES = {
    # Zero mean, unit variance per image: exposure-invariant, and it keeps first-layer
    # activations near the scale batch norm's running statistics start from.
    "standardize": "per-image zero mean, unit standard deviation",
    "unit": "per-image min-max to [0, 1]",
    "none": "decoded values in [0, 1], unchanged",
    "imagenet": "per-channel ImageNet mean and standard deviation",
    "lite": "(x - 127/255) / (128/255), EfficientNet-Lite's",
    "custom": "per-channel (x - mean) / std with the given mean and std (on the [0, 1] scale)",
}


class CropTopBand(Transform):
    """Remove the top `fraction` of rows, like COVID-Net's preprocessing.

    Off by default in medxai: the top band is where hospitals burn in text, and hiding it
    also hides the shortcut an audit must find.
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 <= fraction < 1.0:
            raise MedxaiError(f"top-crop fraction must be in [0, 1), got {fraction}")
        self.fraction = fraction

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rows = image.shape[-2]
        return image[..., int(round(rows * self.fraction)) :, :]


class ChannelNormalise(Transform):
    """(x - mean) / std per channel: a fixed mode's statistics, or explicit ones."""

    def __init__(
        self,
        mode: str = "custom",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.mean, self.std = (mean, std) if mode == "custom" else NORMALISATIONS[mode]

    def __call__(self, image):
        return TF.normalize(torch.as_tensor(image), list(self.mean), list(self.std))


class CentreCrop(Transform):
    """The central size x size window, placed as torchvision's `center_crop` places it."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image):
        top, left = (centre_offset(n, self.size) for n in image.shape[-2:])
        return image[..., top : top + self.size, left : left + self.size]


class ResizeShortSide(Transform):
    """Resize (area averaging) so the shorter side is `size`, keeping the aspect ratio."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image):
        return Resize(short_side_shape(image.shape[-2:], self.size), mode="area")(image)


def short_side_shape(shape: Sequence[int], size: int) -> tuple[int, int]:
    """(H, W) after resizing the shorter side to `size`, rounded as torchvision rounds it."""
    height, width = shape
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def centre_offset(length: int, crop: int) -> int:
    return int(round((length - crop) / 2.0))


@dataclass(frozen=True)
class Preprocessing:
    """What turns a decoded image into model input; stored in every checkpoint.

    Geometry: crop the top `top_crop` of the rows, then resize the whole image to
    image_size x image_size (resize=0), or resize its shorter side to `resize` and take the
    central image_size x image_size window (photographs). Then the intensity mode; "custom"
    uses `mean` and `std` (one value per channel, or one for all, on the [0, 1] scale of the
    decoded image), which every other mode leaves unused.
    """

    image_size: int = 224
    channels: int = 1
    top_crop: float = 0.0
    intensity: str = "standardize"  # a key of INTENSITY_MODES
    resize: int = 0  # shorter side before the centre crop; 0: no crop, the whole image
    mean: tuple[float, ...] | None = None  # intensity "custom" only
    std: tuple[float, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, S, S): one model input."""
        return self.channels, self.image_size, self.image_size

    def to_dict(self) -> dict:
        """Plain values; the optional fields only when set, so a checkpoint written before
        they existed and one written now without them hold the same dict."""
        values = asdict(self)
        for key in ("resize", "mean", "std"):
            if not values[key]:
                del values[key]  # whole-image checkpoints keep their four-key form
        for key in ("mean", "std"):
            if key in values:
                values[key] = list(values[key])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise MedxaiError(f"unknown preprocessing fields {sorted(unknown)}")
        stats = {k: tuple(float(v) for v in values[k]) for k in ("mean", "std") if values.get(k)}
        return cls(**{**values, **stats})

    def check(self) -> None:
        """Raise a MedxaiError for settings no chain can apply."""
        if self.image_size < 8:
            raise MedxaiError(f"image size must be at least 8 pixels, got {self.image_size}")
        if self.intensity not in INTENSITY_MODES:
            raise MedxaiError(
                f"unknown intensity mode {self.intensity!r}; use {', '.join(INTENSITY_MODES)}"
            )
        if 0 < self.resize < self.image_size:
            raise MedxaiError(f"resize {self.resize} is below the image size {self.image_size}")
        if self.intensity == "custom":
            self._check_statistics()

    def _check_statistics(self) -> None:
        for key in ("mean", "std"):
            values = getattr(self, key)
            if not values or len(values) not in (1, self.channels):
                raise MedxaiError(
                    f"intensity 'custom' needs {key} as 1 or {self.channels} (channels) numbers, "
                    f"got {values!r}"
                )
        if min(self.std) <= 0:
            raise MedxaiError(f"std must be positive, got {list(self.std)}")

    def geometry(self, x: torch.Tensor, nearest: bool = False) -> torch.Tensor:
        """The crop/resize part on a (C, H, W) tensor (bilinear, or nearest for masks)."""
        mode = TF.InterpolationMode.NEAREST if nearest else TF.InterpolationMode.BILINEAR
        if self.top_crop:
            x = CropTopBand(self.top_crop)(x)
        if not self.resize:
            return TF.resize(x, [self.image_size, self.image_size], mode, antialias=not nearest)
        x = TF.resize(x, self.resize, mode, antialias=not nearest)
        return TF.center_crop(x, self.image_size)

    def map_boxes(
        self, boxes: Sequence[Sequence[float]], shape: tuple[int, int]
    ) -> list[tuple[int, int, int, int]]:
        """Boxes (x0, y0, x1, y1) on a (H, W) original → on the model input (crop, resize).

        Boxes wholly outside the model input (in the cropped top band, or outside the
        centre crop) vanish; the rest are clipped to the input.
        """
        height, width = shape
        cut = int(round(height * self.top_crop))
        size = (self.image_size, self.image_size)
        if self.resize:
            size = short_side_shape((height - cut, width), self.resize)
        sy, sx = size[0] / (height - cut), size[1] / width
        top, left = (centre_offset(n, self.image_size) for n in size)
        mapped = []
        for x0, y0, x1, y1 in boxes:
            box = (
                max(0, math.floor(x0 * sx - left + EPS)),
                max(0, math.floor((y0 - cut) * sy - top + EPS)),
                min(self.image_size, math.ceil(x1 * sx - left - EPS)),
                min(self.image_size, math.ceil((y1 - cut) * sy - top - EPS)),
            )
            if box[2] > box[0] and box[3] > box[1]:
                mapped.append(box)
        return mapped


@dataclass(frozen=True)
class Augmentation:
    """Small geometric and brightness jitter; no flips (they would mirror L/R markers)."""

    rotate_deg: float = 5.0
    shift: float = 0.05
    zoom: float = 0.05
    brightness: float = 0.1
    prob: float = 0.8


def intensity_steps(prep: Preprocessing) -> list[Transform]:
    """The intensity mode as transforms (numpy arrays or tensors in, either out)."""
    if prep.intensity == "standardize":
        return [NormalizeIntensity()]
    if prep.intensity == "unit":
        return [ScaleIntensity(minv=0.0, maxv=1.0)]
    if prep.intensity in ("imagenet", "lite"):
        return [ChannelNormalise(prep.intensity)]
    if prep.intensity == "custom":
        return [ChannelNormalise("custom", prep.mean, prep.std)]
    return []


def build_transforms(
    prep: Preprocessing, augment: Augmentation | None = None, seed: int = 0
) -> Compose:
    """Deterministic eval chain, or the training chain when `augment` is given (the eval
    chain followed by `augmentation_chain`'s steps)."""
    steps = eval_steps(prep)
    if augment is not None:
        steps += augmentation_steps(prep, augment)
    chain = Compose(steps)
    chain.set_random_state(seed=seed)
    return chain


def eval_steps(prep: Preprocessing) -> list[Transform]:
    """Crop, resize and intensity: what every image goes through, drawn from no generator."""
    prep.check()
    steps: list = []
    if prep.top_crop:
        steps.append(CropTopBand(prep.top_crop))
    if prep.resize:
        steps += [ResizeShortSide(prep.resize), CentreCrop(prep.image_size)]
    else:
        steps.append(Resize((prep.image_size, prep.image_size), mode="area"))
    return steps + intensity_steps(prep)


def augmentation_steps(prep: Preprocessing, augment: Augmentation) -> list[Transform]:
    """The random jitter applied after the eval chain (training only)."""
    size = prep.image_size
    return [
        RandAffine(
            prob=augment.prob,
            rotate_range=math.radians(augment.rotate_deg),
            translate_range=(augment.shift * size, augment.shift * size),
            scale_range=(augment.zoom, augment.zoom),
            padding_mode="border",
        ),
        RandScaleIntensity(factors=augment.brightness, prob=augment.prob),
        RandShiftIntensity(offsets=augment.brightness, prob=augment.prob),
    ]


def augmentation_chain(prep: Preprocessing, augment: Augmentation, seed: int = 0) -> Compose:
    """`augmentation_steps` alone, for inputs that already went through the eval chain:
    `augmentation_chain(eval_chain(x))` equals `build_transforms(prep, augment)(x)`, given
    the same random state."""
    chain = Compose(augmentation_steps(prep, augment))
    chain.set_random_state(seed=seed)
    return chain
