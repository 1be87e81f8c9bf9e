from pathlib import Path

import numpy as np
import pytest

from medxai.data.imageio import write_png

CLASSES = ("normal", "pneumonia", "COVID-19")


def write_toy_covidx(root: Path, n_per_class: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Tiny COVIDx where the class is a bright blob's position (none / left / right)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_per_class), ("test", max(2, n_per_class // 4))):
        (root / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for label_index, label in enumerate(CLASSES):
            for i in range(n):
                image = rng.normal(80, 20, (size, size))
                if label_index:
                    col = size // 4 if label_index == 1 else 3 * size // 4
                    image[size // 3 : size // 3 + 6, col - 3 : col + 3] += 120
                name = f"{split}_{label_index}_{i}.png"
                write_png(root / split / name, image.clip(0, 255).astype(np.uint8))
                lines.append(f"p{split}{label_index}_{i // 2} {name} {label} src{i % 2}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def toy_covidx(tmp_path_factory) -> Path:
    return write_toy_covidx(tmp_path_factory.mktemp("toy_covidx"))
