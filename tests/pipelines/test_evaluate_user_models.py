"""`medxai evaluate deletion-insertion` on the same model given as an import, TorchScript
and ONNX: the same scores for the methods each kind runs."""

import csv
import warnings

import pytest
import torch
from eval_fixtures import SIZE, TOY_IMPORT, write_toy_tree

from medxai.cli.application import main
from medxai.explain.toy import SquareEvidenceNet, square_images

COMMON = ["evaluate", "deletion-insertion", "--image-size", str(SIZE), "--normalize", "lite",
          "--target", "label", "--resolution", "8", "--device", "cpu"]  # fmt: skip


def scores(path):
    with open(path, newline="") as f:
        return {(r["image"], r["method"]): float(r["overall"]) for r in csv.DictReader(f)}


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr()


def test_import_torchscript_and_onnx_score_alike(tmp_path, capsys):
    tree = write_toy_tree(tmp_path / "tree", n_per_class=1)
    model, x = SquareEvidenceNet().eval(), square_images(1, SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's and the ONNX exporter's notices
        torch.jit.save(torch.jit.trace(model, x), str(tmp_path / "toy.pt"))
        torch.onnx.export(model, (x,), tmp_path / "toy.onnx", dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    kinds = {"import": ["--model-import", TOY_IMPORT], "torchscript": ["--torchscript",
             str(tmp_path / "toy.pt")], "onnx": ["--onnx", str(tmp_path / "toy.onnx")]}  # fmt: skip
    found = {}
    for kind, option in kinds.items():
        out = tmp_path / kind
        code, captured = run([*COMMON, "--data", str(tree), *option, "--methods",
                              "rise,gradient,gradcam", "--out", str(out)], capsys)  # fmt: skip
        assert code == 0, captured.err
        found[kind] = scores(out / "per_image.csv")
    assert {m for _, m in found["import"]} == {"rise", "gradient", "gradcam"}
    assert {m for _, m in found["torchscript"]} == {"rise", "gradient"}
    assert {m for _, m in found["onnx"]} == {"rise"}
    for kind in ("torchscript", "onnx"):
        for key, value in found[kind].items():
            assert value == pytest.approx(found["import"][key], abs=1e-4), (kind, key)
    square = [v for (image, _), v in found["import"].items() if image.startswith("square")]
    assert square and all(v > 0.2 for v in square), "the evidence is found: a real comparison"
