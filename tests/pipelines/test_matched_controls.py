"""Known answers for the matched control regions: the film's own shapes, moved to where other
films carry the kind and this one does not, never smaller than MATCH of the area."""

import torch

from pipelines.audit.controls import MATCH, matched_controls

S = 32


def masks_of(*boxes_per_film) -> torch.Tensor:
    out = torch.zeros(len(boxes_per_film), 1, S, S, dtype=torch.bool)
    for k, boxes in enumerate(boxes_per_film):
        for x0, y0, x1, y1 in boxes:
            out[k, 0, y0:y1, x0:x1] = True
    return out


def test_a_control_takes_the_films_own_shape_to_another_films_text():
    mine, theirs = (2, 2, 10, 5), (20, 24, 30, 30)  # 8×3 here, 10×6 on the other film
    masks = masks_of([mine], [theirs])
    control = matched_controls(masks[:1], masks.float().sum((0, 1)))[0, 0]
    assert int(control.sum()) == 24 and not (control & masks[0, 0]).any()
    ys, xs = torch.nonzero(control, as_tuple=True)
    assert (int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1) == (8, 3)
    assert control[24:30, 20:30].sum() == 24, "wholly on the other film's text"


def test_with_every_films_text_in_one_place_the_control_is_its_mirror():
    box = (22, 4, 30, 8)  # top right on every film
    masks = masks_of([box], [box], [box])
    control = matched_controls(masks, masks.float().sum((0, 1)))
    assert int(control[0].sum()) == 32 and control[0, 0, 4:8, 2:10].all()  # top left


def test_two_regions_get_two_places_that_do_not_overlap():
    masks = masks_of([(0, 0, 6, 6), (26, 26, 32, 32)], [(13, 13, 19, 19)])
    control = matched_controls(masks[:1], masks.float().sum((0, 1)))[0, 0]
    assert int(control.sum()) == 72 and not (control & masks[0, 0]).any()


def test_a_region_with_no_free_place_of_its_size_has_no_control():
    masks = masks_of([(0, 0, 20, 32)], [(20, 0, 32, 32)])  # 20 of 32 columns: no room beside
    control = matched_controls(masks[:1], masks.float().sum((0, 1)))[0, 0]
    assert not control.any() and MATCH == 0.8
