import csv

import numpy as np
import pytest

from medxai.cli.application import main
from medxai.data.imageio import read_image, write_png
from medxai.explain.toy import box_mask, square_images

BOX = (8, 8, 20, 20)  # (x0, y0, x1, y1)


@pytest.fixture
def square_pngs(tmp_path):
    """RGB PNGs whose only evidence for class 1 is a checkerboard in BOX."""
    images = square_images(3, 32, BOX, seed=0).permute(0, 2, 3, 1).numpy()
    paths = []
    for k, image in enumerate(images):
        pixels = np.clip((image + 2.0) / 4.0 * 255, 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"img{k}.png")
        write_png(paths[-1], pixels)
    return paths


def run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr()


def test_explain_writes_maps_overlays_and_scores_and_resumes(square_pngs, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", "--model-import", "medxai.explain.toy:SquareEvidenceNet",
            "--channels", "3", "--image-size", "32", "--target", "1", "--resolution", "8",
            "--method", "gradcam", "--method", "rise", "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    for path in square_pngs:
        args += ["--image", str(path)]
    code, _ = run(args, capsys)
    assert code == 0
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [(r["image"], r["method"]) for r in rows] == [
        (f"img{k}", m) for k in range(3) for m in ("gradcam", "rise")
    ]
    assert {r["ranking"] for r in rows} == {"pixel"}
    inside = box_mask(32, BOX).numpy()
    for k in range(3):
        saliency = np.load(out / "maps" / f"img{k}__gradcam.npy")
        assert saliency.shape == (32, 32) and 0 <= saliency.min() and saliency.max() <= 1
        top = saliency >= np.quantile(saliency, 0.95)
        assert inside[top].mean() > 0.9, "the evidence square is the salient part"
        overlay = read_image(out / "overlays" / f"img{k}__rise.png")
        assert overlay.shape == (32, 32, 3)
    assert all(float(r["deletion_auc"]) < float(r["insertion_auc"]) for r in rows)
    first = (out / "maps" / "img0__rise.npy").read_bytes()
    code, _ = run(args, capsys)
    again = list(csv.DictReader(open(out / "scores.csv")))
    assert code == 0 and all(r["seconds"] == "nan" for r in again), "maps on disk are reused"
    assert (out / "maps" / "img0__rise.npy").read_bytes() == first


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "lime"], "unknown method 'lime'"),
        (["--ranking", "random"], "--ranking must be pixel or mask"),
        (["--model-import", "nowhere:thing"], "cannot import 'nowhere:thing'"),
        (["--checkpoint", "absent.pt"], "give only one of --checkpoint, --model-import, "),
    ],
)
def test_explain_user_errors(extra, message, square_pngs, tmp_path, capsys):
    base = ["explain", "--out", str(tmp_path / "o"), "--image", str(square_pngs[0])]
    if "--model-import" not in extra:
        base += ["--model-import", "medxai.explain.toy:SquareEvidenceNet"]
    code, captured = run(base + extra, capsys)
    assert code == 2 and message in captured.err


def test_every_method_gets_its_own_file_name():
    from medxai.explain import method_names
    from pipelines.explain_images import slug

    slugs = [slug(name) for name in method_names()]
    assert len(set(slugs)) == len(slugs)
    assert slug("igos++") == "igospp" and slug("aop:gradcam++") == "aop-gradcampp"


@pytest.fixture
def toy_files(tmp_path):
    """The toy model as TorchScript (traced) and ONNX files, and its preprocessing file."""
    import warnings

    import torch

    from medxai.explain.toy import SquareEvidenceNet

    model, x = SquareEvidenceNet().eval(), square_images(1, 32, BOX, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's and the ONNX exporter's notices
        torch.jit.save(torch.jit.trace(model, x), str(tmp_path / "toy.pt"))
        torch.onnx.export(model, (x,), tmp_path / "toy.onnx", dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    # the PNGs store (x + 2) / 4: mean 0.5, std 0.25 gives the model back x
    (tmp_path / "prep.yaml").write_text(
        "image_size: 32\nchannels: 3\nmean: [0.5]\nstd: [0.25]\nclasses: [plain, square]\n"
    )
    return tmp_path


def test_explain_runs_a_torchscript_model_and_skips_what_it_cannot(square_pngs, toy_files, capsys):
    out = toy_files / "out"
    code, captured = run(["explain", "--torchscript", str(toy_files / "toy.pt"),
                          "--preprocessing", str(toy_files / "prep.yaml"), "--target", "1",
                          "--methods", "gradcam,gradient", "--image", str(square_pngs[0]),
                          "--out", str(out), "--device", "cpu"], capsys)  # fmt: skip
    assert code == 0, captured.err
    assert f"TorchScript model {toy_files / 'toy.pt'}: " in captured.out
    assert "skipped gradcam: needs a CAM target layer; a TorchScript model runs no forward " in (
        captured.err
    )
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [(r["method"], r["target_name"]) for r in rows] == [("gradient", "square")]
    saliency = np.load(out / "maps" / "img0__gradient.npy")
    top = saliency >= np.quantile(saliency, 0.95)
    assert box_mask(32, BOX).numpy()[top].mean() > 0.9, "the evidence square is the salient part"


def test_explain_runs_an_onnx_model_forward_only(square_pngs, toy_files, capsys):
    out = toy_files / "out"
    code, captured = run(["explain", "--onnx", str(toy_files / "toy.onnx"),
                          "--preprocessing", str(toy_files / "prep.yaml"), "--target", "1",
                          "--image", str(square_pngs[0]), "--resolution", "8",
                          "--out", str(out), "--device", "cpu"], capsys)  # fmt: skip
    assert code == 0, captured.err
    assert "skipped gradcam: needs gradients; an ONNX model runs forward only" in captured.err
    assert "using rise" in captured.err, "the default methods fall back to rise"
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [r["method"] for r in rows] == ["rise"]
    assert float(rows[0]["deletion_auc"]) < float(rows[0]["insertion_auc"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--torchscript", "toy.pt", "--methods", "gradcam"], "none of the methods runs on this "),
        (["--torchscript", "toy.pt", "--image-size", "32"], "--image-size/--channels: "),
        (["--torchscript", "toy.pt", "--classes", "a,b", "--image-size", "32"],
         "fails on a (1, 1, 32, 32) input (RuntimeError: Given groups=1, weight of size "),
        (["--onnx", "toy.onnx", "--classes", "a,b,c", "--channels", "3", "--image-size", "32"],
         "the model gives 2 outputs per image but 3 classes are named (a, b, c)"),
        (["--onnx", "toy.onnx", "--weights", "toy.pt"], "--weights goes with --model-import"),
        (["--onnx", "prep.yaml"], "prep.yaml: not a readable ONNX model"),
    ],
)  # fmt: skip
def test_explain_model_option_errors(extra, message, square_pngs, toy_files, capsys):
    extra = [str(toy_files / a) if a.startswith(("toy.", "prep.")) else a for a in extra]
    if "--classes" not in extra:
        extra += ["--preprocessing", str(toy_files / "prep.yaml")]
    code, captured = run(["explain", "--out", str(toy_files / "o"), "--image",
                          str(square_pngs[0]), "--device", "cpu", *extra], capsys)  # fmt: skip
    assert code == 2 and message in captured.err, captured.err
