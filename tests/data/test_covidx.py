from pathlib import Path

import numpy as np
import pytest
import torch

from medxai.data.covidx import (
    CovidxDataset,
    default_image_dir,
    label_set_of,
    load_covidx,
    parse_split_file,
    parse_split_lines,
    read_splits,
)
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing, build_transforms
from medxai.errors import MedxaiError, SplitFileError


def write_split(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_good_lines_parse_with_optional_source_and_blank_lines(tmp_path):
    split = write_split(
        tmp_path / "train.txt",
        "p1 a.png normal\n\n   \np2 b.png COVID-19 hospitalA\np3  c.jpg\tpneumonia\n",
    )
    records = parse_split_file(split, tmp_path / "train")
    assert [(r.patient_id, r.filename, r.label, r.source) for r in records] == [
        ("p1", "a.png", "normal", None),
        ("p2", "b.png", "COVID-19", "hospitalA"),
        ("p3", "c.jpg", "pneumonia", None),
    ]
    assert [r.line for r in records] == [1, 4, 5]
    assert records[1].path == tmp_path / "train" / "b.png"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("p1 a.png", "got 2 fields"),
        ("p1 a.png normal src extra", "got 5 fields"),
        ("p1 a.png normal src extra", "normal|pneumonia|COVID-19 or negative|positive"),
        ("p1 a.png normal src extra", "pass --classes"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, expected):
    split = write_split(tmp_path / "test.txt", f"p0 ok.png normal\n{line}\np9 z.png normal\n")
    with pytest.raises(SplitFileError) as err:
        parse_split_file(split, tmp_path)
    assert f"{split}:2:" in str(err.value)
    assert expected in str(err.value)


def test_lenient_parse_collects_every_problem(tmp_path):
    split = write_split(tmp_path / "s.txt", "x\np a.png normal\ny y y y y\nq b.png bad\n")
    records, problems = parse_split_lines(split, tmp_path, strict=False)
    assert [r.filename for r in records] == ["a.png", "b.png"], "labels are checked later"
    assert [p.line for p in problems] == [1, 3]


def test_missing_and_non_text_split_files(tmp_path):
    with pytest.raises(SplitFileError, match="split file not found"):
        parse_split_file(tmp_path / "nope.txt", tmp_path)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(SplitFileError, match="not a UTF-8"):
        parse_split_file(binary, tmp_path)


def test_class_order_keeps_covidx_sets_and_sorts_any_other_labels():
    assert label_set_of(["positive", "negative"]) == ("negative", "positive")
    assert label_set_of(["COVID-19"]) == ("normal", "pneumonia", "COVID-19")
    assert label_set_of(["normal", "positive"]) == ("normal", "positive")
    assert label_set_of(["effusion", "clear"]) == ("clear", "effusion")
    assert label_set_of(["effusion", "clear"], ("effusion", "clear")) == ("effusion", "clear")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("p1 a.png covid", "label 'covid' is not in the 3class COVIDx label set"),
        ("p1 a.png Normal src", "pass --classes normal,pneumonia,COVID-19,Normal"),
        ("p1 a.png positive", "label 'positive' is not in the 3class COVIDx label set"),
    ],
)
def test_a_label_outside_the_covidx_set_in_use_names_file_and_line(tmp_path, line, expected):
    write_split(tmp_path / "train.txt", f"p0 ok.png normal\n{line}\np9 z.png COVID-19\n")
    (problem,) = read_splits(tmp_path, ["train.txt"]).problems
    assert str(problem).startswith(f"{tmp_path / 'train.txt'}:2: ") and expected in str(problem)
    with pytest.raises(SplitFileError, match=r"train.txt:2: "):
        load_covidx(tmp_path, ["train.txt"])


def test_any_label_set_parses_and_a_class_list_fixes_order_and_labels(tmp_path):
    write_split(tmp_path / "train.txt", "p1 a.png effusion s1\np2 b.png clear\n")
    write_split(tmp_path / "test.txt", "p3 c.png clear s2\np4 d.png edema\n")
    index = read_splits(tmp_path, ["train.txt", "test.txt"])
    assert not index.problems and index.classes == ("clear", "effusion")
    assert [(r.label, r.source) for r in index.records["train.txt"]] == [
        ("effusion", "s1"),
        ("clear", None),
    ]
    assert index.warnings == [
        f"{tmp_path / 'test.txt'}:2: label 'edema' of split test.txt is not among the training "
        "split's classes (clear, effusion); no model trained on it can predict it"
    ]
    index = read_splits(tmp_path, ["train.txt", "test.txt"], classes=("effusion", "clear"))
    assert index.classes == ("effusion", "clear")
    assert [str(p) for p in index.problems] == [
        f"{tmp_path / 'test.txt'}:2: label 'edema' is not among --classes effusion,clear"
    ]


