"""The three dataset layouts through one entry point, `read_dataset`, into one record type."""

import os
import re
import shutil
from pathlib import Path

import pytest
from layout_datasets import CLASSES, N_TRAIN, write_csv_dataset, write_folder_dataset

from medxai.data.check import check_dataset
from medxai.data.classes import parse_classes
from medxai.data.covidx import CovidxDataset
from medxai.data.layouts import (
    LayoutChoice,
    choose_layout,
    dataset_root,
    detect_layout,
    layout_reason,
    read_dataset,
)
from medxai.errors import DatasetError, MedxaiError, SplitFileError


# -- CSV manifest ----------------------------------------------------------------------
def test_csv_manifest_known_answer(tmp_path):
    csv_path = write_csv_dataset(tmp_path / "d")
    index = read_dataset(csv_path)
    assert (index.layout, index.root, index.listing) == ("csv", tmp_path / "d", csv_path)
    assert list(index.records) == ["train", "test"] and not index.problems
    assert index.train_split() == "train" and index.test_splits() == ["test"]
    assert index.classes == ("clear", "effusion"), "no list given: the sorted labels"
    first, last = index.records["train"][0], index.records["test"][-1]
    assert (first.patient_id, first.filename, first.label, first.source, first.line) == (
        "peffusion0", "images/train/hospA_effusion0.png", "effusion", "hospA", 2
    )  # fmt: skip
    assert last.patient_id == "hospB_clear0", "an empty patient_id is the path's stem"
    assert last.where == f"{csv_path}:{len(index.records['train']) + 5}"
    assert index.relative(last) == "images/test/hospB_clear0.png"
    assert index.image_dirs["test"] / last.filename == last.path
    assert index.notes == [
        f"{csv_path}: columns age ignored (medxai reads path,label[,split][,source][,patient_id])"
    ]
    ordered = read_dataset(csv_path, classes="effusion,clear")
    assert ordered.classes == CLASSES
    dataset = CovidxDataset(ordered.records["test"], ordered.classes)
    assert dataset.targets == [0, 0, 1, 1]


def test_csv_without_split_column_is_one_train_split(tmp_path):
    (tmp_path / "m.csv").write_text(
        "Label,Path,Source\neffusion,a.png,h1\nclear,sub/b.png,\n", encoding="utf-8"
    )
    index = read_dataset(tmp_path / "m.csv", layout="csv")
    assert list(index.records) == ["train"] and index.train_split() == "train"
    assert index.test_splits() == [] and not index.notes
    assert [(r.patient_id, r.label, r.source) for r in index.records["train"]] == [
        ("a", "effusion", "h1"),
        ("b", "clear", None),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a.png,effusion\n", "m.csv:1: no header row: the first row must name the columns"),
        ("file,label\na.png,clear\n", "m.csv:1: no 'path' column (columns: file, label)"),
        ("path,label,path\n", "m.csv:1: column 'path' appears twice"),
        ("", "m.csv: the CSV manifest is empty"),
        ("\ufeffpath,label\n\n", "m.csv: no image rows: the manifest is empty"),
        ("path,label\nok.png,clear\n../up.png,clear\n", "m.csv:3: file name '../up.png' climbs"),
        ("path,label\n/etc/passwd,clear\n", "m.csv:2: absolute path '/etc/passwd'"),
        ("path,label\nok.png,clear,extra\n", "m.csv:2: expected 2 fields (path,label), got 3"),
        ("path,label\nok.png,\n", "m.csv:2: empty label"),
        ("path,label,split\nok.png,clear,\n", "m.csv:2: empty split"),
        ("path,label\nok.png,clear\nx.png,edema\n", "m.csv:3: label 'edema' is not among"),
    ],
)
def test_bad_csv_manifests_name_file_and_line(tmp_path, text, error):
    (tmp_path / "m.csv").write_text(text, encoding="utf-8")
    with pytest.raises(SplitFileError) as err:
        read_dataset(tmp_path / "m.csv", classes="effusion,clear").raise_problems()
    message = str(err.value)
    assert error in message and str(tmp_path / "m.csv") in message and "\n" not in message


def test_csv_path_through_a_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.png").write_bytes(b"\x89PNG")
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "outside.png", tmp_path / "d" / "x.png")
    (tmp_path / "d" / "m.csv").write_text("path,label\nx.png,clear\n", encoding="utf-8")
    (problem,) = read_dataset(tmp_path / "d" / "m.csv").problems
    assert (problem.line, problem.split) == (2, "train") and "outside the dataset" in str(problem)


def test_csv_splits_can_be_chosen(tmp_path):
    csv_path = write_csv_dataset(tmp_path / "d")
    index = read_dataset(csv_path, splits=["test"])
    assert list(index.records) == ["test"]
    missing = read_dataset(csv_path, splits=["val"])
    assert [str(p) for p in missing.problems] == [f"{csv_path}: no rows of split 'val'"]


