"""The audit record: what each stage of `medxai audit` returns, and the `AuditResult` the
report renders and audit.json holds. One frozen dataclass per part; medxai.codec writes and
reads them, so these classes are audit.json's schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from medxai.boxes import Box
from medxai.metrics.sanity import DepthSimilarity, outcome_of
from medxai.metrics.shortcut import RegionDeletion, RegionInsertion, Reliance, TransplantFollow
from medxai.metrics.source_following import SourceFollowing, SplitGap
from medxai.statistics.bootstrap import Interval
from medxai.statistics.classification import ClassificationMetrics, Evaluation, PairedComparison
from medxai.statistics.confound import SourceConfound
from medxai.statistics.predictability import TraitReport

SCHEMA = "medxai-audit-8"
T = TypeVar("T")
C = TypeVar("C")  # the audit's settings record (pipelines.audit.config.AuditConfig)


# -- stage records ----------------------------------------------------------------------
@dataclass(frozen=True)
class PhantomSummary:
    n_images: int
    counts: dict[str, dict[str, int]]  # split file -> class -> images


@dataclass(frozen=True)
class SplitCounts:
    n: int
    classes: dict[str, int]
    sources: dict[str, dict[str, int]]  # source -> class -> images


@dataclass(frozen=True)
class FileNote:
    """A file the reader should look at, and why (unreadable, failed, to review, residual text)."""

    file: str
    reason: str


@dataclass(frozen=True)
class DataSummary:
    """Counts per split, class and source; formats; DICOM burned-in tags; unreadable files."""

    splits: dict[str, SplitCounts]
    classes: list[str]
    formats: dict[str, int]
    bit_depths: dict[str, int]
    sizes: dict[str, int]
    burned_in_annotation: dict[str, int]  # YES, NO, absent, not DICOM
    unreadable: list[FileNote]
    shared_patients: list[str]
    confound: dict[str, SourceConfound]  # split -> source/label association
    traits: dict[str, TraitReport] = field(default_factory=dict)  # split -> label-predicting traits


@dataclass(frozen=True)
class TrainedModel:
    checkpoint: str
    best_epoch: int
    best_val_macro_f1: float
    epochs_run: int
    balance: str = ""  # the batch balancing training used
    warning: str = ""  # set when validation never beat chance


@dataclass(frozen=True)
class AuditedModel:
    """The model the audit explains: trained by the audit, or the user's own."""

    kind: str  # train | checkpoint | import | torchscript | onnx
    location: str  # its checkpoint, file, or package.module:factory
    description: str  # one line: kind, file, parameters, input, classes
    classes: list[str]
    gradients: bool  # False: forward-only (ONNX), gradient methods cannot run
    target_layer: str | None  # what CAM methods read; None: no CAM methods
    methods: list[str]  # the saliency methods run
    skipped_methods: dict[str, str]  # method -> why it was not run
    retrained: bool  # whether a model was trained on the cleaned data and compared
    sanity_note: str = ""  # why the sanity check could not run, if it could not


@dataclass(frozen=True)
class CausalScores:
    deletion_auc: float
    insertion_auc: float


@dataclass(frozen=True)
class ExplainedImage:
    """A test image explained by every method, with each map's deletion/insertion AUCs."""

    file: str
    relative: str  # path under the dataset root (the cleaner's key)
    name: str  # the maps' file-name stem
    label: str
    source: str | None
    predicted: str
    scores: dict[str, CausalScores]  # method -> AUCs (NaN where the method found no map)
    no_map: dict[str, str] = field(default_factory=dict)  # method -> why it found no map


@dataclass(frozen=True)
class ExplainedSet:
    images: list[ExplainedImage]


@dataclass(frozen=True)
class EvaluatedSplits:
    """A model's evaluation on each test split."""

    splits: dict[str, Evaluation]


