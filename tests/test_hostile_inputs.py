"""A corpus of broken datasets and hostile command lines, run through every command.

Each case breaks a copy of one tiny valid phantom dataset in one way. For every command that
reads that part of the data, it asserts: no traceback, the documented exit code, the
file (and line) named in the output, no hang (an alarm per command), and not one byte of
the source changed (sha256 of every entry under the root, before and after).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from medxai.cli.application import main
from medxai.data.phantom import synthesize

ALARM_SECONDS = 90
TRAIN = [
    "--epochs",
    "1",
    "--image-size",
    "32",
    "--batch-size",
    "4",
    "--val-fraction",
    "0.3",
    "--device",
    "cpu",
]


# -- running a command in-process ------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    output: str


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer after {ALARM_SECONDS} s")


def run_cli(argv: list[str], capsys) -> Outcome:
    """medxai ARGV in this process; an exception other than SystemExit is a traceback."""
    capsys.readouterr()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(ALARM_SECONDS)
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return Outcome(code, captured.out + captured.err)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every regular file under root; links and special files by what they are."""
    digest = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            key = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                digest[key] = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                digest[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest[key] = f"mode:{stat.S_IFMT(mode)}"
    return digest


# -- the valid dataset, and ways to break it -----------------------------------------------
@pytest.fixture(scope="module")
def valid_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("valid") / "root"
    synthesize(root, n_per_class=8, size=64, seed=0, workers=1)
    shutil.rmtree(root / "text_masks")
    return root


@pytest.fixture(scope="module")
def checkpoint(valid_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    with pytest.raises(SystemExit) as done:
        main(["train", "--root", str(valid_root), "--out", str(run), "--workers", "0", *TRAIN])
    assert done.value.code == 0
    return run / "model.pt"


class FixedBoxDetector:
    """Finds one 6×6 'text' box in the corner of every film: the corpus tests inputs, not OCR."""

    def detect(self, image):
        return [(2, 2, 8, 8)]

    def describe(self):
        return {"name": "fixed-box test detector"}


def lines(root: Path, split: str = "test.txt") -> list[str]:
    return (root / split).read_text().splitlines()


def first_image(root: Path, split: str = "test.txt") -> Path:
    return root / split.removesuffix(".txt").split("_")[0] / lines(root, split)[0].split()[1]


def set_line(root: Path, number: int, text: str, split: str = "test.txt") -> None:
    rows = lines(root, split)
    rows[number - 1] = text
    (root / split).write_text("\n".join(rows) + "\n")


def set_filename(root: Path, filename: str, split: str = "test.txt") -> None:
    fields = lines(root, split)[0].split()
    set_line(root, 1, " ".join([fields[0], filename, *fields[2:]]), split)


def replace_first_image(root: Path, make: Callable[[Path], None]) -> None:
    path = first_image(root)
    path.unlink()
    make(path)


def dicom_bytes(path: Path, **tags) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path.name])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        SecondaryCaptureImageStorage,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(256, dtype=np.uint16).reshape(16, 16).tobytes()
    for key, value in tags.items():
        if key == "drop":
            delattr(ds, value)
        elif key == "frames":  # as text, the way a broken writer stores it
            ds.add_new(0x00280008, "LO", value)
        else:
            setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def as_dicom(root: Path, **tags) -> None:
    """The first test image becomes a DICOM (with `tags`), and its line names it."""
    old = first_image(root)
    old.unlink()
    dicom_bytes(old.with_suffix(".dcm"), **tags)
    set_filename(root, old.with_suffix(".dcm").name)


def undecodable_dicom(root: Path) -> None:
    as_dicom(root)
    path = first_image(root)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\x00not a jpeg 2000 codestream"])
    ds.save_as(path)


def huge_png_header(path: Path) -> None:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + b"\x00" * 64)


# -- the cases -------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    mutate: Callable[[Path, Path], None]  # (root, a scratch folder outside it)
    expect: dict[str, tuple[int, str]]  # command → (exit code, text the output must name)
    argv_extra: dict[str, list[str]] = field(default_factory=dict)


