"""The shortcut sets of `benchmarks/shortcut_sets.py`: layout read back by medxai, source-label
association at known strengths, and each cue where the truth says it is."""

import csv
import hashlib
import sys
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.stats import ks_2samp

from medxai.data.layouts import read_dataset
from medxai.data.user_regions import read_user_regions
from medxai.errors import DatasetError
from medxai.statistics.confound import source_confound

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import shortcut_sets as ss  # noqa: E402

SIZE = 96
N = 16  # films per class in train.txt and test.txt
BALANCED = 12
DARK = 0.08 * 255  # a frame band's mean lies below (level <= 0.05, noise 0.01)


def _make(root: Path, cue: str, strength: float = 1.0, **kwargs) -> ss.ShortcutSet:
    kwargs = {"n_per_class": N, "size": SIZE, "seed": 3, "balanced_per_class": BALANCED} | kwargs
    return ss.make_set(root, cue, strength, **kwargs)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """cue (+ "-null" for the neutralised twin) → the set, all of seed 3 at strength 1."""
    made = {}
    for cue in ("frame", "tone", "device"):
        for neutralised in (False, True):
            name = cue + ("-null" if neutralised else "")
            made[name] = _make(tmp_path_factory.mktemp(name), cue, neutralised=neutralised)
    return made


def _pixels(made: ss.ShortcutSet, film: ss.Film) -> np.ndarray:
    return cv2.imread(str(made.root / film.image), cv2.IMREAD_UNCHANGED)


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _counts(records) -> dict[str, dict[str, int]]:
    """Films per source and label of records read back, sources and labels in order."""
    counts = {source: dict.fromkeys(ss.CLASSES, 0) for source in ss.SOURCES}
    for r in records:
        counts[r.source][r.label] += 1
    return counts


def _confound(records):
    return source_confound(_counts(records))


def test_reads_back_with_sources(sets):
    made = sets["frame"]
    index = read_dataset(made.root, classes=ss.CLASSES)
    assert (index.problems, index.warnings) == ([], [])
    assert index.classes == ss.CLASSES
    assert sorted(index.records) == sorted(ss.SPLITS)
    films = {f.image: f for f in made.films}
    patients = {}
    for split, records in index.records.items():
        expected = N if split != "test_balanced.txt" else BALANCED
        assert Counter(r.label for r in records) == dict.fromkeys(ss.CLASSES, expected)
        for r in records:
            film = films[index.relative(r)]
            assert (r.patient_id, r.label, r.source, r.split) == (
                film.patient_id, film.label, film.source, film.split,
            )  # fmt: skip
            assert cv2.imread(str(r.path), cv2.IMREAD_UNCHANGED).shape == (SIZE, SIZE)
        views = defaultdict(list)
        for r in records:
            views[r.patient_id].append(films[index.relative(r)])
        twice = [v for v in views.values() if len(v) == 2]
        assert twice, f"{split}: no patient with two films"
        for a, b in twice:  # one patient: one radiograph, label and source
            assert (a.radiograph, a.label, a.source) == (b.radiograph, b.label, b.source)
        patients[split] = set(views)
    assert not patients["train.txt"] & (patients["test.txt"] | patients["test_balanced.txt"])
    # what the set says it wrote is what medxai reads
    assert made.counts == {split: _counts(index.records[split]) for split in ss.SPLITS}


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_cramers_v_of_sources_is_the_strength(tmp_path, strength):
    """A share s of each class's patients come from their class's sources, the rest evenly
    from all four: Cramér's V of source and label is s (films of two-view patients and
    rounding move it by a little)."""
    made = _make(tmp_path, "none", strength, n_per_class=32, size=64, balanced_per_class=16)
    index = read_dataset(made.root, classes=ss.CLASSES)
    train = _confound(index.records["train.txt"])
    assert train.cramers_v == pytest.approx(strength, abs=0.1)
    if strength == 1.0:  # sources determine the label
        assert train.cramers_v_raw == 1.0 and train.source_accuracy == 1.0  # corrected < 1: 4 × 2
    if strength == 0.0:
        assert not train.strong and train.source_accuracy < 0.65
    assert _confound(index.records["test.txt"]).cramers_v == pytest.approx(strength, abs=0.1)
    balanced = _confound(index.records["test_balanced.txt"])
    assert balanced.cramers_v < 0.15 and not balanced.strong


def test_a_dose_series_shares_its_films():
    """Sets of one seed at two strengths: the same patients, films and labels; sources differ."""
    per_class = {"train.txt": 30, "test.txt": 30, "test_balanced.txt": 10}
    low, high = (ss._plan(4, strength, per_class) for strength in (0.0, 0.7))
    assert [(j.image, j.patient_id, j.label) for j in low] == [
        (j.image, j.patient_id, j.label) for j in high
    ]
    assert [j.source for j in low] != [j.source for j in high]


