"""`medxai audit`: the COVIDx case study end to end, each stage cached in the output folder.

phantom (when no dataset is given) → data check → baseline training and evaluation →
saliency on K test images per class → shortcut analysis (text detection, region tests,
verdict) → cleaning (Telea) → retraining with the same settings and seed → evaluation of
the cleaned model on the cleaned test splits and the paired comparison → HTML report.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from medxai.atomic import atomic_write_text
from medxai.data.check import DatasetReport, check_dataset
from medxai.data.covidx import Record, default_image_dir, label_set_of, parse_split_file
from medxai.errors import DatasetError, MedxaiError
from medxai.metrics.classification import paired_comparison
from medxai.metrics.shortcut import RelianceThresholds
from medxai.models.checkpoint import load_checkpoint
from medxai.models.training import TrainConfig, evaluate, fit
from medxai.models.zoo import target_layer
from medxai.outputs import check_output, output_lock
from pipelines import shortcut_analysis as sa
from pipelines.audit_report import assemble, build_artifacts, save_array
from pipelines.explain_images import explain_images, items_from_records
from pipelines.stages import StageCache, claim_folder

COVIDX_HELP = (
    "expected ROOT/train.txt and ROOT/test.txt (lines 'patient_id filename label [source]') "
    "with the images in ROOT/train/ and ROOT/test/; COVIDx comes from "
    "https://github.com/lindawangg/COVID-Net (docs/COVIDx.md) or Kaggle's 'COVIDx CXR'"
)
BALANCED_SPLIT = "test_balanced.txt"
DETECTORS = ("auto", "fused", "craft-paper", "craft", "rapidocr", "both")


@dataclass(frozen=True)
class AuditConfig:
    """Every setting that decides an audit's results (pinned in OUT/audit_config.json)."""

    dataset: str = "phantom"
    root: str | None = None
    train_split: str = "train.txt"
    test_splits: tuple[str, ...] = ()  # () → test.txt, plus test_balanced.txt when present
    model: str = "covidnet-s"
    image_size: int = 128
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 8  # epochs without a better validation macro-F1 before stopping
    methods: tuple[str, ...] = ("igos++", "sigcam", "gradcam")
    n_explain: int = 2
    resolution: int = 28
    detector: str = "auto"  # the recommended detector, "fused", on CPU and GPU (see README)
    text_threshold: float = 0.7
    dilate: int = 4
    radius: int = 10
    top_k: float = 0.05
    n_bootstrap: int = 1000
    seed: int = 0
    quick: bool = False
    phantom_n_per_class: int = 200
    phantom_size: int = 224
    shortcut_strength: float = 1.0


QUICK = {
    "epochs": 20, "batch_size": 16, "patience": 10, "image_size": 96,
    "methods": ("sigcam", "gradcam"), "n_explain": 1, "phantom_n_per_class": 80,
    "n_bootstrap": 500,
}  # fmt: skip


def audit_config(quick: bool = False, **options) -> AuditConfig:
    """Defaults, then the --quick sizes, then the options the user gave (None = not given)."""
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if v is not None}
    unknown = set(given) - set(AuditConfig.__dataclass_fields__)
    if unknown:
        raise MedxaiError(f"unknown audit settings {sorted(unknown)}")
    config = replace(AuditConfig(quick=quick, **(QUICK if quick else {})), **given)
    if config.dataset not in ("phantom", "covidx"):
        raise MedxaiError(
            f"unknown dataset {config.dataset!r}; use covidx (with --root) or phantom"
        )
    if config.dataset == "covidx" and config.root is None:
        raise MedxaiError(f"--dataset covidx needs --root DIR: {COVIDX_HELP}")
    if config.dataset == "phantom" and config.root is not None:
        raise MedxaiError("--root is for --dataset covidx; the phantom is generated in --out")
    if config.detector not in DETECTORS:
        raise MedxaiError(f"unknown detector {config.detector!r}; use {', '.join(DETECTORS)}")
    if config.n_explain < 1 or not config.methods:
        raise MedxaiError("an audit explains at least 1 image per class with at least 1 method")
    return config


