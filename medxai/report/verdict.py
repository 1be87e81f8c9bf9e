"""The verdict in words: the one place its prose is written (audit.json, the page and the CLI
all show these sentences)."""

from __future__ import annotations

from collections.abc import Sequence

from medxai.metrics.shortcut import INCONCLUSIVE, LEVELS, Reliance
from medxai.metrics.source_following import SourceFollowing
from medxai.report.record import (
    KindResult,
    NegativeControl,
    ShortcutResult,
    StyleTransplant,
    Transplant,
    VerdictRow,
)
from medxai.statistics.bootstrap import Interval
from medxai.statistics.classification import Change

MIN_GROUP = 10  # films of one true class before the headline names that class


def level_text(level: str, ci: Interval) -> str:
    """A level, with why a figure reached none: its lower bound decides."""
    if level != "none":
        return level
    return "the CI reaches zero" if not ci[0] > 0 else "its lower bound is below the weak threshold"


def _transplant_reason(moved: Transplant, level: str) -> str:
    f = moved.pooled
    if f is None:
        return moved.skipped or "transplant: no film had donors of two classes"
    return (
        f"transplanted text of another class's hospital moves {f.follow_rate:.0%} of "
        f"{f.n} decisions to that class, the same boxes blank {f.control_follow_rate:.0%}"
        f": {f.follow_excess:+.0%} (CI {f.follow_excess_ci[0]:+.0%} to "
        f"{f.follow_excess_ci[1]:+.0%}) → {level_text(level, f.follow_excess_ci)}"
    )


def reasons(reliance: Reliance, moved: Transplant, follow_level: str) -> list[str]:
    """Per causal test: what it found and the level it reached (or why it reached none)."""
    d, i = reliance.region_deletion, reliance.region_insertion
    return [
        _transplant_reason(moved, follow_level),
        f"blurring only the text changes {d.flip_rate:.0%} of decisions, blurring the same "
        f"shapes where other films carry text {d.control_flip_rate:.0%}: {d.flip_excess:+.0%} (CI "
        f"{d.flip_excess_ci[0]:+.0%} to {d.flip_excess_ci[1]:+.0%}) "
        f"→ {level_text(reliance.excess_level, d.flip_excess_ci)}",
        f"the text alone reproduces {i.keeps_class_rate:.0%} of decisions, the control region "
        f"alone {i.control_keeps_class_rate:.0%}: {i.gain:+.0%} (CI {i.gain_ci[0]:+.0%} to "
        f"{i.gain_ci[1]:+.0%}) → {level_text(reliance.gain_level, i.gain_ci)}",
    ]


def headline_follow(moved: Transplant) -> str:
    """The transplant in user terms, and one group by a rule fixed before looking: of the
    (true class, donor classes) groups of at least MIN_GROUP films whose class the donor's
    hospital does not send, the largest (then the first in class order), with its interval."""
    if moved.pooled is None:
        return ""
    groups = [
        g
        for split in moved.per_split.values()
        for g in split.per_class
        if g.n >= MIN_GROUP and g.label not in g.target.split(" or ")
    ]
    top = max(groups, key=lambda g: g.n, default=None)  # max keeps the first of equals
    line = (
        f"{moved.pooled.follow_rate:.0%} of decisions move to another class when the film "
        f"carries that class's hospital text ({moved.pooled.control_follow_rate:.0%} with the "
        "same boxes pasted blank)"
    )
    if top is not None:
        lo, hi = top.excess_ci or (float("nan"), float("nan"))
        line += (
            f"; {top.follow_rate:.0%} of {top.n} {top.label} films are called {top.target} when "
            f"they carry the text of a hospital whose films are {top.target} (at "
            f"least 90% of them), {top.control_follow_rate:.0%} with the same boxes blank "
            f"(excess CI {lo:+.0%} to {hi:+.0%})"
        )
    return line


def summary(
    reliance: Reliance, moved: Transplant, strength: str, not_learned: str, unsure: str = ""
) -> str:
    """The verdict's headline sentence (`unsure`: why it is inconclusive)."""
    if not_learned:
        return f"Not applicable: the model did not learn ({not_learned}); no verdict on it."
    follow = headline_follow(moved)
    if not reliance.n_images and not follow:
        return "No burned-in text was detected on the test images: nothing to rely on."
    d = reliance.region_deletion
    flips = (
        f"blurring only the text changes {d.flip_rate:.0%} of its decisions on "
        f"{reliance.n_images} test images with text ({d.control_flip_rate:.0%} when the same "
        f"shapes are blurred where other films carry text)"
    )
    evidence = f"{follow}; {flips}" if follow else flips
    if strength == INCONCLUSIVE:
        return f"Inconclusive whether the model relies on burned-in text ({unsure}): {evidence}."
    if strength != "none":
        return f"The model relies on burned-in text ({strength}): {evidence}."
    return f"No evidence that the model relies on burned-in text: {evidence}."


