import numpy as np
import pytest
import torch

from medxai.data.transforms import (
    COVIDNET_TOP_CROP,
    Augmentation,
    Preprocessing,
    build_transforms,
)
from medxai.errors import MedxaiError


def banded_image(size: int = 100) -> np.ndarray:
    """Black radiograph with a bright burned-in band in the top 5% of rows."""
    image = np.zeros((1, size, size), np.float32)
    image[:, :5, :] = 1.0
    image[:, 50:60, 40:60] = 0.5
    return image


def as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x))


def test_top_band_crop_is_off_by_default_and_removes_the_band_when_on():
    assert Preprocessing().top_crop == 0.0
    kept = as_tensor(
        build_transforms(Preprocessing(image_size=50, intensity="none"))(banded_image())
    )
    assert kept.shape == (1, 50, 50) and kept[0, 0].min() == 1.0
    crop = Preprocessing(image_size=50, top_crop=COVIDNET_TOP_CROP, intensity="none")
    cropped = as_tensor(build_transforms(crop)(banded_image()))
    assert cropped.shape == (1, 50, 50)
    assert cropped.max() == pytest.approx(0.5), "the band is gone, the body is kept"


def test_intensity_modes():
    image = banded_image() * 0.4 + 0.1
    unit = as_tensor(build_transforms(Preprocessing(image_size=32, intensity="unit"))(image))
    assert float(unit.min()) == pytest.approx(0.0) and float(unit.max()) == pytest.approx(1.0)
    standard = as_tensor(build_transforms(Preprocessing(image_size=32))(image))
    assert float(standard.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(standard.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    brighter = as_tensor(build_transforms(Preprocessing(image_size=32))(image * 2 + 0.3))
    torch.testing.assert_close(brighter, standard, atol=1e-4, rtol=0)  # exposure-invariant
    with pytest.raises(MedxaiError, match="unknown intensity mode 'gamma'"):
        build_transforms(Preprocessing(intensity="gamma"))


def test_augmentation_is_seeded_and_actually_changes_images():
    prep = Preprocessing(image_size=48)
    image = np.random.default_rng(0).random((1, 64, 64)).astype(np.float32)
    aug = Augmentation(prob=1.0)
    chain, twin = build_transforms(prep, aug, seed=3), build_transforms(prep, aug, seed=3)
    first = [as_tensor(chain(image)) for _ in range(2)]
    again = [as_tensor(twin(image)) for _ in range(2)]
    other = as_tensor(build_transforms(prep, aug, seed=4)(image))
    plain = as_tensor(build_transforms(prep)(image))
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1]), "each call draws new parameters"
    assert not torch.equal(first[0], other)
    assert (first[0] - plain).abs().mean() > 0.01


def test_preprocessing_round_trips_through_a_dict_and_rejects_bad_values():
    prep = Preprocessing(image_size=128, channels=3, top_crop=0.08)
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    with pytest.raises(MedxaiError, match="unknown preprocessing fields"):
        Preprocessing.from_dict({"image_size": 3, "gamma": 2})
    with pytest.raises(MedxaiError, match="top-crop fraction"):
        build_transforms(Preprocessing(top_crop=1.5))


def test_boxes_follow_the_top_crop_and_the_resize():
    prep = Preprocessing(image_size=100, top_crop=0.1)
    # a 200 x 400 (H x W) film: rows 0-19 are cropped, the rest is scaled by 100/180, 100/400
    boxes = [(40, 2, 80, 10), (0, 20, 400, 200), (200, 110, 240, 119)]
    assert prep.map_boxes(boxes, (200, 400)) == [(0, 0, 100, 100), (50, 50, 60, 55)]
    assert Preprocessing(image_size=50).map_boxes([(10, 10, 20, 30)], (100, 100)) == [
        (5, 5, 10, 15)
    ]
