"""The one codec for typed records: frozen dataclasses to JSON and back (dacite underneath).

Stage records, audit.json and the report all go through it, so a record's shape is written
once, as its dataclass.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import dacite

from medxai.atomic import atomic_write_text
from medxai.errors import MedxaiError

T = TypeVar("T")
_CONFIG = dacite.Config(cast=[tuple, Path], strict=True)


def encode(record: Any) -> Any:
    """A dataclass (or a list/dict of them) as plain JSON values."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: encode(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, dict):
        return {str(k): encode(v) for k, v in record.items()}
    if isinstance(record, list | tuple):
        return [encode(v) for v in record]
    if isinstance(record, Path):
        return str(record)
    return record


def decode(kind: type[T], data: Any, where: str = "record") -> T:
    """`data` (as `encode` wrote it) back into a `kind`; a mismatch is one clear error."""
    try:
        return dacite.from_dict(kind, data, config=_CONFIG)
    except (dacite.DaciteError, TypeError, ValueError) as err:
        raise MedxaiError(f"{where}: not a {kind.__name__} record ({err})") from err


def to_json(record: Any, indent: int | None = None) -> str:
    return json.dumps(encode(record), indent=indent) + "\n"


def write_record(path: Path, record: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, to_json(record, indent))


def read_record(path: Path, kind: type[T]) -> T:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise MedxaiError(f"{path}: unreadable record ({err})") from err
    return decode(kind, data, str(path))
