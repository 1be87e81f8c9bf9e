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


def test_resize_and_centre_crop_move_boxes_with_the_pixels():
    # a 100 x 160 film with a bright box; shorter side to 80 (scale 0.8), central 64 x 64
    image = np.zeros((1, 100, 160), np.float32)
    image[:, 40:60, 90:110] = 1.0
    prep = Preprocessing(image_size=64, intensity="none", resize=80)
    x = as_tensor(build_transforms(prep)(image))[0]
    assert x.shape == (64, 64)
    ((x0, y0, x1, y1),) = prep.map_boxes([(90, 40, 110, 60)], (100, 160))
    assert (x0, y0, x1, y1) == (40, 24, 56, 40)
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert x[inside].min() == pytest.approx(1.0) and x[~inside].max() == pytest.approx(0.0)
    assert prep.map_boxes([(0, 0, 20, 100)], (100, 160)) == [], "left of the crop: gone"
    with pytest.raises(MedxaiError, match="resize 50 is below the image size 64"):
        build_transforms(Preprocessing(image_size=64, resize=50))


def test_fixed_channel_normalisations():
    image = np.full((3, 20, 20), 1.0, np.float32)
    x = as_tensor(
        build_transforms(Preprocessing(image_size=8, channels=3, intensity="imagenet"))(image)
    )
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[:, 0, 0], expected)
    lite = build_transforms(Preprocessing(image_size=8, channels=3, intensity="lite"))(image * 0)
    torch.testing.assert_close(as_tensor(lite), torch.full((3, 8, 8), -127 / 128))


def test_checkpoints_of_whole_image_models_keep_four_keys():
    assert set(Preprocessing().to_dict()) == {"image_size", "channels", "top_crop", "intensity"}
    photo = Preprocessing(image_size=224, channels=3, intensity="imagenet", resize=256)
    assert photo.to_dict()["resize"] == 256 and Preprocessing.from_dict(photo.to_dict()) == photo