# -- folder tree -----------------------------------------------------------------------
@pytest.mark.parametrize("sources_as", ["dir", "prefix"])
def test_folder_tree_known_answer(tmp_path, sources_as):
    root = write_folder_dataset(tmp_path / "tree", sources_as)
    (root / "train" / "clear" / ".DS_Store").write_bytes(b"x")
    (root / "train" / "clear" / "notes.txt").write_text("x")
    index = read_dataset(root, classes=["effusion", "clear"], source_from=sources_as)
    assert (index.layout, index.classes, index.root) == ("folders", CLASSES, root)
    assert {split: len(r) for split, r in index.records.items()} == {"test": 4, "train": 12}
    assert not index.problems and index.train_split() == "train"
    record = index.records["train"][-1]
    assert (record.patient_id, record.label, record.source, record.line) == (
        f"{'' if sources_as == 'dir' else 'hospA_'}effusion{N_TRAIN - 1}", "effusion", "hospA", 0
    )  # fmt: skip
    assert index.image_dirs["train"] / record.filename == record.path
    assert index.relative(record).startswith("train/effusion/hospA")
    assert len(index.notes) == 1 and "notes.txt" in index.notes[0]
    plain = read_dataset(root)
    assert all(r.source is None for records in plain.records.values() for r in records)


def test_folder_tree_problems(tmp_path):
    root = write_folder_dataset(tmp_path / "tree")
    (root / "val" / "clear").mkdir(parents=True)  # a split without images
    (root / "train" / "edema" / "x").mkdir(parents=True)
    (root / "train" / "edema" / "x" / "e.png").write_bytes(b"x")
    (tmp_path / "far.png").write_bytes(b"x")
    os.symlink(tmp_path / "far.png", root / "test" / "clear" / "link.png")
    index = read_dataset(root, classes="effusion,clear")
    assert sorted(str(p) for p in index.problems) == sorted([
        f"{root / 'test' / 'clear' / 'link.png'}: link.png links to {tmp_path / 'far.png'}, "
        f"outside the dataset root {root}",
        f"{root / 'val'}: no images: the split is empty (expected ROOT/<split>/<class>/<image> "
        "(e.g. ROOT/train/<class>/0001.png))",
        f"{root / 'train' / 'edema'}: label 'edema' is not among --classes effusion,clear",
    ])  # fmt: skip


