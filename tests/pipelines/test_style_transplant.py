"""Known answers for the style transplant: a model that reads the tone curve follows a donor
hospital's tone and not its frame; one that reads the frame follows the frame and not the
tone; a model that reads neither follows nothing."""

from pathlib import Path

import numpy as np
import pytest
import torch

from medxai.data.covidx import Record
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from pipelines.audit.inputs import ModelInputs, TestImage
from pipelines.audit.style import Restyling, style_transplant

SIZE, FRAME = 32, 4
CLASSES = ["plain", "marked"]
SENDS = {"src-a": ["marked"], "src-b": ["plain"]}


def edge() -> torch.Tensor:
    band = torch.ones(SIZE, SIZE, dtype=torch.bool)
    band[3:-3, 3:-3] = False
    return band


class Reader(torch.nn.Module):
    """'marked' when the mean of `where` is below `level`: the outer 3 pixels (the frame) or
    the middle of the film (its tone)."""

    def __init__(self, where: torch.Tensor, level: float) -> None:
        super().__init__()
        self.register_buffer("where", where.float())
        self.level = level

    def forward(self, x):
        mean = (x[:, 0] * self.where).sum((1, 2)) / self.where.sum()
        return torch.stack([torch.zeros_like(mean), 60.0 * (self.level - mean)], 1)


def tone_reader():
    middle = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    middle[8:-8, 8:-8] = True
    return Reader(middle, 0.38)


def films(folder: Path, cue: str) -> list[TestImage]:
    """20 noise films; src-a's (class marked) are darker (tone) or framed (frame)."""
    rng, out = np.random.default_rng(0), []
    for i in range(20):
        film = np.clip(0.5 + 0.1 * rng.standard_normal((SIZE, SIZE)), 0, 1)
        marked = i % 2 == 1
        if marked and cue == "tone":
            film = film**1.6
        if marked and cue == "frame":
            film[edge().numpy() | ~np.pad(np.ones((24, 24), bool), FRAME)] = 0.05
        name = f"f{i:02d}.png"
        write_png(folder / name, np.round(film * 255).astype(np.uint8))
        record = Record(f"p{i}", name, CLASSES[marked], "src-a" if marked else "src-b",
                        folder / name, "test.txt", i + 1)  # fmt: skip
        out.append(TestImage(record, name))
    return out


def border_boxes(images, cue):
    """The border kind's boxes at model input as the shortcut stage has them (the frame where
    there is one)."""
    bands = [(0, 0, SIZE, FRAME), (0, SIZE - FRAME, SIZE, SIZE), (0, 0, FRAME, SIZE),
             (SIZE - FRAME, 0, SIZE, SIZE)]  # fmt: skip
    thin = [(0, 0, SIZE, 1)]
    return {
        image.relative: bands if cue == "frame" and k % 2 else thin
        for k, image in enumerate(images)
    }


def restyling(trait, model, images, cue, inputs, batch_size=32):
    return Restyling(trait, model, border_boxes(images, cue), inputs.intensity, SIZE, CLASSES,
                     torch.device("cpu"), batch_size)  # fmt: skip


def follow(model, cue, trait, tmp_path, batch_size=32):
    images = films(tmp_path, cue)
    inputs = ModelInputs(images, Preprocessing(image_size=SIZE, channels=1, intensity="none"))
    with torch.no_grad():
        decided = model(inputs.batch([i.relative for i in images])).argmax(1).tolist()
    assert [CLASSES[d] for d in decided] == [i.record.label for i in images], "reads its cue"
    decisions = {i.relative: d for i, d in zip(images, decided, strict=True)}
    shared = restyling(trait, model, images, cue, inputs, batch_size)
    return style_transplant(shared, images, inputs, decisions, SENDS, (200, 0)).follow


@pytest.mark.parametrize(
    ("reads", "trait", "follows"),
    [("tone", "tone", True), ("tone", "frame", False), ("frame", "frame", True),
     ("frame", "tone", False)],
)  # fmt: skip
def test_decisions_follow_the_look_the_model_reads(tmp_path, reads, trait, follows):
    model = tone_reader() if reads == "tone" else Reader(edge(), 0.3)
    f = follow(model, reads, trait, tmp_path, batch_size=3)  # 7 chunks, the last one short
    assert f.n == 20 and f.control_follow_rate == 0.0
    if follows:
        assert f.follow_rate == 1.0 and f.follow_excess_ci[0] > 0.9
    else:
        assert f.follow_rate == 0.0, f"a {reads} reader does not follow the {trait}"


def test_no_donors_of_another_class_skips_with_a_reason(tmp_path):
    images = films(tmp_path, "tone")
    inputs = ModelInputs(images, Preprocessing(image_size=SIZE, channels=1, intensity="none"))
    shared = restyling("tone", tone_reader(), images, "tone", inputs)
    moved = style_transplant(shared, images, inputs, {i.relative: 0 for i in images}, {}, (50, 0))
    assert moved.follow is None and "donors" in moved.skipped
