"""`medxai compare RUN_A RUN_B`: the page and its record, the paired line it prints, and one
line with exit code 2 for a folder that holds no audit."""

import pytest

from medxai.cli.application import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_compare_writes_the_page(tiny_audit, tiny_audit_of_cleaned, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, printed, _ = run_cli(
        ["compare", tiny_audit.out, tiny_audit_of_cleaned.out, "--out", out,
         "--n-bootstrap", "100"], capsys,
    )  # fmt: skip
    assert code == 0
    assert "18 shared test films" in printed
    assert "text transplant, probability shift: lower in B" in printed
    assert f"comparison {out / 'index.html'}" in printed
    assert (out / "index.html").is_file() and (out / "comparison.json").is_file()


def test_a_folder_without_an_audit_is_one_line(tiny_audit, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["compare", tiny_audit.out, empty, "--out", tmp_path / "x"], capsys)
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line == f"medxai: error: {empty / 'audit.json'}: not found; {empty} is not the " \
        "output folder of an audit"  # fmt: skip
    assert not (tmp_path / "x").exists()
