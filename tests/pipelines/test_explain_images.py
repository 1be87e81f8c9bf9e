import csv
from dataclasses import FrozenInstanceError, asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from medxai.data.imagefolder import ImageRecord
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.explain.registry import build_explainer
from medxai.explain.toy import SquareEvidenceNet, square_images
from pipelines.explain_images import (
    SCORE_FIELDS,
    ScoreRow,
    curve_path,
    explain_images,
    items_from_paths,
    load_batch,
    make_maps,
    map_path,
    overlay_path,
    resolve_targets,
)

CPU = torch.device("cpu")


@pytest.fixture
def items(tmp_path):
    images = square_images(3, 32, seed=0).permute(0, 2, 3, 1).numpy()
    paths = []
    for k, image in enumerate(images):
        paths.append(tmp_path / f"img{k}.png")
        write_png(paths[-1], np.clip((image + 2) / 4 * 255, 0, 255).astype(np.uint8))
    return items_from_paths(paths)


def test_rows_are_typed_and_scores_csv_holds_them_with_every_file_named_one_way(items, tmp_path):
    prep = Preprocessing(32, 3, intensity="none")
    out = tmp_path / "out"
    rows = explain_images(
        SquareEvidenceNet(), items, ["gradcam", "gradcam++"], prep, out, CPU,
        classes=["plain", "square"], target="1", resolution=8, batch_size=2,
    )  # fmt: skip
    assert all(isinstance(r, ScoreRow) for r in rows)
    assert [(r.image, r.method) for r in rows] == [
        (f"img{k}", m) for k in range(3) for m in ("gradcam", "gradcam++")
    ]  # image by image, methods in the given order
    assert {(r.label, r.target, r.target_name, r.ranking) for r in rows} == {
        (None, 1, "square", "pixel")
    }
    with pytest.raises(FrozenInstanceError):
        rows[0].method = "other"  # type: ignore[misc]
    with open(out / "scores.csv", newline="") as f:
        stored = list(csv.DictReader(f))
    assert tuple(stored[0]) == SCORE_FIELDS == tuple(asdict(rows[0]))
    assert [r["label"] for r in stored] == [""] * 6, "an unknown label is an empty cell"
    assert [float(r["overall"]) for r in stored] == [r.overall for r in rows]
    for row in rows:
        assert map_path(out / "maps", row.image, row.method).is_file()
        assert curve_path(out / "curves", row.image, row.method).is_file()
        assert overlay_path(out / "overlays", row.image, row.method).is_file()
    assert map_path(Path("m"), "a/b", "aop:gradcam+igos++") == Path("m/a/b__aop-gradcam_igospp.npy")
    assert curve_path(Path("c"), "x", "igos++").name == "x__igospp.npz"
    assert overlay_path(Path("o"), "x", "rise").name == "x__rise.png"


def test_inputs_and_targets_at_hand_are_used_as_given(items, tmp_path):
    prep = Preprocessing(32, 3, intensity="none")
    common = dict(resolution=8, batch_size=2)
    read = explain_images(
        SquareEvidenceNet(), items, ["gradcam"], prep, tmp_path / "a", CPU, target="1", **common
    )
    given = explain_images(
        SquareEvidenceNet(), items, ["gradcam"], prep, tmp_path / "b", CPU,
        inputs=load_batch(items, prep), targets=[1, 1, 1], **common,
    )  # fmt: skip
    assert [(r.image, r.target, r.overall) for r in given] == [
        (r.image, r.target, r.overall) for r in read
    ]
    with pytest.raises(MedxaiError, match="2 targets for 3 images"):
        explain_images(
            SquareEvidenceNet(), items, ["gradcam"], prep, tmp_path / "c", CPU, targets=[1, 1]
        )


def test_ranks_share_the_maps_and_the_scores_are_the_one_process_runs(items, tmp_path, monkeypatch):
    """Two ranks (played in turn) each make every other (method, chunk) pair of maps, chunks
    of 2: each method's first chunk on rank 0, its second on rank 1; the scoring pass then
    reads all six back, and every map and score is the one-process run's."""
    from medxai import distributed

    prep = Preprocessing(32, 3, intensity="none")
    inputs, methods = load_batch(items, prep), ["gradcam", "rise"]
    common = dict(resolution=8, batch_size=2, method_params={"rise": {"masks": 50}})
    one = explain_images(
        SquareEvidenceNet(), items, methods, prep, tmp_path / "one", CPU, target="1", **common
    )
    out = tmp_path / "ranks"
    made = []
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        before = set((out / "maps").glob("*.npy"))
        make_maps(SquareEvidenceNet(), items, methods, out, CPU, inputs, [1, 1, 1], **common)
        made.append({p.name for p in set((out / "maps").glob("*.npy")) - before})
    assert made[0] == {"img0__gradcam.npy", "img1__gradcam.npy", "img0__rise.npy", "img1__rise.npy"}
    assert made[1] == {"img2__gradcam.npy", "img2__rise.npy"}  # (method, chunk) pairs, dealt
    shared = explain_images(
        SquareEvidenceNet(), items, methods, prep, out, CPU, target="1", **common
    )
    assert [(r.image, r.method, r.overall) for r in shared] == [
        (r.image, r.method, r.overall) for r in one
    ]
    for row in one:
        a, b = (
            np.load(map_path(o / "maps", row.image, row.method)) for o in (tmp_path / "one", out)
        )
        assert np.array_equal(a, b)


def test_targets_are_the_prediction_the_label_or_one_class():
    model = SquareEvidenceNet()
    images = square_images(2, 32, seed=1)
    records = [ImageRecord(Path("a.png"), "a", 0), ImageRecord(Path("b.png"), "b", 1)]
    predicted = resolve_targets(model, images, records, "predicted")
    assert predicted.tolist() == model(images).argmax(1).tolist() == [1, 1]
    assert resolve_targets(model, images, records, "label").tolist() == [0, 1]
    assert resolve_targets(model, images, records, "0").tolist() == [0, 0]
    unlabelled = [records[0], ImageRecord(Path("dir/b.png"), "b")]
    with pytest.raises(MedxaiError, match="b.png: no label for --target label"):
        resolve_targets(model, images, unlabelled, "label")
    with pytest.raises(MedxaiError, match="--target must be predicted, label or a class index"):
        resolve_targets(model, images, records, "top")


def test_build_explainer_hands_each_setting_only_to_the_methods_taking_it():
    cam = build_explainer("gradcam", resolution=7, batch_size=4, seed=3, target_layer="features")
    assert (cam.batch_size, cam.seed, cam.target_layer) == (32, 3, "features")
    igos = build_explainer("igos", 14, 64, 0, "features", theta=0.6)
    assert (igos.batch_size, igos.resolution) == (64, 14)
    sigcam = build_explainer("sigcam", 7, 8, 0, None, theta=0.6, lam=0.25)
    assert (sigcam.theta, sigcam.lam, sigcam.optimizer.resolution) == (0.6, 0.25, 7)
    with pytest.raises(MedxaiError, match="unknown saliency method 'lime'"):
        build_explainer("lime")
