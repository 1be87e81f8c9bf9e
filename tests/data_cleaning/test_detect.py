"""The recommended detector on real films, needs_review and the residual check."""

import json

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from data_cleaning import clean as clean_module
from data_cleaning.burnin import REAL_MARKER, load_film, make_scene, render
from data_cleaning.clean import MANIFEST, SUMMARY, clean_dataset
from data_cleaning.detect import (
    DEFAULT_DETECTOR,
    TextDetector,
    make_detector,
    recheck,
    recheck_windows,
)
from data_cleaning.glyphs import find_markers, merge_line
from data_cleaning.inpaint import boxes_to_mask, inpaint


@pytest.fixture(scope="module")
def fused():
    return make_detector(DEFAULT_DETECTOR)


def chest_crop(height: int = 512) -> np.ndarray:
    """The real chest film (RG1), its upper 80% (lungs, ribs, clavicles), as uint8 gray."""
    film = load_film("RG1_UNCR.dcm")
    film = film[: int(0.8 * film.shape[0])]
    width = round(film.shape[1] * height / film.shape[0])
    return (cv2.resize(film, (width, height), interpolation=cv2.INTER_AREA) * 255).astype(np.uint8)


def burn(gray: np.ndarray, text: str, font: str, size: float, at: tuple[int, int], level: int):
    """`text` burned into a copy of `gray` at grey `level`; returns (image, glyph pixels)."""
    alpha = render(text, font, round(size * gray.shape[0]))
    h, w = alpha.shape
    x, y = at
    out = gray.astype(np.float32)
    out[y : y + h, x : x + w] = (1 - alpha) * out[y : y + h, x : x + w] + alpha * level
    truth = np.zeros(gray.shape, bool)
    truth[y : y + h, x : x + w] = alpha > 0.5
    return out.round().astype(np.uint8), truth


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def covered(boxes, truth: np.ndarray) -> float:
    return (boxes_to_mask(truth.shape, boxes, 4) > 0)[truth].mean()


def test_the_plain_chest_film_gives_no_box(fused):
    assert fused.detect(rgb(chest_crop())) == []


@pytest.mark.parametrize("level", [255, 0], ids=["white-on-lung", "black-on-bone"])
def test_a_lone_letter_on_a_real_film_is_found_in_either_polarity(fused, level):
    gray = chest_crop()
    # white over the dark right lung; black over the bright spine and mediastinum
    at = (110, 200) if level == 255 else (215, 300)
    image, truth = burn(gray, "L", "DejaVuSerif", 0.02, at, level)  # 10 px high
    background = np.median(gray[truth])
    assert abs(background - level) > 80, "the letter stands out from the film under it"
    labeled = fused.detect_labeled(rgb(image))
    assert covered([box for box, _ in labeled], truth) > 0.95
    assert {stage for _, stage in labeled} <= {"db", "glyph"}
    alone = find_markers(image, fused.reader, fused.glyphs)  # the glyph stage by itself
    assert covered(alone, truth) > 0.95 and len(alone) == 1


def test_the_real_mirrored_r_marker_of_the_leg_film_is_found(fused):
    film = (load_film("RG3_UNCR.dcm") * 255).astype(np.uint8)
    x0, y0, x1, y1 = REAL_MARKER["RG3_UNCR.dcm"]
    crop = film[y0 - 300 : y1 + 300, x0 - 500 : x1 + 200]  # the marker near the right edge
    truth = np.zeros(crop.shape, bool)
    truth[300 : 300 + y1 - y0, 500 : 500 + x1 - x0] = (
        crop[300 : 300 + y1 - y0, 500 : 500 + x1 - x0] > 115
    )
    assert covered(fused.detect(rgb(crop)), truth) > 0.95


def test_a_benchmark_scene_at_1024_px_is_found_whole(fused):
    scene = make_scene(100_003, 1024, ("DejaVuSans-Oblique", "cmtt10"))
    boxes = fused.detect(rgb(scene.image))
    assert covered(boxes, scene.labels > 0) > 0.95
    for k, item in enumerate(scene.items, start=1):
        assert covered(boxes, scene.labels == k) > 0.5, item


def test_only_pairs_of_a_and_p_count_and_neighbours_merge():
    a, p, lone_a = (10, 10, 20, 30), (24, 11, 34, 30), (100, 10, 110, 30)
    assert merge_line([(a, "pair"), (p, "pair"), (lone_a, "pair")]) == [(10, 10, 34, 30)]
    assert merge_line([((50, 50, 60, 70), "lone")]) == [(50, 50, 60, 70)]


def tiny_dicom(path, modality: str, burned: str | None) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality = modality
    if burned is None:
        ds.pop("BurnedInAnnotation", None)
    else:
        ds.BurnedInAnnotation = burned
    ds.PixelData = np.full(ds.pixel_array.shape, 900, ds.pixel_array.dtype).tobytes()
    ds.save_as(path)


def dataset(root, files: dict[str, callable]):
    (root / "test").mkdir(parents=True)
    for name, write in files.items():
        write(root / "test" / name)
    lines = [f"p{k} {name} normal s1" for k, name in enumerate(files)]
    (root / "test.txt").write_text("\n".join(lines) + "\n")


