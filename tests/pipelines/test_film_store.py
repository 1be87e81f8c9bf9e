"""The decoded test films stay in memory while small and go to a memory-mapped file under
OUT when they would outgrow the limit, with the same values either way."""

import numpy as np
import torch

from medxai.data.covidx import Record
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from pipelines.audit.inputs import FilmStore, ModelInputs, TestImage


def test_a_store_over_its_limit_spills_to_an_unlinked_file_and_reads_the_same(tmp_path):
    films = {f"f{k}": torch.rand(1, 8, 8) for k in range(5)}
    small = FilmStore(list(films), (1, 8, 8), tmp_path, limit=10_000)
    big = FilmStore(list(films), (1, 8, 8), tmp_path, limit=100)
    assert not small.spilled and big.spilled and isinstance(big.array, np.memmap)
    for key, film in films.items():
        small[key] = big[key] = film
    assert all(torch.equal(big[k], films[k]) and torch.equal(small[k], films[k]) for k in films)
    assert list(tmp_path.iterdir()) == [], "the file is unlinked once open: nothing left in OUT"


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
