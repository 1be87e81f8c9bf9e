"""Pointing game by hand."""

import pytest
import torch

from medxai.errors import MedxaiError
from medxai.metrics import pointing_game, pointing_hits


def _map(y, x, size=10):
    s = torch.zeros(1, 1, size, size)
    s[0, 0, y, x] = 1.0
    return s


def test_hits_inside_outside_and_tolerance():
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[2:4, 2:4] = True
    sal = torch.cat([_map(3, 3), _map(6, 3), _map(5, 3)])
    assert pointing_hits(sal, [mask] * 3).tolist() == [True, False, False]
    # (5, 3) is 2 px below (3, 3); (6, 3) is 3 px away
    assert pointing_hits(sal, [mask] * 3, tolerance=2).tolist() == [True, False, True]


def test_instance_masks_and_category_mean():
    a = torch.zeros(2, 10, 10, dtype=torch.bool)  # two instances
    a[0, 0:2, 0:2] = True
    a[1, 8:10, 8:10] = True
    sal = torch.cat([_map(9, 9), _map(5, 5), _map(1, 1), _map(4, 4)])
    res = pointing_game(sal, [a, a, a, a], ["cat", "cat", "dog", "dog"])
    assert res.hits.tolist() == [True, False, True, False]
    assert res.per_category == {"cat": 0.5, "dog": 0.5} and res.mean_accuracy == 0.5
    only = pointing_game(
        sal, [a] * 4, ["cat", "cat", "dog", "dog"], scores=torch.tensor([0.9, 0.2, 0.8, 0.6])
    )
    assert only.per_category == {"cat": 1.0, "dog": 0.5}
    assert only.mean_accuracy == pytest.approx(0.75)


def test_bad_masks_raise():
    with pytest.raises(MedxaiError, match="expected"):
        pointing_hits(_map(1, 1), [torch.zeros(5, 5, dtype=torch.bool)])
