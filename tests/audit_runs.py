"""Two whole audits on a tiny phantom, run once per test session and shared (read-only) by
the tests of what reads an audit (schema, CI gate, compare, PDF): `tiny_audit` trains its own
model and retrains it on the cleaned films; `tiny_audit_of_cleaned` audits that retrained,
text-blind model on the same dataset (a given checkpoint, no retraining), so the two runs are
"model v1" and "model v2" of one dataset."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from medxai.models.kinds import ModelSource
from medxai.report.record import AuditResult
from pipelines.audit import audit_config, run_audit

CPU = torch.device("cpu")
TINY = dict(
    n_per_class=15, phantom_size=64, image_size=32, epochs=2, methods=["gradcam"],
    n_explain=1, n_bootstrap=50, detector="rapidocr",
)  # fmt: skip


@dataclass(frozen=True)
class AuditRun:
    """An audit's output folder and its result; tests must not write into `out`."""

    out: Path
    result: AuditResult


@pytest.fixture(scope="session")
def tiny_audit(tmp_path_factory) -> AuditRun:
    out = tmp_path_factory.mktemp("tiny-audit")
    return AuditRun(out, run_audit(audit_config(**TINY), out, CPU))


@pytest.fixture(scope="session")
def tiny_audit_of_cleaned(tiny_audit, tmp_path_factory) -> AuditRun:
    out = tmp_path_factory.mktemp("tiny-audit-v2")
    source = ModelSource("checkpoint", tiny_audit.out / "cleaned_model" / "model.pt")
    config = audit_config(
        **{k: v for k, v in TINY.items() if k not in ("n_per_class", "phantom_size", "epochs")},
        root=tiny_audit.out / "dataset", source=source, retrain=False,
    )  # fmt: skip
    return AuditRun(out, run_audit(config, out, CPU))
