"""Deletion/insertion AUC on the known-answer model, and by hand on constant models."""

import pytest
import torch
from torch import nn

from medxai.errors import MedxaiError, ModelOutputError
from medxai.explain.toy import SquareEvidenceNet, box_mask, square_images
from medxai.metrics import deletion_insertion

BOX = (8, 8, 20, 20)  # (x0, y0, x1, y1)


@pytest.fixture(scope="module")
def setup():
    model = SquareEvidenceNet(box=BOX).eval()
    images = square_images(6, box=BOX, seed=2)
    targets = torch.ones(6, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    true = box_mask(32, BOX).float().expand(6, 1, 32, 32) + 0.1 * torch.rand(
        6, 1, 32, 32, generator=gen
    )
    rnd = torch.rand(6, 1, 32, 32, generator=gen)
    return model, images, targets, {"true": true, "random": rnd, "inverted": 1 - true}


@pytest.mark.parametrize("ranking, resolution", [("pixel", 28), ("mask", 16), ("mask", 8)])
def test_true_beats_random_beats_inverted(setup, ranking, resolution):
    model, images, targets, maps = setup
    res = {
        k: deletion_insertion(model, images, targets, s, ranking=ranking, resolution=resolution)
        for k, s in maps.items()
    }
    d = {k: r.deletion for k, r in res.items()}
    i = {k: r.insertion for k, r in res.items()}
    assert (d["true"] < d["random"]).all() and (d["random"] < d["inverted"]).all()
    assert (i["true"] > i["random"]).all() and (i["random"] > i["inverted"]).all()
    assert (res["true"].overall > 0.5).all()
    expected = "pixel" if ranking == "pixel" else f"mask:{resolution}x{resolution}"
    assert res["true"].ranking == expected


def test_curve_endpoints_and_shapes(setup):
    model, images, targets, maps = setup
    r = deletion_insertion(model, images, targets, maps["true"], per_step=64)
    assert r.deletion_curve.shape == (6, 17) and r.fractions[0] == 0 and r.fractions[-1] == 1
    p = torch.softmax(model(images), 1)[:, 1].detach()
    torch.testing.assert_close(r.deletion_curve[:, 0], p)
    torch.testing.assert_close(r.insertion_curve[:, -1], p)
    torch.testing.assert_close(r.deletion_curve[:, -1], r.insertion_curve[:, 0])
    m = deletion_insertion(model, images, targets, maps["true"], ranking="mask", resolution=28)
    assert m.deletion_curve.shape == (6, 54)  # ceil(784 / 15) steps + 1


class Constant(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_auc_of_a_constant_model_is_its_probability():
    model = Constant([0.0, 1.0])
    r = deletion_insertion(
        model, torch.randn(2, 3, 10, 10), [1, 1], torch.rand(2, 1, 10, 10), per_step=7
    )
    p = torch.sigmoid(torch.tensor(1.0))
    torch.testing.assert_close(r.deletion, torch.stack([p, p]))
    torch.testing.assert_close(r.insertion, torch.stack([p, p]))


def test_errors(setup):
    model, images, targets, maps = setup
    with pytest.raises(MedxaiError, match="ranking must be 'pixel' or 'mask'"):
        deletion_insertion(model, images, targets, maps["true"], ranking="cells")
    with pytest.raises(MedxaiError, match="saliency must have shape"):
        deletion_insertion(model, images, targets, maps["true"][:, :, :16])
    with pytest.raises(ModelOutputError):
        deletion_insertion(Constant([0.0, float("nan")]), images, targets, maps["true"])
