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

    def verdict(flipped, control=zeros, inserted=base_keeps, n_bootstrap=400):
        return text_reliance(flipped, control, inserted, base_keeps, np.zeros(len(flipped)),
                             n_bootstrap=n_bootstrap)  # fmt: skip

    text_alone = base_keeps | first(140)  # keeps 93 more decisions than the baseline: +0.47
    strong = verdict(first(60), inserted=text_alone)  # +0.30, lower bound ~0.24
    assert strong.relies_on_text and strong.strength == "strong"
    deletion = strong.region_deletion
    assert deletion.flip_rate == pytest.approx(0.3) == deletion.flip_excess
    lo, hi = deletion.flip_excess_ci
    assert 0.2 < lo < 0.3 < hi < 0.4
    assert strong.region_insertion.gain == pytest.approx((text_alone.sum() - base_keeps.sum()) / n)
    assert verdict(first(30), inserted=text_alone).strength == "moderate"  # lower of the two
    assert verdict(first(14), inserted=text_alone).strength == "weak"
    # the point estimate reaches "strong" (+0.18 ≥ 0.15) but its lower bound (~0.13) does not
    # clear it: the level is the lower bound's
    borderline = verdict(first(36), inserted=text_alone)
    assert borderline.region_deletion.flip_excess_ci[0] < 0.15 and borderline.strength == "moderate"
    # the text is needed but does not suffice (or the reverse): no verdict
    needed = verdict(first(40))
    no_transplant = Transplant({}, "no transplant", None, {}, [])
    assert not needed.relies_on_text and needed.strength == "none"
    assert "CI reaches zero" in reasons(needed, no_transplant, "none")[2]  # the insertion line
    assert not verdict(zeros, inserted=text_alone).relies_on_text
    # the same flips when the control region is blurred: generic sensitivity, not text
    generic = verdict(first(20), control=np.roll(first(20), 100), inserted=text_alone)
    assert generic.region_deletion.flip_excess == pytest.approx(0.0)
    assert not generic.relies_on_text and generic.strength == "none"
    assert generic.region_deletion.control_flip_rate == 0.1


def test_thin_evidence_is_inconclusive_not_none():
    """Three films (whatever they show), an interval that rules out no moderate effect, and an
    insertion test the blurred film already passes are inconclusive, with the reason."""
    import numpy as np

    from medxai.metrics.shortcut import MIN_FILMS, text_reliance

    ones, zeros = np.ones(3, bool), np.zeros(3, bool)
    three = text_reliance(ones, zeros, ones, zeros, np.zeros(3), n_bootstrap=200)
    assert three.strength == "inconclusive" and not three.relies_on_text
    assert f"fewer than the {MIN_FILMS}" in three.inconclusive
    # the same three films among 100 test films: the cue is too rare to decide 5% of them
    rare = text_reliance(ones, zeros, ones, zeros, np.zeros(3), n_bootstrap=200, n_films=100)
    assert rare.strength == "none" and "only 3 of 100 test films carry it" in rare.rare
    assert text_reliance(ones, zeros, ones, zeros, np.zeros(3), n_films=40).strength == (
        "inconclusive"
    )  # 3 of 40 could decide 7.5%
    n = 40  # 4 of 40 flip, none in the control: +0.10, CI from 0 to about +0.2
    flips, none = np.arange(n) < 4, np.zeros(n, bool)
    keeps = np.arange(n) < 20  # the text alone keeps half, the blurred film none
    wide = text_reliance(flips, none, keeps, none, np.zeros(n), n_bootstrap=400)
    assert wide.excess_level == "inconclusive" and wide.strength == "inconclusive"
    assert "does not rule out a moderate one" in wide.inconclusive
    degenerate = text_reliance(
        np.arange(n) < 20, none, np.ones(n, bool), np.ones(n, bool), np.zeros(n), n_bootstrap=400
    )  # the blurred film alone keeps every decision: insertion can show nothing
    assert degenerate.gain_level == "inconclusive" and degenerate.strength == "inconclusive"
    assert "insertion is degenerate" in degenerate.inconclusive


def test_two_films_of_one_patient_are_resampled_together():
    """The same figures with each patient's films counted together widen the interval when a
    patient's films agree (they are one observation, not two), and leave the mean alone."""
    import numpy as np

    from medxai.statistics.bootstrap import Clusters, bootstrap_mean

    values = np.repeat(np.arange(30) % 2, 2).astype(float)  # 30 patients, two equal films each
    patients = Clusters.of([f"p{i // 2}" for i in range(60)])
    assert patients.count == 30 and patients.unit == "patient"
    films = bootstrap_mean(values, 2000, seed=1)
    clustered = bootstrap_mean(values, 2000, seed=1, clusters=patients)
    assert clustered[0] == films[0] == 0.5
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(clustered[1]) > 1.25 * width(films[1])  # ~√2 wider
    assert Clusters.of(["a", "b", None, None]).unit == "film"  # nobody has two films


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
        return transplant_follow(swap, zeros, swap * 0.5, n_bootstrap=400)

    # sources tied to classes but no transplant made: the region tests alone do not settle it
    assert combined_strength(none, None, thresholds) == ("inconclusive", "inconclusive")
    # no source tied to a class: a hospital's text carries no class, the region tests decide
    assert combined_strength(none, None, thresholds, needed=False) == ("none", "none")
    assert combined_strength(none, follow(70), thresholds) == ("strong", "strong")  # +35%
    assert combined_strength(none, follow(40), thresholds) == ("moderate", "moderate")  # +20%
    assert combined_strength(none, follow(20), thresholds) == ("weak", "weak")  # +10%
    assert combined_strength(none, follow(2), thresholds)[0] == "none"  # rules out moderate
    lo, hi = follow(70).follow_excess_ci
    assert 0.28 < lo < 0.35 < hi < 0.45
