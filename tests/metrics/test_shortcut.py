"""Shortcut evidence: saliency shares by hand, region tests on the known-answer model."""

import pytest
import torch

from medxai.errors import MedxaiError
from medxai.explain.toy import SquareEvidenceNet, box_mask, square_images
from medxai.metrics import boxes_to_masks, region_tests, saliency_share, shortcut_evidence

BOX = (8, 8, 20, 20)  # (x0, y0, x1, y1)


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


def test_text_reliance_needs_both_tests_and_takes_the_lower_level():
    import numpy as np

    from medxai.metrics.shortcut import text_reliance
    from medxai.report.record import Transplant
    from medxai.report.verdict import reasons

    n = 200
    zeros = np.zeros(n, bool)
    base_keeps = np.arange(n) % 3 == 0  # the blurred image alone keeps a third

    def first(k):
        out = zeros.copy()
        out[:k] = True
        return out

    def verdict(flipped, control=zeros, inserted=base_keeps, n_bootstrap=200):
        return text_reliance(flipped, control, inserted, base_keeps, np.zeros(len(flipped)),
                             n_bootstrap=n_bootstrap)  # fmt: skip

    text_alone = base_keeps | first(100)  # keeps 100 more decisions than the baseline: +0.33
    strong = verdict(first(40), inserted=text_alone)
    assert strong.relies_on_text and strong.strength == "strong"
    deletion = strong.region_deletion
    assert deletion.flip_rate == pytest.approx(0.2) == deletion.flip_excess
    lo, hi = deletion.flip_excess_ci
    assert 0.1 < lo < 0.2 < hi < 0.3
    assert strong.region_insertion.gain == pytest.approx((text_alone.sum() - base_keeps.sum()) / n)
    assert verdict(first(20), inserted=text_alone).strength == "moderate"  # lower of the two
    assert verdict(first(10), inserted=text_alone).strength == "weak"
    # the text is needed but does not suffice (or the reverse): no verdict
    needed = verdict(first(40))
    no_transplant = Transplant({}, "no transplant", None, {}, [])
    assert not needed.relies_on_text
    assert "CI reaches zero" in reasons(needed, no_transplant, "none")[2]  # the insertion line
    assert not verdict(zeros, inserted=text_alone).relies_on_text
    # the same flips when the control region is blurred: generic sensitivity, not text
    generic = verdict(first(20), control=np.roll(first(20), 100), inserted=text_alone)
    assert generic.region_deletion.flip_excess == pytest.approx(0.0)
    assert not generic.relies_on_text and generic.strength == "none"
    assert generic.region_deletion.control_flip_rate == 0.1
    # one flip in 3 images has a CI reaching zero: not evidence
    few = text_reliance(first(1)[:3], zeros[:3], ~zeros[:3], zeros[:3], np.zeros(3))
    assert not few.relies_on_text


def test_the_verdict_is_the_higher_of_the_transplant_and_the_joint_region_level():
    import numpy as np

    from medxai.metrics.shortcut import (
        RelianceThresholds,
        combined_strength,
        text_reliance,
        transplant_follow,
    )

    n = 200
    zeros = np.zeros(n, bool)
    none = text_reliance(zeros, zeros, zeros, zeros, np.zeros(n), n_bootstrap=200)
    thresholds = RelianceThresholds()

    def follow(k: int):  # k of n films follow the swap, none the control
        swap = np.arange(n) < k
        return transplant_follow(swap, zeros, swap * 0.5, n_bootstrap=200)

    assert combined_strength(none, None, thresholds) == ("none", "none")
    assert combined_strength(none, follow(50), thresholds) == ("strong", "strong")  # +25%
    assert combined_strength(none, follow(30), thresholds) == ("moderate", "moderate")  # +15%
    assert combined_strength(none, follow(14), thresholds) == ("weak", "weak")  # +7%
    assert combined_strength(none, follow(2), thresholds)[0] == "none"  # CI reaches zero
    lo, hi = follow(50).follow_excess_ci
    assert 0.18 < lo < 0.25 < hi < 0.32
