"""audit.json's published schema: generated from the records, committed in docs/schema, and
taken by the audit.json of whole audits; a wrong document fails it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import jsonschema
import pytest
from report_helpers import make_audit

from medxai.codec import encode
from medxai.report.record import SCHEMA
from medxai.report.schema import record_schema
from pipelines.audit.schema import REGENERATE, audit_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "schema" / f"{SCHEMA}.schema.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Leaf:
    size: tuple[int, int]
    ci: tuple[float, ...]
    word: Literal["a", "b"]


@dataclass(frozen=True)
class Pair(Generic[T]):
    left: T
    right: list[T]


@dataclass(frozen=True)
class Tree:
    leaf: Leaf | None
    pair: Pair[dict[str, float]]
    note: str = ""
    tags: list[str] = field(default_factory=list)


def test_a_record_type_gives_the_schema_worked_out_by_hand():
    leaf = {
        "type": "object", "title": "Leaf", "additionalProperties": False,
        "required": ["size", "ci", "word"],
        "properties": {
            "size": {"type": "array", "prefixItems": [{"type": "integer"}] * 2,
                     "minItems": 2, "maxItems": 2},
            "ci": {"type": "array", "items": {"type": "number"}},
            "word": {"enum": ["a", "b"]},
        },
    }  # fmt: skip
    floats = {"type": "object", "additionalProperties": {"type": "number"}}
    assert record_schema(Tree, "tree") == {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "tree",
        "type": "object", "additionalProperties": False, "required": ["leaf", "pair"],
        "properties": {
            "leaf": {"anyOf": [{"$ref": "#/$defs/Leaf"}, {"type": "null"}]},
            "pair": {
                "type": "object", "title": "Pair", "additionalProperties": False,
                "required": ["left", "right"],
                "properties": {"left": floats, "right": {"type": "array", "items": floats}},
            },
            "note": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "$defs": {"Leaf": leaf},
    }  # fmt: skip


def test_the_committed_schema_is_the_one_the_records_give():
    assert COMMITTED.is_file(), f"{COMMITTED} is missing; write it with: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        f"the audit records changed: regenerate {COMMITTED.name} with: {REGENERATE}"
    )
    jsonschema.Draft202012Validator.check_schema(audit_schema())


@pytest.mark.parametrize("run", ["tiny_audit", "tiny_audit_of_cleaned"])
def test_a_whole_audits_json_is_valid(run, request):
    document = json.loads((request.getfixturevalue(run).out / "audit.json").read_text())
    jsonschema.validate(document, audit_schema())


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("shortcut", "overall"), DELETE, "'overall' is a required property"),
        (("shortcut", "table", 0, "level"), 3, "3 is not of type 'string'"),
        (("schema",), "medxai-audit-7", "'medxai-audit-8' was expected"),
        (("model", "colour"), "red", "'colour' was unexpected"),
        (("cleaning_effect", "test.txt", "changed_ci"), [0.1, 0.2, 0.3], "is too long"),
        (("baseline", "n"), None, "None is not of type 'integer'"),
    ],
)
def test_a_wrong_document_fails(path, value, message):
    """A field removed, a wrong type, an older schema name, an unknown key, a wrong length."""
    document = json.loads(json.dumps(encode(make_audit(relies=True))))
    schema = audit_schema()
    jsonschema.validate(document, schema)  # the hand-built record is valid as it is
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    with pytest.raises(jsonschema.ValidationError, match=re.escape(message)):
        jsonschema.validate(document, schema)
