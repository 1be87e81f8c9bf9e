"""Print an audit's HTML report to one PDF through headless Chromium (Playwright).

The page is opened from its file:// URL, so its figures load from OUT/figures; the template's
print styles break pages between sections and put the run's settings on the last page.
Chromium runs under a watchdog: if printing or closing outlasts its time, the processes this
module started are killed, so a stuck browser never hangs the command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medxai.atomic import atomic_write_bytes
from medxai.errors import MedxaiError, first_line

PDF_NAME = "report.pdf"
PRINT_SECONDS = 120.0  # opening and printing a report takes a few seconds
CLOSE_SECONDS = 30.0  # closing Chromium takes about a second; past this it is hung
INSTALL = (
    "pip install playwright, then Chromium: apt-get install chromium (or playwright install "
    "chromium)"
)
SYSTEM_CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MARGIN = {"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"}
FOOTER = (
    '<div style="font-size: 8px; color: #5b6470; width: 100%; padding: 0 12mm; '
    'display: flex; justify-content: space-between"><span class="title"></span>'
    '<span>page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>'
)
MISSING_IMAGES = (
    "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
)


@dataclass(frozen=True)
class Printer:
    """What printing needs, found before any work: a Chromium for Playwright to drive."""

    executable: str | None  # None: the Chromium Playwright downloaded itself


def find_printer() -> Printer:
    """Playwright and a Chromium (the system's first, else Playwright's own), or a one-line
    error that says what to install."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise MedxaiError(f"--pdf needs Playwright and Chromium: {INSTALL}") from None
    for name in SYSTEM_CHROMIUM:
        path = shutil.which(name)
        if path is not None:
            return Printer(path)
    if _downloaded_chromium():
        return Printer(None)
    raise MedxaiError(f"--pdf needs Chromium, which is not installed: {INSTALL}")


def _downloaded_chromium() -> bool:
    """Whether `playwright install chromium` has put Playwright's own Chromium in place."""
    from playwright.sync_api import Error, sync_playwright

    try:
        with sync_playwright() as playwright:
            path = playwright.chromium.executable_path
    except Error:
        return False
    return bool(path) and Path(path).is_file()


def write_pdf(
    index: Path, pdf: Path, printer: Printer | None = None, seconds: float = PRINT_SECONDS
) -> Path:
    """Print the report page `index` (OUT/index.html) to `pdf`, written atomically."""
    index, pdf = Path(index), Path(pdf)
    if not index.is_file():
        raise MedxaiError(f"{index} does not exist: no report to print")
    printer = printer or find_printer()
    from playwright.sync_api import Error

    watchdog = _Watchdog()
    try:
        with _chromium(printer, watchdog, seconds) as browser:
            page = browser.new_page()
            page.set_default_timeout(seconds * 1000)
            page.goto(index.resolve().as_uri(), wait_until="load")
            missing = page.eval_on_selector_all("img", MISSING_IMAGES)
            if missing:
                raise MedxaiError(
                    f"{index}: figure(s) {', '.join(missing[:5])} did not load; the report "
                    f"folder is incomplete (re-run the audit with --out {index.parent})"
                )
            data = page.pdf(
                format="A4", print_background=True, margin=MARGIN,
                display_header_footer=True, header_template="<span></span>",
                footer_template=FOOTER,
            )  # fmt: skip
    except Error as err:
        if watchdog.fired:
            raise MedxaiError(
                f"Chromium did not print {index} within {watchdog.seconds:.0f} s and was stopped"
            ) from None
        raise MedxaiError(f"Chromium could not print {index}: {first_line(err)}") from None
    atomic_write_bytes(pdf, data)
    return pdf


@contextlib.contextmanager
def _chromium(printer: Printer, watchdog: _Watchdog, seconds: float) -> Iterator:
    """A headless Chromium, closed on the way out; the watchdog guards printing and closing."""
    from playwright.sync_api import sync_playwright

    before = set(_children(os.getpid()))
    manager = sync_playwright()
    playwright = manager.start()
    watchdog.watch([pid for pid in _children(os.getpid()) if pid not in before])  # the driver
    watchdog.arm(seconds)
    try:
        browser = playwright.chromium.launch(
            executable_path=printer.executable, timeout=seconds * 1000
        )
        try:
            yield browser
        finally:
            watchdog.arm(CLOSE_SECONDS)
            with contextlib.suppress(Exception):
                browser.close()
    finally:
        with contextlib.suppress(Exception):
            manager.__exit__(None, None, None)
        watchdog.cancel()


class _Watchdog:
    """Kills the Playwright driver and everything below it (Chromium) when its time runs out,
    which makes Playwright's pending call fail instead of waiting for ever."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.fired = False
        self.seconds = 0.0
        self._timer: threading.Timer | None = None

    def watch(self, pids: list[int]) -> None:
        self.pids = pids

    def arm(self, seconds: float) -> None:
        self.cancel()
        self.seconds = seconds
        self._timer = threading.Timer(seconds, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _kill(self) -> None:
        self.fired = True
        for pid in [p for root in self.pids for p in process_tree(root)]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def _children(pid: int) -> list[int]:
    return [child for child, parent in _parents().items() if parent == pid]


def process_tree(root: int) -> list[int]:
    """`root` and every live process below it."""
    parents = _parents()
    found, frontier = [root], [root]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found
