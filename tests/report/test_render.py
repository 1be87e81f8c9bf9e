"""The audit page: what it shows, in which order, and that it stands alone."""

from __future__ import annotations

import re
from dataclasses import replace
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from report_helpers import forward_only, make_artifacts, make_audit, stripped

from medxai.report import write_report
from medxai.report.figures import save_png
from medxai.report.format import change, ci, delta, pvalue, seconds, value
from medxai.report.verdict import headline
from medxai.statistics.classification import Change


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.attrs.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.attrs


def _text(html: str) -> str:
    """The page's words with tags dropped and whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_every_image_is_a_relative_png_under_out(positive):
    index, _ = positive
    html = index.read_text(encoding="utf-8")
    sources = [a["src"] for tag, a in _tags(html) if tag == "img"]
    # 2 gallery rows, 3 sanity checks, 1 cleaning example, mean maps, share vs area, region
    # tests, 2 group bars
    assert len(sources) == 11
    for src in sources:
        assert not re.match(r"^[a-z]+:|^/", src), src
        path = (index.parent / src).resolve()
        assert path.is_relative_to(index.parent.resolve())
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_references_nothing_outside(positive):
    html = positive[0].read_text(encoding="utf-8")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, flags=re.I)
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_verdict_comes_first_and_states_strength_reasons_thresholds(positive):
    index, audit = positive
    html = index.read_text(encoding="utf-8")
    assert html.index('id="verdict"') < html.index('id="data"') < html.index('id="baseline"')
    verdict = _text(html[html.index('id="verdict"') : html.index("</section>")])
    assert "Relies on burned-in text — strong" in verdict
    assert audit.shortcut.summary in verdict
    for reason in audit.shortcut.reasons:
        assert reason in verdict
    assert "strong_flip_excess 0.15" in verdict
    assert "No evidence of reliance" not in html
    for row in audit.shortcut.table:  # the verdict table: every cue with its level and why
        assert f"{row.cue} {row.level}" in verdict and row.reason in verdict
    assert "Cues that remain after cleaning: something tied to the source." in verdict
    start = html.index('id="trait-warning"')
    warning = _text(html[start : html.index("</div>", start)])
    assert "border width predicts the label" in warning and "mean predicts" not in warning


def test_negative_verdict(negative):
    html = negative[0].read_text(encoding="utf-8")
    assert 'class="verdict negative"' in html
    assert "No evidence of reliance on burned-in text" in html
    assert "Relies on" not in html


def test_a_source_follower_no_kind_explains_is_never_green(tmp_path):
    audit = make_audit(relies=False)
    table = [replace(audit.shortcut.table[0], level="moderate"), *audit.shortcut.table[1:]]
    shortcut = replace(
        audit.shortcut, table=table, overall="moderate", cleared=False,
        headline=headline(table, "moderate", False),
    )  # fmt: skip
    html = write_report(tmp_path, replace(audit, shortcut=shortcut), make_artifacts(False))
    text = html.read_text(encoding="utf-8")
    assert 'class="verdict positive"' in text
    assert "Relies on something tied to the source — moderate" in text


def test_an_unmeasured_source_is_grey_not_green(tmp_path):
    audit = make_audit(relies=False)
    shortcut = replace(audit.shortcut, cleared=False, headline=headline([], "none", False))
    text = write_report(tmp_path, replace(audit, shortcut=shortcut), make_artifacts(False))
    html = text.read_text(encoding="utf-8")
    assert 'class="verdict unknown"' in html and "not ruled out" in html


def test_numbers_are_the_audit_numbers_formatted_with_cis(positive):
    index, audit = positive
    text = _text(index.read_text(encoding="utf-8"))
    covid = audit.evaluations.baseline["test_balanced.txt"].per_class["COVID-19"]
    lo, hi = covid.ci.recall
    assert f"{covid.recall:.2f} [{lo:.2f}, {hi:.2f}]" in text
    accuracy = audit.baseline.accuracy
    assert f"accuracy {accuracy:.2f} [{audit.baseline.ci.accuracy[0]:.2f}," in text
    change = audit.comparison["test_balanced.txt"].accuracy
    lo, hi = change.delta_ci
    assert f"{change.delta:+.2f} [{lo:+.2f}, {hi:+.2f}]" in text
    assert "igos++ 2 30.0% 3.0% 10.0 40.0%" in text  # saliency per method row


def test_confusion_matrices_show_the_counts(positive):
    index, audit = positive
    tables = re.findall(r'<table class="confusion">.*?</table>', index.read_text(), flags=re.S)
    expected = [
        *audit.evaluations.baseline.values(),
        *audit.evaluations.cleaned.values(),
    ]
    assert len(tables) == len(expected) == 4
    for table, metrics in zip(tables, expected, strict=True):
        cells = [int(v) for v in re.findall(r"<td[^>]*>(\d+)</td>", table)]
        assert cells == [c for row in metrics.confusion for c in row]


def test_optional_parts_absent(tmp_path):
    audit = stripped(make_audit(relies=True))
    artifacts = replace(make_artifacts(True), gallery=[], cleaning_examples=[])
    index = write_report(tmp_path, audit, artifacts)
    text = _text(index.read_text(encoding="utf-8"))
    assert "Saliency gallery (no images were explained): not run." in text
    assert "test_balanced.txt" not in text
    assert "Phantom dataset parameters" not in text
    assert "unreadable image" not in text and "could not be cleaned" not in text
    assert "Relies on burned-in text — strong" in text
    assert not (tmp_path / "audit.json").exists()
    assert not list(tmp_path.rglob(".*.tmp"))


def test_the_page_reads_the_record_written_to_audit_json(tmp_path):
    """audit.json read back (the codec) renders the same page as the record itself."""
    from medxai.codec import write_record
    from pipelines.audit import read_audit

    audit, artifacts = make_audit(relies=False), make_artifacts(False)
    write_record(tmp_path / "audit.json", audit)
    again = read_audit(tmp_path / "audit.json")
    assert again == audit
    first = write_report(tmp_path / "a", audit, artifacts).read_text(encoding="utf-8")
    assert write_report(tmp_path / "b", again, artifacts).read_text(encoding="utf-8") == first


def test_report_is_deterministic(tmp_path):
    audit, artifacts = make_audit(relies=True), make_artifacts(True)
    first = write_report(tmp_path / "a", audit, artifacts).parent
    second = write_report(tmp_path / "b", audit, artifacts).parent
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_save_png_draws_what_it_is_given(tmp_path):
    fig = Figure(figsize=(1, 1), dpi=20)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.ones((4, 4, 3)) * [1.0, 0.0, 0.0])
    ax.set_axis_off()
    path = save_png(fig, tmp_path / "red.png")

    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert (pixels[pixels.shape[0] // 2, pixels.shape[1] // 2] == [255, 0, 0]).all()


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: ci(0.8312, [0.781, 0.8849]), "0.83 [0.78, 0.88]"),
        (lambda: ci(0.5, None), "0.50"),
        (lambda: ci(None, [0.1, 0.2]), "–"),
        (lambda: pvalue(0.0001), "p < 0.001"),
        (lambda: pvalue(0.14), "p = 0.140"),
        (lambda: seconds(150), "2 min 30 s"),
        (lambda: seconds(3.21), "3.2 s"),
        (lambda: value(["igos++", "sigcam"]), "igos++, sigcam"),
        (lambda: value(False), "false"),
        (lambda: value(None), "–"),
    ],
)
def test_formatting(call, expected):
    assert call() == expected


def test_delta_is_signed_and_classed_by_sign_and_significance():
    assert str(delta(-0.02, (-0.05, 0.01))) == (
        '<span class="delta down">-0.02 [-0.05, +0.01]</span>'
    )
    assert 'class="delta up sig"' in str(delta(0.3, (0.26, 0.34)))
    assert str(delta(None)) == "–"
    assert str(change(Change(0.5, 0.8, 0.3, (0.26, 0.34)))) == str(delta(0.3, (0.26, 0.34)))


def test_a_model_that_did_not_learn_gets_an_amber_not_applicable_banner(tmp_path):
    audit = make_audit(relies=False)
    shortcut = replace(
        audit.shortcut, applicable=False, strength="not applicable", relies_on_text=False,
        summary="Not applicable: the model did not learn (it predicts normal for every film).",
    )  # fmt: skip
    index = write_report(tmp_path, replace(audit, shortcut=shortcut), make_artifacts(False))
    html = index.read_text(encoding="utf-8")
    assert 'class="verdict na"' in html
    assert "Not applicable — the model did not learn" in _text(html)
    assert "No evidence of text reliance" not in html and 'class="verdict negative"' not in html


def test_a_source_that_determines_the_class_is_a_data_warning_on_top(positive, tmp_path):
    index, audit = positive
    html = index.read_text(encoding="utf-8")
    assert audit.data.confound["train.txt"].strong  # src-a sends COVID-19 only
    assert html.index('id="data-warning"') < html.index('id="verdict"')
    mixed = {s: replace(c, strong=False) for s, c in audit.data.confound.items()}
    calm = replace(audit, data=replace(audit.data, confound=mixed))
    assert 'id="data-warning"' not in write_report(tmp_path, calm, make_artifacts(True)).read_text()


def test_the_transplant_follow_rates_are_shown_with_their_cis(positive):
    index, audit = positive
    text = _text(index.read_text(encoding="utf-8"))
    pooled = audit.shortcut.evidence.transplant.pooled
    lo, hi = pooled.follow_ci
    assert f"all test films {pooled.n} {pooled.follow_rate:.2f} [{lo:.2f}, {hi:.2f}]" in text
    assert "normal COVID-19 40 70%" in text  # per true class: 70% follow a COVID-only text


def test_the_sanity_section_marks_a_method_whose_maps_ignore_the_model(positive):
    index, audit = positive
    html = index.read_text(encoding="utf-8")
    section = _text(html[html.index('id="sanity"') : html.index('id="shortcut"')])
    assert "gradcam 3 12 of 12 0.80 0.60 40% NOT model-sensitive here" in section
    assert "igos++ 3 12 of 12 0.10 0.60 40% model-sensitive" in section
    assert not audit.sanity.methods["gradcam"].model_sensitive


def test_a_users_forward_only_model_is_described_and_what_did_not_run_is_said(tmp_path):
    """An ONNX audit: the model section, the methods left out and why, no sanity check, no
    retraining; audit.json reads back equal."""
    from html import unescape

    from medxai.codec import write_record
    from pipelines.audit import read_audit

    audit = forward_only(make_audit(relies=True))
    html = write_report(tmp_path, audit, make_artifacts(True)).read_text(encoding="utf-8")
    text = unescape(_text(html))
    assert "the user's onnx model" in text
    assert "ONNX model my_model.onnx" in text
    assert "gradcam : needs gradients; ONNX runs forward only" in text
    assert "Sanity check: not run (an ONNX model's weights cannot be re-initialised)" in text
    assert "Retraining on the cleaned data: not run (--no-retrain, the default" in text
    assert "Before vs after cleaning" not in text
    write_record(tmp_path / "audit.json", audit)
    assert read_audit(tmp_path / "audit.json") == audit


def test_a_budgets_cuts_and_the_estimate_are_in_the_report(tmp_path):
    from medxai.report.record import CostEstimate, ExplainPlan, StageCost

    audit = make_audit(relies=False)
    plan = ExplainPlan(1, 3, {"sigcam": {"iterations": 6}}, ["sigcam iterations 15 → 6"])
    estimate = CostEstimate(
        [StageCost("explain", 42.0, "6 films"), StageCost("sanity", 30.0, "3 films")],
        2e-3, 0.07, ["sigcam"], plan, 5.0, 900.0,
    )  # fmt: skip
    timings = {"explain": 40.0, "sanity": 33.0, "total": 73.0}
    html = write_report(
        tmp_path, replace(audit, estimate=estimate, timings=timings), make_artifacts(False)
    ).read_text(encoding="utf-8")
    text = _text(html)
    assert 'id="budget-cuts"' in html and "sigcam iterations 15 → 6" in text
    assert "time budget of 5.0 minutes (estimated 15.0 minutes before the cuts)" in text
    assert "estimated" in text and "42" in text and "72" in text  # the stage and the total
    plain = write_report(tmp_path / "plain", audit, make_artifacts(False)).read_text("utf-8")
    assert 'id="budget-cuts"' not in plain


def test_a_sampled_audit_says_so_with_the_widening(tmp_path):
    from medxai.report.record import TestSample

    audit = make_audit(relies=False)
    sample = TestSample(200, 201, 3200, 150, {"normal": 101, "COVID-19": 100}, 0)
    dataset = replace(audit.dataset, sample=sample)
    html = write_report(tmp_path, replace(audit, dataset=dataset), make_artifacts(False))
    text = _text(html.read_text(encoding="utf-8"))
    assert "a sample of 201 of the 3200 test films" in text and "150 patients" in text
    assert "about 4.0× as wide" in text  # √(3200 / 201)
