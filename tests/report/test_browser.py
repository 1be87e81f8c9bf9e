"""The audit page in a real headless Chromium (Debian's, never a downloaded one): it loads
without errors, shows the verdict, its tables and figures, and looks like a verdict page."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

RED, GREEN = (179, 38, 30), (30, 123, 52)  # the verdict banner's headline colours
MIN_TABLES = 20  # data 5, baseline 6, gallery 2, sanity 1, shortcut 6, cleaning 1, retrain 8


def _share_of(pixels: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float(np.mean(np.abs(pixels.astype(int) - colour).max(axis=2) <= 12))


@pytest.mark.parametrize(
    ("report", "headline", "colour", "other"),
    [
        (
            "positive",
            "Relies on burned-in text — strong; something tied to the source — strong",
            RED,
            GREEN,
        ),
        (
            "negative",
            "No evidence of reliance on burned-in text, the film's border or the source",
            GREEN,
            RED,
        ),
    ],
    ids=["relies-on-text", "no-reliance"],
)
def test_page_renders_in_chromium(open_page, request, report, headline, colour, other):
    index, _ = request.getfixturevalue(report)
    page, problems = open_page(index)
    assert problems == []
    assert page.inner_text("#verdict .headline").strip() == headline
    assert page.locator("table").count() >= MIN_TABLES
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
    )
    assert len(images) == 11  # 2 gallery, 3 sanity, 1 cleaning, 5 charts
    assert all(complete and width > 0 for _, complete, width in images), images
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    assert shot.shape[0] > 3000  # the whole report, not one screen
    assert shot.std() > 20  # not a blank page
    box = page.locator("#verdict .headline").bounding_box()
    assert box["y"] < 900, "the verdict is on the first screen (after any data warning)"
    top = shot[: int(box["y"] + box["height"])]  # header, data warnings, verdict headline
    assert _share_of(top, colour) > 0.03, "the verdict banner's colour is missing on top"
    assert _share_of(top, other) < 0.001, "the other verdict's colour shows on top"
