"""Known answers for the source-following figures: a model that decides by the source, one
that decides by the label, and too few films to tell."""

import pytest

from medxai.metrics.source_following import MIN_FILMS, FilmSource, source_following, split_gap

SENDS = {"h-covid": ["COVID-19"], "h-normal": ["normal"]}


def balanced_split(decide) -> list[FilmSource]:
    """20 films per (source, label): sources independent of the label, as test_balanced."""
    return [
        FilmSource(label, source, decide(label, source))
        for source in SENDS
        for label in ("COVID-19", "normal")
        for _ in range(20)
    ]


def by_source(label, source):
    return SENDS[source][0]


def test_a_model_that_reads_the_source_has_the_whole_gap():
    f = source_following("test_balanced.txt", balanced_split(by_source), SENDS, 200)
    assert (f.n_on, f.n_off) == (40, 40)
    assert f.accuracy_on == 1.0 and f.accuracy_off == 0.0
    assert f.gap == 1.0 and f.gap_ci[0] == 1.0 and f.follow_rate == 1.0 and f.measured


def test_a_model_that_reads_the_label_has_no_gap():
    f = source_following("t", balanced_split(lambda label, source: label), SENDS, 200)
    assert f.gap == 0.0 and f.follow_rate == 0.0 and f.gap_ci[0] <= 0.0


def test_half_following_gives_half_the_gap():
    films = balanced_split(lambda label, source: label)
    flipped = [
        FilmSource(f.label, f.source, SENDS[f.source][0]) if k % 2 else f
        for k, f in enumerate(films)
    ]
    f = source_following("t", flipped, SENDS, 500)
    assert f.gap == pytest.approx(0.5)
    assert 0.25 < f.gap_ci[0] < 0.5 < f.gap_ci[1]


def test_too_few_off_source_films_is_not_measured():
    films = [FilmSource("normal", "h-normal", "normal")] * 30
    films += [FilmSource("normal", "h-covid", "COVID-19")] * (MIN_FILMS - 1)
    f = source_following("test.txt", films, SENDS, 100)
    assert not f.measured and f"{MIN_FILMS - 1} film(s) of test.txt" in f.note


def test_films_whose_source_sends_their_class_are_on_source():
    films = [FilmSource("normal", "h-both", "COVID-19")] * 20
    f = source_following("t", films, SENDS | {"h-both": ["COVID-19", "normal"]}, 50)
    assert f.n_on == 1 * 20 and f.n_off == 0 and not f.measured


def test_split_gap_is_the_accuracy_difference_with_an_interval():
    g = split_gap("test.txt", [True] * 99 + [False], "test_balanced.txt", [True, False] * 50)
    assert g.gap == pytest.approx(0.49) and 0.3 < g.gap_ci[0] < 0.49 < g.gap_ci[1] < 0.7


def test_a_patients_films_are_resampled_together():
    """Half the off-source films follow their source; each patient has two films decided
    alike. Resampled by patient, the gap keeps its value and its interval widens (~√2)."""

    def decide(label, source, k):
        off = label not in SENDS[source]
        return SENDS[source][0] if off and k % 4 < 2 else label

    films = [
        FilmSource(label, source, decide(label, source, k), patient)
        for source in SENDS
        for label in ("COVID-19", "normal")
        for k in range(40)
        for patient in [f"{source}-{label}-{k // 2}"]
    ]
    unpaired = [FilmSource(f.label, f.source, f.decided) for f in films]
    clustered = source_following("t", films, SENDS, 2000)
    plain = source_following("t", unpaired, SENDS, 2000)
    assert (clustered.unit, clustered.n_clusters, plain.unit) == ("patient", 80, "film")
    assert clustered.gap == plain.gap == pytest.approx(0.5)
    width = lambda f: f.gap_ci[1] - f.gap_ci[0]  # noqa: E731
    assert width(clustered) > 1.2 * width(plain)
