"""The user's regions (`--regions`): a CSV of boxes or a folder of masks, read against the test
images of each dataset layout by the keys the audit uses (`SplitIndex.relative`)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from layout_datasets import write_csv_dataset, write_folder_dataset

from medxai.codec import decode, encode
from medxai.data.imageio import read_raw, write_png
from medxai.data.layouts import read_dataset
from medxai.data.phantom import synthesize
from medxai.data.user_regions import MIN_COMPONENT_PIXELS, UserRegions, read_user_regions
from medxai.errors import RegionsError


@pytest.fixture(scope="module")
def covidx(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("covidx") / "phantom"
    synthesize(root, n_per_class=5, size=64, seed=0, workers=1)  # 64 × 64 films
    return root


def test_images(location: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """(relative path → (height, width) of each test image, every image's relative path),
    from the layout's own reader, as the audit builds them."""
    index = read_dataset(location)
    index.raise_problems()
    sizes = {
        index.relative(r): read_raw(r.path).pixels.shape[:2]
        for split in index.test_splits()
        for r in index.records[split]
    }
    known = {index.relative(r) for records in index.records.values() for r in records}
    return sizes, known


test_images.__test__ = False  # a helper, not a test


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# the image a user names in each layout, as its path under the dataset root, and its size
LAYOUT_IMAGES = {
    "covidx": ("test/te00001.png", "test/tb00002.png", (64, 64)),
    "csv": ("images/test/hospA_clear0.png", "images/test/hospB_effusion0.png", (32, 32)),
    "folders": ("test/clear/hospA/clear0t.png", "test/effusion/hospB/effusion0t.png", (32, 32)),
}


@pytest.mark.parametrize("layout", LAYOUT_IMAGES)
def test_csv_boxes_land_on_the_test_images_of_each_layout(layout, covidx, tmp_path):
    location = {
        "covidx": lambda: covidx,
        "csv": lambda: write_csv_dataset(tmp_path / "d"),
        "folders": lambda: write_folder_dataset(tmp_path / "d"),
    }[layout]()
    sizes, _ = test_images(location)
    first, second, (h, w) = LAYOUT_IMAGES[layout]
    assert sizes[first] == sizes[second] == (h, w)
    regions = write(
        tmp_path / "regions.csv",
        "Kind,image,x0,y0,x1,y1\n"  # any column order, names without case
        f"pacemaker,{first},1,2,5,7\n"
        "\n"
        f"ecg-leads,./{second},3,3,4,4\n"
        f"pacemaker,{first},0,0,{w},{h}\n",  # touching the far edges is inside
    )
    found = read_user_regions(regions, sizes)
    assert found == UserRegions(
        source=regions,
        kinds=("pacemaker", "ecg-leads"),
        boxes={
            "pacemaker": {first: [(1, 2, 5, 7), (0, 0, w, h)]},
            "ecg-leads": {second: [(3, 3, 4, 4)]},
        },
        ignored=0,
    )
    assert decode(UserRegions, encode(found)) == found, "the codec round-trips the record"


def test_a_bare_file_name_names_an_image_only_when_no_other_image_has_it(covidx, tmp_path):
    sizes, _ = test_images(covidx)
    regions = write(tmp_path / "r.csv", "image,kind,x0,y0,x1,y1\nte00001.png,tube,0,0,8,8\n")
    assert read_user_regions(regions, sizes).boxes == {"tube": {"test/te00001.png": [(0, 0, 8, 8)]}}

    sizes, known = test_images(write_csv_dataset(tmp_path / "d"))
    regions = write(tmp_path / "r.csv", "image,kind,x0,y0,x1,y1\nhospB_clear0.png,tube,0,0,8,8\n")
    only_test = read_user_regions(regions, sizes)
    assert only_test.boxes == {"tube": {"images/test/hospB_clear0.png": [(0, 0, 8, 8)]}}
    with pytest.raises(RegionsError) as err:  # the training split has that name too
        read_user_regions(regions, sizes, known)
    assert str(err.value) == (
        f"{regions}:2: image 'hospB_clear0.png' is ambiguous: images/test/hospB_clear0.png, "
        "images/train/hospB_clear0.png; name it by its path under the dataset root"
    )


def test_rows_naming_other_images_of_the_dataset_are_counted_not_read(tmp_path):
    sizes, known = test_images(write_folder_dataset(tmp_path / "d"))
    regions = write(
        tmp_path / "r.csv",
        "image,kind,x0,y0,x1,y1\n"
        "train/clear/hospB/clear3.png,ruler,0,0,900,900\n"  # not a test image: not checked
        "test/clear/hospB/clear0t.png,ruler,0,0,2,2\n"
        "train/clear/hospB/clear4.png,tube,0,0,2,2\n",
    )
    found = read_user_regions(regions, sizes, known)
    assert found.kinds == ("ruler", "tube") and found.ignored == 2
    assert found.boxes == {"ruler": {"test/clear/hospB/clear0t.png": [(0, 0, 2, 2)]}, "tube": {}}
    with pytest.raises(RegionsError, match=r"r\.csv:2: unknown image 'train/clear/hospB/clear3"):
        read_user_regions(regions, sizes)  # without the dataset's other images: unknown

    only_other = write(tmp_path / "o.csv", "image,kind,x0,y0,x1,y1\n"
                       "train/clear/hospB/clear3.png,ruler,0,0,2,2\n")  # fmt: skip
    with pytest.raises(RegionsError) as err:
        read_user_regions(only_other, sizes, known)
    assert str(err.value) == (
        f"{only_other}: no regions on any test image; 1 row(s) name images outside the test splits"
    )


SIZES = {"test/a.png": (512, 512), "test/sub/b.png": (100, 200), "test/c.png": (512, 512)}
GOOD = "image,kind,x0,y0,x1,y1\ntest/a.png,tube,0,0,512,512\n\nb.png,tube,1,1,2,2\n"  # line 5 next


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ("test/a.png,tube,10,5,900,40",
         "box (10, 5, 900, 40) lies outside the image test/a.png (512 wide × 512 high)"),
        ("test/sub/b.png,tube,0,0,200,101",
         "box (0, 0, 200, 101) lies outside the image test/sub/b.png (200 wide × 100 high)"),
        ("test/a.png,tube,-1,0,5,5", "box (-1, 0, 5, 5) lies outside the image test/a.png"),
        ("test/d.png,tube,0,0,5,5",
         "unknown image 'test/d.png': no test image has this path or file name (a test image "
         "is named like 'test/a.png')"),
        ("sub/b.png,tube,0,0,5,5", "unknown image 'sub/b.png'"),
        ("test/a.png,tube,10.5,0,20,5",
         "x0 '10.5' is not an integer (coordinates are whole pixels)"),
        ("test/a.png,tube,0,0,20,", "y1 '' is not an integer"),
        ("test/a.png,tube,10,0,10,5",
         "box (10, 0, 10, 5) is empty: x1 must exceed x0 and y1 exceed y0 (x1, y1 exclusive)"),
        ("test/a.png,tube,0,9,10,5", "box (0, 9, 10, 5) is empty"),
        ("test/a.png,,0,0,10,5", "empty kind"),
        ("test/a.png,ECG leads,0,0,10,5",
         "kind 'ECG leads': a kind name is lowercase letters, digits, '-' and '_' "
         "(e.g. ecg-leads)"),
        ("test/a.png,text,0,0,10,5",
         "kind 'text' is built in (text, marker, border, source); give yours another name"),
        ("test/a.png,source,0,0,10,5", "kind 'source' is built in"),
        (",tube,0,0,10,5", "empty image"),
        ("test/a.png,tube,0,0,10", "expected 6 fields (image,kind,x0,y0,x1,y1), got 5"),
    ],
)  # fmt: skip
def test_each_bad_row_is_one_line_naming_file_and_line(tmp_path, row, error):
    regions = write(tmp_path / "regions.csv", GOOD + row + "\n")
    with pytest.raises(RegionsError) as err:
        read_user_regions(regions, SIZES)
    assert str(err.value).startswith(f"{regions}:5: {error}")


