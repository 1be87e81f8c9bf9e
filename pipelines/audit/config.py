"""`AuditConfig`: every setting that decides an audit's results, nested from the settings
records of the parts it runs (training, cleaning, the user's model, the phantom), built and
validated in one place from defaults, the --quick profile, a YAML file and the options given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from data_cleaning.clean import CleanSettings
from data_cleaning.detect import DEFAULT_DETECTOR, DETECTORS
from medxai.codec import decode, encode
from medxai.data.layouts import LAYOUTS, detect_layout
from medxai.data.records import patient_rule
from medxai.errors import MedxaiError
from medxai.explain.user_model import ModelSource
from medxai.models.kinds import model_kind
from medxai.models.training import TrainConfig
from medxai.report.record import PhantomSettings

COVIDX_HELP = (
    "expected ROOT/train.txt and ROOT/test.txt (lines 'patient_id filename label [source]') "
    "with the images in ROOT/train/ and ROOT/test/; COVIDx comes from "
    "https://github.com/lindawangg/COVID-Net (docs/COVIDx.md) or Kaggle's 'COVIDx CXR'"
)


@dataclass(frozen=True)
class DataSettings:
    """Which dataset: the phantom (generated in OUT), or one on disk laid out as `dataset`."""

    dataset: str = "phantom"  # phantom | auto | covidx | csv | folders
    root: str | None = None
    train_split: str = "train.txt"
    test_splits: tuple[str, ...] = ()  # () → test.txt, plus test_balanced.txt when present
    classes: tuple[str, ...] = ()  # () → the training split's (a COVIDx set keeps its order)
    source_from: str = "none"  # folders only: none | dir | prefix
    regions: str | None = None  # the user's regions: a CSV or a folder of masks (--regions)
    patient_pattern: str | None = None  # file-name rule for patient ids (--patient-pattern)
    sample: int | None = None  # test films the verdict stages use (--sample; None: all)
    ties_from: str | None = None  # the split of the source–class ties (None: train, else test)


@dataclass(frozen=True)
class ExplainSettings:
    """The saliency maps the report shows, and how their share in a region is measured."""

    methods: tuple[str, ...] = ("igos++", "sigcam", "gradcam")
    n_explain: int = 2  # films explained per class
    resolution: int = 28  # mask side of the perturbation methods; deletion/insertion grid
    top_k: float = 0.05  # share of the most salient pixels in the overlap figure


def _audit_training() -> TrainConfig:
    return TrainConfig(epochs=20, image_size=128, lr=2e-3, patience=8)


def _audit_phantom() -> PhantomSettings:
    return PhantomSettings(shortcut_strength=1.0, n_per_class=200, size=224, seed=0)


@dataclass(frozen=True)
class AuditConfig:
    """Every setting that decides an audit's results (pinned in OUT/audit_config.json).

    `model` None: the audit trains `train.model` itself. `seed` is the run's one seed; the
    sections that carry a seed (train, phantom) hold the same value."""

    data: DataSettings = field(default_factory=DataSettings)
    phantom: PhantomSettings = field(default_factory=_audit_phantom)
    model: ModelSource | None = None
    train: TrainConfig = field(default_factory=_audit_training)
    explain: ExplainSettings = field(default_factory=ExplainSettings)
    clean: CleanSettings = field(default_factory=CleanSettings)
    retrain: bool = True  # train a model on the cleaned data and compare
    n_bootstrap: int = 1000
    seed: int = 0
    quick: bool = False
    budget_minutes: float | None = None  # cut the saliency, sanity and verdict sizes (--budget)

    @property
    def trains(self) -> bool:
        """Whether the audit trains a model (its own, or one on the cleaned films): only then
        does the dataset need a training split."""
        return self.model is None or self.retrain


# option name (the CLI's, without dashes) -> (section, field); None = a top-level field
OPTIONS: dict[str, tuple[str | None, str]] = {
    "dataset": ("data", "dataset"), "root": ("data", "root"),
    "train_split": ("data", "train_split"), "test_splits": ("data", "test_splits"),
    "classes": ("data", "classes"), "source_from": ("data", "source_from"),
    "regions": ("data", "regions"), "patient_pattern": ("data", "patient_pattern"),
    "sample": ("data", "sample"), "ties_from": ("data", "ties_from"),
    "n_per_class": ("phantom", "n_per_class"), "phantom_size": ("phantom", "size"),
    "shortcut_strength": ("phantom", "shortcut_strength"),
    "model": ("train", "model"), "image_size": ("train", "image_size"),
    "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"), "patience": ("train", "patience"),
    "positive_class": ("train", "positive_class"),
    "methods": ("explain", "methods"), "n_explain": ("explain", "n_explain"),
    "resolution": ("explain", "resolution"), "top_k": ("explain", "top_k"),
    "detector": ("clean", "detector"), "text_threshold": ("clean", "text_threshold"),
    "dilate": ("clean", "dilate"), "radius": ("clean", "radius"),
    "source": (None, "model"), "retrain": (None, "retrain"),
    "n_bootstrap": (None, "n_bootstrap"), "seed": (None, "seed"),
    "budget": (None, "budget_minutes"),
}  # fmt: skip

QUICK = {
    "epochs": 20, "batch_size": 16, "patience": 10, "image_size": 96,
    "methods": ("sigcam", "gradcam"), "n_explain": 1, "n_per_class": 80, "n_bootstrap": 500,
    "budget": 5.0,  # minutes: a large user model's saliency is cut to fit
}  # fmt: skip


def audit_config(quick: bool = False, file: Path | None = None, **options: Any) -> AuditConfig:
    """Defaults, then the --quick sizes, then FILE (YAML, nested as `AuditConfig`), then the
    options given (None = not given; names as in `OPTIONS`), validated.

    A root without a named layout is "auto", and "auto" becomes the layout found at root;
    detector "auto" becomes the recommended one; retraining defaults to on for the model the
    audit trains and off for a user's model."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise MedxaiError(f"unknown audit settings {unknown}; use {', '.join(OPTIONS)}")
    from_file = read_config_file(file) if file is not None else {}
    quick = bool(from_file.get("quick", quick)) or quick
    tree = encode(AuditConfig(quick=quick))
    for name, value in (QUICK if quick else {}).items():
        _set(tree, OPTIONS[name], value)
    _merge(tree, from_file, str(file))
    for name, value in given.items():
        _set(tree, OPTIONS[name], encode(value))
    if "retrain" not in given and "retrain" not in from_file:
        tree["retrain"] = tree["model"] is None
    named = "dataset" in given or "dataset" in from_file.get("data", {})
    if tree["data"]["root"] is not None and not named:
        tree["data"]["dataset"] = "auto"  # a dataset at root, its layout told from it
    config = decode(AuditConfig, _floats(AuditConfig, tree), str(file or "audit settings"))
    return resolved(validated(config))


