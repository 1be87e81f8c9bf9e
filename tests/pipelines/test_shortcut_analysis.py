"""Known-answer tests of the audit's shortcut stage: a model that reads the 'text' and one
that does not, on images written to disk with the 'text' at a known place."""

from pathlib import Path

import numpy as np
import pytest
import torch

from medxai.data.covidx import Record
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from medxai.explain.toy import SquareEvidenceNet, checkerboard
from medxai.metrics.shortcut import RelianceThresholds
from medxai.report.record import Transplant
from medxai.report.verdict import summary
from pipelines.audit import region_tests, regions
from pipelines.audit.inputs import ModelInputs, TestImage

SIZE = 32
TEXT = (20, 4, 28, 12)  # (x0, y0, x1, y1) of the 'burned-in text' (a checkerboard patch)
ELSEWHERE = (4, 20, 12, 28)
CLASSES = ["plain", "marked"]
NO_TRANSPLANT = Transplant({}, "no transplant", None, {}, [])


def write_images(folder: Path, n: int) -> list[TestImage]:
    """Gray noise films; every second one carries the checkerboard 'text' at TEXT."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        film = 0.5 + 0.03 * rng.standard_normal((SIZE, SIZE))
        marked = i % 2 == 1
        if marked:
            x0, y0, x1, y1 = TEXT
            film[y0:y1, x0:x1] += 0.4 * checkerboard(SIZE).numpy()[y0:y1, x0:x1]
        name = f"img{i:02d}.png"
        write_png(folder / name, np.round(np.clip(film, 0, 1) * 255).astype(np.uint8))
        record = Record(f"p{i}", name, CLASSES[marked], "src-a" if marked else "src-b",
                        folder / name, "test.txt", i + 1)  # fmt: skip
        images.append(TestImage(record, f"test/{name}"))
    return images


def model_reading(box) -> torch.nn.Module:
    # checker energy of amplitude 0.4 is ~0.16 per cell; noise stays far below 0.08
    return SquareEvidenceNet(size=SIZE, box=box, pool=4, gain=50.0, offset=4.0).eval()


@pytest.fixture()
def images(tmp_path):
    return write_images(tmp_path, 20)


def run(model, images):
    prep = Preprocessing(image_size=SIZE, channels=3, intensity="none")
    inputs = ModelInputs(images, prep)
    with torch.no_grad():
        decided = model(inputs.batch([i.relative for i in images])).argmax(1).tolist()
    decisions = {i.relative: d for i, d in zip(images, decided, strict=True)}
    boxes = {i.relative: [TEXT] for i in images}  # 'detected' on every film
    rows, frequency = region_tests.region_test_rows(
        model,
        images,
        boxes,
        inputs,
        decisions,
        CLASSES,
        torch.device("cpu"),
        regions.TextRegions.control,
    )
    return rows, frequency, region_tests.reliance(rows, RelianceThresholds(), 300, 0)


def test_a_model_that_reads_the_text_is_flagged(images):
    rows, frequency, verdict = run(model_reading(TEXT), images)
    assert [r.predicted for r in rows] == [r.label for r in rows]
    marked = [r for r in rows if r.label == "marked"]
    assert all(r.tests.deleted_prediction == "plain" for r in marked), "blurring the text flips"
    assert all(r.tests.inserted_prediction == "marked" for r in marked), "text alone suffices"
    assert verdict.relies_on_text and verdict.strength == "strong"
    assert verdict.region_deletion.flip_rate == pytest.approx(0.5)
    assert verdict.region_deletion.control_flip_rate == 0.0
    assert "relies on burned-in text (strong)" in summary(verdict, NO_TRANSPLANT, "strong", "")
    x0, y0, x1, y1 = TEXT
    assert frequency[y0:y1, x0:x1].min() == 1.0 and frequency.sum() == (y1 - y0) * (x1 - x0)
    per_source = region_tests.breakdown(rows, "source")
    assert per_source["src-a"].flip_rate == 1.0 and per_source["src-b"].flip_rate == 0.0


def test_a_model_that_looks_elsewhere_is_not_flagged(images):
    rows, _, verdict = run(model_reading(ELSEWHERE), images)
    assert {r.predicted for r in rows} == {"plain"}
    assert verdict.region_deletion.flip_rate == 0.0
    assert not verdict.relies_on_text and verdict.strength == "none"
    assert summary(verdict, NO_TRANSPLANT, "none", "").startswith("No evidence")


def test_detection_journal_resumes_without_detecting_again(images, tmp_path):
    class Counting:
        calls = 0

        def detect(self, rgb8):
            Counting.calls += 1
            return [(1, 2, 3, 4)]

    journal = tmp_path / "boxes.jsonl"
    root = images[0].record.path.parent.parent
    for image in images:  # the journal keys are relative to the root
        (root / "test").mkdir(exist_ok=True)
        (root / image.relative).write_bytes(image.record.path.read_bytes())
    first = regions.detect_text(images[:5], root, Counting(), journal)
    with open(journal, "a") as f:
        f.write('{"relative": "test/torn')  # a kill mid-line
    again = regions.detect_text(images, root, Counting(), journal)
    assert Counting.calls == len(images)
    assert again[images[0].relative] == first[images[0].relative] == [(1, 2, 3, 4)]
    lines = journal.read_text().splitlines()
    assert sum(1 for line in lines if line.startswith('{"relative": "test/img')) == len(images)
