import csv
import json
import subprocess
import sys

import pytest
import torch
from eval_fixtures import TOY_IMPORT, TOY_PREP, toy_loader, write_toy_coco
from torch import nn

from medxai.cli.application import main
from medxai.data.coco import CocoInstances
from medxai.explain.toy import SquareEvidenceNet
from pipelines.coco_pointing import PointingSettings, finetune_head, pointing_game

CPU = torch.device("cpu")
TOY_ARGS = ["--model-import", TOY_IMPORT, "--image-size", "32", "--normalize", "lite",
            "--head-layer", "head", "--finetune-epochs", "0", "--batch-size", "1",
            "--method", "gradcam", "--method", "igos++", "--device", "cpu"]  # fmt: skip
COMPARED = ("pointing.csv", "per_category.csv", "summary.csv", "summary.md")


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_known_hits_and_misses_and_only_confident_classes(tmp_path):
    coco = CocoInstances(write_toy_coco(tmp_path), tmp_path)
    settings = PointingSettings(("gradcam", "igos++"), batch_size=2)
    summary = pointing_game(
        SquareEvidenceNet(), coco, coco.image_ids(), toy_loader, TOY_PREP, settings,
        tmp_path / "out", CPU,
    )  # fmt: skip
    rows = read_rows(tmp_path / "out" / "pointing.csv")
    # the evidence square is where the most salient pixel must be: inside img1's 'other'
    # mask (a hit), away from img2's (a miss); 'thing' scores below 0.5 and is never played
    got = [(r["image_id"], r["category"], r["method"], r["hit"]) for r in rows]
    assert got == [
        ("1", "other", "gradcam", "1"), ("1", "other", "igos++", "1"),
        ("2", "other", "gradcam", "0"), ("2", "other", "igos++", "0"),
    ]  # fmt: skip
    assert all(8 <= int(r["peak_y"]) < 20 and 8 <= int(r["peak_x"]) < 20 for r in rows)
    assert [(s["method"], s["mean_accuracy"], s["pairs"]) for s in summary] == [
        ("gradcam", 0.5, 2), ("igos++", 0.5, 2),
    ]  # fmt: skip
    per = read_rows(tmp_path / "out" / "per_category.csv")
    assert [(r["category"], r["hits"], r["pairs"]) for r in per] == [("other", "1", "2")] * 2


class Pooled(nn.Module):
    """Mean colour -> head: a model whose only trainable answer is in its output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_finetune_trains_only_the_head_with_bce_then_reuses_it(tmp_path):
    coco = CocoInstances(write_toy_coco(tmp_path), tmp_path)
    torch.manual_seed(0)
    model = Pooled()
    frozen = model.features.weight.detach().clone()
    images = torch.stack([toy_loader(coco.image_path(i)) for i in coco.image_ids()])
    labels = torch.tensor([[1.0, 1.0], [0.0, 1.0]])

    def loss():
        with torch.no_grad():
            return nn.functional.binary_cross_entropy_with_logits(model(images), labels)

    before = loss()
    head = tmp_path / "head.pt"
    assert finetune_head(model, "fc", coco, toy_loader, head, CPU, epochs=200, lr=0.05)
    assert loss() < before / 2
    with torch.no_grad():
        assert bool((torch.sigmoid(model(images))[:, 1] > 0.9).all()), "'other' is in both"
    assert torch.equal(model.features.weight, frozen)
    trained = model.fc.weight.detach().clone()
    fresh = Pooled()
    assert not finetune_head(fresh, "fc", coco, toy_loader, head, CPU, epochs=200)
    assert torch.equal(fresh.fc.weight, trained)


@pytest.mark.parametrize("damage", ["annotations", "image"])
def test_bad_annotation_file_or_missing_image_is_one_clear_line(tmp_path, capsys, damage):
    coco = tmp_path / "coco"
    coco.mkdir()
    path = write_toy_coco(coco)
    if damage == "annotations":
        path.write_text(json.dumps({"images": [], "annotations": []}))
        expected = "instances.json: missing the 'categories' list"
    else:
        (coco / "img2.png").unlink()
        expected = "img2.png: image of instances.json not found"
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "pointing-game", "--coco-root", str(coco), "--annotations",
              str(path), "--out", str(tmp_path / "out"), *TOY_ARGS])  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_torchrun_two_processes_write_the_one_process_files(tmp_path):
    coco = tmp_path / "coco"
    coco.mkdir()
    path = write_toy_coco(coco)
    args = ["evaluate", "pointing-game", "--coco-root", str(coco), "--annotations",
            str(path), *TOY_ARGS]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path / "single")])
    assert info.value.code == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "medxai", *args, "--out",
               str(tmp_path / "sharded")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in COMPARED:
        single, sharded = tmp_path / "single" / name, tmp_path / "sharded" / name
        assert sharded.read_bytes() == single.read_bytes(), name
    assert len(read_rows(tmp_path / "sharded" / "pointing.csv")) == 4


def test_an_output_inside_the_image_folder_is_refused(tmp_path, capsys):
    path = write_toy_coco(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "pointing-game", "--coco-root", str(tmp_path), "--annotations",
              str(path), "--out", str(tmp_path / "out"), *TOY_ARGS])  # fmt: skip
    assert info.value.code == 2 and "inside the source" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
