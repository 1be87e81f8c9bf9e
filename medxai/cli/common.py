"""What every command module shares: consoles, the progress bar, option bounds, the options
several commands take (declared once), list parsing, the first checks of a saliency run, and
the one-line error handling.

This module imports no other module of `medxai.cli`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medxai.errors import MedxaiError

console = Console()
err_console = Console(stderr=True)

# Upper bounds of numeric options: past them a run would only exhaust memory or time.
MAX_IMAGE_SIZE = 1024  # model input side
MAX_BATCH = 1024
MAX_EPOCHS = 10_000
MAX_WORKERS = 64
MAX_SEED = 2**32 - 1

AUC_KEYS = ("deletion_auc", "insertion_auc", "overall")  # the columns of print_auc_table

# -- options several commands take: one declaration each, so one name, bound and help -------
# typer copies an OptionInfo per parameter, so one declaration serves `X` and `X | None`
# (the `Maybe…` aliases: None lets the pipeline choose, e.g. the audit's --quick sizes).
_DEVICE = typer.Option(help="auto, cpu or cuda.")
_SEED = typer.Option(min=0, max=MAX_SEED, help="Random seed: same arguments, same results.")
_IMAGE_SIZE = typer.Option(
    min=16,
    max=MAX_IMAGE_SIZE,
    help="Model input side in pixels (a checkpoint or a zoo model brings its own).",
)
_EPOCHS = typer.Option(min=1, max=MAX_EPOCHS, help="Training epochs (at most).")
_MODEL = typer.Option(help="Architecture (default covidnet-s; see docs/training.md).")
_ROOT = typer.Option(help="COVIDx dataset root (only read, never written).")
_TEST_SPLITS = typer.Option(
    help="Split file(s) to score the final model on: repeat, or comma-separate "
    "(default test.txt; an audit adds test_balanced.txt when present)."
)
_DETECTOR = typer.Option(
    help="fused (recommended: RapidOCR DB + lone-marker glyphs), craft-paper (the iGOS++ "
    "paper's EasyOCR CRAFT), craft, rapidocr, both (craft + rapidocr) or auto (= fused)."
)
_SHORTCUT_STRENGTH = typer.Option(
    min=0.0,
    max=1.0,
    help="Phantom confound: 1: COVID-19 only from COVID sources; 0: source ⟂ label.",
)

Device = Annotated[str, _DEVICE]
Seed = Annotated[int, _SEED]
MaybeSeed = Annotated[int | None, _SEED]
ImageSize = Annotated[int, _IMAGE_SIZE]
MaybeImageSize = Annotated[int | None, _IMAGE_SIZE]
Epochs = Annotated[int, _EPOCHS]
MaybeEpochs = Annotated[int | None, _EPOCHS]
Model = Annotated[str, _MODEL]
MaybeModel = Annotated[str | None, _MODEL]
Root = Annotated[Path, _ROOT]
MaybeRoot = Annotated[Path | None, _ROOT]
TestSplits = Annotated[list[str] | None, _TEST_SPLITS]
Detector = Annotated[str, _DETECTOR]
MaybeDetector = Annotated[str | None, _DETECTOR]
ShortcutStrength = Annotated[float, _SHORTCUT_STRENGTH]
MaybeShortcutStrength = Annotated[float | None, _SHORTCUT_STRENGTH]

Splits = Annotated[
    list[str] | None,
    typer.Option(help="Split files: repeat, or comma-separate (default: ROOT/*.txt)."),
]
Split = Annotated[str, typer.Option(help="Split file under --root.")]
ImageDirs = Annotated[
    list[str] | None,
    typer.Option(help="SPLIT=DIR: where a split's images are (default train/, test/)."),
]
Workers = Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Parallel workers.")]
# the dataset options of data-check, train and clean (medxai.data.layouts.read_dataset)
DatasetRoot = Annotated[
    Path,
    typer.Option(
        "--root",
        help="Dataset (only read, never written): a folder of COVIDx split files or of "
        "<split>/<class>/ image folders, or a CSV manifest file.",
    ),
]
DatasetSplits = Annotated[
    list[str] | None,
    typer.Option(
        "--splits",
        help="Splits to read: split files (covidx), split column values (csv) or split "
        "folders (folders); repeat, or comma-separate (default: all).",
    ),
]
Layout = Annotated[
    str,
    typer.Option(help="Dataset layout: auto (told from --root), covidx, csv or folders."),
]
Classes = Annotated[
    str | None,
    typer.Option(
        help="Class names in order, comma-separated, e.g. effusion,clear: a user's model's "
        "outputs in order, and the dataset's classes (default: the model's own, or the "
        "training split's labels; COVIDx label sets keep their own order, others are sorted)."
    ),
]
SourceFrom = Annotated[
    str,
    typer.Option(
        help="folders layout: an image's source (hospital): none, dir "
        "(ROOT/<split>/<class>/<source>/<image>) or prefix (file name before its first '_')."
    ),
]
PositiveClass = Annotated[
    str | None,
    typer.Option(
        help="Class that --balance covid-share (and auto) oversamples (default COVID-19 or "
        "positive when a class, else none)."
    ),
]
OutDir = Annotated[Path, typer.Option(help="Output folder (never inside the source).")]
BatchSize = Annotated[
    int, typer.Option(min=1, max=MAX_BATCH, help="Images per batch (per rank under torchrun).")
]
Channels = Annotated[
    int, typer.Option(min=1, max=3, help="Model input channels (a checkpoint brings its own).")
]
LearningRate = Annotated[float, typer.Option(min=0.0, max=10.0, help="Learning rate.")]
ModelImport = Annotated[
    str | None,
    typer.Option(
        help="package.module:factory returning the model (instead of --checkpoint/--model)."
    ),
]
Resolution = Annotated[
    int, typer.Option(min=1, max=MAX_IMAGE_SIZE, help="Mask resolution: 7, 14, 28, 224…")
]
RANKINGS = ("pixel", "mask")


def _check_ranking(value: str) -> str:
    check_choice("--ranking", value, RANKINGS)
    return value


Ranking = Annotated[
    str,
    typer.Option(
        callback=_check_ranking,
        help="Deletion/insertion ranking: pixel (AOP) or mask (iGOS++ code).",
    ),
]
TargetLayer = Annotated[str | None, typer.Option(help="Module name for CAMs.")]


def processes_option(help_text: str) -> typer.models.OptionInfo:
    """A count of worker processes where 0 is allowed (`help_text` says what 0 means)."""
    return typer.Option(min=0, max=MAX_WORKERS, help=help_text)


def methods_option(default: str) -> typer.models.OptionInfo:
    """The saliency-method option of every command that takes methods (see parse_methods)."""
    return typer.Option(
        "--method",
        "--methods",
        help=f"Saliency method(s): repeat --method M, or --methods a,b (default {default}).",
    )


# -- the saliency commands ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options every saliency command takes last (declared once: see with_run_options)."""

    target_layer: str | None = None
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0


