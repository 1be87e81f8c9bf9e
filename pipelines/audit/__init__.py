"""The audit as a package: `run_audit(config, out)` runs it, `audit_config(...)` builds its
settings (from defaults, --quick, a YAML file and options), `read_audit` reads audit.json.

    from pipelines.audit import audit_config, run_audit
    result = run_audit(audit_config(quick=True), "reports/first")
    print(result.shortcut.summary)
"""

from pipelines.audit.config import QUICK, AuditConfig, audit_config
from pipelines.audit.context import Hooks
from pipelines.audit.run import read_audit, run_audit, run_until_verdict

__all__ = ["QUICK", "AuditConfig", "Hooks", "audit_config", "read_audit", "run_audit",
           "run_until_verdict"]  # fmt: skip