def test_spaced_patient_ids_need_a_known_label(tmp_path):
    write_split(tmp_path / "train.txt", "COVID 70 COVID(70).png effusion sirm\n")
    with pytest.raises(SplitFileError, match=r"train.txt:1: .*pass --classes"):
        parse_split_file(tmp_path / "train.txt", tmp_path / "train")
    index = read_splits(tmp_path, ["train.txt"], classes=("effusion", "clear"))
    (record,) = index.records["train.txt"]
    assert (record.patient_id, record.filename, record.label, record.source) == (
        "COVID 70", "COVID(70).png", "effusion", "sirm"
    )  # fmt: skip


def test_image_dir_follows_covidx_convention():
    assert default_image_dir("train.txt") == "train"
    assert default_image_dir("test_balanced.txt") == "test"
    assert default_image_dir("val.txt") == "val"


def make_dataset(root: Path) -> None:
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i, label in enumerate(["normal", "pneumonia", "COVID-19"]):
        image = (rng.random((40, 30)) * 255).astype(np.uint8)
        write_png(root / "train" / f"{i}.png", image)
        lines.append(f"p{i} {i}.png {label} s{i % 2}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    write_png(root / "test" / "t.png", np.full((20, 20, 3), 100, np.uint8))
    (root / "test.txt").write_text("pt t.png COVID-19\n")


def test_dataset_yields_resized_tensors_and_class_indices(tmp_path):
    make_dataset(tmp_path)
    splits = load_covidx(tmp_path)
    assert set(splits) == {"train.txt", "test.txt"}
    prep = Preprocessing(image_size=16, channels=3, intensity="unit")
    train = CovidxDataset(splits["train.txt"], channels=3, transform=build_transforms(prep))
    image, label = train[2]
    assert type(image) is torch.Tensor and image.shape == (3, 16, 16)
    assert label == 2 and train.targets == [0, 1, 2]
    assert float(image.min()) == pytest.approx(0.0) and float(image.max()) == pytest.approx(1.0)
    assert torch.equal(image[0], image[1]), "gray image repeated into 3 channels"
    test = CovidxDataset(splits["test.txt"], classes=train.classes)
    assert test[0][1] == 2


def test_dataset_rejects_labels_outside_classes(tmp_path):
    make_dataset(tmp_path)
    records = load_covidx(tmp_path)["train.txt"]
    with pytest.raises(MedxaiError, match="not among classes"):
        CovidxDataset(records, classes=("normal", "pneumonia"))


def test_load_covidx_honours_image_dirs(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "val.txt").write_text("pv t.png normal\n")
    splits = load_covidx(tmp_path, ["val.txt"], image_dirs={"val.txt": "test"})
    assert splits["val.txt"][0].path == tmp_path / "test" / "t.png"
    with pytest.raises(SplitFileError, match="dataset root not found"):
        load_covidx(tmp_path / "missing")


PUBLISHED_LINES = [  # the forms COVIDx releases use, one line each
    ("COVID 70 COVID(70).png COVID-19 sirm", ("COVID 70", "COVID(70).png", "COVID-19", "sirm")),
    ("COVID 1 COVID(1).png COVID-19", ("COVID 1", "COVID(1).png", "COVID-19", None)),
    ("3 SARS-10.1148rg.242035193-g04mr34g04a-Fig4a-day7.jpeg pneumonia cohen",
     ("3", "SARS-10.1148rg.242035193-g04mr34g04a-Fig4a-day7.jpeg", "pneumonia", "cohen")),
    ("1 ANON0.png COVID-19", ("1", "ANON0.png", "COVID-19", None)),
    ("419639-003251 MIDRC-RICORD-1C-419639-003251-46647-0.png positive ricord",
     ("419639-003251", "MIDRC-RICORD-1C-419639-003251-46647-0.png", "positive", "ricord")),
    ("a b c d.png negative rsna", ("a b c", "d.png", "negative", "rsna")),
]  # fmt: skip


@pytest.mark.parametrize("line, expected", PUBLISHED_LINES)
def test_published_covidx_lines_parse_around_the_label(tmp_path, line, expected):
    (tmp_path / "train.txt").write_text(line + "\n")
    (record,) = parse_split_file(tmp_path / "train.txt", tmp_path / "train")
    assert (record.patient_id, record.filename, record.label, record.source) == expected
    assert record.path == tmp_path / "train" / expected[1]


def test_a_line_without_a_label_near_its_end_names_the_form(tmp_path):
    (tmp_path / "train.txt").write_text("p1 x.png normal s1 extra more\n")
    with pytest.raises(SplitFileError, match=r"train.txt:1: .*label last or second to last"):
        parse_split_file(tmp_path / "train.txt", tmp_path / "train")
