import hashlib
import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from data_cleaning.clean import MANIFEST, SUMMARY, CleanSettings, clean_dataset, read_manifest
from data_cleaning.detect import make_detector
from data_cleaning.inpaint import boxes_to_mask
from medxai.cli.application import main
from medxai.data.imageio import read_raw
from medxai.data.phantom import synthesize
from medxai.errors import DatasetError, MedxaiError


def digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != SUMMARY
    }


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "phantom"
    synthesize(root, n_per_class=3, size=128, seed=2, workers=1)
    return root


@pytest.fixture(scope="module")
def craft():
    return make_detector("craft")


def test_phantom_text_pixel_recall_with_the_default_detector(craft, tmp_path):
    root = tmp_path / "p"
    synthesize(root, n_per_class=5, size=224, seed=7, workers=1)
    names = [line.split()[1] for line in (root / "test_balanced.txt").read_text().splitlines()]
    found = text = 0
    for name in names:
        image = cv2.cvtColor(cv2.imread(str(root / "test" / name)), cv2.COLOR_BGR2RGB)
        truth = cv2.imread(str(root / "text_masks" / "test" / name), 0) > 0
        mask = boxes_to_mask(truth.shape, craft.detect(image), CleanSettings().dilate) > 0
        found += int((mask & truth).sum())
        text += int(truth.sum())
    assert found / text >= 0.9


def test_clean_run_keeps_the_source_resumes_identically_and_records_failures(phantom, tmp_path):
    (phantom / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with open(phantom / "train.txt", "a") as f:
        f.write("pbroken broken.png normal src-a\n")
    before = digest(phantom)
    full = clean_dataset(phantom, tmp_path / "full")
    assert digest(phantom) == before, "the source dataset is never written"
    assert [f["source"] for f in full.failed] == ["train/broken.png"]
    assert full.with_text >= full.images - 3 and full.boxes >= full.with_text

    def stop_after_five(advance, total, seen=[0]):  # noqa: B006
        seen[0] += advance
        if seen[0] >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        clean_dataset(phantom, tmp_path / "cut", progress=stop_after_five)
    resumed = clean_dataset(phantom, tmp_path / "cut")
    assert resumed.skipped_done == 5
    assert digest(tmp_path / "cut") == digest(tmp_path / "full")

    killed = tmp_path / "killed"  # a real SIGKILL in the middle of the run
    command = [sys.executable, "-m", "data_cleaning", "--root", str(phantom), "--out", str(killed)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        manifest = killed / MANIFEST
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= 3:
            process.kill()
            break
        time.sleep(0.05)
    process.wait()
    assert not (killed / "train.txt").exists(), "killed before the split files were written"
    clean_dataset(phantom, killed)
    assert digest(killed) == digest(tmp_path / "full")

    entries = [json.loads(line) for line in (tmp_path / "full" / MANIFEST).read_text().splitlines()]
    assert len(entries) == full.images
    broken = next(e for e in entries if e["source"] == "train/broken.png")
    assert broken["status"] == "failed" and "corrupt or truncated PNG" in broken["reason"]
    cleaned = next(e for e in entries if e["status"] == "cleaned")
    assert cleaned["inpaint"] == {"method": "telea", "radius": 10, "dilate": 4}
    assert cleaned["detector"]["name"] == "fused"  # the recommended default
    out = read_raw(tmp_path / "full" / cleaned["output"])
    source = read_raw(phantom / cleaned["source"])
    assert out.bit_depth == source.bit_depth == 8 and out.pixels.shape == source.pixels.shape
    inside = boxes_to_mask(out.pixels.shape, cleaned["boxes"], 4) > 0
    assert np.array_equal(out.pixels[~inside], source.pixels[~inside]), "only text is touched"
    assert not np.array_equal(out.pixels[inside], source.pixels[inside])
    for split in ("train.txt", "test.txt", "test_balanced.txt"):
        assert (tmp_path / "full" / split).read_bytes() == (phantom / split).read_bytes()


def test_two_worker_processes_clean_to_the_one_process_copy(phantom, tmp_path):
    one = clean_dataset(phantom, tmp_path / "one", workers=1)
    two = clean_dataset(phantom, tmp_path / "two", workers=2)
    assert two.images == one.images and two.boxes == one.boxes > 0
    assert digest(tmp_path / "two") == digest(tmp_path / "one")


def test_cleaning_workers_are_the_cores_share_one_per_50_films_and_one_with_a_gpu():
    import torch

    from data_cleaning.clean import FILMS_PER_WORKER, cleaning_workers

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert [cleaning_workers(n, False) for n in (10, 100, 149, 150, 10_000)] == [1, 2, 2, 3, 4]
        assert cleaning_workers(10_000, True) == 1, "the detector on the GPU: one process"
        torch.set_num_threads(1)  # a rank's share of 2 cores under 2 ranks
        assert cleaning_workers(10_000, False) == 1 and FILMS_PER_WORKER == 50
    finally:
        torch.set_num_threads(threads)


def test_a_torn_last_manifest_line_is_ignored(tmp_path):
    path = tmp_path / MANIFEST
    path.write_text('{"source": "train/a.png", "status": "cleaned"}\n{"source": "train/b.pn')
    assert list(read_manifest(path)) == ["train/a.png"]


def test_destination_inside_or_equal_to_source_is_refused(phantom, tmp_path):
    for bad in (phantom, phantom / "cleaned"):
        with pytest.raises(DatasetError, match="inside the source"):
            clean_dataset(phantom, bad)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "x.txt").write_text("keep")
    with pytest.raises(DatasetError, match="holds no manifest.jsonl"):
        clean_dataset(phantom, tmp_path / "occupied")


def text_mask(shape) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.putText(canvas, "PORTABLE", (1200, 150), cv2.FONT_HERSHEY_SIMPLEX, 3.0, 255, 8)
    cv2.putText(canvas, "R", (80, 1000), cv2.FONT_HERSHEY_SIMPLEX, 4.0, 255, 10)
    return canvas > 0


def test_real_radiograph_with_burned_in_text_is_cleaned_and_tagged(tmp_path, capsys):
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    original = ds.pixel_array
    white = int(original.min())  # MONOCHROME1: the lowest stored value displays brightest
    text = text_mask(original.shape)
    stamped = np.where(text, white, original).astype(original.dtype)
    ds.PixelData = stamped.tobytes()
    src = tmp_path / "src"
    (src / "test").mkdir(parents=True)
    ds.save_as(src / "test" / "cxr.dcm")
    (src / "test.txt").write_text("p1 cxr.dcm COVID-19 rg1\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["clean", "--root", str(src), "--out", str(tmp_path / "dst"), "--device", "cpu",
              "--splits", "test.txt"])  # fmt: skip
    assert exit_info.value.code == 0
    entry = json.loads((tmp_path / "dst" / MANIFEST).read_text())
    boxes = boxes_to_mask(original.shape, entry["boxes"], 0) > 0
    assert (boxes & text).sum() / text.sum() > 0.9, "the burned-in words are found"
    cleaned = pydicom.dcmread(tmp_path / "dst" / "test" / "cxr.dcm")
    pixels = cleaned.pixel_array.astype(float)
    error_before = np.abs(stamped.astype(float) - original)[text].mean()
    error_after = np.abs(pixels - original)[text].mean()
    assert error_after < 0.25 * error_before, "inpainting brings the text pixels back near the film"
    assert cleaned.SOPInstanceUID != ds.SOPInstanceUID
    assert cleaned.file_meta.MediaStorageSOPInstanceUID == cleaned.SOPInstanceUID
    assert cleaned.ImageType[0] == "DERIVED" and cleaned.BurnedInAnnotation == "NO"
    for tag in ("PatientID", "StudyInstanceUID", "PhotometricInterpretation", "BitsStored"):
        assert cleaned.get(tag) == ds.get(tag)
    assert pixels.shape == original.shape and cleaned.pixel_array.dtype == original.dtype


