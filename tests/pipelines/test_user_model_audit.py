"""`medxai audit` on a user's own model and data: a folder-tree dataset with its own label
set, the user's ResNet-18 from an import factory and a weights file, and its ONNX export.

The dataset is a small phantom re-laid out as `split/class/source/*.png` with the classes
`clear` (its normal films) and `effusion` (its COVID-19 films, from hospitals that stamp
their own text). The user's model is trained by medxai's own loop, saved as a plain state
dict, then handed to the audit as a user would hand theirs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from medxai.data.covidx import load_covidx
from medxai.data.phantom import synthesize
from medxai.errors import DatasetError
from medxai.explain.user_model import ModelSource
from medxai.models.training import TrainConfig, fit
from pipelines.audit import audit_config, read_audit, run_audit, run_until_verdict

CPU = torch.device("cpu")
RENAMED = {"normal": "clear", "COVID-19": "effusion"}
CLASSES = ("clear", "effusion")
PREPROCESSING = {"image_size": 32, "channels": 3, "intensity": "imagenet", "classes": CLASSES}
SMALL = dict(n_explain=1, n_bootstrap=50, detector="rapidocr", epochs=2, image_size=32)


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    """(folder-tree dataset, weights file, preprocessing file, ONNX file)."""
    work = tmp_path_factory.mktemp("user")
    phantom = work / "phantom"
    synthesize(phantom, n_per_class=14, size=64, seed=0)
    root = work / "films"
    rows = ["path,label,split,source"]
    for split, records in load_covidx(phantom, ["train.txt", "test.txt"]).items():
        for r in records:
            if r.label in RENAMED:
                name = split.removesuffix(".txt")
                target = root / name / RENAMED[r.label] / r.source
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(r.path, target / r.filename)
                relative = f"{name}/{RENAMED[r.label]}/{r.source}/{r.filename}"
                rows.append(f"{relative},{RENAMED[r.label]},{name},{r.source}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")  # the same films as a manifest
    spec = work / "preprocessing.json"
    spec.write_text(json.dumps(PREPROCESSING))
    weights = work / "weights.pt"
    torch.save(_trained_weights(root, work / "training"), weights)
    onnx = work / "model.onnx"
    _export_onnx(weights, onnx)
    return root, weights, spec, onnx


def _trained_weights(root, out) -> dict:
    from medxai.data.layouts import read_dataset
    from medxai.data.transforms import Preprocessing

    index = read_dataset(root, "folders", classes=CLASSES, source_from="dir")
    config = TrainConfig(
        model="import:user_models:build", epochs=3, batch_size=8, classes=CLASSES,
        model_input=Preprocessing(32, 3, intensity="imagenet"), augment=False,
    )  # fmt: skip
    fit(config, index.records["train"], out, CPU)
    return torch.load(out / "model.pt", weights_only=True)["state_dict"]


def _export_onnx(weights, path) -> None:
    from user_models import build

    model = build().eval()
    model.load_state_dict(torch.load(weights, weights_only=True))
    torch.onnx.export(
        model, torch.zeros(1, 3, 32, 32), str(path), input_names=["x"],
        dynamic_axes={"x": {0: "batch"}}, dynamo=False,
    )  # fmt: skip


def _device_regions(root, path):
    """`--regions`: a 'device' box in the lower left corner of every test film of the tree."""
    rows = ["image,kind,x0,y0,x1,y1"]
    rows += [
        f"{f.relative_to(root)},device,2,40,14,60" for f in sorted((root / "test").rglob("*.png"))
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def _config(root, **options):
    layout = {"dataset": "folders", "source_from": "dir"}
    if root.suffix == ".csv":
        layout = {"dataset": "csv"}
    return audit_config(root=str(root), classes=CLASSES, **layout, **SMALL, **options)


def test_the_users_imported_model_and_its_onnx_export_reach_the_same_verdict(user_data, tmp_path):
    """Same data, same weights: the torch model (gradients) and the ONNX one (forward only)
    give the same decisions and the same causal tests, so the same verdict. The ONNX audit
    runs RISE only, skips the sanity check and does not retrain, and says so."""
    root, weights, spec, onnx = user_data
    source = ModelSource("import", "user_models:build", weights, spec)
    regions = _device_regions(root, tmp_path / "regions.csv")
    imported = run_until_verdict(
        _config(root, source=source, methods=["gradcam"], regions=str(regions)),
        tmp_path / "torch",
        CPU,
    ).shortcut
    device = imported.kinds["user:device"]
    assert device.reliance.n_images == len(list((root / "test").rglob("*.png")))
    assert "user:device" in [row.kind for row in imported.table]
    source = ModelSource("onnx", str(onnx), preprocessing=spec)
    result = run_audit(_config(root, source=source), tmp_path / "onnx", CPU)
    assert result.model.kind == "onnx" and not result.model.gradients
    assert result.model.methods == ["rise"]
    assert set(result.model.skipped_methods) == {"igos++", "sigcam", "gradcam"}
    assert result.sanity.methods == {} and "ONNX" in result.sanity.skipped
    assert not result.model.retrained and result.comparison == {}
    assert result.negative_control is None
    assert "No negative control was run" in result.shortcut.summary
    assert result.dataset.classes == list(CLASSES)
    assert set(result.evaluations.baseline) == {"test"}
    onnx_verdict = result.shortcut
    assert (onnx_verdict.strength, onnx_verdict.applicable) == (
        imported.strength,
        imported.applicable,
    )
    for mine, theirs in zip(imported.images, onnx_verdict.images, strict=True):
        assert mine.relative == theirs.relative
        if mine.tests is not None:
            assert theirs.tests.original_score == pytest.approx(mine.tests.original_score, abs=1e-4)
    pooled, again = imported.evidence.transplant.pooled, onnx_verdict.evidence.transplant.pooled
    assert (pooled is None) == (again is None)
    if pooled is not None:
        assert again.follow_excess == pytest.approx(pooled.follow_excess, abs=1e-6)
    out = tmp_path / "onnx"
    assert read_audit(out / "audit.json") == result
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "ONNX model" in page and "rise" in page
    assert (out / "cleaned" / "test" / "effusion").is_dir()  # the copy keeps the layout


def test_a_medxai_checkpoint_is_audited_and_retrained_on_request(user_data, tmp_path):
    """`--checkpoint` on a CSV manifest: the model's own classes and preprocessing;
    `--retrain` trains the same architecture on the cleaned films and compares."""
    root, _, _, _ = user_data
    checkpoint = tmp_path / "trained"
    from medxai.data.layouts import read_dataset

    index = read_dataset(root, "folders", classes=CLASSES, source_from="dir")
    fit(TrainConfig(epochs=1, image_size=32, classes=CLASSES), index.records["train"],
        checkpoint, CPU)  # fmt: skip
    source = ModelSource("checkpoint", str(checkpoint / "model.pt"))
    config = _config(root / "labels.csv", source=source, retrain=True, methods=["gradcam"])
    result = run_audit(config, tmp_path / "audit", CPU)
    assert result.model.kind == "checkpoint" and result.model.gradients
    assert result.model.methods == ["gradcam"] and set(result.sanity.methods) == {"gradcam"}
    assert result.model.retrained and set(result.comparison) == {"test"}
    assert result.training.baseline is None and result.training.cleaned is not None
    assert result.dataset.name == "csv" and set(result.evaluations.cleaned) == {"test"}
    cleaned = (tmp_path / "audit" / "cleaned" / "labels.csv").read_text().splitlines()
    assert cleaned[0] == "path,label,split,source" and len(cleaned) == len(
        (root / "labels.csv").read_text().splitlines()
    )


@pytest.fixture(scope="module")
def test_only(user_data, tmp_path_factory):
    """The user's held-out films alone: a folder tree whose one split is `test`."""
    only = tmp_path_factory.mktemp("held-out") / "films"
    shutil.copytree(user_data[0] / "test", only / "test")
    return only


