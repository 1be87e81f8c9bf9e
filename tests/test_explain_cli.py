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
        (["--checkpoint", "absent.pt"], "give exactly one of --checkpoint or --model-import"),
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
