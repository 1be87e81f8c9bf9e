import numpy as np
import pytest
from sklearn.metrics import classification_report, f1_score

from medxai.errors import MedxaiError
from medxai.statistics.bootstrap import bootstrap_indices
from medxai.statistics.classification import (
    classification_metrics,
    mcnemar,
    point_metrics,
    resampled_metrics,
)

CLASSES = ("normal", "pneumonia", "COVID-19")


def predictions(n=300, error_rate=0.2, seed=1):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    wrong = rng.random(n) < error_rate
    y_pred = np.where(wrong, (y_true + rng.integers(1, 3, n)) % 3, y_true)
    return y_true, y_pred


def test_point_metrics_equal_scikit_learn():
    y_true, y_pred = predictions()
    metrics = classification_metrics(y_true, y_pred, CLASSES, n_bootstrap=0)
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    for k, name in enumerate(CLASSES):
        for field in ("precision", "recall", "f1-score", "support"):
            ours = getattr(metrics.per_class[name], "f1" if field == "f1-score" else field)
            assert ours == pytest.approx(report[str(k)][field])
    assert metrics.accuracy == pytest.approx(report["accuracy"])
    assert metrics.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    confusion = np.array(metrics.confusion)
    assert confusion.sum() == 300 and np.trace(confusion) == int((y_true == y_pred).sum())
    assert confusion[0, 1] == int(((y_true == 0) & (y_pred == 1)).sum())


def test_bootstrap_intervals_bracket_the_estimate_shrink_with_n_and_repeat_with_seed():
    small = classification_metrics(*predictions(100), CLASSES, n_bootstrap=300, seed=0)
    large = classification_metrics(*predictions(3000), CLASSES, n_bootstrap=300, seed=0)
    again = classification_metrics(*predictions(100), CLASSES, n_bootstrap=300, seed=0)
    assert small.ci == again.ci
    for metrics in (small, large):
        lo, hi = metrics.ci.accuracy
        assert lo < metrics.accuracy < hi
        lo, hi = metrics.per_class["COVID-19"].ci.recall
        assert lo <= metrics.per_class["COVID-19"].recall <= hi
    width = lambda m: m.ci.macro_f1[1] - m.ci.macro_f1[0]  # noqa: E731
    assert width(large) < width(small) / 3  # ~ 1/sqrt(30)
    assert 0.7 < large.accuracy < 0.9


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_resampled_metrics_equal_scikit_learn_on_every_resample(n_classes):
    """Vectorised bootstrap figures, including resamples where a class is never predicted
    or absent (zero division), equal scikit-learn's per resample exactly."""
    rng = np.random.default_rng(n_classes)
    y_true = rng.integers(0, n_classes, 40)
    y_pred = np.where(rng.random(40) < 0.5, y_true, 0)  # the last class is rarely predicted
    index = bootstrap_indices(40, 50, seed=3)
    weights = np.stack([np.bincount(row, minlength=40) for row in index])
    batch = resampled_metrics(y_true, y_pred, n_classes, weights)
    for row, picks in enumerate(index):
        one = point_metrics(y_true[picks], y_pred[picks], n_classes)
        for key in ("accuracy", "macro_f1", "precision", "recall", "f1"):
            assert np.array_equal(batch[key][row], one[key]), (key, row)


def test_mcnemar_known_answers():
    y_true = np.zeros(20, int)
    a = np.zeros(20, int)
    b = np.zeros(20, int)
    b[:10] = 1  # B wrong on 10 images A gets right
    result = mcnemar(y_true, a, b)
    assert (result.only_a_correct, result.only_b_correct) == (10, 0)
    assert result.p_value == pytest.approx(2 * 0.5**10)
    assert mcnemar(y_true, a, a).p_value == 1.0


def test_bad_inputs_are_clear_errors():
    with pytest.raises(MedxaiError, match="differ in shape"):
        classification_metrics([0, 1], [0], CLASSES)
    with pytest.raises(MedxaiError, match="class indices"):
        classification_metrics([0, 3], [0, 1], CLASSES)


