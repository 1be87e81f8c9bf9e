"""A figure without meaning (NaN, None) reads "–" to a reader, never "nan", and the caption of
its table says why."""

from __future__ import annotations

import math
import re
from dataclasses import fields, is_dataclass, replace
from html import unescape

import pytest
from report_helpers import make_artifacts, make_audit

from medxai.report import write_report
from medxai.report.format import DASH, any_absent, ci, delta, num, pct, pvalue, seconds, value

NAN = float("nan")
NOT_A_NUMBER = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _visible(html: str) -> str:
    """The words a reader sees: no style sheet, no tags, whitespace collapsed."""
    html = re.sub(r"<style.*?</style>", " ", html, flags=re.DOTALL)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _all_nan(item: object) -> object:
    """`item` with every float in it (fields, dict values, lists, intervals) made NaN."""
    if isinstance(item, float):
        return NAN
    if is_dataclass(item) and not isinstance(item, type):
        return replace(item, **{f.name: _all_nan(getattr(item, f.name)) for f in fields(item)})
    if isinstance(item, dict):
        return {k: _all_nan(v) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return type(item)(_all_nan(v) for v in item)
    return item


@pytest.mark.parametrize(
    "call",
    [
        lambda: num(NAN),
        lambda: ci(NAN, (0.1, 0.2)),
        lambda: pct(NAN),
        lambda: pct(math.inf),
        lambda: str(delta(NAN, (NAN, NAN))),
        lambda: pvalue(NAN),
        lambda: seconds(NAN),
        lambda: value(NAN),
        lambda: value([]),
    ],
)
def test_a_figure_without_meaning_is_a_dash(call):
    assert call() == DASH


def test_an_interval_without_meaning_is_left_out():
    assert ci(0.5, (NAN, NAN)) == "0.50"
    assert str(delta(0.3, (NAN, 0.4))) == '<span class="delta up">+0.30</span>'
    assert value([0.5, NAN]) == f"0.5, {DASH}"


def test_any_absent_reads_the_named_figures_of_one_record_or_many():
    audit = make_audit(relies=True)
    summaries = audit.shortcut.evidence.saliency.values()
    assert not any_absent(summaries, ("lift",))
    assert any_absent([replace(s, lift=NAN) for s in summaries], ("lift",))
    assert any_absent(replace(audit.shortcut.evidence, mean_text_area_share=None),
                      ("mean_text_area_share",))  # fmt: skip


def test_a_film_without_text_has_no_lift_and_the_caption_says_why(tmp_path):
    audit = make_audit(relies=True)
    entry = audit.shortcut.explained[0]
    no_text = {m: replace(n, mass_share=0.0, area_share=0.0, lift=NAN)
               for m, n in entry.methods.items()}  # fmt: skip
    explained = [replace(entry, methods=no_text), *audit.shortcut.explained[1:]]
    audit = replace(audit, shortcut=replace(audit.shortcut, explained=explained))
    text = _visible(write_report(tmp_path, audit, make_artifacts(True)).read_text("utf-8"))
    assert not NOT_A_NUMBER.search(text)
    first, second = (f"{e.file}: how much of each map lies on the text" for e in explained)
    assert f"{first} (– : no text on this film, so no lift)" in text
    assert f"{second} (–" not in text  # a film with text: no dash, no note


def test_a_report_whose_figures_are_all_nan_prints_no_nan(tmp_path):
    audit = make_audit(relies=True)
    audit = replace(_all_nan(audit), config=audit.config)  # the settings stay as set
    text = _visible(write_report(tmp_path, audit, make_artifacts(True)).read_text("utf-8"))
    found = [text[max(0, m.start() - 80) : m.end() + 20] for m in NOT_A_NUMBER.finditer(text)]
    assert found == []
    for note in (
        "(– : no explained film has text, so nothing to measure)",
        "(– : no test film with detected text, or none with a place for the control region, "
        "so no figure)",
        "(– : no film of this source has detected text, so no region test)",
    ):
        assert note in text
