"""The CI gate of `medxai audit --fail-on LEVEL`: an exit code from the verdict rows, so a
pipeline can block a model that relies on a cue (docs/ci.md lists the codes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medxai.metrics.shortcut import INCONCLUSIVE, LEVELS
from medxai.report.record import VerdictRow

PASSED = 0
REACHED = 4  # a row reached the level or a higher one
UNDECIDED = 5  # no row reached it, but an inconclusive row may be at any level
NOT_APPLICABLE = 6  # the model did not learn: there is no verdict to gate on


@dataclass(frozen=True)
class GateResult:
    code: int
    message: str  # one line for the console


def gate(rows: Sequence[VerdictRow], applicable: bool, fail_on: str) -> GateResult:
    """The exit code of `--fail-on fail_on` (weak, moderate or strong) for the verdict rows.

    A row reached wins over an inconclusive one: it is known to be at that level. Rows "not
    measured" do not count (the report says why each was not measured)."""
    if fail_on not in LEVELS[1:]:
        raise ValueError(f"--fail-on takes one of {', '.join(LEVELS[1:])}, not {fail_on!r}")
    if not applicable:
        return GateResult(NOT_APPLICABLE, "not applicable: the model did not learn")
    floor = LEVELS.index(fail_on)
    reached = [r for r in rows if r.level in LEVELS and LEVELS.index(r.level) >= floor]
    if reached:
        cues = "; ".join(f"{r.cue} — {r.level}" for r in reached)
        return GateResult(REACHED, f"failed: {cues} (at least {fail_on})")
    unsure = [r.cue for r in rows if r.level == INCONCLUSIVE]
    if unsure:
        return GateResult(UNDECIDED, f"undecided: inconclusive for {'; '.join(unsure)}")
    return GateResult(PASSED, f"passed: no cue reached {fail_on}")