def read_config_file(path: Path) -> dict:
    """A YAML (or JSON) file nested as `AuditConfig`; its first problem is one clear error."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise MedxaiError(f"{path}: cannot read the config file ({err.strerror})") from err
    except yaml.YAMLError as err:
        first = (str(err).strip().splitlines() or ["invalid"])[0]
        raise MedxaiError(f"{path}: not valid YAML ({first})") from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise MedxaiError(f"{path}: an audit config is a mapping of sections (data, train, ...)")
    return loaded


def _set(tree: dict, where: tuple[str | None, str], value: Any) -> None:
    section, name = where
    (tree if section is None else tree[section])[name] = value


def _merge(tree: dict, update: dict, where: str, path: str = "") -> None:
    """`update`'s values into `tree`, key by key; a key the config lacks is an error."""
    for key, value in update.items():
        dotted = f"{path}{key}"
        if key not in tree:
            raise MedxaiError(f"{where}: unknown setting {dotted!r}; known: {', '.join(tree)}")
        if isinstance(tree[key], dict) and isinstance(value, dict):
            _merge(tree[key], value, where, f"{dotted}.")
        else:
            tree[key] = value


def _floats(kind: type, tree: Any) -> Any:
    """Whole numbers and numeric strings (YAML reads `1e-3` as text) made floats where the
    record's field is a float, so a config file need not write `0.70`."""
    if not (dataclasses.is_dataclass(kind) and isinstance(tree, dict)):
        return tree
    hints = _field_types(kind)
    out = dict(tree)
    for name, value in tree.items():
        hint = hints.get(name)
        if hint is float and not isinstance(value, bool):
            try:
                out[name] = float(value) if isinstance(value, int | str) else value
            except ValueError:
                out[name] = value  # the codec names the field and the value
        elif dataclasses.is_dataclass(hint):
            out[name] = _floats(hint, value)
    return out


def _field_types(kind: type) -> dict[str, Any]:
    import typing

    hints = typing.get_type_hints(kind)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if typing.get_origin(hint) is not None and len(args) == 1 else hint
    return out


def validated(config: AuditConfig) -> AuditConfig:
    """The config, or the first setting that cannot work as one clear error."""
    _check_data(config.data)
    if config.model is not None:
        kind = model_kind(config.model.kind)
        if config.retrain and not kind.can_retrain:
            raise MedxaiError(kind.no_retrain)
    if config.clean.detector not in ("auto", *DETECTORS):
        raise MedxaiError(
            f"unknown detector {config.clean.detector!r}; use auto, {', '.join(DETECTORS)}"
        )
    if config.explain.n_explain < 1 or not config.explain.methods:
        raise MedxaiError("an audit explains at least 1 image per class with at least 1 method")
    config.train.validate()
    if config.n_bootstrap < 1:
        raise MedxaiError(f"n_bootstrap must be at least 1; got {config.n_bootstrap}")
    if config.budget_minutes is not None and not config.budget_minutes > 0:
        raise MedxaiError(f"--budget is minutes, above 0; got {config.budget_minutes}")
    return config


def _check_data(data: DataSettings) -> None:
    if data.dataset not in ("phantom", "auto", *LAYOUTS):
        raise MedxaiError(
            f"unknown dataset {data.dataset!r}; use phantom, or a dataset at --root laid out "
            f"as auto, {', '.join(LAYOUTS)}"
        )
    if data.dataset != "phantom" and data.root is None:
        raise MedxaiError(f"--layout {data.dataset} needs --root DIR: {COVIDX_HELP}")
    if data.dataset == "phantom" and data.root is not None:
        raise MedxaiError("--root is for a dataset on disk; the phantom is generated in --out")
    if data.regions is not None and not Path(data.regions).exists():
        raise MedxaiError(f"{data.regions}: regions file not found (--regions)")
    if data.patient_pattern is not None:
        patient_rule(data.patient_pattern)
    if data.sample is not None and data.sample < 1:
        raise MedxaiError(f"--sample is a number of test films, at least 1; got {data.sample}")


def resolved(config: AuditConfig) -> AuditConfig:
    """ "auto" made concrete (the layout found at root, the recommended detector) and the one
    seed given to every section that carries one."""
    data, clean = config.data, config.clean
    if data.dataset == "auto":
        data = replace(data, dataset=detect_layout(data.root))
    if clean.detector == "auto":
        clean = replace(clean, detector=DEFAULT_DETECTOR)
    return replace(
        config, data=data, clean=clean, train=replace(config.train, seed=config.seed),
        phantom=replace(config.phantom, seed=config.seed),
    )  # fmt: skip