def test_a_users_model_is_audited_on_a_test_set_alone(user_data, test_only, tmp_path):
    """No training split, no --retrain: the audit runs to its report, the source–class ties
    counted on the test split itself, and the report and audit.json say so."""
    from medxai.statistics.confound import informative, source_classes

    _, weights, spec, _ = user_data
    source = ModelSource("import", "user_models:build", weights, spec)
    out = tmp_path / "audit"
    result = run_audit(_config(test_only, source=source, methods=["gradcam"]), out, CPU)
    dataset, ties = result.dataset, result.dataset.ties
    assert dataset.train_split is None and dataset.test_splits == ["test"]
    assert not result.model.retrained and result.training.cleaned is None
    assert (ties.split, ties.chosen, ties.shares_films) == ("test", "test split", True)
    sources = result.data.splits["test"].sources
    assert ties.n_sources == len(sources) > 1 and "share films" in ties.note
    assert "no training split" in ties.note and "--ties-from" in ties.note
    tied = informative(source_classes(sources))
    assert result.shortcut.source.associations == tied
    assert result.shortcut.evidence.transplant.associations == source_classes(sources)
    assert dataset.layout.startswith("folders, no train*/test*.txt split file")
    assert read_audit(out / "audit.json").dataset == dataset
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="ties"' in page and "share films" in page and "Read as folders" in page


