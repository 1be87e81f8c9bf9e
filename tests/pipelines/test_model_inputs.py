"""The audit's decoded test films are the same in memory and spilled to a file under OUT."""

import numpy as np
import torch

from medxai.data.covidx import Record
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from pipelines.audit.inputs import ModelInputs, TestImage


def test_model_inputs_are_the_same_in_memory_and_spilled(tmp_path):
    images = []
    for k in range(4):
        name = f"f{k}.png"
        pixels = np.random.default_rng(k).integers(0, 255, (40, 30), dtype=np.uint8)
        write_png(tmp_path / name, pixels)
        record = Record(f"p{k}", name, "a", None, tmp_path / name, "test.txt", k + 1)
        images.append(TestImage(record, f"test/{name}"))
    prep = Preprocessing(image_size=16, channels=1)
    kept = ModelInputs(images, prep)
    spilled = ModelInputs(images, prep, spill=tmp_path / "cache", limit=1)
    assert spilled.pixels.spilled and not kept.pixels.spilled
    relatives = [i.relative for i in images]
    assert torch.equal(kept.batch(relatives), spilled.batch(relatives))
    assert spilled.shapes == kept.shapes == dict.fromkeys(relatives, (40, 30))
    labels = [2, 0, 1, 0]
    for inputs in (kept, spilled):
        pairs = inputs.dataset(relatives[::-1], labels)
        assert len(pairs) == 4 and [pairs[k][1] for k in range(4)] == labels
        assert all(torch.equal(pairs[k][0], kept.batch([relatives[3 - k]])[0]) for k in range(4))
