"""`medxai audit` says an inconclusive verdict in its exit code (3), a settled one with 0."""

from dataclasses import replace

import pytest
from report_helpers import make_audit

from medxai.cli import audit as audit_command
from medxai.cli.application import main


@pytest.mark.parametrize(("overall", "code"), [("inconclusive", 3), ("strong", 0)])
def test_an_inconclusive_verdict_exits_3(overall, code, monkeypatch, tmp_path, capsys):
    result = make_audit(relies=True)
    headline = "Inconclusive — the evidence cannot tell the levels apart for burned-in text"
    shortcut = replace(result.shortcut, overall=overall, headline=headline)
    fake = replace(result, shortcut=shortcut, timings={"total": 1.0})
    monkeypatch.setattr(audit_command, "_run_audit", lambda *args: fake)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--quick", "--out", str(tmp_path / "out")])
    assert (exit_info.value.code or 0) == code
    assert headline in capsys.readouterr().out.replace("\n", " ")