def test_dicoms_that_should_carry_text_but_gave_none_need_review(tmp_path):
    dataset(tmp_path / "src", {
        "yes.dcm": lambda p: tiny_dicom(p, "CT", "YES"),
        "cr.dcm": lambda p: tiny_dicom(p, "CR", None),
        "cr_no.dcm": lambda p: tiny_dicom(p, "CR", "NO"),
        "ct.dcm": lambda p: tiny_dicom(p, "CT", None),
    })  # fmt: skip
    summary = clean_dataset(tmp_path / "src", tmp_path / "dst", ["test.txt"])
    entries = {e["source"]: e for e in map(json.loads, (tmp_path / "dst" / MANIFEST).open())}
    status = {name.split("/")[1]: e["status"] for name, e in entries.items()}
    assert status == {"yes.dcm": "needs_review", "cr.dcm": "needs_review",
                      "cr_no.dcm": "no_text", "ct.dcm": "no_text"}  # fmt: skip
    assert "Burned In Annotation" in entries["test/yes.dcm"]["review"]
    assert [r["source"] for r in summary.needs_review] == ["test/cr.dcm", "test/yes.dcm"]
    written = json.loads((tmp_path / "dst" / SUMMARY).read_text())
    assert len(written["needs_review"]) == 2 and summary.with_text == 0


class StickyDetector(TextDetector):
    """Finds the same box on every image, before and after cleaning."""

    name = "sticky"

    def _detect(self, image, scale, shape):
        return [(5, 5, 30, 20)]


def test_the_residual_check_detects_again_on_the_cleaned_file(tmp_path, monkeypatch):
    gray = chest_crop(256)
    image, truth = burn(gray, "R", "DejaVuSans-Bold", 0.06, (20, 30), 255)
    dataset(tmp_path / "src", {"r.png": lambda p: cv2.imwrite(str(p), image)})
    summary = clean_dataset(tmp_path / "src", tmp_path / "real", ["test.txt"])
    entry = json.loads((tmp_path / "real" / MANIFEST).read_text())
    assert entry["status"] == "cleaned" and covered(entry["boxes"], truth) > 0.95
    assert entry["residual_boxes"] == [] and summary.residual_boxes == 0
    assert set(entry["box_sources"]) <= {"db", "glyph"} and len(entry["box_sources"]) >= 1

    monkeypatch.setattr(clean_module, "_make", lambda settings: StickyDetector())
    summary = clean_dataset(tmp_path / "src", tmp_path / "sticky", ["test.txt"])
    entry = json.loads((tmp_path / "sticky" / MANIFEST).read_text())
    assert entry["residual_boxes"] == [[5, 5, 30, 20]]
    assert summary.residual_boxes == 1
    assert summary.with_residual == [{"source": "test/r.png", "boxes": 1}]
    assert json.loads((tmp_path / "sticky" / SUMMARY).read_text())["residual_boxes"] == 1


def test_the_recheck_finds_what_a_too_small_box_left_behind(fused):
    gray = chest_crop(256)
    image, truth = burn(gray, "R", "DejaVuSans-Bold", 0.08, (40, 60), 255)
    ys, xs = np.nonzero(truth)
    half = (int(xs.min()), int(ys.min()), int((xs.min() + xs.max()) // 2), int(ys.max()) + 1)
    cleaned = inpaint(image, boxes_to_mask(image.shape, [half], 0))
    remnant = truth.copy()
    remnant[:, : half[2]] = False  # the right half of the "R", which the box missed
    assert covered(recheck(fused, rgb(cleaned), [half]), remnant) > 0.95
    whole = fused.detect(rgb(image))
    cleaned = inpaint(image, boxes_to_mask(image.shape, whole, 4))
    assert recheck(fused, rgb(cleaned), whole) == []


def test_the_recheck_windows_reach_around_each_box_at_dbs_scale():
    """A 1024-px film, DB's 320-px minimum side: a corner box gets the 320-px corner window;
    a box on a film shrunk 2x maps to DB's pixels; opposite corners get a window each; boxes
    over most of the film, or a film smaller than a window, are read whole."""
    assert recheck_windows([(10, 10, 60, 40)], 1.0, (1024, 1024), 320) == [(0, 0, 320, 320)]
    shrunk = recheck_windows([(2000, 2000, 2040, 2030)], 2.0, (1024, 1024), 320)
    assert shrunk == [(704, 704, 1024, 1024)]
    corners = recheck_windows([(10, 10, 60, 40), (950, 980, 1010, 1015)], 1.0, (1024, 1024), 320)
    assert sorted(corners) == [(0, 0, 320, 320), (704, 704, 1024, 1024)]
    near = recheck_windows([(10, 10, 60, 40), (200, 10, 260, 40)], 1.0, (1024, 1024), 320)
    assert near == [(0, 0, 416, 320)], "overlapping windows merge, to a multiple of 32"
    spread = [(x, y, x + 40, y + 30) for x in (10, 500, 950) for y in (10, 500, 980)]
    assert recheck_windows(spread, 1.0, (1024, 1024), 320) is None
    assert recheck_windows([(10, 10, 60, 40)], 1.0, (224, 224), 320) is None


def test_the_windowed_recheck_finds_what_the_whole_film_recheck_finds(fused):
    """A word on the real chest film at 1024 px, inpainted only in its left half: DB, read
    only in the window around the inpainted box, finds the right half as the whole film
    read again does."""
    gray = chest_crop(1024)
    image, truth = burn(gray, "PORTABLE", "DejaVuSans-Bold", 0.03, (60, 80), 255)
    ys, xs = np.nonzero(truth)
    half = (int(xs.min()), int(ys.min()), int((xs.min() + xs.max()) // 2), int(ys.max()) + 1)
    cleaned = rgb(inpaint(image, boxes_to_mask(image.shape, [half], 0)))
    windows = recheck_windows([half], 1.0, cleaned.shape, fused.db.min_side)
    assert windows is not None and len(windows) == 1
    remnant = truth.copy()
    remnant[:, : half[2]] = False
    windowed = recheck(fused, cleaned, [half])
    whole = [box for box, _ in fused.detect_labeled(cleaned, near=[half])]
    assert covered(windowed, remnant) > 0.95
    assert covered(windowed, remnant) == pytest.approx(covered(whole, remnant), abs=0.02)