def retrain_sentence(split: str, change: Change) -> str:
    """What cleaning and retraining did to macro-F1 on `split`."""
    lo, hi = change.delta_ci or (float("nan"), float("nan"))
    return (
        f"After cleaning and retraining, macro-F1 on {split} went from {change.before:.2f} to "
        f"{change.after:.2f} ({change.delta:+.2f}, 95% CI {lo:+.2f} to {hi:+.2f})."
    )


def source_reason(f: SourceFollowing, level: str) -> str:
    """The source row: accuracy on films whose source sends their class against the rest."""
    lo, hi = f.gap_ci
    return (
        f"on {f.split}, films whose source sends their own class are decided right "
        f"{f.accuracy_on:.0%} of the time ({f.n_on} films), films whose source sends another "
        f"class {f.accuracy_off:.0%} ({f.n_off} films; {f.follow_rate:.0%} of them are called "
        f"their source's class): the source decides {f.gap:+.0%} (CI {lo:+.0%} to {hi:+.0%}) "
        f"of decisions → {level_text(level, f.gap_ci)}"
    )


def kind_reason(kind: KindResult) -> str:
    """A region kind's row: blurring (removing) its regions against its control, and the
    regions alone against the film without them."""
    r = kind.reliance
    if not r.n_images:
        return f"no test film carries {kind.cue}"
    d, i = r.region_deletion, r.region_insertion
    return (
        f"removing {kind.cue} changes {d.flip_rate:.0%} of {r.n_images} decisions, its control "
        f"{d.control_flip_rate:.0%}: {d.flip_excess:+.0%} (CI {d.flip_excess_ci[0]:+.0%} to "
        f"{d.flip_excess_ci[1]:+.0%}) → {level_text(r.excess_level, d.flip_excess_ci)}; "
        f"alone it reproduces {i.keeps_class_rate:.0%}, its control alone "
        f"{i.control_keeps_class_rate:.0%}: {i.gain:+.0%} (CI {i.gain_ci[0]:+.0%} to "
        f"{i.gain_ci[1]:+.0%}) → {level_text(r.gain_level, i.gain_ci)}"
        + (f"; {r.n_unmatched} films without a matched control left out" if r.n_unmatched else "")
        + (f"; inconclusive: {r.inconclusive}" if r.inconclusive else "")
        + (f"; none: {r.rare}" if r.rare else "")
    )


def style_reason(style: StyleTransplant, level: str) -> str:
    """A style transplant: how often decisions follow a donor hospital's look."""
    f = style.follow
    lo, hi = ci = f.follow_excess_ci
    return (
        f"{style.trait} of another class's hospital moves {f.follow_rate:.0%} of {f.n} "
        f"decisions to that class, of the film's own {f.control_follow_rate:.0%}: "
        f"{f.follow_excess:+.0%} (CI {lo:+.0%} to {hi:+.0%}) → {level_text(level, ci)}"
    )


def headline(rows: Sequence[VerdictRow], overall: str, cleared: bool) -> str:
    """The banner: every cue that reaches a level, highest first; or why there is none."""
    if overall == "not applicable":
        return "Not applicable — the model did not learn"
    found = [row for row in rows if row.level in LEVELS[1:]]
    if found:  # the named cues first, the source (whatever carries it) last
        rank = ("strong", "moderate", "weak")
        found.sort(key=lambda row: (rank.index(row.level), row.kind == "source"))
        return "Relies on " + "; ".join(f"{row.cue} — {row.level}" for row in found)
    unsure = [row.cue for row in rows if row.level == INCONCLUSIVE]
    if unsure:
        return "Inconclusive — the evidence cannot tell the levels apart for " + "; ".join(unsure)
    if not cleared:
        return "No cue reached a level — but reliance on the source is not ruled out"
    cues = [row.cue for row in rows if row.kind != "source"] + ["the source"]
    return f"No evidence of reliance on {', '.join(cues[:-1])} or {cues[-1]}"


def _decided_share(reliance: Reliance, moved: Transplant) -> str:
    """The transplant's follow excess (else the flip excess) as "44% (CI 34% to 54%)"."""
    f = moved.pooled
    value, (lo, hi) = (
        (f.follow_excess, f.follow_excess_ci) if f is not None
        else (reliance.region_deletion.flip_excess, reliance.region_deletion.flip_excess_ci)
    )  # fmt: skip
    return f"{value:.0%} (CI {lo:+.0%} to {hi:+.0%})"


def negative_sentence(found: ShortcutResult, negative: NegativeControl | None) -> str:
    """The negative control beside the model under audit, or that none was run."""
    if negative is None:
        return (
            "No negative control was run: the model was not retrained on the cleaned films "
            "(--retrain), so the tests were not tried on a model that cannot read the text."
        )
    text = found.kinds["text"].reliance
    how = "transplant follow excess" if found.evidence.transplant.pooled else "flip excess"
    return (
        f"Negative control: the text decides {_decided_share(text, found.evidence.transplant)} "
        f"of the audited model's decisions and "
        f"{_decided_share(negative.reliance, negative.transplant)} of the model retrained on "
        f"cleaned films, which never saw it ({how}; its verdict by the same rule: "
        f"{negative.strength})."
    )
