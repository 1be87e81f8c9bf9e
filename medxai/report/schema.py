"""A record type's JSON Schema (draft 2020-12), read off its dataclasses' type hints, so the
published schema of audit.json cannot drift from the records medxai.codec writes.

A document is valid when `medxai.codec.decode` takes its shape: every field medxai writes, a
field with a default may be missing (older records), no other key (the codec is strict).
Figures without meaning are written as JSON's `NaN` (Python's json reads them as numbers).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_PLAIN = {str: "string", Path: "string", int: "integer", float: "number", bool: "boolean",
          type(None): "null"}  # fmt: skip
_Defs = dict[str, tuple[type, dict[str, Any]]]  # name -> (record type, its schema)


def record_schema(kind: Any, title: str, description: str = "") -> dict[str, Any]:
    """The schema of `encode(record)` for a record of type `kind` (a dataclass, generic ones
    with their arguments); each other dataclass it holds is one entry of `$defs`."""
    defs: _Defs = {}
    root = _type_schema(kind, defs, inline=True)
    del root["title"]  # the record type's name gives way to the document's
    named = {name: schema for name, (_, schema) in sorted(defs.items())}
    about = {"description": description} if description else {}
    return {"$schema": DIALECT, "title": title, **about, **root, "$defs": named}


def _type_schema(hint: Any, defs: _Defs, inline: bool = False) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _PLAIN:
        return {"type": _PLAIN[hint]}
    if hint is Any:
        return {}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (types.UnionType, typing.Union):
        return _union([_type_schema(a, defs) for a in args])
    if origin is list or (origin is tuple and args[1:] == (...,)):
        return {"type": "array", "items": _type_schema(args[0], defs)}
    if origin is tuple:  # a fixed length, e.g. tuple[int, int] (an Interval, a shape)
        items = [_type_schema(a, defs) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items),
                "maxItems": len(items)}  # fmt: skip
    if origin is dict and args[0] is str:
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs)}
    if dataclasses.is_dataclass(origin or hint):
        return _dataclass(hint, defs, inline)
    raise TypeError(f"no JSON Schema for {hint!r}: teach medxai.report.schema this type")


def _union(options: list[dict]) -> dict:
    """`{"type": [...]}` when every option is a plain type (`float | None`), else anyOf."""
    if all(set(o) == {"type"} for o in options):
        return {"type": [o["type"] for o in options]}
    return {"anyOf": options}


def _dataclass(hint: Any, defs: _Defs, inline: bool) -> dict:
    """A dataclass as an object; a plain one by reference to `$defs`, a generic one (such as
    `ModelPair[...]`, different per argument) inline."""
    cls = typing.get_origin(hint) or hint
    generic = cls is not hint
    if not (inline or generic):
        name = cls.__name__
        if name not in defs:
            defs[name] = (cls, {})  # claimed before the fields, so a cycle refers back
            defs[name] = (cls, _dataclass(cls, defs, inline=True))
        elif defs[name][0] is not cls:
            raise TypeError(f"two record types named {name}: {cls} and {defs[name][0]}")
        return {"$ref": f"#/$defs/{name}"}
    bound = dict(zip(getattr(cls, "__parameters__", ()), typing.get_args(hint), strict=False))
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = [f.name for f in fields if _required(f)]
    return {
        "type": "object",
        "title": cls.__name__,
        "properties": {f.name: _type_schema(_bind(hints[f.name], bound), defs) for f in fields},
        "required": required,
        "additionalProperties": False,
    }


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _bind(hint: Any, bound: dict[Any, Any]) -> Any:
    """A generic record's field type with its type variables replaced by their arguments."""
    if isinstance(hint, TypeVar):
        return bound[hint]
    free = getattr(hint, "__parameters__", ())
    return hint[tuple(bound[p] for p in free)] if free else hint
