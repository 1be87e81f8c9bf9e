"""One audit's output folder read back: audit.json and, when kept, the stage record of the
model's evaluation (each test split's decisions, with each film's patient)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medxai.codec import decode
from medxai.errors import MedxaiError
from medxai.report.record import SCHEMA, AuditResult, EvaluatedSplits
from pipelines.audit.config import AuditConfig
from pipelines.audit.run import read_audit

AUDIT = "audit.json"
EVALUATION = Path("stages") / "evaluate_baseline.json"  # the model on every test film


@dataclass(frozen=True)
class AuditFolder:
    """One audit's folder read back: its record and, when the folder still holds it, the
    model's decision on every film of each test split (with each film's patient)."""

    folder: Path
    result: AuditResult[AuditConfig]
    evaluated: EvaluatedSplits | None
    missing: str = ""  # why `evaluated` is None


def read_run(folder: Path | str) -> AuditFolder:
    """An audit's output folder; a missing, unreadable or foreign audit.json is one error."""
    folder = Path(folder)
    path = folder / AUDIT
    if not folder.is_dir():
        raise MedxaiError(f"{folder}: no such folder; give the output folder of a medxai audit")
    if not path.is_file():
        raise MedxaiError(f"{path}: not found; {folder} is not the output folder of an audit")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MedxaiError(f"{path}: unreadable ({err})") from err
    schema = stored.get("schema") if isinstance(stored, dict) else None
    if not isinstance(schema, str) or not schema.startswith("medxai-audit"):
        raise MedxaiError(f"{path}: not a medxai audit record (schema {schema!r})")
    if schema != SCHEMA:
        raise MedxaiError(
            f"{path}: written as {schema}, this medxai reads {SCHEMA}; re-run that audit"
        )
    result = read_audit(path)
    evaluated, missing = _evaluated(folder, result)
    return AuditFolder(folder, result, evaluated, missing)


def _evaluated(folder: Path, result: AuditResult) -> tuple[EvaluatedSplits | None, str]:
    """The stage record of the model's evaluation, when present and the one audit.json
    reports (its metrics the same)."""
    path = folder / EVALUATION
    if not path.is_file():
        return None, f"{path} is gone"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        evaluated = decode(EvaluatedSplits, stored["result"], str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, MedxaiError):
        return None, f"{path} is unreadable"
    reported = result.evaluations.baseline
    agrees = set(reported) == set(evaluated.splits) and all(
        (e.metrics.n, e.metrics.accuracy) == (reported[s].n, reported[s].accuracy)
        for s, e in evaluated.splits.items()
    )
    return (evaluated, "") if agrees else (None, f"{path} is not the evaluation audit.json reports")