def test_balanced_split_draws_sources_whatever_the_label(sets):
    """Every class spread over the four sources as evenly as its patients allow (one more or
    less, and a patient's second film), at strength 1 as at 0."""
    made = sets["tone"]
    counts = made.counts["test_balanced.txt"]
    for label in ss.CLASSES:
        per_source = [counts[source][label] for source in ss.SOURCES]
        assert max(per_source) - min(per_source) <= 2, (label, per_source)
    assert source_confound(made.counts["test.txt"]).cramers_v_raw == 1.0


def _dark_run(image: np.ndarray) -> list[int]:
    """Per side (left, top, right, bottom): how many rows/columns from the edge are dark."""
    lines = (image.T, image, image.T[::-1], image[::-1])
    return [int(np.argmin(np.append(line.mean(1) < DARK, False))) for line in lines]


def test_frame_is_dark_at_the_stated_widths_and_nowhere_else(sets):
    made, null = sets["frame"], sets["frame-null"]
    framed = [f for f in made.films if f.cued]
    assert {f.source for f in framed} == ss.CUE_SOURCES
    assert all(f.frame is None for f in made.films if f.source not in ss.CUE_SOURCES)
    for film in framed:
        runs = _dark_run(_pixels(made, film))
        for width, run in zip(film.frame, runs, strict=True):
            assert 0.06 * SIZE - 1 <= width <= 0.12 * SIZE + 1
            assert run >= width - 1  # the band is dark over its stated width
            if film.radiograph == "RG1_UNCR.dcm":  # the chest film has no dark edge of its own
                assert run <= width + 1
    unframed = [(made, f) for f in made.films if not f.cued] + [(null, f) for f in null.films]
    for owner, film in unframed:
        runs = _dark_run(_pixels(owner, film))
        assert min(runs) < 0.06 * SIZE, f"{film.image}: dark on all four sides, {runs}"
    assert not any(f.cued for f in null.films)


def test_neutralising_changes_only_the_cued_films(sets):
    for cue in ("frame", "tone", "device"):
        made, null = sets[cue], sets[f"{cue}-null"]
        for film, twin in zip(made.films, null.films, strict=True):
            same = np.array_equal(_pixels(made, film), _pixels(null, twin))
            assert same == (film.source not in ss.CUE_SOURCES), (cue, film.image)
            assert (film.label, film.source, film.radiograph) == (
                twin.label, twin.source, twin.radiograph,
            )  # fmt: skip


def test_tone_sources_have_another_histogram(sets):
    made, null = sets["tone"], sets["tone-null"]
    for film, twin in zip(made.films, null.films, strict=True):
        if film.source in ss.CUE_SOURCES:  # the written film is the curve of its twin
            expected = ss._tone(_pixels(null, twin) / 255.0) * 255
            assert np.abs(_pixels(made, film) - expected).max() <= 2.5
    for owner, far_apart in ((made, True), (null, False)):
        cue, rest = [], []
        for film in owner.films:
            if film.split == "test_balanced.txt":  # sources independent of the label
                (cue if film.source in ss.CUE_SOURCES else rest).append(_pixels(owner, film))
        medians = np.median(np.stack(cue), (1, 2)), np.median(np.stack(rest), (1, 2))
        statistic = ks_2samp(np.ravel(cue), np.ravel(rest)).statistic
        if far_apart:
            assert statistic > 0.2 and medians[0].mean() < medians[1].mean() - 20
        else:
            assert statistic < 0.2


def test_device_boxes_cover_the_device_and_lie_inside(sets):
    made, null = sets["device"], sets["device-null"]
    with made.regions.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "kind", "x0", "y0", "x1", "y1"]
    expected = {
        f.image for f in made.films if f.split != "train.txt" and f.source in ss.CUE_SOURCES
    }
    assert {r["image"] for r in rows} == expected and len(rows) == len(expected)
    assert {r["kind"] for r in rows} == {"device"}
    films = {f.image: f for f in made.films}
    twins = {f.image: f for f in null.films}
    for row in rows:
        x0, y0, x1, y1 = box = tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
        film = films[row["image"]]
        assert film.device == box and film.cued
        changed = _pixels(made, film) != _pixels(null, twins[row["image"]])
        ys, xs = np.nonzero(changed)
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        assert xs.max() - xs.min() + 1 >= 0.8 * (x1 - x0)  # and the box is tight
        assert ys.max() - ys.min() + 1 >= 0.8 * (y1 - y0)
    # a null run tests the very regions where the device would be
    assert null.regions.read_bytes() == made.regions.read_bytes()
    assert sets["frame"].regions is None and sets["tone"].regions is None