def test_empty_or_unknown_trees_are_one_line_errors(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no split folders holding class folders"):
        read_dataset(tmp_path / "empty", layout="folders")
    with pytest.raises(DatasetError, match=r"cannot tell the dataset layout; looked for a \.csv"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="dataset root not found"):
        read_dataset(tmp_path / "nowhere")


# -- one entry point -------------------------------------------------------------------
def test_auto_layout_and_option_misuse(tmp_path):
    csv_path = write_csv_dataset(tmp_path / "c")
    tree = write_folder_dataset(tmp_path / "f")
    (tmp_path / "x" / "train").mkdir(parents=True)
    (tmp_path / "x" / "train.txt").write_text("p1 a.png clear\n")
    assert [detect_layout(p) for p in (csv_path, tree, tmp_path / "x")] == [
        "csv", "folders", "covidx"
    ]  # fmt: skip
    assert dataset_root(csv_path) == tmp_path / "c" and dataset_root(tree) == tree
    with pytest.raises(MedxaiError, match="--source-from is for the folders layout"):
        read_dataset(csv_path, source_from="dir")
    with pytest.raises(MedxaiError, match="--source-from must be none or dir or prefix"):
        read_dataset(tree, source_from="parent")
    with pytest.raises(MedxaiError, match="--layout must be auto or covidx or csv or folders"):
        read_dataset(tree, layout="imagenet")
    with pytest.raises(DatasetError, match="takes the .csv manifest file itself"):
        read_dataset(tmp_path / "c", layout="csv")
    with pytest.raises(MedxaiError, match="--image-dir is for the covidx layout"):
        read_dataset(tree, image_dirs={"train": "x"})
    index = read_dataset(tmp_path / "x")
    assert index.layout == "covidx" and index.relative(index.records["train.txt"][0]) == (
        "train/a.png"
    )


def test_class_lists_are_checked():
    assert parse_classes(" effusion, clear ") == ("effusion", "clear")
    assert parse_classes(["a,b", "c"]) == ("a", "b", "c") and parse_classes(None) is None
    with pytest.raises(MedxaiError, match="names 'a' twice"):
        parse_classes("a,b,a")
    with pytest.raises(MedxaiError, match="class names separated by commas"):
        parse_classes("a,,b")


BINARY_SPLIT = """\
419639-003251 MIDRC-RICORD-1C-419639-003251-46647-0.png positive ricord
a b c d.png negative rsna
1 ANON0.png negative
COVID 1 COVID(1).png positive
"""


def test_a_published_binary_split_keeps_the_covidx_order(tmp_path):
    (tmp_path / "train.txt").write_text(BINARY_SPLIT)
    index = read_dataset(tmp_path)
    assert index.classes == ("negative", "positive") and not index.problems
    assert [r.patient_id for r in index.records["train.txt"]] == [
        "419639-003251", "a b c", "1", "COVID 1"
    ]  # fmt: skip


def test_data_check_counts_and_confound_on_csv_and_folders(tmp_path):
    csv_report = check_dataset(write_csv_dataset(tmp_path / "c"), classes="effusion,clear")
    tree_report = check_dataset(write_folder_dataset(tmp_path / "f"), source_from="dir")
    for report in (csv_report, tree_report):
        assert report.ok
        splits = {s.split: s for s in report.splits}
        assert splits["train"].classes == {"effusion": N_TRAIN, "clear": N_TRAIN}
        assert splits["train"].formats == {"png": 2 * N_TRAIN}
        train = splits["train"].confound(report.label_order())
        test = splits["test"].confound(report.label_order())
        assert (train.cramers_v, train.source_accuracy, train.strong) == (1.0, 1.0, True)
        assert (test.cramers_v, test.source_accuracy, test.n_sources) == (0.0, 0.5, 2)
    assert csv_report.label_order() == list(CLASSES), "the class list's order"
    assert tree_report.label_order() == ["clear", "effusion"]
    assert (csv_report.layout, csv_report.location) == ("csv", tmp_path / "c" / "labels.csv")


def test_a_header_problem_of_no_split_fails_the_check(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\n", encoding="utf-8")
    report = check_dataset(tmp_path / "m.csv")
    assert not report.ok and [p.reason for p in report.problems] == [
        "no image rows: the manifest is empty"
    ]


def test_relative_refuses_a_record_outside_the_root(tmp_path):
    index = read_dataset(write_csv_dataset(tmp_path / "c"))
    record = index.records["train"][0]
    index.root = tmp_path / "elsewhere"
    with pytest.raises(DatasetError, match=r"labels.csv:2: .* is not under the dataset root"):
        index.relative(record)
    assert Path(index.image_dirs["train"]) == tmp_path / "c"


# -- which layout, and why ---------------------------------------------------------------
def test_the_layout_chosen_is_said_with_why(tmp_path):
    csv_path = write_csv_dataset(tmp_path / "c")
    tree = write_folder_dataset(tmp_path / "f")
    (tmp_path / "x" / "train").mkdir(parents=True)
    (tmp_path / "x" / "train.txt").write_text("p1 a.png clear\n")
    (tmp_path / "x" / "test.txt").write_text("p2 b.png clear\n")
    assert [choose_layout(p) for p in (csv_path, tree, tmp_path / "x")] == [
        LayoutChoice("csv", "labels.csv is a .csv manifest"),
        LayoutChoice("folders", "no train*/test*.txt split file at the root, and class folders "
                     "under test/, train/"),
        LayoutChoice("covidx", "split files test.txt, train.txt at the root"),
    ]  # fmt: skip
    assert read_dataset(tree).layout_why == choose_layout(tree).why
    assert read_dataset(tree, "folders").layout_why == choose_layout(tree).why
    assert check_dataset(tree).layout_why == choose_layout(tree).why
    # named against what the root holds: said so
    assert layout_reason(tmp_path / "x", "folders") == (
        "named with --layout (what the location holds reads as covidx)"
    )


def test_a_covidx_root_without_split_files_is_not_a_tree_of_its_masks(tmp_path):
    """Its text_masks/ folder holds train/ and test/: taken for a folder tree, that would be
    one split (text_masks) of two classes (train, test). Refused, naming what was found."""
    root = tmp_path / "covidx"
    for folder in ("train", "test", "text_masks/train", "text_masks/test"):
        (root / folder).mkdir(parents=True)
        (root / folder / "a.png").write_bytes(b"x")
    found = "no split folder named train* or test*; found text_masks/ (holding test/, train/)"
    with pytest.raises(DatasetError, match=rf"^{root}: no train\*.txt/test\*.txt split file .*"):
        read_dataset(root)
    with pytest.raises(DatasetError, match=re.escape(found)):
        choose_layout(root)
    with pytest.raises(DatasetError, match=re.escape(f"{root}: {found}; expected ROOT/<split>")):
        read_dataset(root, "folders")
    named = read_dataset(root, "folders", splits=["text_masks"])  # named splits: as asked
    assert set(named.records) == {"text_masks"}
    (root / "test.txt").write_text("p1 a.png normal\n")  # a split file: COVIDx, as before
    assert choose_layout(root).layout == "covidx"


def test_a_tree_with_a_train_or_test_split_keeps_its_other_splits(tmp_path):
    tree = write_folder_dataset(tmp_path / "f")
    shutil.copytree(tree / "test", tree / "val")
    assert set(read_dataset(tree).records) == {"test", "train", "val"}
    shutil.rmtree(tree / "train")
    assert set(read_dataset(tree).records) == {"test", "val"}  # a test set alone is a dataset
