"""What training and the audit ask of a dataset, checked by one piece of code each: data-check
reports every unmet need, and `train` stops at the same one with the same words."""

import shutil

import pytest
from layout_datasets import N_TRAIN, write_folder_dataset

from medxai.data.check import check_dataset
from medxai.data.layouts import read_dataset
from medxai.data.needs import (
    VAL_FRACTION,
    class_problem,
    dataset_needs,
    unlearned_problem,
    validation_problem,
)
from medxai.errors import MedxaiError
from medxai.models.training import TrainConfig, patient_split


@pytest.fixture()
def tree(tmp_path):
    return write_folder_dataset(tmp_path / "tree", "dir")


def test_a_sound_dataset_needs_nothing_but_warns_of_a_small_validation_split(tree):
    needs = dataset_needs(read_dataset(tree))
    assert needs.problems == [] and needs.notes == []
    records = read_dataset(tree).records["train"]
    carve = validation_problem(records, VAL_FRACTION)
    assert needs.warnings == [f"{carve} (the default --val-fraction; `train` stops here)"]
    assert f"class 'clear' has {N_TRAIN} training image(s)" in carve
    assert validation_problem(records, 0.3) is None
    assert TrainConfig().val_fraction == VAL_FRACTION  # the default training uses
    with pytest.raises(MedxaiError) as stopped:
        patient_split(records, VAL_FRACTION, 0)
    assert str(stopped.value) == carve  # train's words are data-check's


def test_a_single_class_training_split_fails_the_check_as_it_stops_training(tree):
    shutil.rmtree(tree / "train" / "clear")
    index = read_dataset(tree)
    problem = class_problem(index.records["train"])
    assert problem == (
        f"train: the training split holds {N_TRAIN} image(s) of the classes ['effusion']; a "
        "classifier needs at least two classes"
    )
    report = check_dataset(tree)
    assert not report.ok and report.needs.problems == [
        f"{problem} (`train`, and an audit that trains or retrains, stop here)"
    ]
    from medxai.models.training import fit

    with pytest.raises(MedxaiError) as stopped:
        fit(TrainConfig(epochs=1), index.records["train"], tree.parent / "run", "cpu")
    assert str(stopped.value) == problem


def test_a_test_label_no_model_learns_fails_the_check_unless_a_class_list_names_it(tree):
    (tree / "test" / "edema").mkdir()
    shutil.copy(next((tree / "test" / "clear").rglob("*.png")), tree / "test" / "edema" / "e.png")
    index = read_dataset(tree)
    (record,) = [r for r in index.records["test"] if r.label == "edema"]
    needs = dataset_needs(index)
    assert needs.problems == [
        f"{unlearned_problem(record, index.classes)} (`train` stops here)"
    ]  # fmt: skip
    assert not check_dataset(tree).ok
    listed = read_dataset(tree, classes="clear,effusion,edema")
    assert dataset_needs(listed, ("clear", "effusion", "edema")).problems == []


def test_a_test_set_alone_passes_with_a_note_and_a_training_set_alone_too(tree):
    test_only = tree.parent / "held-out"
    shutil.copytree(tree / "test", test_only / "test")
    report = check_dataset(test_only)
    assert report.ok and report.needs.problems == [] and report.needs.warnings == []
    (note,) = report.needs.notes
    assert note.startswith("no training split (a split named train*) among test: `train`")
    assert "--ties-from" in note
    shutil.rmtree(tree / "test")
    (note,) = dataset_needs(read_dataset(tree)).notes
    assert note == "no test split (a split named test*) among train: the audit needs one"


def test_data_check_prints_the_layout_and_every_need(tree, capsys):
    from medxai.cli.application import main

    shutil.rmtree(tree / "train" / "clear")
    with pytest.raises(SystemExit) as done:
        main(["data-check", "--root", str(tree), "--no-traits"])
    out = capsys.readouterr().out.replace("\n", "")
    assert done.value.code == 1
    assert "layout: folders, no train*/test*.txt split file at the root" in out
    assert "unusable train: the training split holds" in out and "1 problem(s)" in out
