"""`medxai audit` end to end on a tiny phantom: files, contracts, resume, refusals."""

import hashlib
import json

import numpy as np
import pytest
import torch

from medxai.codec import to_json
from medxai.data.imageio import read_image
from medxai.errors import MedxaiError
from pipelines.audit import Hooks, audit_config, read_audit, run_audit
from pipelines.audit.context import Run
from pipelines.audit.data import load_data

CPU = torch.device("cpu")
TINY = dict(
    n_per_class=15, phantom_size=64, image_size=32, epochs=2, methods=["gradcam"],
    n_explain=1, n_bootstrap=50, detector="rapidocr",
)  # fmt: skip
STAGES = [
    "dataset", "data_check", "estimate", "train_baseline", "evaluate_baseline", "explain",
    "sanity", "shortcut",
    "clean", "train_cleaned", "evaluate_cleaned", "baseline_on_cleaned", "negative_control",
]  # fmt: skip


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    started = []
    return out, run_audit(audit_config(**TINY), out, CPU, Hooks(stage=started.append)), started


def test_every_stage_runs_once_and_lands_in_audit_json(audited):
    out, result, started = audited
    assert started == STAGES
    stored = json.loads((out / "audit.json").read_text())
    assert stored["schema"] == "medxai-audit-8"
    assert to_json(read_audit(out / "audit.json")) == to_json(result)  # NaN-safe
    assert set(stored["timings"]) == {*STAGES, "report", "total"}
    assert stored["timings"]["total"] == pytest.approx(
        sum(stored["timings"][s] for s in STAGES) + stored["timings"]["report"]
    )
    estimated = [s["stage"] for s in stored["estimate"]["stages"]]
    assert set(estimated) < {*STAGES, "report"} and {"train_baseline", "clean"} <= set(estimated)
    assert all(s["seconds"] > 0 for s in stored["estimate"]["stages"])
    for key in ("accuracy", "macro_f1", "per_class", "confusion"):
        assert key in stored["baseline"] and key in stored["cleaned"]
    assert stored["baseline"] == stored["evaluations"]["baseline"]["test.txt"]
    assert set(stored["comparison"]) == {"test.txt", "test_balanced.txt"}
    shortcut = stored["shortcut"]
    assert isinstance(shortcut["relies_on_text"], bool) and shortcut["thresholds"]
    assert shortcut["evidence"]["n_images"] == 18  # 3 + 3 images per class, both test splits
    assert len(shortcut["explained"]) == 3 and "gradcam" in shortcut["explained"][0]["methods"]
    assert [row["kind"] for row in shortcut["table"]] == ["source", "text", "border", "tone"]
    assert shortcut["kinds"]["border"]["reliance"]["n_images"] == 18, "every film has a border"
    assert set(shortcut["source"]["per_split"]) == {"test.txt", "test_balanced.txt"}
    assert set(shortcut["styles"]) == {"tone", "frame"} and shortcut["headline"]
    assert set(stored["data"]["traits"]) == {"train.txt", "test.txt", "test_balanced.txt"}
    assert stored["data"]["splits"]["train.txt"]["n"] == 36
    assert stored["data"]["burned_in_annotation"]["not DICOM"] == 54
    negative = result.negative_control  # the text's tests on the retrained model
    assert negative.checkpoint.endswith("cleaned_model/model.pt")
    assert negative.reliance.n_images == result.shortcut.evidence.n_with_text
    assert "Negative control: the text decides" in result.shortcut.summary


def test_comparison_pairs_the_same_images(audited):
    out, result, _ = audited
    for split, change in result.comparison.items():
        before = result.evaluations.baseline[split]
        after = result.evaluations.cleaned[split]
        assert change.accuracy.before == pytest.approx(before.accuracy)
        assert change.accuracy.after == pytest.approx(after.accuracy)
        assert change.n == before.n == after.n


def test_report_and_cleaned_dataset_are_written_and_the_source_is_untouched(audited):
    out, result, _ = audited
    html = (out / "index.html").read_text()
    assert result.shortcut.summary.split(":")[0] in html
    assert list((out / "figures").glob("*.png"))
    manifest = [json.loads(line) for line in (out / "cleaned" / "manifest.jsonl").open()]
    assert len(manifest) == 54
    for entry in manifest:
        assert sha(out / "dataset" / entry["source"]) == entry["source_sha256"]
    changed = [e for e in manifest if e["status"] == "cleaned"]
    assert changed, "the phantom's text must be found on some films"
    entry = changed[0]
    before = read_image(out / "dataset" / entry["source"])
    after = read_image(out / "cleaned" / entry["output"])
    x0, y0, x1, y1 = entry["boxes"][0]
    inside = np.abs(before[y0:y1, x0:x1] - after[y0:y1, x0:x1]).mean()
    assert inside > 0.01, "the text boxes are inpainted"


