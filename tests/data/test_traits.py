"""Acquisition traits: known answers for one film, for border_bands, and for whole datasets
whose classes differ in one trait (that trait, and only it, is flagged) or in none."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medxai import codec
from medxai.data.check import check_dataset
from medxai.data.imageio import RawImage, write_png
from medxai.data.records import Record
from medxai.data.traits import (
    ImageTraits,
    SplitTraits,
    border_bands,
    check_traits,
    image_traits,
    measure_traits,
    sample_films,
    split_predictability,
    split_traits,
    trait_kinds,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trait_datasets import CLASSES, SIDE, write_csv, write_trait_dataset  # noqa: E402

RADIOGRAPH = "RG1_UNCR.dcm"  # pydicom-data: a computed radiograph, 1841×1955, no frame


def texture(shape, seed=0, mean=0.5, spread=0.1):
    return (mean + np.random.default_rng(seed).normal(0, spread, shape)).clip(0, 1)


def gray_raw(image, fmt="png", depth=8):
    return RawImage((image * 255).astype(np.uint8), fmt, depth)


# -- border_bands --------------------------------------------------------------------------
def test_a_dark_frame_of_ten_percent_is_ten_percent_per_side():
    image = texture((200, 300))
    image[:20], image[-20:], image[:, :30], image[:, -30:] = 0.03, 0.03, 0.03, 0.03
    assert border_bands(image) == (20, 20, 30, 30)
    noisy = image.copy()  # a frame with a scanner's grain: dark, not flat
    noisy[:20] += np.random.default_rng(1).normal(0, 0.02, (20, 300))
    assert border_bands(noisy.clip(0, 1)) == (20, 20, 30, 30)


def test_flat_white_padding_is_found_and_a_bare_film_has_none():
    image = texture((200, 200))
    padded = np.pad(image, ((50, 50), (0, 0)), constant_values=1.0)  # letterboxed, white
    assert border_bands(padded) == (50, 50, 0, 0)
    assert border_bands(image) == (0, 0, 0, 0)
    gray = np.pad(image, ((0, 0), (0, 40)), constant_values=0.5)  # flat mid-grey, one side
    assert border_bands(gray) == (0, 0, 0, 40)


def test_a_real_radiograph_without_frame_has_small_bands():
    from pydicom.data import get_testdata_file

    from medxai.data.imageio import read_image

    image = read_image(get_testdata_file(RADIOGRAPH))
    top, bottom, left, right = border_bands(image)
    height, width = image.shape
    assert max(top, bottom) / height < 0.05 and max(left, right) / width < 0.05


def test_a_blank_film_is_border_up_to_the_cap_and_bad_input_is_refused():
    assert border_bands(np.zeros((100, 60))) == (45, 45, 27, 27)
    with pytest.raises(ValueError, match="grey image"):
        border_bands(np.zeros((10, 10, 3)))


# -- one film ------------------------------------------------------------------------------
def test_intensity_noise_and_sharpness_known_answers():
    rng = np.random.default_rng(0)
    flat = np.full((512, 512), 0.4, np.float32)
    noisy = (flat + rng.normal(0, 0.05, flat.shape)).astype(np.float32)
    t = measure_traits(gray_raw(noisy), noisy)
    assert t.noise == pytest.approx(0.05, rel=0.05)
    assert t.mean == pytest.approx(0.4, abs=0.005) and t.std == pytest.approx(0.05, rel=0.05)
    assert t.dynamic_range == pytest.approx(2 * 2.326 * 0.05, rel=0.05)  # 1st → 99th pct
    line = np.linspace(0.1, 0.5, 512, dtype=np.float32)
    ramp = line[:, None] + line[None, :] - 0.1  # 0.1 → 0.9 along the diagonal: no flat line
    smooth = measure_traits(gray_raw(ramp), ramp)
    assert smooth.border_width == 0.0
    assert smooth.sharpness < 1e-8 and smooth.noise < 1e-4, "a ramp has no edge, no noise"
    # the sum of two uniform ramps is triangular: 1st to 99th percentile, (1 − 2√0.005) × 0.8
    # (a little less: the 3-pixel margin kept off the edges trims the ramp's ends)
    assert smooth.dynamic_range == pytest.approx((1 - 2 * 0.005**0.5) * 0.8, rel=0.02)
    assert t.sharpness > 1000 * smooth.sharpness


def test_traits_do_not_depend_on_film_size():
    film = texture((256, 256), spread=0.05).astype(np.float32)
    big = np.repeat(np.repeat(film, 4, axis=0), 4, axis=1)  # 1024², the same film
    a = measure_traits(gray_raw(film), film, side=256)
    b = measure_traits(gray_raw(big), big, side=256)
    assert (a.height, b.height) == (256, 1024)
    for name in ("mean", "std", "dynamic_range", "sharpness", "noise", "border_width"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-4, abs=1e-7), name


def test_header_traits_of_a_png_and_a_dicom(tmp_path):
    from pydicom.data import get_testdata_file

    write_png(tmp_path / "a.png", (texture((30, 60)) * 65535).astype(np.uint16))
    png = image_traits(tmp_path / "a.png")
    assert (png.height, png.width, png.aspect_ratio, png.bit_depth) == (30, 60, 2.0, 16)
    assert (png.format, png.transfer_syntax, png.photometric) == ("png", None, None)
    dicom = image_traits(get_testdata_file(RADIOGRAPH))
    assert (dicom.height, dicom.width, dicom.bit_depth) == (1955, 1841, 15)
    assert dicom.format == "dicom" and dicom.transfer_syntax == "Explicit VR Little Endian"
    assert dicom.photometric == "MONOCHROME1" and dicom.border_width < 0.05
    assert dicom.text_count is None and dicom.text_position is None


def test_text_traits_from_detected_boxes():
    image = texture((100, 200)).astype(np.float32)
    t = measure_traits(gray_raw(image), image, text_boxes=[(150, 0, 200, 20), (160, 10, 190, 30)])
    # union: 50×20 + 30×10 below it = 1300 px of 20,000; centre in the top third, right third
    assert (t.text_count, t.text_area, t.text_position) == (2, 0.065, "top-right")
    none = measure_traits(gray_raw(image), image, text_boxes=[])
    assert (none.text_count, none.text_area, none.text_position) == (0, 0.0, "none")


def test_every_trait_has_a_kind_and_the_record_round_trips():
    kinds = trait_kinds()
    assert set(kinds.values()) == {"numeric", "categorical"}
    assert [k for k, v in kinds.items() if v == "categorical"] == [
        "format", "transfer_syntax", "photometric", "text_position",
    ]  # fmt: skip
    image = texture((64, 64)).astype(np.float32)
    t = measure_traits(gray_raw(image), image, text_boxes=[(0, 0, 4, 4)])
    assert codec.decode(ImageTraits, codec.encode(t)) == t


# -- a split -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("confound", "expected"),
    [
        ("none", []),
        ("darker", ["mean"]),
        ("frame", ["border_darkness", "border_width"]),
        ("size", ["height", "width"]),
    ],
)
def test_the_trait_that_differs_between_classes_is_flagged_and_no_other(
    tmp_path, confound, expected
):
    records = write_trait_dataset(tmp_path, confound)
    traits = split_traits("train", records, workers=1, side=SIDE)
    assert traits.sampled == traits.n_films == 60 and not traits.failed
    report = split_predictability(traits, CLASSES)
    assert sorted(report.flagged) == expected
    for name in expected:
        row = report.row(name)
        assert row.score == pytest.approx(0.5) and row.within_source == pytest.approx(0.5)
        assert row.within_source_sources == 1  # hospA; hospB sends one class only
    if confound == "frame":
        assert report.row("border_width").class_medians == {"normal": 0.0, "covid": 12 / SIDE}


def test_a_corrupt_film_is_skipped_and_named_and_the_sample_is_deterministic(tmp_path):
    records = write_trait_dataset(tmp_path, "darker", n_per_class=10)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    records.append(Record("px", "broken.png", "covid", "hospA", broken, "train", 0))
    traits = split_traits("train", records, workers=2, side=SIDE)
    assert [(f.file, f.reason) for f in traits.failed] == [
        (str(broken), "corrupt or truncated PNG file")
    ]
    assert len(traits.films) == 20
    labels = [r.label for r in records]
    first = sample_films(labels, 8, seed=3)
    assert first == sample_films(labels, 8, seed=3) != sample_films(labels, 8, seed=4)
    assert first == sorted(set(first)) and [labels[i] for i in first].count("covid") == 4
    every = [0, 1, 2, 3, 4]
    assert sample_films("aabbb", 8, 0) == sample_films("aabbb", None, 0) == every
    assert sample_films("aabbb", 0, 0) == every
    some = split_traits("train", records, max_films=8, seed=3, workers=1, side=SIDE)
    chosen = [str(records[i].path) for i in first]
    assert (some.n_films, some.sampled) == (21, 8)
    measured = [f.file for f in some.films] + [f.file for f in some.failed]
    assert sorted(measured) == sorted(chosen)
    assert codec.decode(SplitTraits, codec.encode(some)) == some


def test_the_sample_is_as_even_across_classes_as_they_allow():
    labels = ["normal"] * 900 + ["pneumonia"] * 90 + ["COVID-19"] * 10
    chosen = sample_films(labels, 100, seed=0)
    drawn = [labels[i] for i in chosen]
    assert len(chosen) == 100 and chosen == sorted(set(chosen))
    assert (drawn.count("COVID-19"), drawn.count("pneumonia"), drawn.count("normal")) == (
        10, 45, 45,
    )  # fmt: skip


def test_check_traits_leaves_out_what_the_check_could_not_read(tmp_path):
    records = write_trait_dataset(tmp_path / "data", "frame", n_per_class=12)
    csv = write_csv(tmp_path / "data", records)
    (tmp_path / "data" / "normal0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    report = check_dataset(csv, workers=1)
    (check,) = check_traits(report, max_films=None, workers=1)
    assert check.traits.n_films == 23 and not check.traits.failed  # the check lists it
    assert check.predictability.flagged[:2] in (
        ["border_darkness", "border_width"], ["border_width", "border_darkness"],
    )  # fmt: skip


def test_the_docs_list_every_trait():
    docs = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"
    text = docs.read_text(encoding="utf-8")
    section = text.split("\n## Acquisition traits, before any model\n", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in trait_kinds() if f"`{name}`" not in section]
    assert missing == []
