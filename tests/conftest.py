"""Test-session settings and fixtures shared by every test module."""

import contextlib
import os
import shutil
import signal
import threading

import pytest
import torch

from medxai.report.pdf import process_tree

# Test tensors are tiny: one intra-op thread is faster for them, and it keeps the suite
# from stalling in OpenMP spin-waits when the 2-core CI machine has other work.
torch.set_num_threads(1)

pytest_plugins = ["tests.audit_runs"]  # tiny_audit, tiny_audit_of_cleaned

CLOSE_SECONDS = 60  # closing Chromium takes about a second; past this it is hung


def _chromium_path() -> str:
    """Debian's Chromium (never a downloaded one); CI sets MEDXAI_REQUIRE_BROWSER=1."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("MEDXAI_REQUIRE_BROWSER"):
            pytest.fail("MEDXAI_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


def _kill_after(seconds: float) -> threading.Timer:
    """A watchdog: if closing Chromium has not returned in time, kill its process tree, which
    makes Playwright's pending close return instead of hanging the session."""

    def kill() -> None:
        for pid in process_tree(os.getpid())[1:]:  # the Playwright driver and Chromium
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(seconds, kill)
    timer.daemon = True
    timer.start()
    return timer


@pytest.fixture(scope="module")
def browser():
    """One Chromium per module that needs it, so none idles through the rest of the suite."""
    path = _chromium_path()
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    playwright = manager.start()
    chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
    yield chromium
    watchdog = _kill_after(CLOSE_SECONDS)
    try:
        with contextlib.suppress(Exception):
            chromium.close()
        with contextlib.suppress(Exception):
            manager.__exit__(None, None, None)
    finally:
        watchdog.cancel()


@pytest.fixture()
def open_page(browser):
    """open_page(index) → (page, problems): console errors, page errors, failed requests."""
    pages = []

    def open_(index):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        pages.append(page)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
        )
        page.goto(index.resolve().as_uri(), wait_until="load")
        return page, problems

    yield open_
    for page in pages:
        page.close()
