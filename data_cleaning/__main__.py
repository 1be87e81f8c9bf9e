"""`python -m data_cleaning --root SRC --out DST ...`: the cleaning script on its own.

It takes the options of `medxai clean` and exits the same way: 0 when every image was
cleaned, 1 when some failed (listed), 2 with one line for a user error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from data_cleaning.clean import CleanSettings, clean_dataset, summary_lines
from data_cleaning.detect import DEFAULT_DETECTOR, DETECTORS
from medxai.device import resolve_device
from medxai.errors import MedxaiError, first_line

PROG = "python -m data_cleaning"
MAX_WORKERS = 64


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        _fail(message)


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _bounded(kind: Callable, low: float, high: float) -> Callable[[str], float]:
    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in the range {low}<=x<={high}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


# the numeric options: (flag, type, lowest, highest, default, help)
_BOUNDED = (
    ("--text-threshold", float, 0.0, 1.0, 0.7, "CRAFT confidence"),
    ("--radius", int, 1, 100, 10, "Telea radius"),
    ("--dilate", int, 0, 100, 4, "Grow text boxes by PX pixels"),
    ("--workers", int, 1, MAX_WORKERS, 1, "Processes"),
)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Detect burned-in text, inpaint it (Telea) and write a cleaned copy of the "
        "dataset (same layout) + manifest; the options of `medxai clean`.",
    )
    p.add_argument(
        "--root",
        required=True,
        help="Source dataset: a folder (COVIDx split files or <split>/<class>/ image folders) "
        "or a CSV manifest; never written.",
    )
    p.add_argument("--out", required=True, help="Where the cleaned copy goes (not inside --root).")
    p.add_argument(
        "--layout", default="auto", help="auto, covidx, csv or folders (default %(default)s)."
    )
    p.add_argument("--classes", help="Class names in order, comma-separated (default: found).")
    p.add_argument(
        "--source-from",
        default="none",
        help="folders layout: none, dir or prefix (default %(default)s).",
    )
    p.add_argument(
        "--splits",
        action="append",
        help="Split files: repeat, or comma-separate (default: ROOT/*.txt).",
    )
    p.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"{', '.join(DETECTORS)} or auto (default %(default)s).",
    )
    for flag, kind, low, high, default, text in _BOUNDED:
        help_text = f"{text} (default %(default)s)."
        p.add_argument(flag, type=_bounded(kind, low, high), default=default, help=help_text)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s).")
    return p


def _split_names(values: Sequence[str] | None) -> list[str] | None:
    names = (name.strip() for value in values or () for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name)) or None


def run(argv: Sequence[str] | None = None) -> int:
    """Clean as the arguments say; the exit code (a user error raises MedxaiError)."""
    args = parser().parse_args(argv)
    detector = DEFAULT_DETECTOR if args.detector == "auto" else args.detector
    if detector not in DETECTORS:
        raise MedxaiError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    settings = CleanSettings(
        detector=detector, text_threshold=args.text_threshold, radius=args.radius,
        dilate=args.dilate, gpu=resolve_device(args.device).type == "cuda",
    )  # fmt: skip
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True))  # fmt: skip
    with bar:
        task = bar.add_task("cleaning", total=None)
        summary = clean_dataset(
            args.root, args.out, _split_names(args.splits), settings, args.workers,
            progress=lambda k, total: bar.update(task, advance=k, total=total),
            layout=args.layout, classes=args.classes, source_from=args.source_from,
        )  # fmt: skip
    for line in summary_lines(summary, args.out):
        print(line)
    return 1 if summary.failed else 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        code = run(argv)
    except MedxaiError as err:
        _fail(first_line(err))
    except KeyboardInterrupt:
        print(f"{PROG}: aborted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    main()