READERS = ("data-check", "train", "evaluate-model", "explain", "clean", "audit")
TRAIN_READERS = ("data-check", "train", "clean", "audit")  # the commands that read train.txt


def line_error(name, mutate, named="test.txt:1", commands=READERS) -> Case:
    """A split line or the dataset is wrong: data-check lists it (1), the others stop (2)."""
    expect = {c: (1 if c == "data-check" else 2, named) for c in commands}
    return Case(name, mutate, expect)


def unreadable(name, make: Callable[[Path], None], reason: str = "") -> Case:
    """The first test image is unreadable: listed (data-check, clean: 1), or a stop (2)."""
    named = "te00000"
    expect = {
        "data-check": (1, named),
        "clean": (1, named),
        "evaluate-model": (2, named),
        "explain": (2, named),
    }
    return Case(name, lambda root, _: make(root), expect)


def valid(name, mutate, named="", named_by=("data-check", "clean", "evaluate-model")) -> Case:
    """Input that is fine: exit 0; the commands in `named_by` mention `named` (a note)."""
    commands = ("data-check", "clean", "evaluate-model")
    return Case(name, mutate, {c: (0, named if c in named_by else "") for c in commands})


def _link_out(target_of: Callable[[Path], str | Path]):
    def mutate(root: Path, outside: Path) -> None:
        path = first_image(root)
        path.unlink()
        path.symlink_to(target_of(outside))

    return mutate


def _outside_png(outside: Path) -> Path:
    target = outside / "elsewhere.png"
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    return target


def _symlinked_folder(root: Path, outside: Path) -> None:
    (outside / "sub").mkdir()
    shutil.copy(first_image(root), outside / "sub" / "x.png")
    (root / "test" / "sub").symlink_to(outside / "sub")
    set_filename(root, "sub/x.png")


def _conflicting(root: Path, _) -> None:
    rows = lines(root)
    fields = rows[0].split()
    other = "pneumonia" if fields[2] != "pneumonia" else "normal"
    rows.append(" ".join([fields[0], fields[1], other, *fields[3:]]))
    (root / "test.txt").write_text("\n".join(rows) + "\n")


def _duplicate(root: Path, _) -> None:
    rows = lines(root)
    (root / "test.txt").write_text("\n".join([*rows, rows[0]]) + "\n")


def _single_class_train(root: Path, _) -> None:
    rows = [r for r in lines(root, "train.txt") if r.split()[2] == "normal"]
    (root / "train.txt").write_text("\n".join(rows) + "\n")


def _split_files_gone_masks_left(root: Path, _) -> None:
    """A COVIDx root without its split files, holding a folder of text masks with train/
    and test/ inside: not a folder tree whose one split is text_masks."""
    for split in root.glob("*.txt"):
        split.unlink()
    for split in ("train", "test"):
        (root / "text_masks" / split).mkdir(parents=True)
        shutil.copy(first_image_of(root, split), root / "text_masks" / split / "m.png")


def first_image_of(root: Path, folder: str) -> Path:
    return sorted((root / folder).glob("*.png"))[0]


def _crlf_bom(root: Path, _) -> None:
    for split in ("train.txt", "test.txt"):
        text = "\r\n".join(lines(root, split)) + "\r\n"
        (root / split).write_bytes(b"\xef\xbb\xbf" + text.encode())


def _tabs(root: Path, _) -> None:
    (root / "test.txt").write_text("\n".join("\t".join(r.split()) for r in lines(root)) + "\n")