def test_paired_comparison_known_changes_and_their_intervals():
    from medxai.statistics.classification import paired_comparison

    y = np.array([0, 0, 1, 1, 2, 2] * 5)
    before = np.array([0, 0, 0, 0, 2, 2] * 5)  # class 1 always called 0
    after = y.copy()  # all right
    change = paired_comparison(y, before, after, ["a", "b", "c"], n_bootstrap=200, seed=1)
    assert change.accuracy.before == pytest.approx(2 / 3)
    assert change.accuracy.delta == pytest.approx(1 / 3)
    lo, hi = change.accuracy.delta_ci
    assert 0 < lo <= 1 / 3 <= hi < 0.6
    assert change.per_class["b"].recall.delta == pytest.approx(1.0)
    assert change.per_class["b"].recall.delta_ci == pytest.approx([1.0, 1.0])
    assert change.per_class["c"].f1.delta == pytest.approx(0.0)
    assert change.per_class["a"].precision.delta == pytest.approx(0.5)
    assert change.mcnemar.only_b_correct == 10 and change.mcnemar.only_a_correct == 0
    same = paired_comparison(y, after, after, ["a", "b", "c"], n_bootstrap=50)
    assert same.macro_f1.delta_ci == pytest.approx([0.0, 0.0])


def test_one_resampling_serves_every_bootstrap():
    """The metrics' CIs, the paired change's CIs and bootstrap_mean draw the same images."""
    from medxai.statistics.bootstrap import bootstrap_indices, bootstrap_mean, percentile_interval

    y_true, y_pred = predictions(50)
    metrics = classification_metrics(y_true, y_pred, CLASSES, n_bootstrap=200, seed=7)
    index = bootstrap_indices(50, 200, 7)
    by_hand = percentile_interval([(y_true[i] == y_pred[i]).mean() for i in index])
    assert metrics.ci.accuracy == pytest.approx(tuple(by_hand))
    right = (y_true == y_pred).astype(float)
    assert bootstrap_mean(right, 200, seed=7)[1] == pytest.approx(tuple(by_hand))


def test_a_patients_films_are_resampled_and_tested_together():
    """Twenty patients with two films each, both films decided alike: the clustered bootstrap
    counts 20 observations, not 40 (a wider interval, said in the record), and McNemar uses
    Durkalski's clustered statistic — here (Σ d_k)² / Σ d_k² with d_k = 2 for 8 patients."""
    from medxai.statistics.bootstrap import Clusters
    from medxai.statistics.classification import paired_comparison

    y = np.zeros(40, int)
    before = np.repeat(np.arange(20) % 2, 2)  # patients 1, 3, … wrong on both films
    after = np.zeros(40, int)
    after[:4] = 1  # patients 0 and 1 wrong after (patient 1 was wrong before too)
    patients = Clusters.of([f"p{i // 2}" for i in range(40)])
    films = classification_metrics(y, before, CLASSES, n_bootstrap=1000, seed=2)
    clustered = classification_metrics(y, before, CLASSES, 1000, seed=2, clusters=patients)
    assert (clustered.unit, clustered.n_clusters, films.n_clusters) == ("patient", 20, 40)
    width = lambda m: m.ci.accuracy[1] - m.ci.accuracy[0]  # noqa: E731
    assert width(clustered) > 1.25 * width(films)
    change = paired_comparison(y, before, after, CLASSES, 200, clusters=patients)
    assert change.mcnemar.method == "clustered" and change.n_clusters == 20
    # patient 0: A (before) right, B wrong on both films: d = +2; patients 3, 5, … 19: −2
    d = np.array([2] + [-2] * 9)
    expected = chi2_sf(d.sum() ** 2 / (d**2).sum())
    assert change.mcnemar.p_value == pytest.approx(expected)
    assert paired_comparison(y, before, after, CLASSES, 50).mcnemar.method == "exact"


def chi2_sf(statistic: float) -> float:
    from scipy.stats import chi2

    return float(chi2.sf(statistic, 1))