@dataclass(frozen=True)
class MethodSanity:
    """One method's model-randomisation check (Adebayo et al. 2018) on `n_images` films.

    The figures at each depth are means over the films whose maps are not degenerate
    (constant), the Spearman one with its bootstrap interval (`DepthSimilarity`)."""

    method: str
    n_layers: int  # randomisable layers of the model
    verdict_depth: int  # layers random when the verdict is read
    verdict_layer: str | None  # the CAM target layer (None: every layer)
    threshold: float
    model_sensitive: bool  # False: the maps stay similar on a random model, or degenerate
    depths: list[DepthSimilarity]
    n_images: int
    seconds: float
    degenerate: bool = False  # most maps at the verdict depth are constant: nothing shown

    @property
    def outcome(self) -> str:
        """The outcome in words: model-sensitive, insensitive or degenerate."""
        return outcome_of(self.model_sensitive, self.degenerate)

    @property
    def verdict(self) -> DepthSimilarity:
        """The figures at the verdict depth."""
        return next(d for d in self.depths if d.depth == self.verdict_depth)

    @property
    def n_compared(self) -> int:
        """Films whose similarity counts at the verdict depth (not degenerate)."""
        return self.n_images - self.verdict.degenerate

    @property
    def degenerate_share(self) -> float:
        """Share of the comparisons, over every depth run, that were degenerate."""
        return sum(d.degenerate for d in self.depths) / max(1, self.n_images * len(self.depths))


@dataclass(frozen=True)
class SanityChecks:
    methods: dict[str, MethodSanity]
    skipped: str = ""  # why no method was checked (weights that cannot be reset, the budget)


@dataclass(frozen=True)
class RegionScores:
    """The region tests on one image with text (scores of the decided class)."""

    original_score: float
    baseline_score: float
    baseline_prediction: str
    inserted_score: float
    inserted_prediction: str
    deleted_score: float
    deleted_prediction: str
    control_area_share: float  # 0: no matched control (the image is left out of the tests)
    control_deleted_score: float
    control_deleted_prediction: str
    control_inserted_score: float  # the control alone over the blurred image
    control_inserted_prediction: str


@dataclass(frozen=True)
class RegionRow:
    """One test image: its decision, its detected text, and the region tests when it has text."""

    file: str
    relative: str
    label: str
    source: str | None
    predicted: str
    shape: tuple[int, int]  # original (H, W)
    boxes: list[Box]  # original pixels
    model_boxes: list[Box]  # the same on the model input (boxes cropped away are gone)
    text_area_share: float
    tests: RegionScores | None  # None: no text on the model input

    @property
    def n_boxes(self) -> int:
        return len(self.model_boxes)


@dataclass(frozen=True)
class SaliencySummary:
    """Mean saliency figures of one method over the explained images with text."""

    n: int
    mass_share: float | None
    area_share: float | None
    top_k_overlap: float | None
    lift: float | None


@dataclass(frozen=True)
class GroupRates:
    """The region tests over one source's (or class's) images with text."""

    n: int
    n_with_text: int
    text_area_share: float
    flip_rate: float | None = None
    control_flip_rate: float | None = None
    keeps_class_rate: float | None = None
    control_keeps_class_rate: float | None = None  # the control alone over the blurred image
    mean_drop: float | None = None


@dataclass(frozen=True)
class MethodNumbers:
    """One method's map of one image: saliency on the text, and its causal AUCs."""

    mass_share: float
    area_share: float
    top_k_overlap: float
    lift: float
    deletion_auc: float
    insertion_auc: float


@dataclass(frozen=True)
class ExplainedEntry:
    file: str
    label: str
    source: str | None
    predicted: str
    methods: dict[str, MethodNumbers]


@dataclass(frozen=True)
class TransplantRow:
    """One film with its own text inpainted and donor films' boxes pasted at the donors' own
    positions, with their text (swap) and from their cleaned copies (blank)."""

    relative: str
    label: str
    source: str | None
    decided: str  # the baseline's decision on the original film
    targets: list[str]  # the classes the donors' sources send (never the decided one)
    donors: list[str]
    swap_predictions: list[str]  # per donor
    blank_predictions: list[str]
    target_prob: float  # of the target classes together: original film
    swap_target_prob: float  # mean over the donors
    blank_target_prob: float

    @property
    def follow(self) -> float:
        """Share of the donors whose text moves the decision to a target class."""
        return float(np.mean([p in self.targets for p in self.swap_predictions]))

    @property
    def blank_follow(self) -> float:
        """The same with the donors' boxes blank: what position and background alone do."""
        return float(np.mean([p in self.targets for p in self.blank_predictions]))


