"""A cleaned copy mirrors its source's layout: a CSV manifest, a folder tree, COVIDx files."""

import hashlib
import json
import sys
from pathlib import Path

import pytest

from data_cleaning import __main__ as script
from data_cleaning.clean import MANIFEST, SUMMARY, clean_dataset
from medxai.data.layouts import read_dataset
from medxai.errors import DatasetError, MedxaiError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from layout_datasets import ROWS, write_csv_dataset, write_folder_dataset  # noqa: E402


class CornerBox:
    """Finds one 6×6 'text' box in the corner of every film: these tests are about layouts."""

    def detect(self, image):
        return [(2, 2, 8, 8)]

    def describe(self):
        return {"name": "corner-box test detector"}


@pytest.fixture(autouse=True)
def _corner_box(monkeypatch):
    monkeypatch.setattr("data_cleaning.clean._make", lambda settings: CornerBox())


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_csv_dataset_is_mirrored_with_its_manifest(tmp_path):
    csv_path = write_csv_dataset(tmp_path / "src")
    before = digest(tmp_path / "src")
    summary = clean_dataset(csv_path, tmp_path / "out", classes="effusion,clear")
    assert digest(tmp_path / "src") == before, "the source is never written"
    assert summary.images == summary.with_text == len(ROWS) and not summary.failed
    source, copy = read_dataset(csv_path), read_dataset(tmp_path / "out" / "labels.csv")
    assert copy.layout == "csv" and not copy.problems and "columns age ignored" in copy.notes[0]

    def rows(index):
        return {s: [(r.label, r.source, r.patient_id) for r in v] for s, v in index.records.items()}

    assert rows(copy) == rows(source)
    original = (tmp_path / "src" / "labels.csv").read_text().splitlines()
    assert (tmp_path / "out" / "labels.csv").read_text().splitlines() == original, (
        "same columns (age too) and rows; the paths are already where the copy put them"
    )
    entries = [json.loads(line) for line in (tmp_path / "out" / MANIFEST).read_text().splitlines()]
    every = source.records["train"] + source.records["test"]
    assert [e["source"] for e in entries] == sorted(source.relative(r) for r in every)
    assert all((tmp_path / "out" / e["output"]).is_file() for e in entries)
    assert json.loads((tmp_path / "out" / SUMMARY).read_text())["layout"] == "csv"
    again = clean_dataset(csv_path, tmp_path / "out")
    assert again.skipped_done == len(ROWS), "a second run resumes: every image already done"


def test_a_csv_copy_rewrites_paths_and_keeps_only_the_chosen_splits(tmp_path):
    src = tmp_path / "src"
    write_csv_dataset(src)
    text = (src / "labels.csv").read_text().replace("images/test/", "./images//test/")
    (src / "m.csv").write_text(text)
    clean_dataset(src / "m.csv", tmp_path / "out", splits=["test"])
    rows = (tmp_path / "out" / "m.csv").read_text().splitlines()
    assert rows[0] == "path,label,split,source,patient_id,age" and len(rows) == 5
    assert rows[1].startswith("images/test/hospA_effusion0.png,effusion,test,hospA,,61")
    assert not (tmp_path / "out" / "images" / "train").exists()


def test_a_folder_tree_is_mirrored(tmp_path):
    root = write_folder_dataset(tmp_path / "src")
    assert script.run(["--root", str(root), "--out", str(tmp_path / "out"), "--source-from",
                       "dir", "--classes", "effusion,clear"]) == 0  # fmt: skip
    copy = read_dataset(tmp_path / "out", source_from="dir")
    source = read_dataset(root, source_from="dir")
    assert copy.layout == "folders" and not copy.problems
    relative = {s: [source.relative(r) for r in rs] for s, rs in source.records.items()}
    assert {s: [copy.relative(r) for r in rs] for s, rs in copy.records.items()} == relative
    written = {p.name for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert written == {MANIFEST, SUMMARY}, "a folder tree has no listing file"


def test_a_covidx_copy_still_copies_its_split_files(tmp_path):
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    write_folder_dataset(tmp_path / "tree")
    for n, png in enumerate(sorted((tmp_path / "tree" / "train").rglob("*.png"))[:4]):
        (src / "train" / f"{n}.png").write_bytes(png.read_bytes())
    (src / "train.txt").write_text("".join(f"p{n} {n}.png lbl{n % 2}\n" for n in range(4)))
    summary = clean_dataset(src, tmp_path / "out")
    assert summary.images == 4
    assert (tmp_path / "out" / "train.txt").read_bytes() == (src / "train.txt").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == [
        f"{n}.png" for n in range(4)
    ]


def test_bad_layouts_stop_before_writing(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.csv").write_text("path,label\n../x.png,clear\n")
    with pytest.raises(MedxaiError, match=r"m.csv:2: file name '../x.png' climbs"):
        clean_dataset(tmp_path / "src" / "m.csv", tmp_path / "out")
    with pytest.raises(DatasetError, match="inside the source"):
        clean_dataset(tmp_path / "src" / "m.csv", tmp_path / "src" / "out")
    (tmp_path / "src" / "m.csv").write_text(f"path,label\n{MANIFEST},clear\n")
    with pytest.raises(DatasetError, match="may not take the name of a file the cleaned copy"):
        clean_dataset(tmp_path / "src" / "m.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()
