"""`medxai audit --fail-on LEVEL`: the gate's exit code from hand-built verdict rows, for
every level, inconclusive and not applicable; and the same through the command line."""

from dataclasses import replace

import pytest
from report_helpers import make_audit

from medxai.cli import audit as audit_command
from medxai.cli.application import main
from medxai.metrics.shortcut import LEVELS
from medxai.report.gate import NOT_APPLICABLE, PASSED, REACHED, UNDECIDED, gate
from medxai.report.record import VerdictRow


def rows(*levels: str) -> list[VerdictRow]:
    return [VerdictRow(f"cue{k}", f"cue {k}", level, "", None, None, "") for k, level in
            enumerate(levels)]  # fmt: skip


# the rows' levels -> the code under --fail-on weak, moderate, strong
CASES = {
    (): (PASSED, PASSED, PASSED),
    ("none", "none"): (PASSED, PASSED, PASSED),
    ("none", "weak"): (REACHED, PASSED, PASSED),
    ("moderate", "none"): (REACHED, REACHED, PASSED),
    ("weak", "strong"): (REACHED, REACHED, REACHED),
    ("inconclusive", "none"): (UNDECIDED, UNDECIDED, UNDECIDED),
    ("moderate", "inconclusive"): (REACHED, REACHED, UNDECIDED),
    ("not measured", "none"): (PASSED, PASSED, PASSED),
    ("not measured", "weak"): (REACHED, PASSED, PASSED),
}


@pytest.mark.parametrize(("levels", "codes"), CASES.items())
def test_the_gate_fails_on_a_row_at_the_level_or_higher(levels, codes):
    for fail_on, code in zip(("weak", "moderate", "strong"), codes, strict=True):
        assert gate(rows(*levels), True, fail_on).code == code, (levels, fail_on)


def test_no_verdict_is_not_applicable_whatever_the_rows():
    for fail_on in ("weak", "moderate", "strong"):
        assert gate(rows("strong", "inconclusive"), False, fail_on).code == NOT_APPLICABLE


def test_the_codes_are_new_and_the_message_names_the_cues():
    assert len({PASSED, REACHED, UNDECIDED, NOT_APPLICABLE} - {0}) == 3
    assert {REACHED, UNDECIDED, NOT_APPLICABLE}.isdisjoint({1, 2, 3, 130})
    result = gate(rows("weak", "strong", "moderate"), True, "moderate")
    assert result.message == "failed: cue 1 — strong; cue 2 — moderate (at least moderate)"
    assert gate(rows("inconclusive"), True, "weak").message == "undecided: inconclusive for cue 0"
    with pytest.raises(ValueError, match="weak, moderate, strong"):
        gate(rows(), True, "none")


def test_the_command_offers_the_levels_the_gate_takes():
    assert [level.value for level in audit_command.FailOn] == list(LEVELS[1:])


@pytest.mark.parametrize(
    ("levels", "overall", "options", "code"),
    [
        (("strong",), "strong", ["--fail-on", "strong"], REACHED),
        (("weak",), "weak", ["--fail-on", "moderate"], PASSED),
        (("inconclusive",), "inconclusive", ["--fail-on", "weak"], UNDECIDED),
        (("inconclusive",), "inconclusive", [], 3),  # without the gate: as before
        (("strong",), "strong", [], 0),
        (("strong",), "strong", ["--fail-on", "none"], 2),  # not a level the gate takes
    ],
)
def test_the_audit_command_exits_with_the_gates_code(
    levels, overall, options, code, monkeypatch, tmp_path, capsys
):
    result = make_audit(relies=True)
    shortcut = replace(result.shortcut, table=rows(*levels), overall=overall, applicable=True)
    fake = replace(result, shortcut=shortcut, timings={"total": 1.0})
    monkeypatch.setattr(audit_command, "_run_audit", lambda *args: fake)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--quick", "--out", str(tmp_path / "out"), *options])
    assert (exit_info.value.code or 0) == code
    if options and code != 2:
        assert f"{options[0]} {options[1]}: " in capsys.readouterr().out