@dataclass(frozen=True)
class ClassFollow:
    """Films of one true class given another class's text: how often they follow it."""

    label: str
    target: str  # the donor source's classes, "a or b"
    n: int
    follow_rate: float
    control_follow_rate: float  # the control (for text: blank) arm
    excess_ci: Interval | None = None  # of follow − control, paired per film


@dataclass(frozen=True)
class TransplantSplit:
    follow: TransplantFollow
    per_class: list[ClassFollow]


@dataclass(frozen=True)
class Transplant:
    """The counterfactual text transplant over the test films (pooled) and per split."""

    associations: dict[str, list[str]]  # source -> the classes it sends (DatasetInfo.ties)
    skipped: str  # why films or the whole test were left out ("" when none)
    pooled: TransplantFollow | None
    per_split: dict[str, TransplantSplit]
    rows: list[TransplantRow]
    donors: int = 0  # donors pasted per film (each with its text and blank)


@dataclass(frozen=True)
class Evidence:
    n_images: int
    n_with_text: int
    mean_text_area_share: float
    region_insertion: RegionInsertion
    region_deletion: RegionDeletion
    saliency: dict[str, SaliencySummary]
    per_source: dict[str, GroupRates]
    per_class: dict[str, GroupRates]
    transplant: Transplant


@dataclass(frozen=True)
class KindResult:
    """One region kind's region tests over the test films that carry it."""

    kind: str  # text, marker, border, user:<name>
    cue: str  # the kind in words
    finder: dict[str, Any]  # what found the regions
    reliance: Reliance  # the region-test figures and the levels they reach
    per_source: dict[str, GroupRates]
    rows: list[RegionRow]  # every test film (text: empty, its rows are ShortcutResult.images)

    @property
    def n_with_regions(self) -> int:
        return self.reliance.n_images


@dataclass(frozen=True)
class SourceResult:
    """Whether the decisions follow the films' sources, whatever the cue."""

    associations: dict[str, list[str]]  # source -> the classes it sends (DatasetInfo.ties)
    per_split: dict[str, SourceFollowing]
    split_gap: SplitGap | None  # confounded against balanced test split
    level: str  # strong, moderate, weak, none, or "not measured"
    reason: str


@dataclass(frozen=True)
class StyleTransplant:
    """One global trait's transplant (pipelines/audit/style.py) over the test films with
    donors for both arms: does the decision follow another hospital's look?"""

    trait: str  # tone | frame
    cue: str  # the trait in the verdict's words
    follow: TransplantFollow | None  # None: no film had donors for both arms
    skipped: str  # why, when `follow` is None


@dataclass(frozen=True)
class VerdictRow:
    """One row of the verdict table: a cue, the level the audit found, and why."""

    kind: str  # source, text, marker, border, user:<name>
    cue: str
    level: str  # strong, moderate, weak, none, or "not measured"
    figure: str  # what `value` is
    value: float | None
    ci: Interval | None
    reason: str


@dataclass(frozen=True)
class ShortcutResult:
    """The verdict, its reasons and thresholds, and the evidence behind it. `strength` and
    `relies_on_text` are the text row's; `overall` is the highest level of any row of
    `table` (source, text, marker, border, the user's kinds)."""

    relies_on_text: bool
    strength: str  # strong, moderate, weak, none, or "not applicable"
    applicable: bool  # False: the model did not learn, so there is no verdict on it
    region_level: str  # the region tests' joint level
    transplant_level: str
    summary: str
    reasons: list[str]
    thresholds: dict[str, float]
    evidence: Evidence
    images: list[RegionRow]
    explained: list[ExplainedEntry]
    detector: dict[str, Any]
    kinds: dict[str, KindResult]  # every region kind's region tests
    source: SourceResult
    styles: dict[str, StyleTransplant]  # tone, frame: the style transplant of each
    table: list[VerdictRow]
    overall: str  # the highest level in `table`, "inconclusive", or "not applicable"
    headline: str  # the banner: every cue that reaches a level
    cleared: bool  # True only when nothing reached a level and nothing is left unmeasured
    resampled: str = "films"  # what the intervals resample, e.g. "120 patients (150 films)"
    min_films: int = 30  # films or patients a figure needs before it can reach a level


