import csv
import subprocess
import sys

import pytest
import torch
from eval_fixtures import TOY_IMPORT, toy_loader, write_toy_tree

from medxai.cli.application import main
from medxai.data.imagefolder import load_image_dataset
from medxai.errors import MedxaiError
from medxai.explain.toy import SquareEvidenceNet
from pipelines.imagenet_eval import EvalSettings, evaluate_deletion_insertion

CPU = torch.device("cpu")
COMPARED = ("per_image.csv", "summary.csv", "summary.md", "curves.csv")
TOY_ARGS = ["--model-import", TOY_IMPORT, "--image-size", "32", "--normalize", "lite",
            "--method", "gradcam", "--method", "igos", "--batch-size", "2",
            "--device", "cpu"]  # fmt: skip


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_toy_tree(tmp_path_factory.mktemp("tree"))


def test_summary_is_the_mean_of_the_per_image_rows_and_a_killed_run_resumes(tree, tmp_path):
    records, _ = load_image_dataset(tree)
    settings = EvalSettings(("gradcam", "igos"), target="label", batch_size=4)
    summary = evaluate_deletion_insertion(
        SquareEvidenceNet(), records, toy_loader, settings, tmp_path, CPU
    )
    rows = read_rows(tmp_path / "per_image.csv")
    assert [(r["image"], r["method"]) for r in rows][:2] == [
        ("plain/plain0", "gradcam"), ("plain/plain0", "igos"),
    ]  # fmt: skip
    assert len(rows) == 12 and {r["target"] for r in rows} == {"0", "1"}
    table = read_rows(tmp_path / "summary.csv")
    for entry, method in zip(table, ("gradcam", "igos"), strict=True):
        everyone = [r for r in rows if r["method"] == method]
        mine = [r for r in everyone if not r["note"]]  # the images it found a map for
        assert all(r["deletion_auc"] == "nan" for r in everyone if r["note"])
        for key in ("deletion_auc", "insertion_auc", "overall"):
            assert float(entry[key]) == pytest.approx(
                sum(float(r[key]) for r in mine) / len(mine), rel=1e-12
            )
        assert entry["images"] == str(len(mine)) and entry["ranking"] == "mask:28x28"
        assert entry["no_map"] == str(6 - len(mine))
    # the square images always have a map; plain noise may give Grad-CAM a constant one
    assert all(not r["note"] for r in rows if r["image"].startswith("square"))
    assert [s["method"] for s in summary] == ["gradcam", "igos"]
    # the evidence square matters: deleting it first drops the score faster than inserting it
    square = [r for r in rows if r["image"].startswith("square")]
    assert all(float(r["overall"]) > 0.2 for r in square)
    curves = read_rows(tmp_path / "curves.csv")
    assert len(curves) == 2 * 54 and curves[0]["fraction"] == "0.0"  # 28*28 cells, 15 a step
    assert (tmp_path / "curves.png").stat().st_size > 1000

    before = {p: p.read_bytes() for p in (tmp_path / n for n in COMPARED)}
    kept = tmp_path / "results" / "gradcam" / "plain__plain0.json"
    lost = tmp_path / "results" / "igos" / "square__square1.json"
    stamp = kept.stat().st_mtime_ns
    lost.unlink()
    (tmp_path / "per_image.csv").unlink()
    evaluate_deletion_insertion(SquareEvidenceNet(), records, toy_loader, settings, tmp_path, CPU)
    assert lost.is_file() and kept.stat().st_mtime_ns == stamp, "only the lost batch reruns"
    assert {p: p.read_bytes() for p in before} == before


def test_label_target_needs_labels(tmp_path):
    from eval_fixtures import write_toy_png

    write_toy_png(tmp_path / "flat" / "a.png", seed=0)
    records, _ = load_image_dataset(tmp_path / "flat")
    settings = EvalSettings(("gradcam",), target="label")
    with pytest.raises(MedxaiError, match="a.png: no label for --target label"):
        evaluate_deletion_insertion(
            SquareEvidenceNet(), records, toy_loader, settings, tmp_path / "o", CPU
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--model", "alexnet"], "unknown model 'alexnet'"),
        (["--model", "resnet50"], "--weights FILE is required for resnet50"),
        (["--model", "resnet50", "--weights", "absent.pt"], "absent.pt: weights file not found"),
    ],
)
def test_user_errors_are_one_line(tree, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "deletion-insertion", "--data", str(tree), "--out", str(tmp_path),
              *args])  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("medxai: error:")


def test_torchrun_two_processes_write_the_one_process_files(tree, tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    args = ["evaluate", "deletion-insertion", "--data", str(tree), *TOY_ARGS]
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(single)])
    assert info.value.code == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "medxai", *args, "--out", str(sharded)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in COMPARED:
        assert (sharded / name).read_bytes() == (single / name).read_bytes(), name
    assert len(read_rows(sharded / "per_image.csv")) == 12
