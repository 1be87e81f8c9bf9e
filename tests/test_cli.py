import subprocess
import sys

import numpy as np
import pytest

from medxai import __version__
from medxai.cli import main
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
        (["audit", "--dataset", "covidx"], "--dataset covidx needs --root DIR"),
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
    assert code == 0 and "all is well" in out
    (tmp_path / "train.txt").write_text("p1 a.png normal\np2 lost.png COVID-19\np3 a.png sick\n")
    code, out, _ = run_cli(["data-check", "--root", str(tmp_path)], capsys)
    assert code == 1
    assert f"{tmp_path / 'train' / 'lost.png'} (train.txt:2): image not found" in out
    assert f"{tmp_path / 'train.txt'}:3: unknown label 'sick'" in out
    assert "2 problem(s)" in out


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