@dataclass(frozen=True)
class NegativeControl:
    """The text's region tests and transplant, on the original test films, run on the model
    retrained on cleaned films (it never saw the text): what the tests find where there is
    nothing to find, beside what they find on the model under audit."""

    checkpoint: str
    reliance: Reliance  # the region tests on the text boxes the audit found
    transplant: Transplant
    strength: str  # the text verdict the same rule gives this model
    transplant_level: str


@dataclass(frozen=True)
class CleaningResult:
    root: str
    detector: str
    inpainting: str  # OpenCV's method
    radius: int
    dilate: int
    n_images: int
    n_with_text: int
    n_boxes: int
    failed: list[FileNote]
    n_residual_boxes: int
    with_residual: list[FileNote]  # reason: how many boxes are still detected
    needs_review: list[FileNote]


@dataclass(frozen=True)
class CleaningStage:
    result: CleaningResult
    cleaned: list[str]  # relative paths of the images the cleaned dataset holds


# -- the audit ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PhantomSettings:
    shortcut_strength: float
    n_per_class: int
    size: int
    seed: int


@dataclass(frozen=True)
class TestSample:
    """The test films the verdict stages used, when `--sample` (or a time budget) drew fewer
    than all: whole patients, as even over the classes as they allow; cleaning still covers
    every film."""

    requested: int
    n_films: int  # drawn, over all test splits
    n_total: int  # test films before the draw
    n_patients: int
    per_class: dict[str, int]
    seed: int
    cause: str = ""  # what drew the sample, in words ("": --sample)

    @property
    def why(self) -> str:
        return self.cause or f"--sample {self.requested}"

    @property
    def widening(self) -> float:
        """How much wider an interval over films is than over every test film would be
        (intervals shrink as one over the square root of the films)."""
        return (self.n_total / self.n_films) ** 0.5


@dataclass(frozen=True)
class Ties:
    """Where the source–class ties (which source sends which class) came from: the text and
    style transplants pick their donors by them, and the source row reads decisions by them."""

    split: str  # the split they were counted on
    chosen: str  # "--ties-from", "training split" or "test split" (no training split)
    shares_films: bool  # a test split: the ties and the tests rest on the same films
    n_sources: int  # sources the split names (0: no ties, so no transplant)
    note: str  # what the report says of them


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    root: str
    train_split: str | None  # None: a test set alone, audited with the user's model
    test_splits: list[str]
    primary_test_split: str
    balanced_split: str | None
    classes: list[str]
    phantom: PhantomSettings | None
    sample: TestSample | None = None  # the verdict stages' test films, when sampled
    layout: str = ""  # the layout read and why (as data-check says it)
    ties: Ties | None = None  # None: an audit written before the ties were recorded


@dataclass(frozen=True)
class CleaningEffect:
    """The baseline on each test film and on its cleaned copy: the natural counterfactual."""

    n: int
    changed_rate: float  # decisions that change when only the text is inpainted
    changed_ci: Interval
    per_class: dict[str, float]  # true class -> changed rate
    accuracy_original: float
    accuracy_cleaned: float


@dataclass(frozen=True)
class ModelPair(Generic[T]):
    """One thing for each model: the baseline and the one retrained on the cleaned data."""

    baseline: T
    cleaned: T


Evaluations = ModelPair[dict[str, ClassificationMetrics]]  # split -> metrics ({}: not run)
Training = ModelPair[TrainedModel | None]  # None: a user's model, or no retraining


@dataclass(frozen=True)
class Environment:
    python: str
    platform: str
    torch: str
    torchvision: str
    monai: str
    numpy: str
    opencv: str
    device: str
    cuda: str | None
    threads: int
    cpus: int | None
    command: str


@dataclass(frozen=True)
class StageCost:
    stage: str
    seconds: float
    work: str  # what was counted


