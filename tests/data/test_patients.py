"""`--patient-pattern`: a file-name rule that groups a patient's films for the bootstrap."""

from pathlib import Path

import pytest

from medxai.data.records import Record, patient_rule, with_patients
from medxai.errors import DatasetError


def record(filename: str) -> Record:
    return Record(Path(filename).stem, filename, "normal", None, Path(filename), "test", 0)


def test_the_part_before_the_first_underscore_names_the_patient():
    films = [record(f) for f in ("p7_a.png", "sub/p7_b.png", "p8_a.png", "loose.png")]
    patients = [r.patient_id for r in with_patients(films, patient_rule(r"^([^_]+)_"))]
    assert patients == ["p7", "p7", "p8", "loose.png"]  # no match: a patient of its own
    whole = with_patients(films, patient_rule(r"p\d+"))  # no group: the whole match
    assert [r.patient_id for r in whole] == ["p7", "p7", "p8", "loose.png"]


@pytest.mark.parametrize(
    ("pattern", "error"),
    [("([a-z", "is not a regular expression"), ("(a)(b)", "at most one group")],
)
def test_a_bad_rule_is_one_line(pattern, error):
    with pytest.raises(DatasetError, match=error):
        patient_rule(pattern)