_RUN_OPTIONS = {"target_layer": TargetLayer, "batch_size": BatchSize, "device": Device,
                "seed": Seed}  # fmt: skip


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., run: RunOptions)` as a typer command whose last options are
    --target-layer, --batch-size, --device and --seed, handed to it as `run`."""
    signature = inspect.signature(command, eval_str=True)
    own = [param for name, param in signature.parameters.items() if name != "run"]
    added = [
        inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default,
                          annotation=_RUN_OPTIONS[field.name])
        for field in dataclasses.fields(RunOptions)
    ]  # fmt: skip

    @functools.wraps(command)
    def typed(**options) -> None:
        run = RunOptions(**{name: options.pop(name) for name in _RUN_OPTIONS})
        return command(**options, run=run)

    typed.__signature__ = signature.replace(parameters=[*own, *added])
    typed.__annotations__ = {param.name: param.annotation for param in [*own, *added]}
    return typed


def check_run(out: Path, sources: list, method: Iterable[str] | None,
              default: Sequence[str]) -> list[str]:  # fmt: skip
    """A saliency command's first checks: OUT (never inside a source), then the methods asked
    for (or `default`); the methods."""
    from medxai.outputs import check_output

    check_output(out, sources)
    return parse_methods(method, default)


# -- parsing -----------------------------------------------------------------------------
def parse_names(values: Iterable[str] | None) -> list[str]:
    """`--x a --x b,c` → [a, b, c]: repeated and comma-separated values, in order, each once."""
    names = (name.strip() for value in values or () for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


def parse_methods(values: Iterable[str] | None, default: Sequence[str] = ()) -> list[str]:
    """The saliency methods asked for (or `default`), each a name of medxai.explain."""
    from medxai.explain import method_names

    chosen = parse_names(values) or list(default)
    known = set(method_names())
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise MedxaiError(f"unknown method {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    return chosen


def check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise MedxaiError(f"{option} must be {' or '.join(choices)}, got {value!r}")


# -- output ------------------------------------------------------------------------------
def progress_bar() -> Progress:
    """The one progress-bar layout every long loop of the CLI uses."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


@contextmanager
def progress_task(
    description: str, total: int | None = None, visible: bool = True
) -> Iterator[Callable[..., None]]:
    """A progress bar of one task, as the callback `progress(advance, total=None)` the pipelines
    call (a total of None keeps the one the bar has)."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total, visible=visible)

        def progress(advance: int, total: int | None = None) -> None:
            bar.update(task, advance=advance, total=total)

        yield progress


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table whose first column is left-aligned and the others right-aligned."""
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_auc_table(title: str, rows: Iterable[tuple[str, Iterable[float]]]) -> None:
    """Deletion/insertion AUCs per method: (method, its AUC_KEYS values in that order)."""
    print_table(
        title,
        ["method", "deletion ↓", "insertion ↑", "over-all ↑"],
        [[method, *(f"{value:.4f}" for value in values)] for method, values in rows],
    )


# -- errors ------------------------------------------------------------------------------
def _one_line(message: str) -> str:
    """A DataLoader worker re-raises our error with its traceback inside: keep our message."""
    if message.startswith("Caught ") and "medxai.errors." in message:
        return message.rsplit("medxai.errors.", 1)[1].split(": ", 1)[-1].strip()
    lines = message.strip().splitlines()
    return lines[0] if lines else message


def run_app(app: typer.Typer, argv: list[str] | None) -> NoReturn:
    """Run `app`, turning user errors into one line and exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="medxai", standalone_mode=False)
    except typer.Abort:
        err_console.print("medxai: aborted")
        sys.exit(130)
    except typer.TyperException as err:  # bad option, missing argument, unknown command
        err_console.print(f"medxai: error: {err.format_message()}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except MedxaiError as err:
        message = _one_line(str(err))
        err_console.print(
            f"medxai: error: {message}", highlight=False, soft_wrap=True, markup=False
        )
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
