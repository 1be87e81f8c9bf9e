"""Reading what the commands work on: split files, their images, an imported model."""

from __future__ import annotations

from pathlib import Path

from medxai.cli.common import err_console
from medxai.errors import MedxaiError


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


def import_model(spec: str):
    """`package.module:factory` → the nn.Module that factory() returns."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise MedxaiError(f"--model-import expects package.module:factory, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise MedxaiError(f"cannot import {spec!r}: {err}") from err
    return factory()