def test_regions_read_back_as_the_audit_reads_them(sets):
    made = sets["device"]
    index = read_dataset(made.root, classes=ss.CLASSES)
    tests = [index.relative(r) for split in index.test_splits() for r in index.records[split]]
    every = [index.relative(r) for records in index.records.values() for r in records]
    regions = read_user_regions(made.regions, dict.fromkeys(tests, (SIZE, SIZE)), every)
    assert regions.kinds == ("device",) and regions.ignored == 0
    drawn = {f.image: [f.device] for f in made.films if f.cued and f.split != "train.txt"}
    assert {image: list(boxes) for image, boxes in regions.boxes["device"].items()} == drawn


def test_pneumonia_is_a_soft_central_opacity():
    """The same film drawn as pneumonia and as normal: brighter only, by a soft
    amount, and mostly in the central region."""
    for index in range(12):
        normal, pneumonia = (
            ss.render(ss.Job("train.txt", index, index, label, "H0"), 5, SIZE, "none", False)[0]
            for label in ss.CLASSES
        )
        diff = pneumonia.astype(int) - normal.astype(int)
        assert diff.min() >= 0 and 8 <= diff.max() <= 200
        a, b = round(0.15 * SIZE), round(0.85 * SIZE)
        assert diff[a:b, a:b].sum() >= 0.9 * diff.sum()


def test_same_seed_same_bytes_and_tuning_heldout_differ(tmp_path, sets):
    again = _make(tmp_path / "again", "frame")
    assert _digests(again.root) == _digests(sets["frame"].root)
    assert _make(tmp_path / "again", "frame").films == again.films  # same set: written again
    with pytest.raises(DatasetError, match="not empty"):
        _make(tmp_path / "again", "tone")
    assert not set(ss.TUNING_SEEDS) & set(ss.HELDOUT_SEEDS)
    tuning = _make(tmp_path / "tuning", "device", seed=ss.TUNING_SEEDS[0])
    heldout = _make(tmp_path / "heldout", "device", seed=ss.HELDOUT_SEEDS[0])
    images = [
        {d for name, d in _digests(s.root).items() if name.endswith(".png")}
        for s in (tuning, heldout)
    ]
    assert len(images[0]) == len(tuning.films) and not images[0] & images[1]


@pytest.mark.parametrize(
    "bad",
    [{"cue": "marker"}, {"strength": 1.5}, {"n_per_class": 0}, {"size": 32}, {"seed": -1}],
)
def test_bad_parameters_are_user_errors(tmp_path, bad):
    args = {"cue": "frame", "strength": 1.0, "n_per_class": 2} | bad
    with pytest.raises(DatasetError):
        ss.make_set(tmp_path, **args)


