import subprocess
import sys

import numpy as np
import pytest

from medxai import __version__
from medxai.cli.application import main
from medxai.data.imageio import write_png


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_version_and_help(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"medxai {__version__}"
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "synth" in out and "data-check" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data-check", "--root", "/no/such/dir"], "/no/such/dir: dataset root not found"),
        (["data-check"], "Missing option '--root'"),
        (["synth", "--size", "10"], "'--size'"),
        (["synth", "--colour", "red"], "No such option: --colour"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["data-check", "--root", ".", "--image-dir", "oops"], "--image-dir expects SPLIT=DIR"),
        (["audit", "--layout", "covidx"], "--layout covidx needs --root DIR"),
        (["audit", "--dataset", "covidx"], "--layout covidx needs --root DIR"),  # the old name
        (["audit", "--weights", "w.pt"], "--weights and --preprocessing describe a user's model"),
        (["audit", "--onnx", "m.onnx", "--retrain"], "--retrain: an ONNX file holds no"),
        (["audit", "--method", "nope"], "unknown method 'nope'"),
        (["audit", "--detector", "tesseract"], "unknown detector 'tesseract'"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(capsys, args, message):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medxai: error:"), err
    assert message in lines[0]


def test_data_check_exit_codes_and_listing(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    write_png(tmp_path / "train" / "a.png", np.zeros((10, 12), np.uint8))
    (tmp_path / "train.txt").write_text("p1 a.png normal\n")
    code, out, _ = run_cli(["data-check", "--root", str(tmp_path)], capsys)
    assert code == 1 and "a classifier needs at least two classes" in out.replace("\n", "")
    write_png(tmp_path / "train" / "b.png", np.ones((10, 12), np.uint8))
    (tmp_path / "train.txt").write_text("p1 a.png normal\np2 b.png COVID-19\n")
    code, out, _ = run_cli(["data-check", "--root", str(tmp_path)], capsys)
    assert code == 0 and "all is well" in out
    assert "layout: covidx, split files train.txt at the root" in out
    (tmp_path / "train.txt").write_text("p1 a.png normal\np2 lost.png COVID-19\np3 a.png sick\n")
    code, out, _ = run_cli(["data-check", "--root", str(tmp_path)], capsys)
    assert code == 1
    assert f"{tmp_path / 'train' / 'lost.png'} (train.txt:2): image not found" in out
    flat = out.replace("\n", "")
    assert f"{tmp_path / 'train.txt'}:3: label 'sick' is not in the 3class COVIDx label" in flat
    assert f"{tmp_path / 'train.txt'}:3: a.png is labelled 'sick' here and 'normal'" in flat
    assert "3 problem(s)" in out


def test_console_entry_point_exit_codes():
    ok = subprocess.run([sys.executable, "-m", "medxai", "--version"], capture_output=True)
    assert ok.returncode == 0 and __version__ in ok.stdout.decode()
    bad = subprocess.run(
        [sys.executable, "-m", "medxai", "synth", "--shortcut-strength", "2"], capture_output=True
    )
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    assert len(bad.stderr.decode().strip().splitlines()) == 1


def test_synth_output_passes_data_check_and_loads_through_the_covidx_loader(tmp_path, capsys):
    from medxai.data.covidx import CovidxDataset, load_covidx
    from medxai.data.transforms import Preprocessing, build_transforms

    out = tmp_path / "phantom"
    args = ["synth", "--out", str(out), "--n-per-class", "6", "--size", "64", "--workers", "1"]
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0 and "21 images" in stdout
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0, "re-running with the same arguments finds the dataset done"
    code, stdout, _ = run_cli(["data-check", "--root", str(out)], capsys)
    assert code == 0 and "all is well" in stdout
    splits = load_covidx(out, ["train.txt", "test.txt", "test_balanced.txt"])
    assert sum(len(v) for v in splits.values()) == 3 * (6 + 1)  # round(0.2 * 6) balanced
    dataset = CovidxDataset(
        splits["test_balanced.txt"], transform=build_transforms(Preprocessing(32))
    )
    image, label = dataset[0]
    assert (
        image.shape == (1, 32, 32)
        and dataset.classes[label] == splits["test_balanced.txt"][0].label
    )


# -- one grammar for saliency methods: --method M (repeated), --methods a,b, or both ---------
TOY = "medxai.explain.toy:SquareEvidenceNet"
METHOD_GRAMMARS = {
    "repeated": ["--method", "gradcam", "--method", "gradient"],
    "comma": ["--methods", "gradcam,gradient"],
    "mixed": ["--methods", "gradcam", "--method", "gradient,gradcam"],
}


@pytest.fixture
def toy_tree(tmp_path):
    """An ImageFolder tree of two 32 px RGB images carrying the toy model's evidence."""
    from medxai.explain.toy import square_images

    images = square_images(2, 32, seed=0).permute(0, 2, 3, 1).numpy()
    for k, image in enumerate(images):
        (tmp_path / "tree" / "square").mkdir(parents=True, exist_ok=True)
        pixels = np.clip((image + 1) / 2 * 255, 0, 255).round().astype(np.uint8)
        write_png(tmp_path / "tree" / "square" / f"img{k}.png", pixels)
    return tmp_path / "tree"


def explain_args(tree, out):
    return ["explain", "--model-import", TOY, "--channels", "3", "--image-size", "32",
            "--resolution", "8", "--device", "cpu", "--out", str(out),
            "--image", str(tree / "square" / "img0.png")]  # fmt: skip


def deletion_insertion_args(tree, out):
    return ["evaluate", "deletion-insertion", "--data", str(tree), "--model-import", TOY,
            "--image-size", "32", "--normalize", "lite", "--resolution", "8",
            "--batch-size", "2", "--device", "cpu", "--out", str(out)]  # fmt: skip


def methods_in(path):
    import csv

    with open(path, newline="") as f:
        return [row["method"] for row in csv.DictReader(f)]


@pytest.mark.parametrize("grammar", METHOD_GRAMMARS.values(), ids=METHOD_GRAMMARS.keys())
def test_explain_takes_methods_repeated_or_comma_separated(grammar, toy_tree, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli([*explain_args(toy_tree, out), *grammar], capsys)
    assert code == 0, err
    assert methods_in(out / "scores.csv") == ["gradcam", "gradient"]


@pytest.mark.parametrize("grammar", METHOD_GRAMMARS.values(), ids=METHOD_GRAMMARS.keys())
def test_deletion_insertion_takes_methods_repeated_or_comma_separated(
    grammar, toy_tree, tmp_path, capsys
):
    out = tmp_path / "out"
    code, _, err = run_cli([*deletion_insertion_args(toy_tree, out), *grammar], capsys)
    assert code == 0, err
    assert methods_in(out / "summary.csv") == ["gradcam", "gradient"]


@pytest.mark.parametrize("grammar", [["--method", "nope"], ["--methods", "gradcam,nope"]])
@pytest.mark.parametrize(
    "command",
    [
        explain_args,
        deletion_insertion_args,
        lambda tree, out: [
            "evaluate",
            "pointing-game",
            "--coco-root",
            str(tree),
            "--annotations",
            str(tree / "none.json"),
            "--out",
            str(out),
        ],
        lambda tree, out: ["audit", "--out", str(out)],
    ],  # fmt: skip
    ids=["explain", "deletion-insertion", "pointing-game", "audit"],
)
def test_an_unknown_method_is_one_line_and_exit_2(command, grammar, toy_tree, tmp_path, capsys):
    code, _, err = run_cli([*command(toy_tree, tmp_path / "out"), *grammar], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("medxai: error: unknown method 'nope'; choose from ")
    assert not (tmp_path / "out").exists(), "nothing is written before the options are checked"


@pytest.mark.parametrize(
    "command", [["explain"], ["evaluate", "deletion-insertion"], ["evaluate", "pointing-game"]]
)
def test_saliency_commands_take_the_run_options_last(command, capsys):
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    flags = ("--target-layer", "--batch-size", "--device", "--seed")
    places = [out.index(flag) for flag in flags]
    assert places == sorted(places) and "--run" not in out
    assert max(out.index(flag) for flag in ("--image-size", "--resolution")) < places[0]


def test_deletion_insertion_refuses_an_unknown_ranking(toy_tree, tmp_path, capsys):
    args = [*deletion_insertion_args(toy_tree, tmp_path / "out"), "--ranking", "random"]
    code, _, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == "medxai: error: --ranking must be pixel or mask, got 'random'"
    assert not (tmp_path / "out").exists()


# -- the cleaning summary: one text, printed by `medxai clean` and `python -m data_cleaning` --
def test_both_cleaning_fronts_print_the_same_summary(tmp_path, capsys, monkeypatch):
    from data_cleaning import __main__ as script
    from data_cleaning.clean import CleaningSummary

    summary = CleaningSummary(
        images=3, with_text=1, boxes=2, skipped_done=1, residual_boxes=1,
        with_residual=[{"source": "train/a.png", "boxes": 1}],
        needs_review=[{"source": "train/[b].dcm", "reason": "Burned In Annotation: YES"}],
        notes=["README.txt is not a split file"],
        warnings=[{"source": "train/a.png", "warning": "the mask covers 80% [of it]"}],
        failed=[{"source": "train/c.png", "reason": "corrupt or truncated PNG"}],
    )  # fmt: skip
    monkeypatch.setattr("data_cleaning.clean.clean_dataset", lambda *a, **k: summary)
    monkeypatch.setattr(script, "clean_dataset", lambda *a, **k: summary)
    out = str(tmp_path / "clean")
    code, rich_front, _ = run_cli(["clean", "--root", str(tmp_path), "--out", out], capsys)
    assert code == 1, "an image failed"
    assert script.run(["--root", str(tmp_path), "--out", out]) == 1
    plain_front = capsys.readouterr().out
    assert rich_front == plain_front
    assert plain_front.splitlines() == [
        f"3 images (1 already done), 1 with text, 2 boxes, 1 failed, 0.0 s; wrote {out}",
        "residual check: 1 boxes still detected on 1 cleaned images; 1 need review",
        "residual text: train/a.png (1 boxes)",
        "needs review: train/[b].dcm: Burned In Annotation: YES",
        "note: README.txt is not a split file",
        "warning train/a.png: the mask covers 80% [of it]",
        "failed train/c.png: corrupt or truncated PNG",
    ]


def test_an_audit_config_file_error_names_the_file_and_the_key(tmp_path, capsys):
    config = tmp_path / "audit.yaml"
    config.write_text("train:\n  epochs: 2\nexplain:\n  method: [gradcam]\n")
    code, _, err = run_cli(["audit", "--config", str(config), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert f"{config}: unknown setting 'explain.method'" in err.strip().splitlines()[0]
