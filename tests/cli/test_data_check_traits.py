"""data-check's acquisition traits: the trait that tells the classes apart is printed, the
sample is stated, a corrupt film does not stop it, and --no-traits skips it."""

import sys
from pathlib import Path

import pytest

from medxai.cli.application import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from trait_datasets import write_csv, write_trait_dataset  # noqa: E402

TITLE = "acquisition traits that predict the label"


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out.replace("\n", " "), err


@pytest.fixture()
def framed(tmp_path):
    """12 normal films, 12 covid films with a black frame, as a CSV manifest."""
    return write_csv(tmp_path, write_trait_dataset(tmp_path, "frame", n_per_class=12))


def test_data_check_prints_the_traits_that_predict_the_label(framed, capsys):
    code, out, _ = run_cli(["data-check", "--root", framed, "--workers", "1"], capsys)
    assert code == 0 and "all is well" in out
    assert "traits, train: 24 of 24 films measured: 2 acquisition trait(s) predict" in out
    assert f"{TITLE} (train)" in out
    assert "border_width" in out and "border_darkness" in out and "sharpness" not in out
    assert "0.092" in out, "the covid films' median border: 47 of 512 pixels per side"
    code, out, _ = run_cli(["data-check", "--root", framed, "--no-traits"], capsys)
    assert code == 0 and "traits" not in out
    code, out, _ = run_cli(["data-check", "--root", framed, "--no-decode"], capsys)
    assert code == 0 and "traits: not measured (--no-decode" in out


def test_the_sample_is_stated_and_a_corrupt_film_is_listed_not_fatal(framed, capsys):
    code, out, _ = run_cli(["data-check", "--root", framed, "--traits-sample", "10"], capsys)
    assert code == 0 and "train: 10 of 24 films measured (a sample of 10 drawn with seed 0)" in out
    (framed.parent / "covid3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    code, out, _ = run_cli(["data-check", "--root", framed, "--workers", "1"], capsys)
    assert code == 1 and "corrupt or truncated PNG file" in out
    assert "traits, train: 23 of 23 films measured" in out and f"{TITLE} (train)" in out


def test_a_dataset_without_confound_has_no_trait_that_predicts(tmp_path, capsys):
    csv = write_csv(tmp_path, write_trait_dataset(tmp_path, "none", n_per_class=12))
    code, out, _ = run_cli(["data-check", "--root", csv, "--workers", "1"], capsys)
    assert code == 0 and TITLE not in out
    assert "traits, train: 24 of 24 films measured: no acquisition trait predicts" in out
