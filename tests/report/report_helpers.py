"""A realistic audit.json dict and its pictures (64×64), for a model that reads the text and
for one that does not. The metrics come from the real `classification_metrics`."""

from __future__ import annotations

import copy

import numpy as np

from medxai.metrics.classification import classification_metrics
from medxai.report import AuditArtifacts, CleaningExample, GalleryItem

CLASSES = ["normal", "pneumonia", "COVID-19"]
SOURCES = ["src-a", "src-b", "src-c"]
METHODS = ["igos++", "sigcam", "gradcam"]
SIZE = 64
BOX = (4, 4, 20, 12)  # where the phantom's sources stamp their text


def _metrics(accuracy: float, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % len(CLASSES)
    wrong = rng.random(n) > accuracy
    y_pred = np.where(wrong, (y_true + rng.integers(1, len(CLASSES), n)) % len(CLASSES), y_true)
    return classification_metrics(y_true, y_pred, CLASSES, n_bootstrap=100, seed=seed)


def _change(before: float, after: float, half_width: float = 0.04) -> dict:
    d = after - before
    return {
        "before": before,
        "after": after,
        "delta": d,
        "delta_ci": [d - half_width, d + half_width],
    }


def _comparison(before: dict, after: dict) -> dict:
    per_class = {
        name: {
            field: _change(before["per_class"][name][field], after["per_class"][name][field])
            for field in ("precision", "recall", "f1")
        }
        for name in CLASSES
    }
    return {
        "accuracy": _change(before["accuracy"], after["accuracy"]),
        "macro_f1": _change(before["macro_f1"], after["macro_f1"]),
        "per_class": per_class,
        "mcnemar": {"only_a_correct": 12, "only_b_correct": 5, "p_value": 0.14},
    }


def _split_info(n_per_class: int) -> dict:
    return {
        "n": 3 * n_per_class,
        "classes": dict.fromkeys(CLASSES, n_per_class),
        "sources": {
            "src-a": {"COVID-19": n_per_class},
            "src-b": {"normal": n_per_class // 2, "pneumonia": n_per_class // 2},
            "src-c": {"normal": n_per_class - n_per_class // 2, "pneumonia": n_per_class // 2},
        },
    }


def make_audit(relies: bool) -> dict:
    """The audit dict exactly as the pipeline writes audit.json."""
    rng = np.random.default_rng(1 if relies else 2)
    splits = ["test.txt", "test_balanced.txt"]
    base = {"test.txt": _metrics(0.97, 300, 0), "test_balanced.txt": _metrics(0.6, 150, 1)}
    clean = {"test.txt": _metrics(0.9, 300, 2), "test_balanced.txt": _metrics(0.85, 150, 3)}
    images = []
    for i in range(30):
        label = CLASSES[i % 3]
        original = float(rng.uniform(0.6, 1.0))
        images.append(
            {"file": f"img{i:03d}.png", "label": label, "source": SOURCES[i % 3],
             "predicted": label, "n_boxes": 2, "text_area_share": 0.03,
             "original_score": original, "baseline_score": float(rng.uniform(0.2, 0.4)),
             "inserted_score": float(rng.uniform(0.6, 0.9) if relies else rng.uniform(0.2, 0.4)),
             "inserted_prediction": label, "deleted_score": original * (0.4 if relies else 0.95),
             "deleted_prediction": label}
        )  # fmt: skip
    lift = 10.0 if relies else 1.1
    explained = [
        {"file": f"img{i:03d}.png", "label": CLASSES[i % 3], "predicted": CLASSES[i % 3],
         "source": SOURCES[i % 3],
         "methods": {m: {"mass_share": 0.03 * lift * (1 + 0.1 * k), "area_share": 0.03,
                         "top_k_overlap": 0.4 if relies else 0.02, "lift": lift * (1 + 0.1 * k),
                         "deletion_auc": 0.2, "insertion_auc": 0.7} for k, m in enumerate(METHODS)}}
        for i in range(2)
    ]  # fmt: skip
    group = {
        "n": 50, "text_area_share": 0.03, "keeps_class_rate": 0.9 if relies else 0.3,
        "flip_rate": 0.5 if relies else 0.02, "control_flip_rate": 0.03,
        "mean_drop": 0.4 if relies else 0.01,
    }  # fmt: skip
    shortcut = {
        "relies_on_text": relies,
        "strength": "strong" if relies else "none",
        "summary": "The model keeps its prediction from the burned-in text alone on 71% of images."
        if relies
        else "Text alone does not carry the prediction; text gets the saliency its area explains.",
        "reasons": ["region-only insertion keeps the class on 71% [64%, 77%] vs 33% baseline",
                    "igos++ puts 10.0× more saliency on text than its area"] if relies else [],
        "thresholds": {"strong_flip_excess": 0.15, "strong_insertion_gain": 0.3,
                       "confidence": 0.95},
        "evidence": {
            "n_images": 300, "n_with_text": 290, "mean_text_area_share": 0.03,
            "region_insertion": {
                "keeps_class_rate": 0.71 if relies else 0.35,
                "ci": [0.64, 0.77] if relies else [0.3, 0.4],
                "baseline_keeps_class_rate": 0.33, "baseline_ci": [0.28, 0.38],
                "gain": 0.38 if relies else 0.02,
                "gain_ci": [0.3, 0.46] if relies else [-0.03, 0.07]},
            "region_deletion": {"mean_drop": 0.2, "ci": [0.15, 0.25], "flip_rate": 0.25,
                                "flip_ci": [0.2, 0.3], "control_flip_rate": 0.03,
                                "control_flip_ci": [0.01, 0.05], "flip_excess": 0.22,
                                "flip_excess_ci": [0.17, 0.27]},
            "saliency": {m: {"n": 2, "mass_share": 0.03 * lift, "area_share": 0.03, "lift": lift,
                             "top_k_overlap": 0.4} for m in METHODS},
            "per_source": {s: dict(group) for s in SOURCES},
            "per_class": {c: dict(group) for c in CLASSES},
        },
        "images": images,
        "explained": explained,
    }  # fmt: skip
    return {
        "schema": "medxai-audit-1",
        "medxai_version": "0.1.0",
        "created": "2026-11-22T10:00:00+00:00",
        "dataset": {
            "name": "phantom",
            "root": "data/phantom",
            "train_split": "train.txt",
            "test_splits": splits,
            "primary_test_split": "test.txt",
            "balanced_split": "test_balanced.txt",
            "classes": list(CLASSES),
            "phantom": {"shortcut_strength": 1.0, "n_per_class": 200, "size": 224, "seed": 0},
        },  # fmt: skip
        "config": {
            "model": "covidnet-s",
            "image_size": 128,
            "epochs": 20,
            "batch_size": 32,
            "lr": 0.002,
            "seed": 0,
            "device": "cpu",
            "methods": list(METHODS),
            "n_explain": 2,
            "detector": "rapidocr",
            "quick": False,
            "top_k": 0.05,
            "n_bootstrap": 1000,
        },  # fmt: skip
        "data": {
            "splits": {
                "train.txt": _split_info(200),
                "test.txt": _split_info(100),
                "test_balanced.txt": _split_info(50),
            },
            "formats": {"PNG": 900},
            "bit_depths": {"8": 900},
            "sizes": {"224x224": 900},
            "burned_in_annotation": {"YES": 0, "NO": 0, "absent": 0, "not DICOM": 900},
            "unreadable": [{"file": "train/broken.png", "error": "truncated PNG"}],
            "shared_patients": ["p042"],
        },  # fmt: skip
        "baseline": base["test.txt"],
        "cleaned": clean["test.txt"],
        "evaluations": {"baseline": base, "cleaned": clean},
        "comparison": {s: _comparison(base[s], clean[s]) for s in splits},
        "shortcut": shortcut,
        "cleaning": {
            "root": "runs/audit/cleaned",
            "detector": "rapidocr",
            "inpaint": {"method": "telea", "radius": 10},
            "dilate": 4,
            "n_images": 900,
            "n_with_text": 880,
            "n_boxes": 2100,
            "mean_area_share": 0.03,
            "failed": [{"file": "test/odd.png", "error": "detector crashed"}],
        },  # fmt: skip
        "timings": {
            "data_check": 3.2,
            "train_baseline": 150.0,
            "evaluate_baseline": 4.0,
            "explain": 100.0,
            "shortcut": 30.0,
            "clean": 150.0,
            "train_cleaned": 150.0,
            "evaluate_cleaned": 4.0,
            "report": 10.0,
            "total": 600.0,
        },  # fmt: skip
        "environment": {
            "python": "3.11.7",
            "platform": "Linux-6.1-x86_64",
            "torch": "2.5.1",
            "torchvision": "0.20.1",
            "monai": "1.4.0",
            "numpy": "2.1.0",
            "opencv": "4.10.0",
            "device": "cpu",
            "cuda": None,
            "threads": 2,
        },  # fmt: skip
    }


def _radiograph(rng: np.random.Generator, text: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    lungs = np.exp(-(((xx - 0.3) / 0.15) ** 2 + ((yy - 0.55) / 0.3) ** 2))
    lungs += np.exp(-(((xx - 0.7) / 0.15) ** 2 + ((yy - 0.55) / 0.3) ** 2))
    image = np.clip(0.2 + 0.5 * lungs + 0.05 * rng.standard_normal((SIZE, SIZE)), 0, 1)
    if text:
        x0, y0, x1, y1 = BOX
        image[y0:y1, x0:x1] = 1.0
    return image.astype(np.float32)


def _box_map(relies: bool) -> np.ndarray:
    saliency = np.full((SIZE, SIZE), 0.05, dtype=np.float32)
    x0, y0, x1, y1 = BOX if relies else (20, 25, 44, 50)
    saliency[y0:y1, x0:x1] = 1.0
    return saliency


def make_artifacts(relies: bool) -> AuditArtifacts:
    rng = np.random.default_rng(3)
    curve = np.linspace(1, 0, 21) ** 2
    curves = {
        m: {"deletion": curve, "insertion": 1 - curve, "deletion_auc": 0.33, "insertion_auc": 0.67}
        for m in METHODS
    }
    gallery = [
        GalleryItem(
            file=f"img{i:03d}.png",
            label="COVID-19",
            predicted="COVID-19",
            source="src-a",
            image=_radiograph(rng, text=True),
            boxes=[BOX],
            maps={m: _box_map(relies) for m in METHODS},
            curves=curves,
        )  # fmt: skip
        for i in range(2)
    ]
    before = _radiograph(rng, text=True)
    after = before.copy()
    x0, y0, x1, y1 = BOX
    after[y0:y1, x0:x1] = 0.2
    frequency = np.zeros((SIZE, SIZE), dtype=np.float32)
    frequency[y0:y1, x0:x1] = 0.9
    return AuditArtifacts(
        gallery=gallery,
        mean_maps={m: _box_map(relies) for m in METHODS},
        text_frequency=frequency,
        cleaning_examples=[CleaningExample("img000.png", before, after, [BOX])],
    )


def stripped(audit: dict) -> dict:
    """The audit of a run with the optional parts absent: no balanced split, no cleaning or
    retraining (a stage failed), no shortcut images, no DICOM."""
    audit = copy.deepcopy(audit)
    audit["dataset"]["balanced_split"] = None
    audit["dataset"]["test_splits"] = ["test.txt"]
    audit["dataset"]["phantom"] = None
    for key in ("cleaned", "cleaning"):
        audit.pop(key)
    audit["evaluations"] = {"baseline": {"test.txt": audit["baseline"]}}
    audit["comparison"] = {}
    audit["shortcut"]["images"] = []
    audit["shortcut"]["explained"] = []
    audit["data"]["splits"].pop("test_balanced.txt")
    audit["data"]["unreadable"] = []
    audit["data"]["shared_patients"] = []
    return audit
