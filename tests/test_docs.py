"""The README's links lead somewhere, and the documentation site builds strictly (a broken link,
a missing anchor or an API reference that does not resolve fails it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)


def relative_links(markdown: str) -> list[str]:
    """Every link and image target outside code blocks that is not a URL."""
    text = FENCE.sub("", markdown)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def heading_text(line: str) -> str:
    return re.sub(r"[`*_]", "", line.lstrip("#").split("{#")[0]).strip()


def github_slug(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc slugify (what the site's anchors are)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def anchors(page: Path) -> set[str]:
    """Anchors that resolve both on GitHub and on the site: headings (outside code blocks)
    whose two slugs agree, and explicit `{#id}` ids."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set(re.findall(r"\{#([\w-]+)\}", text))
    for line in text.splitlines():
        if re.match(r"#{1,6} ", line):
            title = heading_text(line)
            if github_slug(title) == mkdocs_slug(title):
                found.add(mkdocs_slug(title))
    return found


def test_every_relative_link_of_the_readme_resolves():
    readme = ROOT / "README.md"
    links = relative_links(readme.read_text(encoding="utf-8"))
    assert links, "the README links into the docs"
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (readme.parent / path).resolve() if path else readme
        if not target.is_file():
            broken.append(f"{link}: no file {target.relative_to(ROOT)}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with anchor #{anchor} in {path or 'README.md'}")
    assert broken == []


def test_the_link_checker_sees_a_broken_link_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Set up\n\n```\n# not a heading\n```\n", encoding="utf-8")
    assert anchors(page) == {"title", "set-up"}
    assert relative_links("[a](page.md#set-up) `[b](x.md)` [c](https://x.org) ![d](i.png)") == [
        "page.md#set-up",
        "i.png",
    ]
    assert mkdocs_slug("Speed design of I-GOS, iGOS++ and SIGCAM") == github_slug(
        "Speed design of I-GOS, iGOS++ and SIGCAM"
    )
    assert mkdocs_slug("`medxai audit` — the audit") != github_slug("`medxai audit` — the audit")


def test_the_documentation_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "report" / "index.html").is_file()
