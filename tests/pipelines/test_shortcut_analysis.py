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
FRAME = 4  # width of the dark frame, pixels
CLASSES = ["plain", "marked"]
NO_TRANSPLANT = Transplant({}, "no transplant", None, {}, [])


def write_images(folder: Path, n: int, cue: str = "text") -> list[TestImage]:
    """Gray noise films; every second one carries the cue: the checkerboard 'text' at TEXT,
    or a dark frame FRAME pixels wide."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        film = 0.5 + 0.03 * rng.standard_normal((SIZE, SIZE))
        marked = i % 2 == 1
        if marked and cue == "text":
            x0, y0, x1, y1 = TEXT
            film[y0:y1, x0:x1] += 0.4 * checkerboard(SIZE).numpy()[y0:y1, x0:x1]
        if marked and cue == "frame":
            film[~interior(FRAME)] = 0.05
        name = f"img{i:02d}.png"
        write_png(folder / name, np.round(np.clip(film, 0, 1) * 255).astype(np.uint8))
        record = Record(f"p{i}", name, CLASSES[marked], "src-a" if marked else "src-b",
                        folder / name, "test.txt", i + 1)  # fmt: skip
        images.append(TestImage(record, f"test/{name}"))
    return images


def interior(width: int) -> np.ndarray:
    inside = np.zeros((SIZE, SIZE), bool)
    inside[width:-width, width:-width] = True
    return inside


class EdgeReader(torch.nn.Module):
    """Calls a film 'marked' when its outer band of `band` pixels is dark: reads the frame."""

    def __init__(self, band: int = 3) -> None:
        super().__init__()
        self.register_buffer("edge", torch.from_numpy(~interior(band)).float())

    def forward(self, x):
        mean = (x[:, 0] * self.edge).sum((1, 2)) / self.edge.sum()
        return torch.stack([torch.zeros_like(mean), 40.0 * (0.3 - mean)], 1)


def model_reading(box) -> torch.nn.Module:
    # checker energy of amplitude 0.4 is ~0.16 per cell; noise stays far below 0.08
    return SquareEvidenceNet(size=SIZE, box=box, pool=4, gain=50.0, offset=4.0).eval()


@pytest.fixture()
def images(tmp_path):
    return write_images(tmp_path, 40)


def run(model, images, kind=None, boxes=None):
    """The region tests of one kind (default: 'text' detected at TEXT on every film)."""
    prep = Preprocessing(image_size=SIZE, channels=3, intensity="none")
    inputs = ModelInputs(images, prep)
    with torch.no_grad():
        decided = model(inputs.batch([i.relative for i in images])).argmax(1).tolist()
    decisions = {i.relative: d for i, d in zip(images, decided, strict=True)}
    kind = kind or regions.DetectedText(None, markers=False)
    boxes = boxes or {i.relative: [TEXT] for i in images}
    rows, frequency = region_tests.region_test_rows(
        model, images, boxes, inputs, decisions, CLASSES, torch.device("cpu"), kind.control,
        kind.removed,
    )  # fmt: skip
    return rows, frequency, region_tests.reliance(rows, RelianceThresholds(), 300, 0)


def border_boxes(images):
    root = images[0].record.path.parent
    return (
        regions.BorderRegions()
        .find([TestImage(i.record, i.record.filename) for i in images], root, root, lambda k: None)
        .values()
    )


def as_found(images, boxes):
    return {i.relative: b for i, b in zip(images, boxes, strict=True)}


@pytest.mark.parametrize("cue", ["frame", "text"])
def test_the_border_kind_names_a_frame_reader_and_only_it(tmp_path, cue):
    images = write_images(tmp_path, 40, cue)
    found = as_found(images, border_boxes(images))
    if cue == "frame":
        framed = {b[3] - b[1] for b in found[images[1].relative] if b[2] - b[0] == SIZE}
        assert framed == {FRAME}, "the frame is found"
    plain = found[images[0].relative]
    assert plain and max(min(b[2] - b[0], b[3] - b[1]) for b in plain) <= 2, "thin bands only"
    model = EdgeReader() if cue == "frame" else model_reading(TEXT)
    _, _, border = run(model, images, regions.BorderRegions(), found)
    _, _, text = run(model, images)
    if cue == "frame":
        assert border.strength == "strong" and border.region_deletion.control_flip_rate == 0
        assert text.strength == "none", "a frame reader is not called a text reader"
    else:
        assert border.strength == "none", "a text reader is not called a frame reader"
        assert text.strength == "strong"


def test_the_border_control_is_the_ring_inside_it_of_the_same_area():
    masks = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.bool)
    masks[0, 0][torch.from_numpy(~interior(FRAME))] = True
    ring = regions.BorderRegions.control(masks, masks.sum((0, 1)))
    assert not (ring & masks).any() and not ring[1].any()
    area, inner = int(masks[0].sum()), int(ring[0].sum())
    assert area <= inner < area + 4 * SIZE, "grown inward to the border's area"
    assert ring[0, 0, FRAME, FRAME] and not ring[0, 0, SIZE // 2, SIZE // 2]


def test_removing_the_border_fills_it_with_the_mean_of_the_rest():
    films = torch.full((1, 3, SIZE, SIZE), 0.6)
    films[:, :, ~torch.from_numpy(interior(FRAME))] = 0.0
    masks = torch.from_numpy(~interior(FRAME))[None, None]
    out = regions.BorderRegions.removed(films, masks)
    assert torch.allclose(out[:, :, masks[0, 0]], torch.tensor(0.6))


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

        def describe(self):
            return {"name": "db"}

    journal = tmp_path / "detections.jsonl"
    root = images[0].record.path.parent.parent
    for image in images:  # the journal keys are relative to the root
        (root / "test").mkdir(exist_ok=True)
        (root / image.relative).write_bytes(image.record.path.read_bytes())
    first = regions.detect_labeled(images[:5], root, Counting(), journal)
    with open(journal, "a") as f:
        f.write('{"relative": "test/torn')  # a kill mid-line
    again = regions.detect_labeled(images, root, Counting(), journal)
    assert Counting.calls == len(images)
    assert again[images[0].relative] == first[images[0].relative] == [((1, 2, 3, 4), "db")]
    lines = journal.read_text().splitlines()
    assert sum(1 for line in lines if line.startswith('{"relative": "test/img')) == len(images)


@pytest.mark.parametrize("reads", ["device", "lesion"])
def test_user_regions_name_a_device_reader_and_not_a_lesion_reader(images, reads):
    """The 'text' patch doubles as a device the user marks with --regions; a model reading it
    is named on the user's row, one reading the film's middle (a lesion) on no row."""
    given = regions.GivenRegions("device", {i.relative: [TEXT] for i in images}, Path("r.csv"))
    found = given.find(images, None, None, lambda k: None)
    model = model_reading(TEXT if reads == "device" else (12, 12, 20, 20))
    _, _, device = run(model, images, given, found)
    _, _, border = run(
        model, images, regions.BorderRegions(), as_found(images, border_boxes(images))
    )
    assert border.strength == "none"
    assert device.strength == ("strong" if reads == "device" else "none")
    assert given.name == "user:device"


class TopBandTexture(torch.nn.Module):
    """Reads the fine texture of the film's top band, wherever it is: blurring any patch of
    it lowers the energy, and films near the threshold flip. It reads no text."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    @staticmethod
    def energy(x: torch.Tensor) -> torch.Tensor:
        band = x[:, 0, :12]
        return (band[:, :, 1:] - band[:, :, :-1]).abs().mean((1, 2))

    def forward(self, x):
        e = 400.0 * (self.energy(x) - self.threshold)
        return torch.stack([-e, e], 1)


