"""A realistic `AuditResult` and its pictures (64×64), for a model that reads the text and for
one that does not. The metrics come from the real `classification_metrics` and
`paired_comparison`; every part is the record type the pipeline builds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medxai.metrics.sanity import DepthSimilarity
from medxai.metrics.shortcut import (
    RegionDeletion,
    RegionInsertion,
    RelianceThresholds,
    text_reliance,
    transplant_follow,
)
from medxai.metrics.source_following import FilmSource, source_following
from medxai.report import AuditArtifacts, CleaningExample, Curves, GalleryItem
from medxai.report.record import (
    SCHEMA,
    AuditedModel,
    AuditResult,
    ClassFollow,
    CleaningEffect,
    CleaningResult,
    DatasetInfo,
    DataSummary,
    Environment,
    Evaluations,
    Evidence,
    ExplainedEntry,
    FileNote,
    GroupRates,
    KindResult,
    MethodNumbers,
    MethodSanity,
    PhantomSettings,
    RegionRow,
    RegionScores,
    SaliencySummary,
    SanityChecks,
    ShortcutResult,
    SourceResult,
    SplitCounts,
    StyleTransplant,
    TrainedModel,
    Training,
    Transplant,
    TransplantSplit,
    VerdictRow,
)
from medxai.report.verdict import headline
from medxai.statistics.classification import classification_metrics, paired_comparison
from medxai.statistics.confound import source_confound
from medxai.statistics.predictability import PredictabilitySettings, trait_predictability
from pipelines.audit import audit_config

CLASSES = ["normal", "pneumonia", "COVID-19"]
SOURCES = ["src-a", "src-b", "src-c"]
METHODS = ("igos++", "sigcam", "gradcam")
SIZE = 64
SPLITS = ("test.txt", "test_balanced.txt")
BOX = (4, 4, 20, 12)  # where the phantom's sources stamp their text


def _predictions(accuracy: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % len(CLASSES)
    wrong = rng.random(n) > accuracy
    y_pred = np.where(wrong, (y_true + rng.integers(1, len(CLASSES), n)) % len(CLASSES), y_true)
    return y_true, y_pred


def _split_counts(n_per_class: int) -> SplitCounts:
    half, rest = n_per_class // 2, n_per_class - n_per_class // 2
    return SplitCounts(
        n=3 * n_per_class,
        classes=dict.fromkeys(CLASSES, n_per_class),
        sources={
            "src-a": {"normal": 0, "pneumonia": 0, "COVID-19": n_per_class},
            "src-b": {"normal": half, "pneumonia": half, "COVID-19": 0},
            "src-c": {"normal": rest, "pneumonia": half, "COVID-19": 0},
        },
    )


def _region_rows(rng: np.random.Generator, relies: bool) -> list[RegionRow]:
    rows = []
    for i in range(30):
        label, original = CLASSES[i % 3], float(rng.uniform(0.6, 1.0))
        tests = RegionScores(
            original_score=original, baseline_score=float(rng.uniform(0.2, 0.4)),
            baseline_prediction=label,
            inserted_score=float(rng.uniform(0.6, 0.9) if relies else rng.uniform(0.2, 0.4)),
            inserted_prediction=label, deleted_score=original * (0.4 if relies else 0.95),
            deleted_prediction=label, control_area_share=0.03,
            control_deleted_score=original, control_deleted_prediction=label,
            control_inserted_score=0.3, control_inserted_prediction=CLASSES[(i + 1) % 3],
        )  # fmt: skip
        rows.append(
            RegionRow(
                file=f"img{i:03d}.png",
                relative=f"test/img{i:03d}.png",
                label=label,
                source=SOURCES[i % 3],
                predicted=label,
                shape=(SIZE, SIZE),
                boxes=[BOX, BOX],
                model_boxes=[BOX, BOX],
                text_area_share=0.03,
                tests=tests,
            )  # fmt: skip
        )
    return rows


def _transplant(relies: bool) -> Transplant:
    rng = np.random.default_rng(5)
    follows = rng.random(120) < (0.6 if relies else 0.05)
    control = rng.random(120) < 0.05
    follow = transplant_follow(follows, control, follows * 0.5, n_bootstrap=100)
    per_class = [ClassFollow("normal", "COVID-19", 40, 0.7 if relies else 0.05, 0.03)]
    return Transplant(
        associations={"src-a": ["COVID-19"], "src-b": ["normal", "pneumonia"]}, skipped="",
        pooled=follow,
        per_split={s: TransplantSplit(follow, per_class) for s in SPLITS},
        rows=[], donors=3,
    )  # fmt: skip


def _evidence(relies: bool, lift: float) -> Evidence:
    group = GroupRates(
        n=50, n_with_text=50, text_area_share=0.03, keeps_class_rate=0.9 if relies else 0.3,
        flip_rate=0.5 if relies else 0.02, control_flip_rate=0.03,
        control_keeps_class_rate=0.3, mean_drop=0.4 if relies else 0.01,
    )  # fmt: skip
    return Evidence(
        n_images=300, n_with_text=290, mean_text_area_share=0.03,
        region_insertion=RegionInsertion(
            keeps_class_rate=0.71 if relies else 0.35, ci=(0.64, 0.77) if relies else (0.3, 0.4),
            baseline_keeps_class_rate=0.33, baseline_ci=(0.28, 0.38),
            gain=0.38 if relies else 0.02, gain_ci=(0.3, 0.46) if relies else (-0.03, 0.07),
            control_keeps_class_rate=0.33, control_ci=(0.28, 0.38),
        ),
        region_deletion=RegionDeletion(
            flip_rate=0.25, flip_ci=(0.2, 0.3), control_flip_rate=0.03,
            control_flip_ci=(0.01, 0.05), flip_excess=0.22, flip_excess_ci=(0.17, 0.27),
            mean_drop=0.2, ci=(0.15, 0.25), drop_excess=0.18, drop_excess_ci=(0.13, 0.23),
        ),
        saliency={m: SaliencySummary(2, 0.03 * lift, 0.03, 0.4, lift) for m in METHODS},
        per_source=dict.fromkeys(SOURCES, group),
        per_class=dict.fromkeys(CLASSES, group),
        transplant=_transplant(relies),
    )  # fmt: skip


def _shortcut(relies: bool) -> ShortcutResult:
    rng = np.random.default_rng(1 if relies else 2)
    lift = 10.0 if relies else 1.1
    explained = [
        ExplainedEntry(
            file=f"img{i:03d}.png",
            label=CLASSES[i % 3],
            predicted=CLASSES[i % 3],
            source=SOURCES[i % 3],
            methods={
                m: MethodNumbers(
                    0.03 * lift * (1 + 0.1 * k),
                    0.03,
                    0.4 if relies else 0.02,
                    lift * (1 + 0.1 * k),
                    0.2,
                    0.7,
                )
                for k, m in enumerate(METHODS)
            },
        )  # fmt: skip
        for i in range(2)
    ]
    return ShortcutResult(
        relies_on_text=relies, strength="strong" if relies else "none", applicable=True,
        region_level="weak" if relies else "none", transplant_level="strong" if relies else "none",
        summary="The model keeps its prediction from the burned-in text alone on 71% of images."
        if relies
        else "Text alone does not carry the prediction; text gets the saliency its area explains.",
        reasons=["region-only insertion keeps the class on 71% [64%, 77%] vs 33% baseline",
                 "igos++ puts 10.0× more saliency on text than its area"] if relies else [],
        thresholds=RelianceThresholds().table(), evidence=_evidence(relies, lift),
        images=_region_rows(rng, relies), explained=explained, detector={"name": "fused"},
        **_kinds_and_table(relies),
    )  # fmt: skip


def _kinds_and_table(relies: bool) -> dict:
    """A border kind that finds nothing, the source row and the verdict table."""
    n = 40
    flips = np.zeros(n)
    border = KindResult(
        "border", "the film's border", {"name": "border bands"},
        text_reliance(flips, flips, flips, flips, flips, n_bootstrap=100), {}, [],
    )  # fmt: skip
    films = [
        FilmSource(label, source, (source if relies else label))
        for source in ("COVID-19", "normal")
        for label in ("COVID-19", "normal")
        for _ in range(20)
    ]
    sends = {"COVID-19": ["COVID-19"], "normal": ["normal"]}
    follow = source_following("test_balanced.txt", films, sends, 100)
    level = "strong" if relies else "none"
    source = SourceResult(sends, {"test_balanced.txt": follow}, None, level, "balanced films")
    table = [
        VerdictRow("source", "something tied to the source", level, "accuracy gap",
                   follow.gap, follow.gap_ci, "balanced films"),
        VerdictRow("text", "burned-in text", level, "flip excess", 0.3 if relies else 0.0,
                   (0.2, 0.4) if relies else (-0.05, 0.05), "text reasons"),
        VerdictRow("border", "the film's border", "none", "flip excess", 0.0, (0.0, 0.0),
                   "border reasons"),
    ]  # fmt: skip
    styles = {
        "tone": StyleTransplant("tone", "the film's tone curve", None, "no tone donors"),
        "frame": StyleTransplant(
            "frame", "the film's frame geometry",
            transplant_follow(flips, flips, flips, n_bootstrap=100), "",
        ),
    }  # fmt: skip
    return dict(
        kinds={"border": border}, source=source, styles=styles, table=table, overall=level,
        headline=headline(table, level, cleared=not relies), cleared=not relies,
    )  # fmt: skip


def _sanity() -> SanityChecks:
    """gradcam stays similar on the random model (fails); the others decorrelate."""

    def check(method: str, similar: float) -> MethodSanity:
        depths = [DepthSimilarity(1, ("fc",), similar + 0.1, similar + 0.1, 0.8, 0.5, ()),
                  DepthSimilarity(12, ("fc",), similar, similar, 0.6, 0.4, ())]  # fmt: skip
        return MethodSanity(method, 12, 12, None, 0.5, similar <= 0.5, depths, 3, 4.2)

    return SanityChecks({m: check(m, 0.8 if m == "gradcam" else 0.1) for m in METHODS})


def _data() -> DataSummary:
    return DataSummary(
        splits={"train.txt": _split_counts(200), "test.txt": _split_counts(100),
                "test_balanced.txt": _split_counts(50)},
        classes=list(CLASSES), formats={"PNG": 900}, bit_depths={"8": 900},
        sizes={"224x224": 900},
        burned_in_annotation={"YES": 0, "NO": 0, "absent": 0, "not DICOM": 900},
        unreadable=[FileNote("train/broken.png", "truncated PNG")],
        shared_patients=["p042"],
        confound={
            split: source_confound(counts.sources)
            for split, counts in (("train.txt", _split_counts(200)),
                                  ("test.txt", _split_counts(100)),
                                  ("test_balanced.txt", _split_counts(50)))
        },
        traits={"train.txt": _traits()},
    )  # fmt: skip


def _traits():
    """Border width tells the classes apart (COVID-19 films framed), mean intensity does not."""
    rng = np.random.default_rng(0)
    labels = [CLASSES[k % 3] for k in range(90)]
    width = [0.1 if label == "COVID-19" else 0.0 for label in labels]
    table = {"border_width": width, "mean": list(rng.uniform(0.4, 0.6, 90))}
    return trait_predictability(table, labels, settings=PredictabilitySettings(n_bootstrap=100))


def _cleaning() -> CleaningResult:
    return CleaningResult(
        root="runs/audit/cleaned", detector="fused", inpainting="telea", radius=10, dilate=4,
        n_images=900, n_with_text=880, n_boxes=2100,
        failed=[FileNote("test/odd.png", "detector crashed")], n_residual_boxes=0,
        with_residual=[], needs_review=[],
    )  # fmt: skip


ENVIRONMENT = Environment(
    python="3.11.7", platform="Linux-6.1-x86_64", torch="2.5.1", torchvision="0.20.1",
    monai="1.4.0", numpy="2.1.0", opencv="4.10.0", device="cpu", cuda=None, threads=2, cpus=2,
    command="medxai audit",
)  # fmt: skip
TIMINGS = {
    "data_check": 3.2, "train_baseline": 150.0, "evaluate_baseline": 4.0, "explain": 100.0,
    "shortcut": 30.0, "clean": 150.0, "train_cleaned": 150.0, "evaluate_cleaned": 4.0,
    "report": 10.0, "total": 600.0,
}  # fmt: skip


def make_audit(relies: bool) -> AuditResult:
    """The audit record as the pipeline builds it (and writes to audit.json)."""
    splits = {"test.txt": (300, 0.97, 0.9), "test_balanced.txt": (150, 0.6, 0.85)}
    base, clean, comparison = {}, {}, {}
    for k, (split, (n, before, after)) in enumerate(splits.items()):
        y, pred_a = _predictions(before, n, 2 * k)
        _, pred_b = _predictions(after, n, 2 * k + 1)
        base[split] = classification_metrics(y, pred_a, CLASSES, n_bootstrap=100, seed=k)
        clean[split] = classification_metrics(y, pred_b, CLASSES, n_bootstrap=100, seed=k)
        comparison[split] = paired_comparison(y, pred_a, pred_b, CLASSES, n_bootstrap=100)
    trained = TrainedModel("runs/audit/baseline/model.pt", 12, 0.9, 20)
    return AuditResult(
        schema=SCHEMA, medxai_version="0.1.0", created="2026-11-22T10:00:00+00:00",
        dataset=DatasetInfo(
            name="phantom", root="data/phantom", train_split="train.txt",
            test_splits=list(splits), primary_test_split="test.txt",
            balanced_split="test_balanced.txt", classes=list(CLASSES),
            phantom=PhantomSettings(1.0, 200, 224, 0),
        ),
        config=audit_config(methods=METHODS, detector="fused"), detector_used="fused",
        model=AuditedModel(
            kind="train", location=trained.checkpoint, description="covidnet-s, trained here",
            classes=list(CLASSES), gradients=True, target_layer="features.stage4",
            methods=list(METHODS), skipped_methods={}, retrained=True,
        ),
        data=_data(), baseline=base["test.txt"], cleaned=clean["test.txt"],
        evaluations=Evaluations(base, clean), comparison=comparison,
        cleaning_effect={
            s: CleaningEffect(n, 0.3, (0.25, 0.35), {"COVID-19": 0.6}, 0.9, 0.7)
            for s, (n, _, _) in splits.items()
        },
        sanity=_sanity(),
        shortcut=_shortcut(relies),
        cleaning=_cleaning(), training=Training(trained, trained), environment=ENVIRONMENT,
        timings=TIMINGS,
    )  # fmt: skip


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
    fractions = np.linspace(0, 1, 21)
    curves = {m: Curves(fractions, curve, 1 - curve, 0.33, 0.67) for m in METHODS}
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
            insensitive=("gradcam",),
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
        sanity_maps={
            m: (np.stack([_box_map(relies)] * 3), np.stack([_box_map(not relies)] * 3))
            for m in METHODS
        },  # fmt: skip
    )


def stripped(audit: AuditResult) -> AuditResult:
    """A run with the optional parts absent: no balanced split, no phantom (a COVIDx root), no
    text found on the test images (so nothing to clean), no unreadable files."""
    shortcut = replace(audit.shortcut, images=[
        replace(row, boxes=[], model_boxes=[], text_area_share=0.0, tests=None)
        for row in audit.shortcut.images
    ])  # fmt: skip
    data = replace(
        audit.data, splits={k: v for k, v in audit.data.splits.items() if "balanced" not in k},
        confound={k: v for k, v in audit.data.confound.items() if "balanced" not in k},
        unreadable=[], shared_patients=[],
    )  # fmt: skip
    moved = shortcut.evidence.transplant
    moved = replace(moved, per_split={"test.txt": moved.per_split["test.txt"]})
    shortcut = replace(shortcut, evidence=replace(shortcut.evidence, transplant=moved))
    return replace(
        audit,
        dataset=replace(audit.dataset, balanced_split=None, test_splits=["test.txt"], phantom=None),
        evaluations=Evaluations(
            {"test.txt": audit.baseline}, {"test.txt": audit.cleaned}
        ),
        comparison={"test.txt": audit.comparison["test.txt"]},
        cleaning_effect={"test.txt": audit.cleaning_effect["test.txt"]},
        shortcut=shortcut, data=data,
        cleaning=replace(audit.cleaning, n_with_text=0, n_boxes=0, failed=[]),
    )  # fmt: skip


def forward_only(audit: AuditResult) -> AuditResult:
    """The audit of a user's ONNX model: RISE only, no sanity check, no retraining."""
    model = replace(
        audit.model, kind="onnx", location="my_model.onnx", gradients=False, target_layer=None,
        description="ONNX model my_model.onnx: 1x1x128x128 input, classes clear, effusion",
        methods=["rise"], skipped_methods={"gradcam": "needs gradients; ONNX runs forward only"},
        retrained=False,
    )  # fmt: skip
    return replace(
        audit, model=model, cleaned=None, comparison={},
        evaluations=Evaluations(audit.evaluations.baseline, {}),
        training=Training(None, None),
        sanity=SanityChecks({}, skipped="an ONNX model's weights cannot be re-initialised"),
    )  # fmt: skip
