"""Known answers for the counterfactual text transplant and the "did not learn" rule.

Films of two classes from two hospitals: every "marked" film carries a lesion (a checkerboard
patch at LESION) and its hospital's text (a checkerboard at TEXT); every "plain" film carries
its hospital's text as a solid block at TEXT and no lesion. A model that reads only the text
box must follow a transplanted text every time; a model that reads only the lesion never.
Every film has its own text inpainted in both arms, so a "marked" film, whose decision rested
on its own text, is already "plain" in the blank arm: the donor's glyphs add nothing there.
"""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from medxai.data.covidx import Record
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from medxai.explain.toy import SquareEvidenceNet, checkerboard
from medxai.metrics.shortcut import did_not_learn
from medxai.report.record import RegionRow
from medxai.statistics.classification import Evaluation, classification_metrics
from medxai.statistics.confound import informative, source_classes
from pipelines.audit import transplant as moving
from pipelines.audit.inputs import ModelInputs, TestImage

SIZE = 32
TEXT = (20, 4, 28, 12)  # (x0, y0, x1, y1)
LESION = (4, 20, 12, 28)
CLASSES = ["plain", "marked"]
SOURCES = {"plain": "hospital-p", "marked": "hospital-m"}


def _paint(film: np.ndarray, box, pattern: np.ndarray | float) -> None:
    x0, y0, x1, y1 = box
    film[y0:y1, x0:x1] = 0.5 + (
        pattern[y0:y1, x0:x1] if isinstance(pattern, np.ndarray) else pattern
    )


def films(folder: Path, n: int = 16) -> list[TestImage]:
    rng, checker = np.random.default_rng(0), 0.4 * checkerboard(SIZE).numpy()
    images = []
    for i in range(n):
        label = CLASSES[i % 2]
        film = 0.5 + 0.02 * rng.standard_normal((SIZE, SIZE))
        _paint(film, TEXT, checker if label == "marked" else 0.35)
        if label == "marked":
            _paint(film, LESION, checker)
        name = f"f{i:02d}.png"
        write_png(folder / name, np.round(np.clip(film, 0, 1) * 255).astype(np.uint8))
        record = Record(f"p{i}", name, label, SOURCES[label], folder / name, "test.txt", i + 1)
        images.append(TestImage(record, f"test/{name}"))
    return images


def reading(box) -> torch.nn.Module:
    return SquareEvidenceNet(size=SIZE, box=box, pool=4, gain=50.0, offset=4.0).eval()


def transplant(model, images, boxes=None, **store):
    prep = Preprocessing(image_size=SIZE, channels=3, intensity="none")
    inputs = ModelInputs(images, prep, **store)
    with torch.no_grad():
        decided = model(inputs.batch([i.relative for i in images])).argmax(1).tolist()
    decisions = {i.relative: d for i, d in zip(images, decided, strict=True)}
    rows = {
        i.relative: RegionRow(
            file=i.record.filename,
            relative=i.relative,
            label=i.record.label,
            source=i.record.source,
            predicted=CLASSES[decisions[i.relative]],
            shape=(SIZE, SIZE),
            boxes=(boxes or {}).get(i.relative, [TEXT]),
            model_boxes=(boxes or {}).get(i.relative, [TEXT]),
            text_area_share=0.06,
            tests=None,
        )  # fmt: skip
        for i in images
    }
    associations = {source: [label] for label, source in SOURCES.items()}
    found = moving.transplant_rows(
        model, images, rows, inputs, decisions, CLASSES, associations, (10, 1, 0),
        torch.device("cpu"),
    )  # fmt: skip
    return (
        decided,
        found,
        moving.summarise_transplant(found, {"test.txt": images}, associations, 200, 0),
    )


@pytest.fixture()
def images(tmp_path):
    return films(tmp_path)


def test_a_model_that_reads_only_the_text_follows_every_transplant(images):
    decided, rows, moved = transplant(reading(TEXT), images)
    assert [CLASSES[d] for d in decided] == [i.record.label for i in images]
    assert len(rows) == len(images) and all(r.decided not in r.targets for r in rows)
    assert all(len(r.donors) == moving.DONORS for r in rows)
    assert moved.pooled.follow_rate == 1.0 and moved.pooled.control_follow_rate == 0.5
    assert moved.pooled.follow_excess_ci[0] >= 0.2  # strong
    groups = moved.per_split["test.txt"].per_class
    assert {(g.label, g.target, g.follow_rate, g.control_follow_rate) for g in groups} == {
        ("plain", "marked", 1.0, 0.0), ("marked", "plain", 1.0, 1.0)
    }  # fmt: skip
    plain = next(g for g in groups if g.label == "plain")
    assert plain.excess_ci[0] == 1.0


class BoxBrightness(torch.nn.Module):
    """Reads the mean brightness inside one box, never its texture: "marked" when bright."""

    def __init__(self, box) -> None:
        super().__init__()
        self.box = box

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, y0, x1, y1 = self.box
        bright = 40 * (x[:, :, y0:y1, x0:x1].mean((1, 2, 3)) - 0.65)
        return torch.stack([-bright, bright], 1)


def test_spilled_films_and_inpainted_copies_give_the_same_transplant(images, tmp_path):
    """With no memory allowed, the inputs and the inpainted copies go to files under the
    spill folder: every row is the same as in memory."""
    _, in_memory, _ = transplant(reading(TEXT), images)
    _, spilled, _ = transplant(reading(TEXT), images, spill=tmp_path / "cache", limit=0)
    assert spilled == in_memory and len(spilled) == len(images)


