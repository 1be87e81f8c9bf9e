"""CI: a team's workflow on the quick audit CI has just run (RUN, e.g. reports/ci-quick).

1. its audit.json validates against the published schema (docs/schema/<schema>.schema.json);
2. `medxai report --pdf RUN` prints it, and the PDF's text holds the verdict's headline and
   summary sentence;
3. `medxai compare RUN RUN` pairs every film with itself: every paired difference is 0;
4. `medxai audit ... --fail-on LEVEL` (the same command, resumed: no stage runs again)
   exits with the gate's code for the verdict the run recorded;
5. with `--same-verdict OTHER` (the same quick audit under `torchrun --nproc-per-node 2`):
   OTHER's verdict is RUN's (whether the model relies on text, how strongly, the headline).
   The two trainings differ in rounding (DDP), so the figures may differ; the verdict may not.

    .venv/bin/python .ci/check_quick_audit.py reports/ci-quick [--same-verdict reports/ci-2rank]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]
MEDXAI = [sys.executable, "-m", "medxai"]


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def check_schema(run: Path, record: dict) -> None:
    schema = json.loads((ROOT / "docs" / "schema" / f"{record['schema']}.schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(record))
    assert not errors, f"{run}/audit.json breaks its schema: {errors[0].message}"


def check_pdf(run: Path, record: dict, tmp: Path) -> None:
    pdf = tmp / "report.pdf"
    subprocess.run([*MEDXAI, "report", "--pdf", str(run), "--out", str(pdf)], check=True)
    text = words(" ".join(page.extract_text() for page in PdfReader(pdf).pages))
    first_sentence = words(record["shortcut"]["summary"]).split(": ")[0]
    for wanted in (words(record["shortcut"]["headline"]), first_sentence):
        assert wanted in text, f"the PDF lacks the verdict: {wanted!r}"


def check_compare(run: Path, tmp: Path) -> None:
    out = tmp / "compare"
    subprocess.run([*MEDXAI, "compare", str(run), str(run), "--out", str(out)], check=True)
    compared = json.loads((out / "comparison.json").read_text())
    figures = [*compared["paired"], *compared["paired_metrics"]]
    deltas = [f["delta"] for f in figures if f["delta"] is not None]
    assert deltas and all(d == 0 for d in deltas), "a run against itself differs"


def check_gate(run: Path) -> None:
    from medxai.report.gate import gate
    from pipelines.audit import read_audit

    verdict = read_audit(run / "audit.json").shortcut
    expected = gate(verdict.table, verdict.applicable, "moderate").code
    command = [*MEDXAI, "audit", "--quick", "--out", str(run), "--fail-on", "moderate"]
    code = subprocess.run(command, capture_output=True, text=True).returncode
    assert code == expected, f"--fail-on moderate exited {code}, expected {expected}"


def check_same_verdict(run: Path, other: Path) -> None:
    verdicts = [json.loads((r / "audit.json").read_text())["shortcut"] for r in (run, other)]
    for field in ("relies_on_text", "strength", "overall", "headline"):
        one, many = (v[field] for v in verdicts)
        assert one == many, f"{other} gives {field} {many!r}, {run} gave {one!r}"


def main(run: Path, other: Path | None = None) -> None:
    record = json.loads((run / "audit.json").read_text())
    check_schema(run, record)
    with tempfile.TemporaryDirectory() as tmp:
        check_pdf(run, record, Path(tmp))
        check_compare(run, Path(tmp))
    check_gate(run)
    if other is not None:
        check_same_verdict(run, other)
    print(
        f"{run}: schema, PDF, compare and --fail-on checked"
        + ("" if other is None else f"; {other} gives the same verdict")
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) not in (1, 3) or (len(arguments) == 3 and arguments[1] != "--same-verdict"):
        sys.exit("usage: check_quick_audit.py RUN [--same-verdict OTHER]")
    main(Path(arguments[0]), Path(arguments[2]) if len(arguments) == 3 else None)