@dataclass(frozen=True)
class ExplainPlan:
    """What the saliency, sanity and verdict stages run: the configured sizes, or those cut
    to fit the time budget (`cuts` says what was cut, in words)."""

    n_explain: int  # films explained per class
    sanity_films: int  # 0: the sanity check was cut
    method_params: dict[str, dict[str, int]] = field(default_factory=dict)  # method -> cut
    cuts: list[str] = field(default_factory=list)
    verdict_films: int | None = None  # test films the verdict stages sample (None: as given)
    curve_per_step: int | None = None  # deletion/insertion cells per step (None: the default)

    def params(self, method: str) -> dict[str, int]:
        """The method's parameters cut to fit ({} when none was)."""
        return dict(self.method_params.get(method, {}))


@dataclass(frozen=True)
class CostEstimate:
    """Per stage, the seconds an audit was estimated to take on this machine before it
    started (pipelines.audit.cost), and the two timings the estimate rests on; with a time
    budget, the estimate after the cuts, and what it was before."""

    stages: list[StageCost]
    forward_seconds: float  # one image, one forward pass of the model
    detect_seconds: float  # text detection, per film (the mean over a few test films)
    methods: list[str]
    plan: ExplainPlan | None = None  # None only in records written before plans existed
    budget_minutes: float | None = None
    uncut_seconds: float | None = None  # the estimate before the cuts (None: nothing cut)
    scoring_seconds: float | None = None  # one image, the forward copy (None: as the model)
    compose_seconds: float = 0.0  # one composed film (a transplant's arm) made model input
    blur_seconds: float = 0.0  # one film's blurred baseline (the region tests make them)
    ranks: int = 1  # torchrun's processes, which share the dealt stages (timings: rank 0's)
    spent_seconds: float = 0.0  # before the plan (data stage, estimate): gone from a budget
    train_step_seconds: float | None = None  # one image's training step (None: not timed)
    augment_seconds: float = 0.0  # one image's training augmentation

    @property
    def total(self) -> float:
        return sum(s.seconds for s in self.stages)

    def lines(self) -> list[str]:
        """The estimate as the console prints it before the first long stage."""
        copy = self.scoring_seconds
        faster = f", {copy * 1e3:.1f} ms on its forward copy" if copy is not None else ""
        where = "this machine" + (f", {self.ranks} ranks" if self.ranks > 1 else "")
        head = (
            f"estimated cost on {where}: {self.total / 60:.1f} min (a forward pass "
            f"{self.forward_seconds * 1e3:.1f} ms per image{faster}, text detection "
            f"{self.detect_seconds:.2f} s per film)"
        )
        lines = [head] + [f"  {s.stage}: {s.seconds:.0f} s ({s.work})" for s in self.stages]
        if self.plan and self.plan.cuts:
            lines.append(
                f"cut to fit the budget of {self.budget_minutes:g} min ({self.spent_seconds:.0f}"
                f" s spent before this estimate; was {(self.uncut_seconds or 0) / 60:.1f} min): "
                + "; ".join(self.plan.cuts)
            )
        return lines


@dataclass(frozen=True)
class AuditResult(Generic[C]):
    """Everything audit.json holds; the HTML report renders exactly this. `config` is the
    audit's nested settings record, owned by the audit package (read it back with
    `AuditResult[AuditConfig]`)."""

    schema: str
    medxai_version: str
    created: str
    dataset: DatasetInfo
    config: C
    detector_used: str
    data: DataSummary
    model: AuditedModel
    baseline: ClassificationMetrics  # on the primary test split
    cleaned: ClassificationMetrics | None  # the retrained model's (None: not retrained)
    evaluations: Evaluations
    comparison: dict[str, PairedComparison]  # {} when not retrained
    cleaning_effect: dict[str, CleaningEffect]  # test split -> the baseline, cleaned vs not
    sanity: SanityChecks
    shortcut: ShortcutResult
    cleaning: CleaningResult
    training: Training
    environment: Environment
    timings: dict[str, float]
    negative_control: NegativeControl | None = None  # None: no model was retrained
    estimate: CostEstimate | None = None  # what the stages were estimated to take
