"""Known answers for the audit's --sample draw: whole patients, classes in turn."""

from collections import Counter

from medxai.data.sampling import balanced_patients

# 90 films of class a (45 patients with two films each), 10 of class b (10 patients)
FILMS = [f"a{i}" for i in range(90)] + [f"b{i}" for i in range(10)]
PATIENTS = [f"pa{i // 2}" for i in range(90)] + [f"pb{i}" for i in range(10)]
LABELS = ["a"] * 90 + ["b"] * 10


def test_patients_stay_whole_and_classes_take_turns():
    chosen = balanced_patients(FILMS, PATIENTS, LABELS, 20, seed=0)
    assert len(chosen) == 20  # rounds of one patient of a (2 films) and one of b (1)
    patients = {p for f, p in zip(FILMS, PATIENTS, strict=True) if f in chosen}
    for f, p in zip(FILMS, PATIENTS, strict=True):
        assert (f in chosen) == (p in patients), "a patient's films are drawn together"
    per_class = Counter(f[0] for f in chosen)
    assert per_class["b"] >= 6, "b's patients come in turn with a's, not in proportion"


def test_a_small_class_gives_all_it_has_and_the_draw_follows_the_seed():
    chosen = balanced_patients(FILMS, PATIENTS, LABELS, 60, seed=1)
    assert {f for f in chosen if f[0] == "b"} == {f"b{i}" for i in range(10)}
    assert len(chosen) == 60
    assert chosen == balanced_patients(FILMS, PATIENTS, LABELS, 60, seed=1)
    assert chosen != balanced_patients(FILMS, PATIENTS, LABELS, 60, seed=2)


def test_asking_for_more_than_there_is_gives_everything():
    assert balanced_patients(FILMS, [None] * 100, LABELS, 500, seed=0) == set(FILMS)
