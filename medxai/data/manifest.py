"""CSV manifest datasets: one image per row of a CSV file whose first row names the columns.

Columns `path,label[,split][,source][,patient_id]`, in any order (names are matched without
case; any other column is ignored, with a note, and kept in a cleaned copy). `path` is
relative to the CSV file's folder and must stay inside it (the path rules of
`medxai.paths`). Without a `split` column every row is in one split, "train". An empty
`patient_id` is the path's stem; an empty `source` is unknown.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from medxai.atomic import atomic_write_text
from medxai.data.records import LineProblem, Record, SplitIndex, finish_index, read_text_lines
from medxai.errors import DatasetError, SplitFileError
from medxai.paths import link_problem, name_problem

COLUMNS = ("path", "label", "split", "source", "patient_id")
REQUIRED = ("path", "label")
ONE_SPLIT = "train"  # the split of every row when there is no split column
FORM = "path,label[,split][,source][,patient_id]"


def csv_rows(csv_path: Path, what: str = "CSV manifest") -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every non-blank row; a quoted cell may span lines.
    `what` names the file in the error a missing or non-text file raises."""
    reader = csv.reader(read_text_lines(csv_path, what))
    start = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def _header(csv_path: Path, line: int, row: list[str]) -> list[str]:
    """The column names of the first row, or a SplitFileError saying what is missing."""
    names = [cell.strip().lower() for cell in row]
    missing = [name for name in REQUIRED if name not in names]
    if len(missing) == len(REQUIRED):
        raise SplitFileError(
            f"{csv_path}:{line}: no header row: the first row must name the columns {FORM}, "
            f"got {','.join(row)!r}"
        )
    if missing:
        raise SplitFileError(
            f"{csv_path}:{line}: no {missing[0]!r} column (columns: {', '.join(names)}); "
            f"expected {FORM}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SplitFileError(f"{csv_path}:{line}: column {repeated[0]!r} appears twice")
    return names


def read_csv_manifest(
    csv_path: str | Path,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> SplitIndex:
    """Every row of the manifest (only those of `splits` when given), read leniently.

    A missing file, one that is not UTF-8 text, or a missing header raise SplitFileError;
    a bad row is a LineProblem naming the CSV file and its line.
    """
    csv_path = Path(csv_path)
    root = csv_path.parent
    rows = csv_rows(csv_path)
    first = next(rows, None)
    if first is None:
        raise SplitFileError(f"{csv_path}: the CSV manifest is empty; its first row names {FORM}")
    header = _header(csv_path, *first)
    index = SplitIndex(root, {}, {}, layout="csv", listing=csv_path)
    extra = [name for name in header if name not in COLUMNS]
    if extra:
        index.notes.append(f"{csv_path}: columns {', '.join(extra)} ignored (medxai reads {FORM})")
    for name in splits or ():
        index.records[name], index.image_dirs[name] = [], root
    for line, row in rows:
        record = _record(csv_path, line, dict(zip(header, row, strict=False)), len(row), header)
        if isinstance(record, LineProblem):
            if not splits or record.split is None or record.split in splits:
                index.problems.append(record)
        elif not splits or record.split in splits:
            index.records.setdefault(record.split, []).append(record)
            index.image_dirs[record.split] = root
    _empty_problems(index, csv_path, splits)
    return finish_index(index, classes)


def _record(
    csv_path: Path, line: int, cells: dict[str, str], width: int, header: list[str]
) -> Record | LineProblem:
    """The row as a Record, or the LineProblem that keeps it from being one."""
    cells = {name: value.strip() for name, value in cells.items()}
    split = cells.get("split", ONE_SPLIT) or None

    def problem(reason: str) -> LineProblem:
        return LineProblem(csv_path, line, reason, split)

    if width != len(header):
        return problem(f"expected {len(header)} fields ({','.join(header)}), got {width}")
    path, label = cells["path"], cells["label"]
    for column, value in (("path", path), ("label", label), ("split", split)):
        if not value:
            return problem(f"empty {column}")
    reason = name_problem(path) or link_problem(csv_path.parent / path, csv_path.parent,
                                                csv_path.parent)  # fmt: skip
    if reason:
        return problem(reason.replace("the image folder", "the CSV file's folder"))
    patient = cells.get("patient_id") or PurePosixPath(path).stem
    source = cells.get("source") or None
    return Record(patient, path, label, source, csv_path.parent / path, split, line, csv_path)


def _empty_problems(index: SplitIndex, csv_path: Path, splits: Sequence[str] | None) -> None:
    """A split asked for that no row has, or a manifest without one usable row."""
    for name, records in index.records.items():
        if not records:
            found = [p for p in index.problems if p.split == name]
            if not found:
                index.problems.append(LineProblem(csv_path, 0, f"no rows of split {name!r}", name))
    if not index.records and not index.problems:
        index.problems.append(LineProblem(csv_path, 0, "no image rows: the manifest is empty"))


def write_csv_copy(index: SplitIndex, target: Path) -> None:
    """The manifest of a cleaned copy: the same columns and rows (those of the index's
    splits), each path the record's path relative to the root, where the copy put it."""
    if index.listing is None:
        raise DatasetError(f"{index.root}: not a CSV manifest dataset")
    by_line = {r.line: r for records in index.records.values() for r in records}
    rows = csv_rows(index.listing)
    _, header = next(rows)
    at = [cell.strip().lower() for cell in header].index("path")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for line, row in rows:
        if line in by_line:
            row[at] = index.relative(by_line[line])
            writer.writerow(row)
    atomic_write_text(target, buffer.getvalue())