def test_boxes_are_mapped_back_clipped_and_image_sized_ones_dropped():
    from data_cleaning.detect import _clip

    # detector ran on a copy shrunk ×0.5 and padded by 10 px
    boxes = _clip([(10, 10, 30, 20), (0, 0, 500, 500), (5, 5, 5, 9)], 2.0, 10, (100, 100))
    assert boxes == [(0, 0, 40, 20)]


def test_16_bit_png_is_cleaned_at_16_bits(phantom, tmp_path):
    from medxai.data.imageio import write_png

    name = (phantom / "test.txt").read_text().split()[1]
    deep = read_raw(phantom / "test" / name).pixels.astype(np.uint16) * 257 + 3  # 16-bit film
    src = tmp_path / "src"
    (src / "test").mkdir(parents=True)
    write_png(src / "test" / "deep.png", deep)
    (src / "test.txt").write_text("p1 deep.png normal s1\n")
    summary = clean_dataset(src, tmp_path / "dst", ["test.txt"])
    assert summary.with_text == 1
    out = read_raw(tmp_path / "dst" / "test" / "deep.png")
    assert out.bit_depth == 16 and out.pixels.dtype == np.uint16
    boxes = json.loads((tmp_path / "dst" / MANIFEST).read_text())["boxes"]
    inside = boxes_to_mask(deep.shape, boxes, 4) > 0
    assert np.array_equal(out.pixels[~inside], deep[~inside])
    assert (out.pixels[inside] % 257 != 3).any(), "inpainted values are computed at 16 bits"


def test_a_dataset_without_training_split_is_cleaned_only_when_its_splits_are_named(tmp_path):
    src = tmp_path / "src"
    (src / "test").mkdir(parents=True)
    (src / "test.txt").write_text("p1 x.png normal s1\n")
    with pytest.raises(MedxaiError, match="no training split"):
        clean_dataset(src, tmp_path / "dst")


def test_under_torchrun_the_workers_asked_for_are_capped_at_a_ranks_share(monkeypatch):
    import torch

    from data_cleaning.clean import rank_workers
    from medxai import distributed

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a rank's share of 2 cores under 2 ranks
        assert rank_workers(2) == 2, "one process: as asked"
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        assert rank_workers(2) == 1 and rank_workers(0) == 1
        torch.set_num_threads(8)  # a rank with 8 cores of its own
        assert rank_workers(4) == 4 and rank_workers(16) == 8
    finally:
        torch.set_num_threads(threads)