@dataclass
class Hooks:
    """How the pipeline talks to its caller: stage starts, progress, log lines."""

    stage: Callable[[str], None] = lambda name: None
    progress: Callable[[str, int, int | None], None] = lambda what, advance, total: None
    log: Callable[[str], None] = lambda line: None


@dataclass
class Audit:
    config: AuditConfig
    out: Path
    device: torch.device
    hooks: Hooks = field(default_factory=Hooks)

    def __post_init__(self) -> None:
        self.stages = StageCache(self.out, self.hooks.stage)
        self.detector = self.config.detector
        if self.detector == "auto":
            self.detector = "fused"

    def run(self) -> dict:
        """Every stage in order (finished ones are read back); returns the audit.json dict."""
        root = self.dataset_root()  # a bad --root fails before anything is written
        check_output(self.out, [root if self.config.dataset == "covidx" else None])
        with output_lock(self.out):
            return self._run(root)

    def _run(self, root: Path) -> dict:
        c, run = self.config, self.stages.run
        claim_folder(self.out, asdict(c))
        if c.dataset == "phantom":
            run("dataset", self.make_phantom)
        tests = self.test_splits(root)
        data = run("data_check", lambda: self.check(root, [c.train_split, *tests]))
        train = self.records(root, c.train_split, data["unreadable"])
        test = {split: self.records(root, split, data["unreadable"]) for split in tests}
        classes = list(label_set_of(r.label for r in train))
        baseline = run("train_baseline", lambda: self.train(train, "baseline"))
        base_eval = run("evaluate_baseline", lambda: self.evaluate(baseline, test))
        explained = run("explain", lambda: self.explain(baseline, test[tests[0]], classes))
        shortcut = run("shortcut", lambda: self.shortcut(root, baseline, test, explained, classes))
        cleaned = self.out / "cleaned"
        cleaning = run(
            "clean", lambda: self.clean(root, cleaned, [c.train_split, *tests], shortcut)
        )
        usable = set(cleaning["cleaned"])
        clean_train = self.cleaned_records(cleaned, c.train_split, usable)
        clean_test = {split: self.cleaned_records(cleaned, split, usable) for split in tests}
        retrained = run("train_cleaned", lambda: self.train(clean_train, "cleaned_model"))
        clean_eval = run("evaluate_cleaned", lambda: self.evaluate(retrained, clean_test))
        comparison = {s: self.compare(base_eval[s], clean_eval[s], classes) for s in tests}
        trained = {"baseline": baseline, "cleaned": retrained}
        audit = assemble(
            self, root, tests, classes, data, trained, base_eval, clean_eval, comparison,
            shortcut, cleaning,
        )  # fmt: skip
        started = time.perf_counter()
        artifacts = build_artifacts(self, root, cleaned, explained, shortcut, classes)
        from medxai.report import write_report

        write_report(self.out, audit, artifacts)
        self.stages.timings["report"] = time.perf_counter() - started
        audit["timings"] = {**self.stages.timings, "total": sum(self.stages.timings.values())}
        atomic_write_text(self.out / "audit.json", json.dumps(audit, indent=2) + "\n")
        return audit

    # -- data ---------------------------------------------------------------------------
    def dataset_root(self) -> Path:
        if self.config.dataset == "phantom":
            return self.out / "dataset"
        root = Path(self.config.root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset root not found; {COVIDX_HELP}")
        if not (root / self.config.train_split).is_file():
            raise DatasetError(f"{root}: no {self.config.train_split}; {COVIDX_HELP}")
        return root

    def make_phantom(self) -> dict:
        from medxai.data.phantom import synthesize

        c = self.config
        total = 3 * c.phantom_n_per_class + 3 * round(0.2 * c.phantom_n_per_class)
        summary = synthesize(
            self.dataset_root(), n_per_class=c.phantom_n_per_class, size=c.phantom_size,
            seed=c.seed, shortcut_strength=c.shortcut_strength,
            progress=lambda k: self.hooks.progress("synthesising phantom", k, total),
        )  # fmt: skip
        return {"n_images": summary.n_images, "counts": summary.counts}

    def test_splits(self, root: Path) -> list[str]:
        if self.config.test_splits:
            return list(self.config.test_splits)
        return ["test.txt"] + ([BALANCED_SPLIT] if (root / BALANCED_SPLIT).is_file() else [])

    def check(self, root: Path, splits: list[str]) -> dict:
        for split in splits:
            if not (root / split).is_file():
                raise DatasetError(f"{root / split}: split file not found; {COVIDX_HELP}")
        report = check_dataset(
            root, splits, progress=lambda k, n: self.hooks.progress("checking data", k, n)
        )
        for split in report.splits:
            if split.line_problems:
                raise DatasetError(str(split.line_problems[0]))
        for line in report.warnings:
            self.hooks.log(f"warning: {line}")
        for split in report.splits:
            for skipped in split.unreadable:
                self.hooks.log(f"skipping unreadable {skipped.record.path}: {skipped.reason}")
        return data_summary(report)

    @staticmethod
    def records(root: Path, split: str, unreadable: list[dict]) -> list[Record]:
        """The split's readable records (unreadable ones are listed in the report)."""
        bad = {u["file"] for u in unreadable}
        records = parse_split_file(root / split, root / default_image_dir(split))
        return [r for r in records if str(r.path) not in bad]

    @staticmethod
    def cleaned_records(root: Path, split: str, usable: set[str]) -> list[Record]:
        folder = default_image_dir(split)
        records = parse_split_file(root / split, root / folder)
        return [r for r in records if f"{folder}/{r.filename}" in usable]

    # -- models -------------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        """The one training setup both models share (and the preprocessing they see)."""
        c = self.config
        return TrainConfig(
            model=c.model, epochs=c.epochs, batch_size=c.batch_size, image_size=c.image_size,
            lr=c.lr, patience=c.patience, seed=c.seed,
        )  # fmt: skip

    def train(self, records: list[Record], folder: str) -> dict:
        c, out, config = self.config, self.out / folder, self.train_config()
        what = f"training {folder}"

        def on_epoch(entry: dict) -> None:
            self.hooks.progress(what, 1, c.epochs)
            self.hooks.log(
                f"{folder}: epoch {entry['epoch']}/{c.epochs}, loss {entry['loss']:.3f}, "
                f"val macro-F1 {entry['val_macro_f1']:.3f}"
            )

        state, _ = fit(
            config, records, out, self.device, resume=(out / "last.pt").is_file(),
            on_epoch=on_epoch,
        )  # fmt: skip
        return {
            "checkpoint": str(out / "model.pt"),
            "best_epoch": state.best_epoch,
            "best_val_macro_f1": state.best_f1,
            "epochs_run": state.epoch,
        }

    def evaluate(self, trained: dict, splits: dict[str, list[Record]]) -> dict:
        model, spec = load_checkpoint(trained["checkpoint"], self.device)
        results = {}
        for split, records in splits.items():
            metrics = evaluate(
                model, records, spec, self.device, n_bootstrap=self.config.n_bootstrap,
                seed=self.config.seed,
            )  # fmt: skip
            metrics["files"] = [r.filename for r in records]
            metrics["labels"] = [spec.classes.index(r.label) for r in records]
            results[split] = metrics
        return results

    def compare(self, before: dict, after: dict, classes: list[str]) -> dict:
        """Baseline on the original images vs the retrained model on their cleaned copies."""
        by_file = dict(zip(before["files"], before["predictions"], strict=True))
        return paired_comparison(
            after["labels"], [by_file[f] for f in after["files"]], after["predictions"], classes,
            n_bootstrap=self.config.n_bootstrap, seed=self.config.seed,
        )  # fmt: skip

    # -- saliency and shortcut ------------------------------------------------------------
    def explain(self, trained: dict, records: list[Record], classes: list[str]) -> dict:
        """K images per class of the first test split (seeded), every method, at once."""
        c = self.config
        rng = np.random.default_rng(c.seed)
        chosen: list[Record] = []
        for name in classes:
            pool = [r for r in records if r.label == name]
            picks = sorted(rng.choice(len(pool), min(c.n_explain, len(pool)), replace=False))
            chosen += [pool[i] for i in picks]
        model, spec = load_checkpoint(trained["checkpoint"], self.device)
        items = items_from_records(chosen, classes)
        total = len(items) * len(c.methods)
        rows = explain_images(
            model, items, c.methods, spec.preprocessing, self.out / "explain", self.device,
            classes=classes, resolution=c.resolution, batch_size=max(1, min(len(items), 16)),
            seed=c.seed, target_layer=target_layer(spec.name),
            progress=lambda k: self.hooks.progress("explaining", k, total),
        )  # fmt: skip
        folder = default_image_dir(self.test_splits(self.dataset_root())[0])
        images = [
            {"file": r.filename, "relative": f"{folder}/{r.filename}", "name": item.name,
             "label": r.label, "source": r.source}
            for r, item in zip(chosen, items, strict=True)
        ]  # fmt: skip
        return {"images": images, "rows": rows}

    def make_detector(self):
        from data_cleaning.detect import make_detector

        return make_detector(self.detector, self.config.text_threshold, self.device.type == "cuda")

    def shortcut(
        self, root: Path, trained: dict, test: dict[str, list[Record]], explained: dict,
        classes: list[str],
    ) -> dict:  # fmt: skip
        c, folder = self.config, self.out / "shortcut"
        folder.mkdir(parents=True, exist_ok=True)
        images: dict[str, sa.TestImage] = {}
        for split, records in test.items():
            for r in records:
                relative = f"{default_image_dir(split)}/{r.filename}"
                images.setdefault(relative, sa.TestImage(r, relative))
        ordered = list(images.values())
        detector = self.make_detector()
        boxes = sa.detect_text(
            ordered, root, detector, folder / "boxes.jsonl",
            lambda k: self.hooks.progress("detecting text", k, len(ordered)),
        )  # fmt: skip
        model, spec = load_checkpoint(trained["checkpoint"], self.device)
        rows, frequency = sa.region_test_rows(
            model, ordered, boxes, spec.preprocessing, classes, self.device,
            progress=lambda k: self.hooks.progress("region tests", k, len(ordered)),
        )  # fmt: skip
        by_relative = {row["relative"]: row for row in rows}
        shares, mean_maps = sa.saliency_rows(
            explained["images"], by_relative, self.out / "explain" / "maps", c.methods,
            spec.preprocessing, c.top_k,
        )  # fmt: skip
        save_array(folder / "text_frequency.npy", frequency)
        for method, mean_map in mean_maps.items():
            save_array(folder / f"mean_map__{method}.npy", mean_map)
        has_text = np.array(
            [by_relative[e["relative"]]["n_boxes"] > 0 for e in explained["images"]]
        )
        result = sa.verdict(rows, RelianceThresholds(), c.n_bootstrap, c.seed)
        with_text = [row for row in rows if row["n_boxes"]]
        evidence = {
            "n_images": len(rows),
            "n_with_text": len(with_text),
            "mean_text_area_share": float(np.mean([r["text_area_share"] for r in with_text]))
            if with_text
            else 0.0,
            "region_insertion": result.pop("region_insertion"),
            "region_deletion": result.pop("region_deletion"),
            "saliency": sa.summarise_saliency(shares, has_text),
            "per_source": sa.breakdown(rows, "source"),
            "per_class": sa.breakdown(rows, "label"),
        }
        result.pop("n_images")
        return result | {
            "evidence": evidence,
            "images": rows,
            "explained": explained_entries(explained, by_relative, shares),
            "detector": detector.describe(),
        }

    def clean(self, root: Path, dst: Path, splits: list[str], shortcut: dict) -> dict:
        from data_cleaning.clean import MANIFEST, CleanSettings, clean_dataset, read_manifest

        c = self.config
        settings = CleanSettings(
            detector=self.detector, text_threshold=c.text_threshold, radius=c.radius,
            dilate=c.dilate, gpu=self.device.type == "cuda",
        )  # fmt: skip
        known = {row["relative"]: row["boxes"] for row in shortcut["images"]}
        summary = clean_dataset(
            root, dst, splits, settings, known_boxes=known,
            progress=lambda k, n: self.hooks.progress("cleaning", k, n),
        )  # fmt: skip
        entries = read_manifest(dst / MANIFEST)
        return {
            "root": str(dst),
            "detector": self.detector,
            "inpaint": {"method": "telea", "radius": c.radius},
            "dilate": c.dilate,
            "n_images": summary.images,
            "n_with_text": summary.with_text,
            "n_boxes": summary.boxes,
            "failed": [{"file": f["source"], "error": f["reason"]} for f in summary.failed],
            "cleaned": sorted(k for k, e in entries.items() if e["status"] != "failed"),
            "n_residual_boxes": summary.residual_boxes,
            "with_residual": summary.with_residual,
            "needs_review": summary.needs_review,
        }


def explained_entries(explained: dict, rows: dict[str, dict], shares: dict[str, dict]) -> list:
    """Per explained image: its decision and, per method, saliency shares and causal AUCs."""
    entries = []
    for k, image in enumerate(explained["images"]):
        mine = [r for r in explained["rows"] if r["image"] == image["name"]]
        methods = {
            r["method"]: {key: values[k] for key, values in shares[r["method"]].items()}
            | {"deletion_auc": r["deletion_auc"], "insertion_auc": r["insertion_auc"]}
            for r in mine
        }
        entries.append(
            {key: image[key] for key in ("file", "label", "source")}
            | {"predicted": rows[image["relative"]]["predicted"], "methods": methods}
        )
    return entries


def _merge(counters: Iterable[Counter]) -> Counter:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return total


def data_summary(report: DatasetReport) -> dict:
    """Stage 1's figures: counts per split, class and source; formats; DICOM burned-in tags."""
    splits = {}
    for split in report.splits:
        sources: dict[str, Counter] = {}
        for r in split.records:
            sources.setdefault(r.source or "-", Counter())[r.label] += 1
        splits[split.split] = {
            "n": len(split.records),
            "classes": dict(split.classes),
            "sources": {name: dict(counts) for name, counts in sorted(sources.items())},
        }
    formats = _merge(s.formats for s in report.splits)
    burned = _merge(s.burned_in for s in report.splits)
    dicom = formats.get("dicom", 0)
    return {
        "splits": splits,
        "classes": report.label_order(),
        "formats": {k.upper(): v for k, v in formats.items()},
        "bit_depths": {str(k): v for k, v in _merge(s.bit_depths for s in report.splits).items()},
        "sizes": {f"{w}x{h}": n for (w, h), n in _merge(s.sizes for s in report.splits).items()},
        "burned_in_annotation": {
            "YES": burned.get("YES", 0),
            "NO": burned.get("NO", 0),
            "absent": dicom - burned.get("YES", 0) - burned.get("NO", 0),
            "not DICOM": sum(formats.values()) - dicom,
        },  # fmt: skip
        "unreadable": [
            {"file": str(k.record.path), "split": s.split, "error": k.reason}
            for s in report.splits
            for k in s.unreadable
        ],
        "shared_patients": sorted(
            {p for patients in report.shared_patients().values() for p in patients}
        ),
    }
