"""Reading what the commands work on: split files, their images, the user's model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medxai.cli.common import err_console
from medxai.errors import MedxaiError
from medxai.models.kinds import model_kind

if TYPE_CHECKING:
    from medxai.explain.user_model import LoadedModel, ModelSource


def parse_image_dirs(values: list[str] | None) -> dict[str, str]:
    """`--image-dir SPLIT=DIR ...` → {split: folder}."""
    pairs = {}
    for value in values or []:
        split, sep, folder = value.partition("=")
        if not sep or not split or not folder:
            raise MedxaiError(f"--image-dir expects SPLIT=DIR (e.g. test.txt=test), got {value!r}")
        pairs[split] = folder
    return pairs


def load_splits(root: Path, splits: list[str], image_dir: list[str] | None) -> dict:
    """Records of the splits, after every line and dataset-wide check (a user error if not)."""
    from medxai.data.covidx import read_splits

    index = read_splits(root, list(dict.fromkeys(splits)), parse_image_dirs(image_dir))
    index.raise_problems()
    for warning in index.warnings:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True, markup=False)
    return index.records


def load_split(root: Path, split: str, image_dir: list[str] | None) -> list:
    return load_splits(root, [split], image_dir)[split]


def screened(records: list, skip_unreadable: bool) -> list:
    """Stop at the first unreadable image, or skip them all knowingly (counted and listed)."""
    from medxai.data.check import screen_records

    good, skipped = screen_records(records, decode=skip_unreadable)
    if skipped and not skip_unreadable:
        first = skipped[0]
        raise MedxaiError(f"{first.record.path}: {first.reason} ({len(skipped)} image(s) missing)")
    for item in skipped:
        err_console.print(
            f"skipped {item.record.path}: {item.reason}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if skipped:
        err_console.print(f"skipped {len(skipped)} of {len(records)} images")
    return good


# -- the user's model: options of every command that takes one (explain, evaluate) ------------
TorchScriptFile = Annotated[
    Path | None, typer.Option(help="TorchScript file (torch.jit.save of a traced/scripted model).")
]
ImportWeights = Annotated[
    Path | None, typer.Option(help="State-dict file for --model-import (loaded strictly).")
]
OnnxFile = Annotated[Path | None, typer.Option(help="ONNX file (forward passes only).")]
PreprocessingFile = Annotated[
    Path | None,
    typer.Option(help="JSON/YAML preprocessing (and classes) of a --model-import, "
                 "--torchscript or --onnx model."),
]  # fmt: skip


def model_source(
    options: dict[str, str | Path | None],
    weights: Path | None = None,
    preprocessing: Path | None = None,
) -> ModelSource | None:
    """The user's model from the command's model options ({kind: value}, e.g.
    {"import": --model-import, "onnx": --onnx}): None when none is given, an error for two."""
    from medxai.models.user_model import ModelSource

    given = [(kind, value) for kind, value in options.items() if value is not None]
    if len(given) > 1:
        raise MedxaiError(f"give only one of {listed_options(options)}")
    if not given:
        return None
    kind, location = given[0]
    return ModelSource(kind, str(location), weights, preprocessing)


def listed_options(kinds: Iterable[str]) -> str:
    """The CLI options of model kinds, as a message lists them: `--a, --b or --c`."""
    names = [model_kind(kind).option for kind in kinds]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def runnable_methods(loaded: LoadedModel, methods: list[str], defaulted: bool) -> list[str]:
    """The methods that run on `loaded` (each one left out is printed with the reason); the
    default methods fall back to rise (forward passes only) when none of them runs."""
    kept, notes = loaded.supported(methods)
    for note in notes:
        err_console.print(f"skipped {note}", highlight=False, soft_wrap=True, markup=False)
    if not kept and defaulted:
        kept, _ = loaded.supported(["rise"])
        err_console.print("using rise, which needs forward passes only")
    if not kept:
        raise MedxaiError(f"none of the methods runs on this model ({'; '.join(notes)})")
    return kept
