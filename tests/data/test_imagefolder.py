import numpy as np
import pytest
import torch

from medxai.data.imagefolder import load_image, load_image_dataset, sample_records
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from medxai.errors import DatasetError, ImageReadError
from medxai.models.zoo import natural_preprocessing


def _png(path, value=128, size=(40, 60)):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.full((*size, 3), value, np.uint8))


def test_imagefolder_classes_follow_sorted_folders_or_the_class_index(tmp_path):
    for cls, names in {"zebra": ["b", "a"], "ant": ["c"]}.items():
        for name in names:
            _png(tmp_path / "data" / cls / f"{name}.png")
    records, classes = load_image_dataset(tmp_path / "data")
    assert classes == ["ant", "zebra"]
    assert [(r.name, r.label) for r in records] == [("ant/c", 0), ("zebra/a", 1), ("zebra/b", 1)]
    index = tmp_path / "classes.txt"
    index.write_text("zebra striped horse\nant\nbee\n")
    records, classes = load_image_dataset(tmp_path / "data", class_index=index)
    assert classes == ["zebra", "ant", "bee"]
    assert [r.label for r in records] == [1, 0, 0]
    index.write_text("bee\nant\n")
    with pytest.raises(DatasetError, match="zebra: class folder not in the class index"):
        load_image_dataset(tmp_path / "data", class_index=index)


def test_imagenet_val_layout_with_val_txt_or_loc_solution(tmp_path):
    val = tmp_path / "val"
    for i in (1, 2, 3):
        _png(val / f"ILSVRC2012_val_{i:08d}.png")
    (val / "val.txt").write_text(
        "ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n"
        "ILSVRC2012_val_00000003.JPEG 0\n"
    )
    records, classes = load_image_dataset(val)
    assert [r.label for r in records] == [65, 970, 0] and len(classes) == 971
    (val / "val.txt").unlink()
    solution = tmp_path / "LOC_val_solution.csv"
    solution.write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n02 1 2 3 4 n02 5 6 7 8\n"
        "ILSVRC2012_val_00000002,n01 1 2 3 4\nILSVRC2012_val_00000003,n03 0 0 1 1\n"
    )
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("n03 c\nn02 b\nn01 a\n")
    records, classes = load_image_dataset(val, solution, mapping)
    assert classes == ["n03", "n02", "n01"] and [r.label for r in records] == [1, 2, 0]
    records, classes = load_image_dataset(val, solution)  # sorted synsets: ImageNet's order
    assert [r.label for r in records] == [1, 0, 2]
    bad = tmp_path / "bad.txt"
    bad.write_text("a.JPEG 1\nb.JPEG one\n")
    with pytest.raises(DatasetError, match=r"bad.txt:2: expected 'filename label_index'"):
        load_image_dataset(val, bad)


def test_seeded_sample_is_repeatable_and_ordered(tmp_path):
    for i in range(20):
        _png(tmp_path / "x" / f"{i:02d}.png", size=(4, 4))
    records, _ = load_image_dataset(tmp_path / "x")
    a, b = sample_records(records, 5, seed=1), sample_records(records, 5, seed=1)
    assert a == b and len(a) == 5 and [r.name for r in a] == sorted(r.name for r in a)
    assert sample_records(records, 5, seed=2) != a
    assert sample_records(records, 0, seed=2) == records


def test_preprocessing_per_model_and_errors(tmp_path):
    _png(tmp_path / "white.png", 255, (300, 400))
    inception = natural_preprocessing("inception_v3")
    assert inception == Preprocessing(299, 3, 0.0, "imagenet", resize=342)
    assert natural_preprocessing("resnet50") == Preprocessing(224, 3, 0.0, "imagenet", resize=256)
    assert natural_preprocessing("efficientnet-lite0").intensity == "lite"
    x = load_image(tmp_path / "white.png", natural_preprocessing("efficientnet-lite0"))
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x, torch.full_like(x, (255 - 127) / 128))
    x = load_image(tmp_path / "white.png", Preprocessing(channels=3, intensity="imagenet"))
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[:, 0, 0], expected)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="broken.png"):
        load_image(tmp_path / "broken.png", Preprocessing(channels=3))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_image_dataset(tmp_path / "empty")


def test_photos_and_radiographs_share_one_preprocessing(tmp_path):
    from medxai.data.imageio import read_image, to_channels
    from medxai.data.transforms import build_transforms

    pixels = np.zeros((100, 160, 3), np.uint8)
    pixels[40:60, 90:110] = 255
    write_png(tmp_path / "box.png", pixels)
    prep = Preprocessing(image_size=64, channels=3, intensity="none", resize=80)
    photo = load_image(tmp_path / "box.png", prep)  # torchvision, bilinear
    film = torch.as_tensor(  # MONAI, area
        np.asarray(build_transforms(prep)(to_channels(read_image(tmp_path / "box.png"), 3)))
    )
    assert photo.shape == film.shape == (3, 64, 64)
    x0, y0, x1, y1 = prep.map_boxes([(90, 40, 110, 60)], (100, 160))[0]
    for x in (photo, film):
        assert x[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].min() > 0.99
        outside = torch.ones(64, 64, dtype=torch.bool)
        outside[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = False
        assert x[:, outside].max() < 0.01
    mask = torch.from_numpy(pixels[..., 0] > 0)[None].float()
    inside = prep.geometry(mask, nearest=True)[0] > 0.5
    assert inside.nonzero().min(0).values.tolist() == [y0, x0]
    gray = load_image(tmp_path / "box.png", Preprocessing(image_size=32, channels=1))
    assert gray.shape == (1, 32, 32) and float(gray.std()) == pytest.approx(1.0, abs=1e-3)
