"""Fixtures for the saliency tests: the known-answer model and its images."""

import pytest
import torch

from medxai.explain.toy import SquareEvidenceNet, box_mask, square_images

BOX = (8, 8, 20, 20)  # (x0, y0, x1, y1)


@pytest.fixture(scope="session")
def square_model() -> SquareEvidenceNet:
    return SquareEvidenceNet(size=32, box=BOX)


@pytest.fixture(scope="session")
def square_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return square_images(10, size=32, box=BOX, seed=0), torch.ones(10, dtype=torch.long)


@pytest.fixture(scope="session")
def region() -> torch.Tensor:
    return box_mask(32, BOX)