def test_an_ambiguous_bare_name_lists_two_candidates(tmp_path):
    sizes = {"test/x/a.png": (9, 9), "test/y/a.png": (9, 9), "test/z/a.png": (9, 9)}
    regions = write(tmp_path / "r.csv", "image,kind,x0,y0,x1,y1\na.png,tube,0,0,1,1\n")
    with pytest.raises(RegionsError) as err:
        read_user_regions(regions, sizes)
    assert str(err.value) == (
        f"{regions}:2: image 'a.png' is ambiguous: test/x/a.png, test/y/a.png and 1 more; "
        "name it by its path under the dataset root"
    )


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("image,kind,x0,y0,x1,y1,label", "unknown column(s) label; the columns are"),
        ("image,kind,x0,y0,x1", "missing column(s) y1; the columns are image,kind,x0,y0,x1,y1"),
        ("image,kind,x,y0,x1,y1", "unknown column(s) x; missing column(s) x0; the columns are"),
        ("image,kind,x0,y0,x1,y1,kind", "column 'kind' appears twice"),
        ("test/a.png,tube,0,0,5,5", "no header row: the first row must name the columns"),
    ],
)
def test_a_bad_header_names_its_columns(tmp_path, header, error):
    regions = write(tmp_path / "regions.csv", f"\n{header}\ntest/a.png,tube,0,0,5,5\n")
    with pytest.raises(RegionsError) as err:
        read_user_regions(regions, SIZES)
    assert str(err.value).startswith(f"{regions}:2: {error}")


