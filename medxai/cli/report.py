"""`medxai report`: an existing audit's report to file (`--pdf`: one PDF, to attach or file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medxai.cli.common import console
from medxai.errors import MedxaiError


def report(
    run: Annotated[
        Path,
        typer.Argument(help="The folder of a finished audit (medxai audit --out): index.html."),
    ],
    pdf: Annotated[
        bool,
        typer.Option(
            "--pdf",
            help="Print the report to one PDF through headless Chromium: figures embedded, a "
            "page per section, the run's settings on the last page.",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the PDF (default RUN/report.pdf).")
    ] = None,
) -> None:
    """Print an audit's report to file: `medxai report --pdf RUN` writes RUN/report.pdf."""
    from medxai.outputs import check_output, output_lock
    from medxai.report.pdf import PDF_NAME, find_printer, write_pdf

    if not pdf:
        raise MedxaiError("say what to write: --pdf (the HTML report is RUN/index.html)")
    index = run / "index.html"
    if not index.is_file():
        raise MedxaiError(f"{run} holds no index.html: give the folder of a finished audit")
    target = out or run / PDF_NAME
    check_output(target, is_file=True)
    printer = find_printer()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.resolve().parent == run.resolve():
        with output_lock(run):  # not beside an audit still writing this folder
            write_pdf(index, target, printer)
    else:
        write_pdf(index, target, printer)
    console.print(f"report {target}", highlight=False, soft_wrap=True)