def test_a_model_that_reacts_to_any_blur_near_the_text_is_no_text_reader(tmp_path):
    """Every film has its 'text' (plain noise here, no glyph) at TEXT, so no other film's text
    lies anywhere else: the matched control is the mirror place in the same band. Blurring it
    flips the texture reader as often as blurring the text: no flip excess."""
    rng = np.random.default_rng(3)
    images = []
    for i in range(60):
        film = 0.5 + rng.uniform(0.04, 0.12) * rng.standard_normal((SIZE, SIZE))
        name = f"img{i:02d}.png"
        write_png(tmp_path / name, np.round(np.clip(film, 0, 1) * 255).astype(np.uint8))
        record = Record(f"p{i}", name, CLASSES[i % 2], "src", tmp_path / name, "test.txt", i + 1)
        images.append(TestImage(record, f"test/{name}"))
    inputs = ModelInputs(images, Preprocessing(image_size=SIZE, channels=3, intensity="none"))
    energies = TopBandTexture.energy(inputs.batch([i.relative for i in images]))
    model = TopBandTexture(float(energies.median()))
    _, _, found = run(model, images)
    d = found.region_deletion
    assert d.control_flip_rate > 0.15, "blurring the control does flip it: it is blur-sensitive"
    assert abs(d.flip_excess) < 0.1 and found.strength in ("none", "inconclusive")
    assert found.n_unmatched == 0