TEXT_SIZE = 160  # text is 3-6% of the side: legible glyphs need more pixels than SIZE
TEXT_N, TEXT_BALANCED = 8, 4
# Renders of seed 7 at 64 px (16 films, every split) made before the text cue existed: the
# frame widths and device boxes drawn on the cue stream, and each cue's pixels.
BEFORE_TEXT = {
    "frame": [(5, 6, 5, 8), (5, 6, 4, 6), (4, 4, 6, 8), (7, 5, 6, 7), (7, 7, 5, 5), (4, 4, 6, 7)],
    "device": [
        (7, 13, 16, 41), (9, 39, 40, 51), (7, 15, 20, 42), (5, 49, 27, 54), (44, 23, 59, 45),
        (17, 35, 45, 51),
    ],
    "digests": {
        "frame": "b53247f4f80e2648a7a96e6315a5cd48a85446fbfdd8d6f9c0e4ff7c4da0491e",
        "tone": "6c02831249069711820f386e8fa4f0a069629fd62a8a8fb1a2f7457278268ef5",
        "device": "f22c4dfcf1d46cfabe7a191a67336b10231438860c64e0e3917ecd1a446c369d",
        "none": "43b70cd4c3058aead659395dd9cd1e164a73678391a36d99cee2986734988bca",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def text_sets(tmp_path_factory):
    """ "text" and "text-null" (neutralised), seed 3 at strength 1, with each film's job."""
    made = {}
    for name, neutralised in (("text", False), ("text-null", True)):
        made[name] = _make(
            tmp_path_factory.mktemp(name), "text", n_per_class=TEXT_N, size=TEXT_SIZE,
            balanced_per_class=TEXT_BALANCED, neutralised=neutralised,
        )  # fmt: skip
    per_class = {"train.txt": TEXT_N, "test.txt": TEXT_N, "test_balanced.txt": TEXT_BALANCED}
    jobs = ss._plan(3, 1.0, per_class)
    assert [j.image for j in jobs] == [f.image for f in made["text"].films]
    return made, jobs


def _anchor(boxes) -> str:
    """Where a film's text lies: "t"/"b" (top or bottom quarter), then "l"/"r" (nearer the
    left or right edge) or "c" (about as far from both)."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    size = TEXT_SIZE
    assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size  # inside the film
    assert y1 <= size / 4 or y0 >= 3 * size / 4, boxes  # away from the lung field
    left, right = x0, size - x1
    side = "c" if abs(left - right) <= 0.1 * size else "l" if left < right else "r"
    return ("t" if y1 <= size / 4 else "b") + side


def _check_style(pixels: np.ndarray, plain: np.ndarray, film: ss.Film, style) -> None:
    """The film's text where its boxes say, in `style`: its place, its lines (or one label)
    and its polarity; no pixel changed outside the boxes."""
    boxes = film.text
    assert _anchor(boxes) == style.anchor, (film.image, boxes)
    label = style.polarity == "label"
    assert len(boxes) == (1 if label else len(style.lines))
    diff = pixels.astype(int) - plain.astype(int)
    inside = np.zeros(diff.shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
        assert np.abs(diff[y0:y1, x0:x1]).max() >= 40, (film.image, "no text in a box")
    assert not diff[~inside].any(), film.image
    ink = pixels[inside]
    if label:  # a light rectangle, dark glyphs on it
        assert np.median(ink) >= 0.8 * 255 and ink.min() <= 0.45 * 255, film.image
    elif style.polarity == "white":  # glyphs brighter than the film under them
        assert (diff[inside] > 0).sum() > 4 * (diff[inside] < 0).sum(), film.image
    else:  # white glyphs and a dark shadow
        assert ink.max() >= 0.9 * 255 and (diff[inside] < -40).any(), film.image


def test_text_styles_are_the_sources_own():
    """Four styles the phantom never draws (DejaVu faces, no Hershey, no PIL default font), at
    four places, with words of their own; white glyphs and dark glyphs on a label."""
    import matplotlib

    styles = [ss.TEXT_STYLES[source] for source in ss.SOURCES]
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    assert all((fonts / f"{s.font}.ttf").is_file() for s in styles)
    for key in ("font", "anchor"):
        assert len({getattr(s, key) for s in styles}) == 4, key
    lines = [line for s in styles for line in s.lines]
    assert len(set(lines)) == len(lines)
    jitter = ss.TEXT["height_jitter"]
    assert all(0.03 <= s.cap_height * (1 - jitter) < s.cap_height * (1 + jitter) <= 0.06
               for s in styles)  # fmt: skip
    assert {"label", "white"} <= {s.polarity for s in styles}


def test_text_on_every_film_in_its_sources_style(text_sets):
    """Every film carries its own source's text (H2/H3 theirs, H0/H1 theirs): drawn against
    the same film with no cue, it differs only inside the recorded boxes."""
    sets, jobs = text_sets
    made = sets["text"]
    assert {f.source for f in made.films} == set(ss.SOURCES)
    assert made.regions is None
    spots = defaultdict(set)
    for job, film in zip(jobs, made.films, strict=True):
        plain = ss.render(job, 3, TEXT_SIZE, "none", False)[0]
        _check_style(_pixels(made, film), plain, film, ss.TEXT_STYLES[film.source])
        assert film.cued == (film.source in ss.CUE_SOURCES)
        spots[film.source].add(film.text)
    assert all(len(boxes) > 1 for boxes in spots.values())  # jittered per film


def test_neutralised_text_is_one_style_on_every_film(text_sets):
    """Neutralised, every film carries the neutral source's text, whatever its source: the
    neutral source's films are as before, all others changed."""
    sets, jobs = text_sets
    made, null = sets["text"], sets["text-null"]
    neutral = ss.TEXT_STYLES[ss.NEUTRAL_TEXT]
    for job, film, twin in zip(jobs, made.films, null.films, strict=True):
        plain = ss.render(job, 3, TEXT_SIZE, "none", False)[0]
        _check_style(_pixels(null, twin), plain, twin, neutral)
        assert not twin.cued and twin.source == film.source
        same = np.array_equal(_pixels(made, film), _pixels(null, twin))
        assert same == (film.source == ss.NEUTRAL_TEXT), film.image


def test_the_text_cue_leaves_every_other_cue_as_it_was():
    """Films of the other cues are those drawn before the text cue existed: their draws on the
    cue stream (frame widths, device boxes) and their pixels."""
    jobs = ss._plan(7, 1.0, {"train.txt": 4, "test.txt": 2, "test_balanced.txt": 2})
    geometry = defaultdict(list)
    for cue, expected in BEFORE_TEXT["digests"].items():
        digest = hashlib.sha256()
        for job in jobs:
            pixels, film = ss.render(job, 7, 64, cue, False)
            digest.update(pixels.tobytes())
            geometry[cue] += [film.frame or film.device] if film.frame or film.device else []
            assert film.text is None
        assert digest.hexdigest() == expected, cue
    assert geometry["frame"] == BEFORE_TEXT["frame"]
    assert geometry["device"] == BEFORE_TEXT["device"]
