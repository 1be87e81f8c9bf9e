import numpy as np

from medxai.data.check import check_dataset, screen_records
from medxai.data.covidx import load_covidx
from medxai.data.imageio import write_png


def make_flawed_dataset(root):
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    write_png(root / "train" / "a.png", np.zeros((30, 40), np.uint8))
    write_png(root / "train" / "b.png", np.zeros((30, 40), np.uint16))
    (root / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (root / "train.txt").write_text(
        "p1 a.png normal s1\n"
        "p2 b.png COVID-19 s2\n"
        "p3 broken.png pneumonia s1\n"
        "p4 gone.png normal s1\n"
        "p5 only-two-fields\n"
    )
    write_png(root / "test" / "c.png", np.zeros((8, 8, 3), np.uint8))
    (root / "test.txt").write_text("p1 c.png normal s1\n")


def test_check_lists_every_problem_with_its_reason(tmp_path):
    make_flawed_dataset(tmp_path)
    report = check_dataset(tmp_path)
    by_name = {s.split: s for s in report.splits}
    train, test = by_name["train.txt"], by_name["test.txt"]
    assert not report.ok and test.ok and not train.ok
    assert [p.line for p in train.line_problems] == [5]
    reasons = {s.record.filename: s.reason for s in train.unreadable}
    assert reasons == {
        "broken.png": "corrupt or truncated PNG file",
        "gone.png": "image not found",
    }
    assert train.classes == {"normal": 2, "COVID-19": 1, "pneumonia": 1}
    assert train.sources == {"s1": 3, "s2": 1}
    assert train.sizes == {(40, 30): 2} and train.bit_depths == {8: 1, 16: 1}
    assert report.shared_patients() == {("test.txt", "train.txt"): {"p1"}}


def test_clean_dataset_is_ok_and_no_decode_only_checks_existence(tmp_path):
    make_flawed_dataset(tmp_path)
    (tmp_path / "train.txt").write_text("p1 a.png normal\np3 broken.png pneumonia\n")
    assert not check_dataset(tmp_path).ok
    assert check_dataset(tmp_path, decode=False).ok
    good, skipped = screen_records(load_covidx(tmp_path)["train.txt"])
    assert [r.filename for r in good] == ["a.png"]
    assert [(s.record.filename, s.reason) for s in skipped] == [
        ("broken.png", "corrupt or truncated PNG file")
    ]
