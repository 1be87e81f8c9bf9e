"""The `medxai` app: the root options, and every command module's commands under their names.

This is the only module that imports the command modules; none of them imports it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from medxai import __version__
from medxai.cli import audit, clean, compare, data, evaluate, explain, report, train  # commands
from medxai.cli.common import console, run_app

app = typer.Typer(
    name="medxai",
    help="Debug medical image classifiers: saliency, burned-in-text shortcut audits, cleaning.",
    no_args_is_help=True,
    add_completion=False,
)
evaluate_app = typer.Typer(help=evaluate.GROUP_HELP, no_args_is_help=True)
evaluate_app.command("deletion-insertion")(evaluate.deletion_insertion_command)
evaluate_app.command("pointing-game")(evaluate.pointing_game_command)

app.command()(data.synth)
app.command("data-check")(data.data_check)
app.command()(train.train)
app.command("evaluate-model")(train.evaluate_model)
app.command()(explain.explain)
app.add_typer(evaluate_app, name="evaluate")
app.command()(clean.clean)
app.command()(audit.audit)
app.command()(report.report)
app.command()(compare.compare)


def _version(value: bool) -> None:
    if value:
        console.print(f"medxai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """medxai: find out why a medical image classifier decides what it decides."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    run_app(app, argv)
