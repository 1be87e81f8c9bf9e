"""Rendered reports shared by the report tests: one per verdict, rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import make_artifacts, make_audit

from medxai.report import write_report
from medxai.report.record import AuditResult


@pytest.fixture(scope="session")
def positive(tmp_path_factory) -> tuple[Path, AuditResult]:
    audit = make_audit(relies=True)
    return write_report(tmp_path_factory.mktemp("positive"), audit, make_artifacts(True)), audit


@pytest.fixture(scope="session")
def negative(tmp_path_factory) -> tuple[Path, AuditResult]:
    audit = make_audit(relies=False)
    return write_report(tmp_path_factory.mktemp("negative"), audit, make_artifacts(False)), audit
