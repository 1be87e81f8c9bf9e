"""audit.json's published JSON Schema, docs/schema/<SCHEMA>.schema.json, regenerated with

    python -m pipelines.audit.schema > docs/schema/medxai-audit-8.schema.json

(the file name follows `medxai.report.record.SCHEMA`); tests/report/test_schema.py fails
while the committed file differs from what the records give."""

from __future__ import annotations

import json
from typing import Any

from medxai.report.record import SCHEMA, AuditResult
from medxai.report.schema import record_schema
from pipelines.audit.config import AuditConfig

REGENERATE = f"python -m pipelines.audit.schema > docs/schema/{SCHEMA}.schema.json"


def audit_schema() -> dict[str, Any]:
    """The schema of an audit.json of this version: its `schema` field must name it."""
    about = (
        f"audit.json of `medxai audit` (schema {SCHEMA}), generated from the records in "
        "medxai/report/record.py. Figures without meaning are written as NaN."
    )
    schema = record_schema(AuditResult[AuditConfig], SCHEMA, about)
    schema["properties"]["schema"] = {"const": SCHEMA}
    return schema


def schema_text() -> str:
    return json.dumps(audit_schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
