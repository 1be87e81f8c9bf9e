"""data-check, train and clean on a CSV manifest and on a folder tree, with their own classes."""

import json
import sys
from pathlib import Path

import pytest

from medxai.cli.application import main
from medxai.models.checkpoint import read_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from layout_datasets import CLASSES, ROWS, write_csv_dataset, write_folder_dataset  # noqa: E402

TRAIN = ["--epochs", "1", "--image-size", "16", "--batch-size", "4", "--val-fraction", "0.3",
         "--device", "cpu", "--workers", "0"]  # fmt: skip


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def one_error(err: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith("medxai: error: ")]
    return line


@pytest.fixture()
def csv_path(tmp_path):
    return write_csv_dataset(tmp_path / "csvdata")


@pytest.fixture()
def tree(tmp_path):
    return write_folder_dataset(tmp_path / "tree")


def test_data_check_reads_a_csv_manifest_and_a_folder_tree(csv_path, tree, capsys):
    code, out, _ = run_cli(["data-check", "--root", csv_path, "--classes", "effusion,clear"],
                           capsys)  # fmt: skip
    assert code == 0 and "all is well" in out and "csv dataset" in out
    assert "columns age ignored" in out
    code, out, _ = run_cli(["data-check", "--root", tree, "--source-from", "dir"], capsys)
    assert code == 0 and "all is well" in out and "folders dataset" in out
    assert "confound" in out, "train's sources determine its labels"


def test_data_check_lists_bad_rows_and_stops_on_bad_datasets(csv_path, tree, tmp_path, capsys):
    text = csv_path.read_text().splitlines()
    text[2] = "../escape.png,clear,train,hospB,p9,61"
    text[3] = text[3].replace(",effusion,", ",edema,")
    csv_path.write_text("\n".join(text) + "\n")
    code, out, _ = run_cli(["data-check", "--root", csv_path, "--classes", "effusion,clear"],
                           capsys)  # fmt: skip
    assert code == 1
    assert f"{csv_path}:3: file name '../escape.png' climbs out" in out.replace("\n", "")
    assert f"{csv_path}:4: label 'edema' is not among --classes" in out.replace("\n", "")
    csv_path.write_text("images/train/a.png,effusion\n")
    code, _, err = run_cli(["data-check", "--root", csv_path], capsys)
    assert code == 2 and f"{csv_path}:1: no header row" in one_error(err)
    (tmp_path / "bare" / "train").mkdir(parents=True)
    code, _, err = run_cli(["data-check", "--root", tmp_path / "bare", "--layout", "folders"],
                           capsys)  # fmt: skip
    assert code == 2 and "no split folders holding class folders" in one_error(err)


def test_train_learns_the_given_classes_in_the_given_order(csv_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(["train", "--root", csv_path, "--out", out, "--classes",
                                 "effusion,clear", "--positive-class", "effusion", *TRAIN],
                                capsys)  # fmt: skip
    assert code == 0, err
    assert tuple(read_checkpoint(out / "model.pt")["classes"]) == CLASSES
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["splits"]) == ["test"] and list(metrics["per_class"]) == list(CLASSES)
    assert "test: accuracy" in stdout


def test_train_on_a_folder_tree_and_its_one_line_errors(tree, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--root", tree, "--out", out, "--positive-class", "edema",
                            *TRAIN], capsys)  # fmt: skip
    assert code == 2 and "--positive-class 'edema' is not a class" in one_error(err)
    assert not out.exists(), "stopped before writing"
    (tree / "test" / "edema").mkdir()
    (tree / "test" / "clear" / "hospA" / "clear0t.png").rename(tree / "test" / "edema" / "x.png")
    code, _, err = run_cli(["train", "--root", tree, "--out", out, *TRAIN], capsys)
    assert code == 2 and f"{tree / 'test' / 'edema'}: label 'edema' is not among" in one_error(err)
    code, _, err = run_cli(["train", "--root", tree, "--out", out, "--train-split", "val",
                            *TRAIN], capsys)  # fmt: skip
    assert code == 2 and f"{tree}: no split 'val' among test, train" in one_error(err)
    assert not out.exists(), "stopped before writing"


def test_clean_mirrors_a_csv_dataset(csv_path, tmp_path, capsys, monkeypatch):
    class CornerBox:
        def detect(self, image):
            return [(2, 2, 8, 8)]

        def describe(self):
            return {"name": "corner box"}

    monkeypatch.setattr("data_cleaning.clean._make", lambda settings: CornerBox())
    out = tmp_path / "clean"
    code, stdout, _ = run_cli(["clean", "--root", csv_path, "--out", out, "--classes",
                               "effusion,clear"], capsys)  # fmt: skip
    assert code == 0 and f"{len(ROWS)} images (0 already done), {len(ROWS)} with text" in stdout
    assert (out / "labels.csv").read_text() == csv_path.read_text()
    code, stdout, _ = run_cli(["data-check", "--root", out / "labels.csv"], capsys)
    assert code == 0 and "all is well" in stdout
