"""The report to file: `medxai report --pdf RUN` and `medxai audit --pdf` print the HTML report
to one PDF through headless Chromium, read back here as text: the verdict sentence, more than
one page, the figures embedded, the run's settings on the last page. Without Playwright or
Chromium, --pdf stops in one line before the audit starts."""

from __future__ import annotations

import os
import re
import shutil
import sys
import unicodedata
from dataclasses import replace

import pytest
from pypdf import PdfReader
from report_helpers import make_artifacts, make_audit

from medxai.cli import audit as audit_command
from medxai.cli.application import main
from medxai.errors import MedxaiError
from medxai.report import pdf as pdf_module
from medxai.report import write_report
from medxai.report.pdf import PDF_NAME, find_printer, write_pdf

SETTINGS = "Configuration (every option of the run)"


@pytest.fixture(scope="module")
def printer():
    """Chromium for Playwright, or a skip (a failure where CI sets MEDXAI_REQUIRE_BROWSER=1)."""
    try:
        return find_printer()
    except MedxaiError as err:
        if os.environ.get("MEDXAI_REQUIRE_BROWSER"):
            pytest.fail(f"MEDXAI_REQUIRE_BROWSER is set but {err}")
        pytest.skip(str(err))


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _words(text: str) -> str:
    """Text as read back from a PDF or a record: ligatures undone, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _pages(path) -> list[str]:
    return [_words(page.extract_text()) for page in PdfReader(path).pages]


def _report_folder(source, target):
    """The report's own files (page and figures) copied out of a shared, read-only run."""
    target.mkdir()
    shutil.copy2(source / "index.html", target / "index.html")
    shutil.copytree(source / "figures", target / "figures")
    return target


def test_report_pdf_of_a_whole_audit(printer, tiny_audit, tmp_path, capsys):
    run = _report_folder(tiny_audit.out, tmp_path / "run")
    code, printed, err = run_cli(["report", "--pdf", run], capsys)
    assert (code, err) == (0, "")
    assert f"report {run / PDF_NAME}" in printed
    pages = _pages(run / PDF_NAME)
    text = " ".join(pages)
    verdict = tiny_audit.result.shortcut
    assert len(pages) > 1
    assert _words(f"Burned-in text: {verdict.summary}") in text
    assert _words(verdict.headline) in text
    assert SETTINGS in pages[-1] and all(SETTINGS not in page for page in pages[:-1])
    for key in ("data.dataset", "explain.methods", "seed 0", "detector used"):
        assert key in pages[-1]
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    shown = len(re.findall(r"<img ", (run / "index.html").read_text("utf-8")))
    embedded = sum(len(page.images) for page in PdfReader(run / PDF_NAME).pages)
    assert 0 < shown <= embedded
    assert sorted(p.name for p in run.iterdir()) == ["figures", "index.html", PDF_NAME]


def test_audit_pdf_prints_the_report_after_the_audit(printer, monkeypatch, tmp_path, capsys):
    fake = replace(make_audit(relies=True), timings={"total": 1.0})

    def run_audit(settings, out, device):
        write_report(out, fake, make_artifacts(True))
        return fake

    monkeypatch.setattr(audit_command, "_run_audit", run_audit)
    out = tmp_path / "out"
    code, printed, _ = run_cli(["audit", "--quick", "--pdf", "--out", out], capsys)
    assert code == 0
    assert f"PDF {out / PDF_NAME}" in printed
    assert _words(fake.shortcut.summary) in " ".join(_pages(out / PDF_NAME))


@pytest.mark.parametrize(
    ("missing", "advice"),
    [("playwright", "pip install playwright"), ("chromium", "apt-get install chromium")],
)
def test_pdf_without_a_browser_fails_in_one_line_before_the_audit(
    missing, advice, monkeypatch, tmp_path, capsys
):
    if missing == "playwright":
        monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    else:
        monkeypatch.setattr(pdf_module, "SYSTEM_CHROMIUM", ())
        monkeypatch.setattr(pdf_module, "_downloaded_chromium", lambda: False)

    def run_audit(*args):
        raise AssertionError("the audit ran although --pdf could not print")

    monkeypatch.setattr(audit_command, "_run_audit", run_audit)
    code, _, err = run_cli(["audit", "--quick", "--pdf", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert err.startswith("medxai: error: --pdf needs") and err.count("\n") == 1
    assert advice in err
    assert not (tmp_path / "out").exists()


def test_a_folder_without_a_report_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(["report", "--pdf", tmp_path], capsys)
    assert code == 2 and "holds no index.html" in err
    code, _, err = run_cli(["report", tmp_path], capsys)
    assert code == 2 and "--pdf" in err


def test_a_figure_that_does_not_load_stops_the_print(printer, positive, tmp_path):
    index, _ = positive
    run = _report_folder(index.parent, tmp_path / "run")
    (run / "figures" / "mean-maps.png").unlink()
    with pytest.raises(MedxaiError, match="figures/mean-maps.png did not load"):
        write_pdf(run / "index.html", run / PDF_NAME, printer)
    assert not (run / PDF_NAME).exists()


def test_a_print_past_its_time_is_stopped_and_leaves_no_process(printer, positive, tmp_path):
    index, _ = positive
    before = set(pdf_module._children(os.getpid()))
    with pytest.raises(MedxaiError, match="Chromium"):
        write_pdf(index, tmp_path / PDF_NAME, printer, seconds=0.05)
    assert set(pdf_module._children(os.getpid())) <= before
    assert not (tmp_path / PDF_NAME).exists()
