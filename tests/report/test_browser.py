"""The audit page in a real headless Chromium (Debian's, never a downloaded one): it loads
without errors, shows the verdict, its tables and figures, and looks like a verdict page."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

RED, GREEN = (179, 38, 30), (30, 123, 52)  # the verdict banner's headline colours
MIN_TABLES = 20  # data 4, baseline 6, gallery 2, shortcut 4, cleaning 1, retrain 8, setup 3


def _browser_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("MEDXAI_REQUIRE_BROWSER"):
            pytest.fail("MEDXAI_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="module")
def browser():
    path = _browser_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _load(browser, index):
    """Open the page; return it with every console error, page error and failed request."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on(
        "response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
    )
    page.goto(index.resolve().as_uri(), wait_until="load")
    return page, problems


def _share_of(pixels: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float(np.mean(np.abs(pixels.astype(int) - colour).max(axis=2) <= 12))


@pytest.mark.parametrize(
    ("report", "headline", "colour", "other"),
    [
        ("positive", "Relies on burned-in text — strong", RED, GREEN),
        ("negative", "No evidence of text reliance", GREEN, RED),
    ],
    ids=["relies-on-text", "no-reliance"],
)
def test_page_renders_in_chromium(browser, request, report, headline, colour, other):
    index, _ = request.getfixturevalue(report)
    page, problems = _load(browser, index)
    try:
        assert problems == []
        assert page.inner_text("#verdict .headline").strip() == headline
        assert page.locator("table").count() >= MIN_TABLES
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        assert len(images) == 8
        assert all(complete and width > 0 for _, complete, width in images), images
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    finally:
        page.close()
    assert shot.shape[0] > 3000  # the whole report, not one screen
    assert shot.std() > 20  # not a blank page
    top = shot[:400]  # header and verdict headline
    assert _share_of(top, colour) > 0.03, "the verdict banner's colour is missing on top"
    assert _share_of(top, other) < 0.001, "the other verdict's colour shows on top"