def test_a_missing_empty_or_header_only_file(tmp_path):
    for name, text, error in [
        ("missing.csv", None, "regions file not found"),
        ("empty.csv", "", "no regions: the file is empty; its first row names image,kind,"),
        ("header.csv", "image,kind,x0,y0,x1,y1\n\n", "no regions on any test image"),
        ("latin1.csv", b"image,kind,x0,y0,x1,y1\n\xe9,tube,0,0,1,1\n", "not a UTF-8 text file"),
    ]:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        elif text is not None:
            write(path, text)
        with pytest.raises(RegionsError) as err:
            read_user_regions(path, SIZES)
        assert str(err.value).startswith(f"{path}: {error}"), name


# -- a folder of masks -------------------------------------------------------------------
def mask(path: Path, size: tuple[int, int] = (64, 64), *boxes: tuple[int, int, int, int]) -> None:
    pixels = np.zeros(size, np.uint8)
    for x0, y0, x1, y1 in boxes:
        pixels[y0:y1, x0:x1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, pixels)


def test_masks_become_the_boxes_of_their_components(covidx, tmp_path):
    sizes, known = test_images(covidx)
    folder = tmp_path / "regions"
    pixels = np.zeros((64, 64), np.uint8)
    pixels[20:30, 40:42] = pixels[28:30, 40:50] = 1  # an L: its rectangle is the region
    pixels[50:64, 0:4] = 7  # touching the left and bottom edges
    pixels[2:6, 3:9] = 255
    pixels[60, 60] = pixels[61, 61] = 255  # an 8-connected speck of 2 pixels: dropped
    assert MIN_COMPONENT_PIXELS > 2
    (folder / "ecg-leads" / "test").mkdir(parents=True)
    write_png(folder / "ecg-leads" / "test" / "te00000.png", pixels)  # the path, no suffix
    mask(folder / "ecg-leads" / "tb00001.png", (64, 64), (10, 10, 12, 12))  # the stem alone
    mask(folder / "ecg-leads" / "tb00002.png", (64, 64))  # an empty mask: no regions
    train_image = sorted(k for k in known if k.startswith("train/"))[0]
    mask(folder / "pacemaker" / Path(train_image).with_suffix(".png"), (9, 9))  # not read
    mask(folder / "pacemaker" / "te00002.png", (64, 64), (0, 0, 64, 64))
    write(folder / ".notes", "hidden files are passed over")

    found = read_user_regions(folder, sizes, known)
    assert found.source == folder and found.kinds == ("ecg-leads", "pacemaker")
    assert found.boxes == {
        "ecg-leads": {
            "test/te00000.png": [(3, 2, 9, 6), (40, 20, 50, 30), (0, 50, 4, 64)],
            "test/tb00001.png": [(10, 10, 12, 12)],
        },
        "pacemaker": {"test/te00002.png": [(0, 0, 64, 64)]},
    }
    assert found.ignored == 1, "the training image's mask is counted, not read"

    # cv2 cross-check: the L's rectangle covers its pixels and nothing outside them
    x0, y0, x1, y1 = found.boxes["ecg-leads"]["test/te00000.png"][1]
    assert cv2.boundingRect((pixels == 1).astype(np.uint8)) == (x0, y0, x1 - x0, y1 - y0)


def test_bad_masks_name_the_mask(covidx, tmp_path):
    sizes, known = test_images(covidx)
    cases = [
        (("tube", "te00000.png"), "wrong_size",
         "the mask is 32 wide × 16 high, its image test/te00000.png 64 wide × 64 high"),
        (("tube", "te99999.png"), "unknown",
         "unknown image 'te99999': no test image has this path (without its suffix) or stem"),
        (("Tube", "te00000.png"), "bad_kind", "kind 'Tube': a kind name is lowercase letters"),
        (("border", "te00000.png"), "reserved", "kind 'border' is built in"),
        (("tube", "te00000.jpg"), "not_png", "not a mask; masks are .png files"),
        (("tube", "te00000.png"), "jpeg", "a JPEG file; a mask must be a lossless PNG"),
        (("tube", "test", "te00000.png"), "twice", "a second mask of test/te00000.png"),
    ]  # fmt: skip
    for parts, name, error in cases:
        folder = tmp_path / name
        path = folder.joinpath(*parts)
        mask(path, (16, 32) if name == "wrong_size" else (64, 64), (1, 1, 4, 4))
        if name == "jpeg":
            ok, data = cv2.imencode(".jpg", np.zeros((64, 64), np.uint8))
            path.write_bytes(data.tobytes())
        if name == "twice":
            mask(folder / "tube" / "te00000.png", (64, 64), (1, 1, 4, 4))  # the stem form
        where = folder / parts[0] if name in ("bad_kind", "reserved") else path
        with pytest.raises(RegionsError) as err:
            read_user_regions(folder, sizes, known)
        assert str(err.value).startswith(f"{where}: {error}"), name

    loose = tmp_path / "loose"
    mask(loose / "te00000.png")
    with pytest.raises(RegionsError, match=r"te00000\.png: not a kind folder; masks go in"):
        read_user_regions(loose, sizes)
    empty = tmp_path / "empty"
    mask(empty / "tube" / "te00000.png")  # all zero
    with pytest.raises(RegionsError, match=r"empty: no regions on any test image$"):
        read_user_regions(empty, sizes)