def test_each_film_is_inpainted_once_and_kept_in_a_bounded_store(images, tmp_path, monkeypatch):
    """A film with text is inpainted once however often it is read (as base and as donor);
    past the limit its copy is in a file, not in memory; a film without text is its own copy
    and is not kept; a rank receives the settings, not what another has computed."""
    inputs = ModelInputs(images, Preprocessing(image_size=SIZE, channels=3, intensity="none"))
    boxes = {i.relative: [] if k % 4 == 0 else [TEXT] for k, i in enumerate(images)}
    real, calls = moving.own_text_removed, []
    monkeypatch.setattr(moving, "own_text_removed", lambda *a: calls.append(a[1]) or real(*a))
    spilled = moving.Cleaned(boxes, SIZE, 2, 1, tmp_path / "cache", limit=0)
    in_memory = moving.Cleaned(boxes, SIZE, 2, 1)
    for _ in range(3):
        for image in images:
            pixels = inputs.pixels[image.relative]
            expected = real(pixels, boxes[image.relative], 2, 1)
            assert torch.equal(expected, pixels) == (not boxes[image.relative])
            for cleaned in (spilled, in_memory):
                assert torch.equal(cleaned.of(image.relative, pixels, (SIZE, SIZE)), expected)
    assert len(calls) == 2 * sum(1 for b in boxes.values() if b)
    assert spilled.store.spilled and not in_memory.store.spilled
    assert len(spilled.store.rows) == sum(1 for b in boxes.values() if b)
    sent = pickle.loads(pickle.dumps(spilled))
    assert sent.store is None  # nothing computed travels
    assert (sent.spill, sent.limit, sent.boxes) == (spilled.spill, 0, boxes)


def test_a_model_that_reads_the_pasted_box_background_is_no_text_reader(tmp_path):
    """The marked hospital writes its text (a checkerboard at TEXT_M) on a bright label wider
    than the detected box; the plain hospital writes at TEXT. A model that reads the label's
    brightness at TEXT_M follows every marked donor in the swap arm, and as often in the blank
    arm (the donor's cleaned copy keeps its label): no glyph effect."""
    text_m, label_m = (20, 20, 28, 28), (16, 16, 32, 32)
    rng, checker = np.random.default_rng(1), 0.3 * checkerboard(SIZE).numpy()
    images, boxes = [], {}
    for i in range(24):
        label = CLASSES[i % 2]
        film = 0.5 + 0.02 * rng.standard_normal((SIZE, SIZE))
        if label == "marked":
            _paint(film, label_m, 0.35)
            _paint(film, text_m, 0.35 + checker)
        else:
            _paint(film, TEXT, checker)
        name = f"f{i:02d}.png"
        write_png(tmp_path / name, np.round(np.clip(film, 0, 1) * 255).astype(np.uint8))
        record = Record(f"p{i}", name, label, SOURCES[label], tmp_path / name, "test.txt", i + 1)
        images.append(TestImage(record, f"test/{name}"))
        boxes[f"test/{name}"] = [text_m if label == "marked" else TEXT]
    decided, _, moved = transplant(BoxBrightness(text_m), images, boxes)
    assert [CLASSES[d] for d in decided] == [i.record.label for i in images]
    plain = next(g for g in moved.per_split["test.txt"].per_class if g.label == "plain")
    assert plain.follow_rate == 1.0, "the swap arm alone would call it a text reader"
    assert plain.control_follow_rate == 1.0 and plain.excess_ci == (0.0, 0.0)
    assert moved.pooled.follow_excess == 0.0


def test_a_model_that_reads_only_the_lesion_never_follows(images):
    decided, _, moved = transplant(reading(LESION), images)
    assert [CLASSES[d] for d in decided] == [i.record.label for i in images]
    assert moved.pooled.follow_rate == 0.0 and moved.pooled.follow_excess == 0.0
    assert moved.pooled.prob_shift == pytest.approx(0.0, abs=0.05)


def test_sources_that_send_every_class_give_no_transplant_and_say_why(images):
    counts = {"hospital-p": {"plain": 5, "marked": 4}, "hospital-m": {"plain": 2, "marked": 8}}
    assert informative(source_classes(counts)) == {}  # 8 of 10 is not enough (90% needed)
    assert informative(source_classes(counts | {"hospital-m": {"plain": 0, "marked": 9}})) == {
        "hospital-m": ["marked"]
    }
    mixed = {"hospital-p": ["marked", "plain"], "hospital-m": ["marked", "plain"]}
    moved = moving.summarise_transplant([], {"test.txt": images}, mixed, 100, 0)
    assert moved.pooled is None and "every source" in moved.skipped


def test_a_constant_model_is_not_applicable_and_a_learned_one_is():
    labels = [0, 1] * 20

    def evaluation(predictions):  # noqa: E306
        metrics = classification_metrics(labels, predictions, CLASSES, n_bootstrap=200)
        return Evaluation(metrics, [str(k) for k in range(40)], labels, predictions)

    assert "predicts plain for every film" in did_not_learn(evaluation([0] * 40), CLASSES, "t")
    coin = [0, 0, 1, 1] * 10  # half right: chance
    assert "guessing scores (0.50)" in did_not_learn(evaluation(coin), CLASSES, "t")
    weak = [k if i % 10 < 6 else 1 - k for i, k in enumerate(labels)]  # 60% right
    assert "reaches what guessing scores" in did_not_learn(evaluation(weak), CLASSES, "t"), (
        "above the majority class's 0.33 but within reach of guessing by the prior (0.50)"
    )
    assert did_not_learn(evaluation(labels), CLASSES, "t") == ""
