"""Shortcut evidence: saliency shares by hand, region tests on the known-answer model."""

import pytest
import torch

from medxai.errors import MedxaiError
from medxai.explain.toy import SquareEvidenceNet, box_mask, square_images
from medxai.metrics import boxes_to_masks, region_tests, saliency_share, shortcut_evidence

BOX = (8, 20, 8, 20)


def test_boxes_to_masks_by_hand():
    m = boxes_to_masks([[(1, 2, 3, 5)], []], (6, 6))
    assert m.shape == (2, 1, 6, 6) and m[0].sum() == 2 * 3 and m[1].sum() == 0
    assert m[0, 0, 2:5, 1:3].all()
    with pytest.raises(MedxaiError, match="x0, y0, x1, y1"):
        boxes_to_masks([[(1, 2, 3)]], (6, 6))


def test_shares_by_hand():
    regions = boxes_to_masks([[(0, 0, 5, 10)], [(0, 0, 5, 10)]], (10, 10))  # left half
    uniform = torch.ones(1, 1, 10, 10)
    left = regions[:1].float() * 3
    share = saliency_share(torch.cat([uniform, left]), regions, top_k=0.1)
    torch.testing.assert_close(share["area_share"], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(share["mass_share"], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(share["lift"], torch.tensor([1.0, 2.0]))
    assert share["top_k_overlap"][1] == 1.0


def test_region_tests_on_the_known_answer_model():
    model = SquareEvidenceNet(box=BOX).eval()
    images = square_images(4, box=BOX)
    targets = torch.ones(4, dtype=torch.long)
    evidence = [[(8, 8, 20, 20)]] * 4  # x0, y0, x1, y1 of the square
    elsewhere = [[(20, 20, 32, 32)]] * 4
    good = region_tests(model, images, targets, evidence)
    assert good.inserted_keeps_class.all() and (good.inserted_score > 0.9).all()
    assert (good.deletion_drop > 0.9).all() and (good.baseline_score < 0.01).all()
    bad = region_tests(model, images, targets, elsewhere)
    assert not bad.inserted_keeps_class.any() and (bad.deletion_drop.abs() < 0.05).all()
    sal = box_mask(32, BOX).float().expand(4, 1, 32, 32)
    ev = shortcut_evidence(model, images, targets, sal, evidence)
    torch.testing.assert_close(ev.share["mass_share"], torch.ones(4))
    with pytest.raises(MedxaiError, match="one list of boxes per image"):
        region_tests(model, images, targets, evidence[:2])


def test_text_reliance_levels_follow_the_thresholds_and_need_a_ci_above_zero():
    import numpy as np

    from medxai.metrics.shortcut import text_reliance

    n = 200
    zeros = np.zeros(n, bool)
    base_keeps = np.arange(n) % 3 == 0  # the blurred image alone keeps a third

    def flips(k):
        out = zeros.copy()
        out[:k] = True
        return out

    strong = text_reliance(flips(60), base_keeps, base_keeps, np.zeros(n), n_bootstrap=200)
    assert strong["relies_on_text"] and strong["strength"] == "strong"
    assert strong["region_deletion"]["flip_rate"] == pytest.approx(0.3)
    lo, hi = strong["region_deletion"]["flip_ci"]
    assert 0.2 < lo < 0.3 < hi < 0.4
    moderate = text_reliance(flips(30), base_keeps, base_keeps, np.zeros(n), n_bootstrap=200)
    assert moderate["strength"] == "moderate"
    none = text_reliance(flips(4), base_keeps, base_keeps, np.zeros(n), n_bootstrap=200)
    assert not none["relies_on_text"] and none["strength"] == "none" and not none["reasons"]
    # text alone reproduces every decision, the blurred image alone a third: insertion decides
    inserted = text_reliance(zeros, ~zeros, base_keeps, np.zeros(n), n_bootstrap=200)
    assert inserted["strength"] == "strong"
    assert inserted["region_insertion"]["gain"] == pytest.approx(1 - base_keeps.mean())
    # a large flip rate on 3 images has a CI reaching zero: not evidence
    few = text_reliance(flips(1)[:3], zeros[:3], zeros[:3], np.zeros(3), n_bootstrap=200)
    assert not few["relies_on_text"]
