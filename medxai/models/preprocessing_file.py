"""A preprocessing file: the JSON or YAML that says how a user's model (other than a medxai
checkpoint, which carries its own) wants its images, and optionally its class names."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medxai.data.transforms import INTENSITY_MODES, Preprocessing
from medxai.errors import MedxaiError, first_line

SPEC_KEYS = ("image_size", "channels", "intensity", "mean", "std", "resize", "top_crop", "classes")


@dataclass(frozen=True)
class PreprocessingFile:
    """What a preprocessing file says: the input chain and, optionally, the class names."""

    preprocessing: Preprocessing
    classes: tuple[str, ...] | None


def _parse(path: Path, text: str) -> object:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise MedxaiError(f"{path}: not valid JSON ({err})") from err
    if suffix not in (".yaml", ".yml"):
        raise MedxaiError(f"{path}: a preprocessing file ends in .json, .yaml or .yml")
    try:
        import yaml
    except ImportError as err:  # PyYAML is a dependency; a stripped install may lack it
        raise MedxaiError(f"{path}: PyYAML is not installed; write the file as JSON") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise MedxaiError(f"{path}: not valid YAML ({first_line(err)})") from err


def _number(path: Path, key: str, value: object, kind: type) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or (kind is int and not isinstance(value, int)):
        raise MedxaiError(f"{path}: {key} must be {'an integer' if kind is int else 'a number'}")
    return value


def _numbers(path: Path, key: str, value: object) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(float(_number(path, key, v, float)) for v in values)


def _names(path: Path, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise MedxaiError(f"{path}: classes must be a list of names, in output order")
    return check_classes(value, str(path))


def _fields(path: Path, values: dict) -> dict:
    """The file's entries as Preprocessing fields, each checked for its type."""
    fields: dict = {}
    for key, value in values.items():
        if key in ("image_size", "channels", "resize"):
            fields[key] = _number(path, key, value, int)
        elif key == "top_crop":
            fields[key] = float(_number(path, key, value, float))
        elif key in ("mean", "std"):
            fields[key] = _numbers(path, key, value)
        elif key == "intensity":
            if value not in INTENSITY_MODES:
                raise MedxaiError(
                    f"{path}: unknown intensity {value!r}; use {', '.join(INTENSITY_MODES)}"
                )
            fields[key] = value
    return fields


def read_preprocessing_file(path: str | Path) -> PreprocessingFile:
    """A JSON or YAML mapping with some of SPEC_KEYS; missing keys keep Preprocessing's
    defaults (224 px, 1 channel, per-image standardisation). `mean`/`std` alone mean
    intensity `custom`. Any problem is one line naming the file (and the key)."""
    path = Path(path)
    if not path.is_file():
        raise MedxaiError(f"{path}: preprocessing file not found")
    try:
        values = _parse(path, path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise MedxaiError(f"{path}: not a text file") from err
    if not isinstance(values, dict):
        raise MedxaiError(f"{path}: expected a mapping of {', '.join(SPEC_KEYS)}")
    unknown = [key for key in values if key not in SPEC_KEYS]
    if unknown:
        raise MedxaiError(
            f"{path}: unknown key {unknown[0]!r} (expected some of {', '.join(SPEC_KEYS)})"
        )
    fields = _fields(path, values)
    if "mean" in fields or "std" in fields:
        if fields.setdefault("intensity", "custom") != "custom":
            raise MedxaiError(
                f"{path}: mean/std go with intensity custom, not {values['intensity']!r}"
            )
    if fields.get("channels", 1) not in (1, 3):
        raise MedxaiError(f"{path}: channels must be 1 or 3, got {fields['channels']}")
    prep = Preprocessing(**fields)
    try:
        prep.check()
    except MedxaiError as err:
        raise MedxaiError(f"{path}: {err}") from err
    classes = _names(path, values["classes"]) if "classes" in values else None
    return PreprocessingFile(prep, classes)


def check_classes(classes: Iterable[str], source: str) -> tuple[str, ...]:
    """Class names as a tuple: two at least, none twice."""
    names = tuple(classes)
    if len(names) < 2 or len(set(names)) != len(names):
        raise MedxaiError(f"{source}: name two or more distinct classes, got {list(names)}")
    return names