def _readme(root: Path, _) -> None:
    (root / "README.txt").write_text("This dataset holds phantom films.\nDo not share it.\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _mixed_case(root: Path, _) -> None:
    path = first_image(root)
    path.rename(path.with_name(path.name.upper()))


def _rmtree_test(root: Path, _) -> None:
    shutil.rmtree(root / "test")


CASES = [
    # split lines that climb out of the image folder, or point outside the root
    line_error(
        "traversal-onto-original",
        lambda r, _: set_filename(r, f"../../{r.name}/train/{lines(r, 'train.txt')[0].split()[1]}"),
    ),
    line_error("traversal-dotdot", lambda r, _: set_filename(r, "../train/tr00000.png")),
    line_error("traversal-inner-dotdot", lambda r, _: set_filename(r, "sub/../../x.png")),
    line_error("absolute-inside-root", lambda r, _: set_filename(r, str(first_image(r)))),
    line_error("absolute-outside", lambda r, _: set_filename(r, "/etc/passwd")),
    line_error("nul-byte", lambda r, _: set_filename(r, "te\x0000.png")),
    line_error("name-5000-chars", lambda r, _: set_filename(r, "a" * 5000 + ".png")),
    line_error("component-300-chars", lambda r, _: set_filename(r, "b" * 300 + ".png")),
    line_error("link-to-file-outside", _link_out(_outside_png)),
    line_error("link-to-dev-zero", _link_out(lambda _: "/dev/zero")),
    line_error("link-to-etc-passwd", _link_out(lambda _: "/etc/passwd")),
    line_error("linked-folder-outside", _symlinked_folder),
    # malformed lines and labels
    line_error("two-fields", lambda r, _: set_line(r, 1, "p1 x.png")),
    line_error("six-fields", lambda r, _: set_line(r, 1, "p1 x.png normal s1 extra more")),
    line_error("one-field", lambda r, _: set_line(r, 1, "p1")),
    line_error("unknown-label", lambda r, _: set_line(r, 1, "p1 te00000.png covid src-d")),
    line_error("label-case", lambda r, _: set_line(r, 1, "p1 te00000.png covid-19 src-d")),
    line_error("binary-label-in-3class", lambda r, _: set_line(r, 1, "p1 te00000.png positive")),
    line_error("conflicting-labels", _conflicting, named="is labelled"),
    line_error("long-garbage-line", lambda r, _: set_line(r, 2, "x" * 100_000), "test.txt:2"),
    line_error(
        "not-utf8",
        lambda r, _: (r / "test.txt").write_bytes(b"\xff\xfe\x00garbage"),
        named="test.txt",
    ),
    line_error("empty-test-split", lambda r, _: (r / "test.txt").write_text(""), "test.txt"),
    line_error(
        "blank-test-split", lambda r, _: (r / "test.txt").write_text(" \n\n\t\n"), "test.txt"
    ),
    line_error(
        "test-split-is-fifo",
        lambda r, _: ((r / "test.txt").unlink(), os.mkfifo(r / "test.txt")),
        "test.txt",
    ),
    line_error(
        "test-split-links-dev-zero",
        lambda r, _: ((r / "test.txt").unlink(), (r / "test.txt").symlink_to("/dev/zero")),
        "test.txt",
    ),
    line_error(
        "empty-train-split",
        lambda r, _: (r / "train.txt").write_text(""),
        "train.txt",
        TRAIN_READERS,
    ),
    line_error(
        "blank-train-split",
        lambda r, _: (r / "train.txt").write_text("\n  \n"),
        "train.txt",
        TRAIN_READERS,
    ),
    Case(
        "train-split-missing",
        lambda r, _: (r / "train.txt").unlink(),
        {c: (2, "train") for c in TRAIN_READERS},
    ),
    line_error(
        "train-split-is-folder",
        lambda r, _: ((r / "train.txt").unlink(), (r / "train.txt").mkdir()),
        "train.txt",
        TRAIN_READERS,
    ),
    Case(
        "single-class-train",
        _single_class_train,
        {
            "data-check": (1, "two classes"),
            "train": (2, "two classes"),
            "audit": (2, "two classes"),
        },
    ),
    Case(
        "split-files-gone-text-masks-left",
        _split_files_gone_masks_left,
        {
            **{c: (2, "no split folder named train* or test*") for c in ("data-check", "clean")},
            "train": (2, "text_masks/ (holding test/, train/)"),
            "audit": (2, "train.txt: split file not found"),
        },
    ),
    # images that cannot be read: listed and skipped where the command allows it
    unreadable("missing-image", lambda r: first_image(r).unlink()),
    unreadable(
        "dangling-link",
        lambda r: replace_first_image(r, lambda p: p.symlink_to(p.with_name("gone.png"))),
    ),
    unreadable("image-is-folder", lambda r: replace_first_image(r, Path.mkdir)),
    unreadable("image-is-fifo", lambda r: replace_first_image(r, _fifo)),
    unreadable("empty-image", lambda r: first_image(r).write_bytes(b"")),
    unreadable(
        "truncated-png", lambda r: first_image(r).write_bytes(first_image(r).read_bytes()[:60])
    ),
    unreadable("garbage-png", lambda r: first_image(r).write_bytes(os.urandom(500))),
    unreadable("text-as-png", lambda r: first_image(r).write_text("not an image\n" * 20)),
    unreadable("png-header-100000-square", lambda r: huge_png_header(first_image(r))),
    unreadable(
        "truncated-jpeg", lambda r: first_image(r).write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    ),
    unreadable("dicom-malformed-frames", lambda r: as_dicom(r, frames="abc")),
    unreadable("dicom-frames-negative", lambda r: as_dicom(r, frames="-3x")),
    unreadable(
        "dicom-palette-colour", lambda r: as_dicom(r, PhotometricInterpretation="PALETTE COLOR")
    ),
    unreadable("dicom-no-decoder", undecodable_dicom),
    unreadable("dicom-no-pixel-data", lambda r: as_dicom(r, drop="PixelData")),
    unreadable("dicom-huge-rows", lambda r: as_dicom(r, Rows=60000, Columns=60000)),
    unreadable("filename-case-differs", lambda r: _mixed_case(r, None)),
    Case(
        "test-folder-missing",
        _rmtree_test,
        {"data-check": (1, "te00000"), "clean": (1, "te00000"), "evaluate-model": (2, "te00000")},
    ),
    # inputs that are fine and must stay fine
    valid("crlf-and-bom", _crlf_bom),
    valid("tab-separated", _tabs),
    valid("prose-readme-txt", _readme, named="README.txt", named_by=("data-check", "clean")),
    valid("duplicate-line-warned", _duplicate, named="listed again"),
    valid(
        "symlink-inside-root",
        lambda r, _: replace_first_image(r, lambda p: p.symlink_to(r / "train" / "tr00001.png")),
    ),
]


def command_line(command: str, root: Path, scratch: Path, checkpoint: Path) -> list:
    out = scratch / f"out-{command}"
    model = ["--checkpoint", checkpoint, "--root", root, "--split", "test.txt", "--device", "cpu"]
    return {
        "data-check": ["data-check", "--root", root],
        "train": ["train", "--root", root, "--out", out, "--workers", "0", *TRAIN],
        "evaluate-model": ["evaluate-model", *model],
        "explain": ["explain", *model, "--method", "gradcam", "--limit", "2", "--out", out],
        "clean": ["clean", "--root", root, "--out", out, "--detector", "rapidocr"],
        "audit": "audit --dataset covidx --quick --epochs 1 --device cpu".split()
        + ["--root", root, "--out", out],
    }[command]


def test_corpus_is_large_enough():
    assert len(CASES) >= 50
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_broken_dataset(case, valid_root, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("data_cleaning.clean._make", lambda settings: FixedBoxDetector())
    root, outside = tmp_path / "root", tmp_path / "outside"
    shutil.copytree(valid_root, root, symlinks=True)
    outside.mkdir()
    case.mutate(root, outside)
    before = tree_digest(root)
    for command, (code, named) in case.expect.items():
        outcome = run_cli(command_line(command, root, tmp_path, checkpoint), capsys)
        context = f"{case.name} × {command}:\n{outcome.output[-2000:]}"
        assert "Traceback" not in outcome.output, context
        assert outcome.code == code, context
        assert named in outcome.output, context
        if code == 2:
            errors = [line for line in outcome.output.splitlines() if "medxai: error" in line]
            assert len(errors) == 1, context
        assert tree_digest(root) == before, f"{context}\nthe source changed"


# -- training on a split with an unreadable image ----------------------------------------
TRAIN_CASES = {
    "missing": lambda p: p.unlink(),
    "fifo": lambda p: (p.unlink(), os.mkfifo(p)),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:70]),
}


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_train_stops_or_skips_knowingly(name, valid_root, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(valid_root, root, symlinks=True)
    broken = first_image(root, "train.txt")
    TRAIN_CASES[name](broken)
    before = tree_digest(root)
    argv = ["train", "--root", root, "--workers", "1", *TRAIN]
    stopped = run_cli([*argv, "--out", tmp_path / "a"], capsys)
    assert stopped.code == 2 and broken.name in stopped.output, stopped.output
    assert "Traceback" not in stopped.output
    skipped = run_cli([*argv, "--out", tmp_path / "b", "--skip-unreadable"], capsys)
    assert skipped.code == 0, skipped.output
    assert f"skipped {broken}" in skipped.output and "skipped 1 of" in skipped.output
    assert tree_digest(root) == before


# -- hostile command lines -----------------------------------------------------------------
def hostile_lines(root: Path, tmp: Path, checkpoint: Path) -> dict[str, tuple[list, int, str]]:
    afile, adir = tmp / "a-file", tmp / "a-dir"
    afile.write_text("keep me")
    adir.mkdir()
    fifo = tmp / "pipe.png"
    os.mkfifo(fifo)
    train = ["train", "--root", root, *TRAIN]
    explain = [
        "explain",
        "--checkpoint",
        checkpoint,
        "--root",
        root,
        "--method",
        "gradcam",
        "--device",
        "cpu",
    ]
    evaluate = ["evaluate-model", "--checkpoint", checkpoint, "--root", root, "--device", "cpu"]
    clean = ["clean", "--root", root]
    audit = ["audit", "--dataset", "covidx", "--root", root, "--quick", "--device", "cpu"]
    return {
        "train-out-is-file": ([*train, "--out", afile], 2, "existing file"),
        "clean-out-is-file": ([*clean, "--out", afile], 2, "existing file"),
        "explain-out-is-file": ([*explain, "--out", afile], 2, "existing file"),
        "audit-out-is-file": ([*audit, "--out", afile], 2, "existing file"),
        "synth-out-is-file": (["synth", "--out", afile, "--n-per-class", "2"], 2, "existing"),
        "evaluate-out-is-folder": ([*evaluate, "--out", adir], 2, "is a folder"),
        "train-out-in-root": ([*train, "--out", root / "run"], 2, "inside the source"),
        "explain-out-in-root": ([*explain, "--out", root / "x"], 2, "inside the source"),
        "evaluate-out-in-root": ([*evaluate, "--out", root / "m.json"], 2, "inside the source"),
        "audit-out-in-root": ([*audit, "--out", root / "x"], 2, "inside the source"),
        "clean-out-is-root": ([*clean, "--out", root], 2, "inside the source"),
        "clean-out-in-root": ([*clean, "--out", root / "train" / "x"], 2, "inside the source"),
        "image-size-100000": (
            [*train, "--out", tmp / "r", "--image-size", "100000"],
            2,
            "--image-size",
        ),
        "synth-size-100000": (["synth", "--out", tmp / "s", "--size", "100000"], 2, "--size"),
        "batch-size-1e9": (
            [*train, "--out", tmp / "r", "--batch-size", "1000000000"],
            2,
            "--batch-size",
        ),
        "seed-minus-one": ([*train, "--out", tmp / "r", "--seed", "-1"], 2, "--seed"),
        "dilate-100000": ([*clean, "--out", tmp / "c", "--dilate", "100000"], 2, "--dilate"),
        "workers-1000": ([*clean, "--out", tmp / "c", "--workers", "1000"], 2, "--workers"),
        "unknown-option": ([*train, "--out", tmp / "r", "--frobnicate"], 2, "--frobnicate"),
        "unknown-method": ([*explain, "--out", tmp / "e", "--method", "nosuch"], 2, "nosuch"),
        "missing-test-split": (
            [*train, "--out", tmp / "r", "--test-split", "nope.txt"],
            2,
            "nope.txt",
        ),
        "audit-missing-test-split": (
            [*audit, "--out", tmp / "a", "--test-split", "nope.txt"],
            2,
            "nope.txt",
        ),
        "root-missing": (["data-check", "--root", tmp / "nowhere"], 2, "nowhere"),
        "root-is-file": ([*train[:1], "--root", afile, "--out", tmp / "r"], 2, "a-file"),
        "checkpoint-missing": (
            [*evaluate[:1], "--checkpoint", tmp / "no.pt", "--root", root],
            2,
            "no.pt",
        ),
        "explain-image-missing": (
            [*explain[:3], "--image", tmp / "no.png", "--out", tmp / "e"],
            2,
            "no.png",
        ),
        "explain-image-fifo": (
            [*explain[:3], "--image", fifo, "--out", tmp / "e"],
            2,
            "pipe.png",
        ),
        "clean-mask-over-most": ([*clean, "--out", tmp / "d", "--dilate", "100"], 0, "covers"),
    }


def test_hostile_command_lines(valid_root, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("data_cleaning.clean._make", lambda settings: FixedBoxDetector())
    before = tree_digest(valid_root)
    cases = hostile_lines(valid_root, tmp_path, checkpoint)
    assert len(cases) >= 25
    for name, (argv, code, named) in cases.items():
        outcome = run_cli(argv, capsys)
        context = f"{name}: {outcome.output[-1500:]}"
        assert "Traceback" not in outcome.output, context
        assert outcome.code == code and named in outcome.output, context
        assert tree_digest(valid_root) == before, f"{context}\nthe source changed"
    assert (tmp_path / "a-file").read_text() == "keep me"
    assert not list((tmp_path / "a-dir").iterdir()), "nothing left behind (no .tmp file)"


def test_second_run_into_a_locked_output_stops(valid_root, tmp_path, capsys, monkeypatch):
    from medxai.outputs import output_lock

    monkeypatch.setattr("data_cleaning.clean._make", lambda settings: FixedBoxDetector())
    out = tmp_path / "out"
    with output_lock(out):
        outcome = run_cli(["clean", "--root", valid_root, "--out", out], capsys)
        assert outcome.code == 2 and f"pid {os.getpid()}" in outcome.output, outcome.output
    assert not (out / "manifest.jsonl").exists(), "the second run did no work"
    assert run_cli(["clean", "--root", valid_root, "--out", out], capsys).code == 0
    assert not (out / ".medxai.lock").exists(), "the lock goes when the run ends"


def test_two_cleans_of_dicom_data_are_byte_identical(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("data_cleaning.clean._make", lambda settings: FixedBoxDetector())
    src = tmp_path / "src"
    for folder in ("train", "test"):
        (src / folder).mkdir(parents=True)
    rows = {"train": [], "test": []}
    for k in range(4):
        folder = "test" if k == 3 else "train"
        dicom_bytes(src / folder / f"x{k}.dcm", BurnedInAnnotation="YES")
        rows[folder].append(f"p{k} x{k}.dcm {('normal', 'pneumonia')[k % 2]} s1")
    for folder, text in rows.items():
        (src / f"{folder}.txt").write_text("\n".join(text) + "\n")
    outputs = []
    for name, radius in (("a", "10"), ("b", "10"), ("c", "5")):
        outcome = run_cli(
            ["clean", "--root", src, "--out", tmp_path / name, "--radius", radius], capsys
        )
        assert outcome.code == 0, outcome.output
        outputs.append(tmp_path / name / "train" / "x0.dcm")
    a, b, c = (pydicom.dcmread(path) for path in outputs)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    source_uid = pydicom.dcmread(src / "train" / "x0.dcm").SOPInstanceUID
    assert a.SOPInstanceUID != source_uid
    assert a.BurnedInAnnotation == "YES", "the fixed-box detector still finds its box after"
    assert c.SOPInstanceUID not in (a.SOPInstanceUID, source_uid), "other settings, other UID"
    assert (tmp_path / "a" / "manifest.jsonl").read_bytes() == (
        tmp_path / "b" / "manifest.jsonl"
    ).read_bytes()