def test_a_rerun_resumes_at_the_missing_stage_with_the_same_results(audited):
    out, result, _ = audited
    (out / "stages" / "evaluate_cleaned.json").unlink()
    started = []
    rerun = run_audit(audit_config(**TINY), out, CPU, Hooks(stage=started.append))
    assert started == ["evaluate_cleaned"]
    assert rerun.comparison == result.comparison
    assert to_json(rerun.shortcut) == to_json(result.shortcut)


def test_other_settings_on_the_same_folder_are_refused(audited):
    out, _, _ = audited
    with pytest.raises(MedxaiError, match="other settings.*train.epochs"):
        run_audit(audit_config(**(TINY | {"epochs": 3})), out, CPU)


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(MedxaiError, match="train.txt.*COVIDx"):
        audit_config(dataset="covidx")
    with pytest.raises(MedxaiError, match="unknown detector"):
        audit_config(detector="tesseract")
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(MedxaiError, match="not empty"):
        run_audit(audit_config(**TINY), tmp_path, CPU)
    (tmp_path / "data").mkdir()
    with pytest.raises(MedxaiError, match="train.txt: split file not found"):
        run_audit(audit_config(dataset="covidx", root=str(tmp_path / "data")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_pipelines_own_report_loads_in_chromium(audited, open_page):
    out, result, _ = audited
    page, problems = open_page(out / "index.html")
    assert problems == []
    headline = page.inner_text("#verdict .headline")
    assert ("burned-in text —" in headline) == result.shortcut.relies_on_text
    assert headline == result.shortcut.headline
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(images) >= 3 + 3 and all(width > 0 for width in images)  # gallery + plots


def test_an_unreadable_test_image_is_listed_and_left_out(tmp_path):
    from medxai.data.phantom import synthesize

    root = tmp_path / "root"
    synthesize(root, n_per_class=8, size=64, seed=0, workers=1)
    broken_name = (root / "test.txt").read_text().split()[1]
    (root / "test" / broken_name).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    config = audit_config(dataset="covidx", root=str(root), test_splits=["test.txt"])
    logged = []
    data = load_data(Run(config, tmp_path / "out", CPU, Hooks(log=logged.append)), root)
    assert list(data.index.records) == ["train.txt", "test.txt"]
    assert [u.file for u in data.summary.unreadable] == [str(root / "test" / broken_name)]
    assert any(broken_name in line for line in logged)
    kept = data.records["test.txt"]
    assert broken_name not in {r.filename for r in kept} and len(kept) == 5


def test_a_sample_then_a_budget_test_the_sample_and_clean_every_film(
    tmp_path, audited, monkeypatch
):
    """--sample 15, then a budget no audit fits: the verdict stages see 12 of the 18 test
    films (the budget's floor, 12 here instead of 2 × 30; whole patients, the classes in
    turn), the cleaning every film of every split; the sanity check is left out, and the
    report says both."""
    import pipelines.audit.cost as cost

    monkeypatch.setattr(cost, "VERDICT_FLOOR", 12)
    out = tmp_path / "sampled"
    config = audit_config(**TINY, sample=15, budget=0.01, retrain=False)
    result = run_audit(config, out, CPU)
    sample = result.dataset.sample
    assert sample.n_total == 18 and sample.n_films == 12 and sample.requested == 12
    assert "time budget" in sample.why
    counts = sample.per_class.values()
    assert len(counts) == 3 and max(counts) - min(counts) <= 2  # a patient has up to 2 films
    tested = result.shortcut.kinds["text"].reliance.n_images
    assert result.shortcut.evidence.n_images == 12 and tested <= 12
    assert sum(result.evaluations.baseline[s].n for s in result.evaluations.baseline) <= 24
    full = audited[1]
    assert full.dataset.sample is None and full.shortcut.evidence.n_images == 18
    assert result.cleaning.n_images == full.cleaning.n_images, "every film is cleaned"
    assert result.estimate.plan.verdict_films == 12
    cuts = result.estimate.plan.cuts  # from the --sample's 15 or so (whole patients) to 12
    assert any(c.startswith("verdict films 1") and " → 12 (" in c for c in cuts)
    assert result.sanity.skipped and not result.sanity.methods
    page = (out / "index.html").read_text()
    assert "the time budget of 0.01 min" in page and "Sanity check: not run" in page