def test_a_test_set_alone_still_needs_a_training_split_to_retrain(user_data, test_only, tmp_path):
    _, weights, spec, _ = user_data
    source = ModelSource("import", "user_models:build", weights, spec)
    with pytest.raises(
        DatasetError, match=r"no training split \(a split named train\*\) among test$"
    ):
        run_audit(_config(test_only, source=source, retrain=True), tmp_path / "a", CPU)


def test_ties_from_a_split_that_is_not_there_is_one_line_naming_it(
    user_data, test_only, tmp_path, capsys
):
    from medxai.cli.application import main

    _, weights, spec, _ = user_data
    argv = [
        "audit", "--root", test_only, "--source-from", "dir", "--classes", ",".join(CLASSES),
        "--model-import", "user_models:build", "--weights", weights, "--preprocessing", spec,
        "--ties-from", "validation", "--device", "cpu", "--out", tmp_path / "a",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    output = capsys.readouterr()
    errors = [line for line in output.err.splitlines() if "medxai: error" in line]
    assert done.value.code == 2 and len(errors) == 1, output.err
    assert "--ties-from 'validation': no such split among test" in errors[0]
    assert "stage data" not in output.err, "refused before a film is read"


def test_a_covidx_test_split_alone_takes_its_ties_from_itself(user_data, test_only, tmp_path):
    """A COVIDx root with test.txt only: no train.txt is asked for without training."""
    _, weights, spec, _ = user_data
    root = tmp_path / "covidx"
    shutil.copytree(test_only / "test", root / "test")
    films = sorted((root / "test").rglob("*.png"))
    rows = [f"{f.stem} {f.relative_to(root / 'test')} {f.parts[-3]} {f.parts[-2]}" for f in films]
    (root / "test.txt").write_text("\n".join(rows) + "\n")
    source = ModelSource("import", "user_models:build", weights, spec)
    config = audit_config(root=str(root), classes=CLASSES, source=source, methods=["gradcam"],
                          **SMALL)  # fmt: skip
    assert config.data.dataset == "covidx" and not config.trains
    found = run_until_verdict(config, tmp_path / "audit", CPU).shortcut
    assert found.source.associations and found.evidence.transplant.associations
    with pytest.raises(DatasetError, match=r"train.txt: split file not found"):
        run_audit(replace(config, retrain=True), tmp_path / "retrain", CPU)
