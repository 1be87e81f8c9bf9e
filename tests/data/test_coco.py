import json
import sys
from pathlib import Path

import pytest

from medxai.data.coco import CocoInstances
from medxai.errors import DatasetError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
from eval_fixtures import write_toy_coco  # noqa: E402


def test_categories_labels_and_union_masks(tmp_path):
    coco = CocoInstances(write_toy_coco(tmp_path), tmp_path)
    assert coco.names == ["thing", "other"] and coco.category_ids == [3, 7]
    assert coco.image_ids() == [1, 2]
    assert coco.labels(1).tolist() == [1.0, 1.0] and coco.labels(2).tolist() == [0.0, 1.0]
    mask = coco.class_mask(1, 1)  # polygon (6..22) x (6..22)
    assert mask.shape == (32, 32) and mask[10, 10] and not mask[2, 2] and not mask[28, 10]
    assert mask.sum() == 16 * 16
    assert not coco.class_mask(2, 0).any()
    assert coco.image_path(2) == tmp_path / "img2.png"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: "{not json", "not a JSON annotation file"),
        (lambda d: {k: v for k, v in d.items() if k != "categories"}, "missing the 'categories'"),
        (lambda d: {**d, "annotations": [{"image_id": 1, "category_id": 3}]}, "lacks segmentation"),
        (lambda d: {**d, "annotations": [{**d["annotations"][0], "category_id": 99}]},
         "category id 99 not in categories"),
    ],
)  # fmt: skip
def test_bad_annotation_files_name_the_file(tmp_path, edit, message):
    path = write_toy_coco(tmp_path)
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(DatasetError, match=message) as info:
        CocoInstances(path, tmp_path)
    assert "instances.json" in str(info.value)


def test_missing_image_is_named(tmp_path):
    coco = CocoInstances(write_toy_coco(tmp_path), tmp_path)
    (tmp_path / "img2.png").unlink()
    with pytest.raises(DatasetError, match=r"img2.png: image of instances.json not found"):
        coco.image_path(2)
