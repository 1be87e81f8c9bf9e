"""Train and evaluate classifiers on COVIDx records: resumable, seeded, torchrun-ready.

Reproducibility does not depend on saved RNG state: every epoch's batch order and every
image's augmentation are drawn from generators seeded by (seed, epoch[, index]), so a run
resumed at epoch k draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import convert_to_tensor
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from medxai import distributed
from medxai.atomic import atomic_write_text
from medxai.codec import encode
from medxai.data.classes import class_order
from medxai.data.covidx import CovidxDataset, Record
from medxai.data.film_store import FilmStore, film_bytes
from medxai.data.needs import VAL_FRACTION, class_problem, validation_folds, validation_problem
from medxai.data.transforms import (
    Augmentation,
    Preprocessing,
    augmentation_chain,
    build_transforms,
)
from medxai.device import conv_layout
from medxai.errors import MedxaiError
from medxai.models.checkpoint import (
    ModelSpec,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from medxai.statistics.bootstrap import Clusters
from medxai.statistics.classification import Evaluation, classification_metrics

POSITIVE_CLASSES = ("COVID-19", "positive")  # the default class COVID-Net oversamples
BALANCES = ("auto", "covid-share", "class-weights", "none")


def resolve_balance(
    balance: str, targets: Sequence[int], positive: int | None, share: float
) -> str:
    """`auto`: COVID-Net's batch share only where the positive class is a minority below that
    share (oversampling a class that is already half the data teaches the prior); otherwise
    class-weighted loss, which leaves a balanced set as it is."""
    if balance != "auto":
        return balance
    counts = np.bincount(np.asarray(targets, dtype=int))
    if positive is not None and positive < counts.size and counts[positive] < share * counts.sum():
        return "covid-share"
    return "class-weights"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (stored in checkpoints, checked on resume)."""

    model: str = "covidnet-s"
    epochs: int = 10
    batch_size: int = 32
    image_size: int = 224
    channels: int = 1
    top_crop: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = VAL_FRACTION
    balance: str = "auto"  # auto | covid-share | class-weights | none (see resolve_balance)
    covid_share: float = 0.3  # COVID-Net's share of COVID-19 images per batch
    patience: int = 5
    augment: bool = True
    seed: int = 0
    weights: str | None = None
    classes: tuple[str, ...] | None = None  # the classes in order (None: `class_order`'s)
    positive_class: str | None = None  # oversampled class (None: COVID-19/positive if a class)
    model_input: Preprocessing | None = None  # a user's model's own (retraining it in an audit)

    def preprocessing(self) -> Preprocessing:
        """`model_input` when given, else image_size, channels and top_crop with per-image
        standardisation."""
        if self.model_input is not None:
            return self.model_input
        return Preprocessing(self.image_size, self.channels, self.top_crop)

    def validate(self) -> None:
        if self.balance not in BALANCES:
            raise MedxaiError(f"unknown balance {self.balance!r}; use {', '.join(BALANCES)}")
        if not 0.0 < self.val_fraction < 0.5:
            raise MedxaiError(f"val fraction must be in (0, 0.5), got {self.val_fraction}")
        if not 0.0 < self.covid_share < 1.0:
            raise MedxaiError(f"covid share must be in (0, 1), got {self.covid_share}")
        if self.epochs < 1 or self.batch_size < 2:
            raise MedxaiError("need at least 1 epoch and a batch size of at least 2")


@dataclass
class TrainState:
    """What `last.pt` holds besides weights and optimiser: where training stands."""

    epoch: int = 0  # epochs finished
    best_f1: float = -1.0
    best_epoch: int = 0
    stale_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    balance: str = ""  # the balancing `auto` chose (or the one asked for)
    warning: str = ""  # set when validation never beat chance


def patient_split(
    records: Sequence[Record], val_fraction: float, seed: int
) -> tuple[list[Record], list[Record]]:
    """Carve a validation split by patient (no patient on both sides), stratified by class."""
    problem = validation_problem(records, val_fraction)
    if problem:
        raise MedxaiError(problem)
    folds, labels = validation_folds(val_fraction), [r.label for r in records]
    groups = [r.patient_id for r in records]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        train_index, val_index = next(splitter.split(np.zeros(len(records)), labels, groups))
    except ValueError as err:
        raise MedxaiError(f"cannot carve a validation split by patient: {err}") from err
    return [records[i] for i in train_index], [records[i] for i in val_index]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([abs(k) for k in key]))


class BalancedBatchSampler(Sampler[list[int]]):
    """COVID-Net batches: a fixed share of each batch is positive-class, repeated as needed.

    Every other image is seen once per epoch. Batches are dealt round-robin to torchrun
    ranks, so each rank sees a disjoint share. `set_epoch` reseeds the draw.
    """

    def __init__(self, targets: Sequence[int], positive: int | None, batch_size: int,
                 share: float, seed: int, rank: int = 0, world: int = 1) -> None:  # fmt: skip
        targets = np.asarray(targets)
        self.positive = np.flatnonzero(targets == positive) if positive is not None else []
        self.others = np.flatnonzero(targets != positive) if positive is not None else None
        if positive is None or len(self.positive) == 0 or len(self.others) == 0:
            self.positive, self.others = np.array([], int), np.arange(len(targets))
            share = 0.0
        self.n_pos = int(round(share * batch_size)) if len(self.positive) else 0
        self.n_other = batch_size - self.n_pos
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _cycled(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` draws from `pool`: whole shuffled passes, so each is used before any repeats."""
        if count == 0:
            return np.array([], dtype=int)
        passes = [rng.permutation(pool) for _ in range(math.ceil(count / len(pool)))]
        return np.concatenate(passes)[:count]

    def _all_batches(self) -> list[list[int]]:
        rng = _rng(self.seed, self.epoch, 7)
        others = rng.permutation(self.others)
        n_batches = math.ceil(len(others) / self.n_other)
        n_batches += (-n_batches) % self.world  # every rank gets the same number of batches
        positives = self._cycled(self.positive, n_batches * self.n_pos, rng)
        batches = []
        for b in range(n_batches):
            chunk = others[(b * self.n_other) % len(others) :][: self.n_other]
            pos = positives[b * self.n_pos : (b + 1) * self.n_pos]
            batches.append([int(i) for i in rng.permutation(np.concatenate([chunk, pos]))])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.rank :: self.world]

    def __len__(self) -> int:
        n_batches = math.ceil(len(self.others) / self.n_other)
        return (n_batches + (-n_batches) % self.world) // self.world


class SeededAugment(Dataset):
    """Wraps eval-chain items so that image i in epoch e is augmented by a generator seeded
    (seed, e, i): independent of DataLoader workers and of where a run was resumed.

    `chain` (None: no augmentation) takes what the eval chain gave; with `dataset` a
    `DecodedOnce`, only this random part runs every epoch.
    """

    def __init__(self, dataset: Dataset, chain: Compose | None, seed: int) -> None:
        self.dataset, self.chain, self.seed, self.epoch = dataset, chain, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        if self.chain is None:
            return image, label
        self.chain.set_random_state(seed=int(_rng(self.seed, self.epoch, index).integers(2**31)))
        return convert_to_tensor(self.chain(image), dtype=torch.float32, track_meta=False), label


# Decoded training and validation inputs are kept in memory up to this size each, and in a
# file under the run's OUT past it (see FilmStore), so that training's memory stays flat in the
# number of films (DataLoader workers decode every epoch instead: their copies would not be
# shared).
CACHE_BYTES = 256 << 20


class DecodedOnce(Dataset):
    """Items of `dataset` kept after their first read (see FilmStore): decoding and the eval
    chain run once per image, not once per epoch (about half of an epoch's time on 2 CPU
    cores)."""

    def __init__(self, dataset: CovidxDataset, prep: Preprocessing, spill: Path | None) -> None:
        self.dataset, self.labels = dataset, dataset.targets
        self.store = FilmStore(range(len(dataset)), prep.input_shape, spill, CACHE_BYTES)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.store.made_once(index, lambda: self.dataset[index][0]), self.labels[index]


def cached(
    dataset: CovidxDataset, prep: Preprocessing, workers: int, spill: Path | None = None
) -> Dataset:
    """`dataset` as a `DecodedOnce` (spilling to a file in `spill`), unless workers load it or,
    with no folder to spill to, its inputs would outgrow CACHE_BYTES."""
    fits = film_bytes(len(dataset), prep.input_shape) <= CACHE_BYTES
    keep = workers == 0 and (fits or spill is not None)
    return DecodedOnce(dataset, prep, spill) if keep else dataset


def _loader(dataset: Dataset, workers: int, **kwargs) -> DataLoader:
    return DataLoader(dataset, num_workers=workers, pin_memory=False, **kwargs)


def eval_dataset(records: Sequence[Record], spec: ModelSpec) -> CovidxDataset:
    transform = build_transforms(spec.preprocessing)
    return CovidxDataset(records, spec.classes, spec.preprocessing.channels, transform)


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, class probabilities) for every image of `dataset`, in order."""
    model.eval()
    labels, probs = [], []
    for images, targets in _loader(dataset, workers, batch_size=batch_size, shuffle=False):
        logits = model(images.to(device))
        if not torch.isfinite(logits).all():
            raise MedxaiError("the model produced NaN or infinite scores")
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        labels.append(targets.numpy())
        if progress:
            progress(len(targets))
    return np.concatenate(labels), np.concatenate(probs)


def evaluate(
    model: nn.Module,
    records: Sequence[Record],
    spec: ModelSpec,
    device: torch.device,
    n_bootstrap: int = 1000,
    seed: int = 0,
    workers: int = 0,
    inputs: Dataset | None = None,
) -> Evaluation:
    """`model`'s decision on every record, and the metrics (with bootstrap CIs) they give.

    `inputs`: the records' (model input, label) pairs when already decoded."""
    dataset = eval_dataset(records, spec) if inputs is None else inputs
    labels, probs = predict(model, dataset, device, workers=workers)
    predictions = probs.argmax(1)
    patients = [r.patient_id for r in records]
    metrics = classification_metrics(
        labels, predictions, spec.classes, n_bootstrap=n_bootstrap, seed=seed,
        clusters=Clusters.of(patients),
    )  # fmt: skip
    return Evaluation(
        metrics, [r.filename for r in records], [int(v) for v in labels], predictions.tolist(),
        patients,
    )  # fmt: skip


def _class_weights(targets: Sequence[int], n_classes: int) -> torch.Tensor:
    counts = np.bincount(np.asarray(targets), minlength=n_classes).astype(float)
    weights = counts.sum() / np.maximum(counts, 1.0) / n_classes
    return torch.tensor(weights, dtype=torch.float32)


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def fit(
    config: TrainConfig,
    records: Sequence[Record],
    out: str | Path,
    device: torch.device,
    resume: bool = False,
    workers: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
    on_batch: Callable[[int, float], None] | None = None,
) -> tuple[TrainState, ModelSpec]:
    """Train on `records` (validation carved by patient), keeping the best model by val macro-F1.

    Writes OUT/model.pt (best), OUT/last.pt (resume point, every epoch) and
    OUT/history.json. Under torchrun, ranks share batches and rank 0 writes.
    Settings: docs/algorithms.md, Training.
    """
    config.validate()
    spec = _model_spec(config, records)
    positive_index(spec.classes, config.positive_class)  # an unknown name stops here
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_records, val_records = patient_split(records, config.val_fraction, config.seed)
    run = _Run.create(config, spec, out, device)
    run.start(resume)
    batches = _Batches.create(config, spec, train_records, device, workers, out)
    val_inputs = cached(eval_dataset(val_records, spec), spec.preprocessing, workers, out)
    run.state.balance = batches.balance
    net = DistributedDataParallel(run.model) if distributed.world_size() > 1 else run.model
    while run.state.epoch < config.epochs:
        started = time.perf_counter()
        mean_loss = run.train_epoch(net, batches, workers, on_batch)
        stop = False
        if distributed.is_main():
            val = evaluate(
                run.model, val_records, spec, device, n_bootstrap=0, workers=workers,
                inputs=val_inputs,
            )  # fmt: skip
            entry = run.record(mean_loss, val, started)
            stop = run.state.stale_epochs >= config.patience
            if on_epoch:
                on_epoch(entry)
        else:
            run.state.epoch += 1
        if distributed.broadcast_flag(stop):
            break
    distributed.barrier()
    run.state.warning = chance_warning(run.state.best_f1, [r.label for r in val_records])
    return run.state, spec


def chance_level_f1(labels: Sequence[str]) -> float:
    """Macro-F1 of predicting the most common label for every image."""
    counts = Counter(labels)
    if not counts:
        return 0.0
    share = max(counts.values()) / sum(counts.values())
    return 2 * share / (1 + share) / len(counts)


def chance_warning(best_f1: float, val_labels: Sequence[str]) -> str:
    """A loud line when validation never beat predicting the majority class (else "")."""
    chance = chance_level_f1(val_labels)
    if best_f1 > chance + 1e-9:
        return ""
    return (
        f"WARNING: the model did not learn: its best validation macro-F1 ({best_f1:.2f}) never "
        f"beat predicting the majority class ({chance:.2f})"
    )


def positive_index(classes: Sequence[str], positive_class: str | None) -> int | None:
    """The index of the class COVID-Net's batch share oversamples: `positive_class`, else
    COVID-19 or positive when one is a class, else None (no batch share)."""
    if positive_class is None:
        return next((classes.index(c) for c in POSITIVE_CLASSES if c in classes), None)
    if positive_class not in classes:
        raise MedxaiError(
            f"--positive-class {positive_class!r} is not a class; the classes are "
            f"{', '.join(classes)}"
        )
    return classes.index(positive_class)


def _model_spec(config: TrainConfig, records: Sequence[Record]) -> ModelSpec:
    """The spec of the model to train: its classes are `config.classes`, else those of
    `records` in `class_order` (two at least present)."""
    classes = class_order((r.label for r in records), config.classes)
    outside = next((r for r in records if r.label not in classes), None)
    if outside:
        raise MedxaiError(
            f"{outside.where}: label {outside.label!r} is not among the classes "
            f"{', '.join(classes)}"
        )
    problem = class_problem(records)
    if problem:
        raise MedxaiError(problem)
    return ModelSpec(config.model, classes, config.preprocessing())


@dataclass
class _Batches:
    """The training images, augmented per (epoch, image), in balanced batches; the loss."""

    images: SeededAugment
    sampler: BalancedBatchSampler
    loss_fn: nn.Module
    balance: str  # what was used (see resolve_balance)

    @classmethod
    def create(
        cls, config: TrainConfig, spec: ModelSpec, records: Sequence[Record], device: torch.device,
        workers: int = 0, spill: Path | None = None,
    ) -> _Batches:  # fmt: skip
        classes, prep = spec.classes, spec.preprocessing
        train_set = CovidxDataset(records, classes, prep.channels, build_transforms(prep))
        chain = augmentation_chain(prep, Augmentation()) if config.augment else None
        images = SeededAugment(cached(train_set, prep, workers, spill), chain, config.seed)
        positive = positive_index(classes, config.positive_class)
        balance = resolve_balance(config.balance, train_set.targets, positive, config.covid_share)
        sampler = BalancedBatchSampler(
            train_set.targets,
            positive if balance == "covid-share" else None,
            config.batch_size, config.covid_share, config.seed,
            distributed.rank(), distributed.world_size(),
        )  # fmt: skip
        weights = None
        if balance == "class-weights":
            weights = _class_weights(train_set.targets, len(classes)).to(device)
        return cls(images, sampler, nn.CrossEntropyLoss(weight=weights), balance)

    def set_epoch(self, epoch: int, seed: int) -> None:
        """Every draw of the epoch (batches, augmentation, dropout) follows (seed, epoch)."""
        self.sampler.set_epoch(epoch)
        self.images.set_epoch(epoch)
        torch.manual_seed(seed * 100003 + epoch)


@dataclass
class _Run:
    """One training run: the model, what updates it, where training stands, what it writes."""

    config: TrainConfig
    spec: ModelSpec
    out: Path
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    state: TrainState = field(default_factory=TrainState)

    @classmethod
    def create(cls, config: TrainConfig, spec: ModelSpec, out: Path, device: torch.device) -> _Run:
        torch.manual_seed(config.seed)  # the initial weights follow the run's seed
        model = spec.build(config.weights)
        model.to(device, memory_format=conv_layout(device))
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
        return cls(config, spec, out, device, model, optimizer, scheduler, scaler)

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    def start(self, resume: bool) -> None:
        """Picks up where last.pt stands (`resume`), else makes sure OUT holds no other run."""
        if resume and self.last.is_file():
            self.state = self._restore()
        elif resume:
            raise MedxaiError(f"{self.last}: nothing to resume from")
        elif self.last.exists():
            raise MedxaiError(
                f"{self.out} already holds a run; pass --resume or choose another --out"
            )

    def train_epoch(
        self,
        net: nn.Module,
        batches: _Batches,
        workers: int,
        on_batch: Callable[[int, float], None] | None,
    ) -> float:
        """One pass over the epoch's batches (`net` is the model, DDP-wrapped under torchrun);
        returns the mean loss."""
        epoch, device = self.state.epoch, self.device
        batches.set_epoch(epoch, self.config.seed)
        net.train()
        losses = []
        for images, targets in _loader(batches.images, workers, batch_sampler=batches.sampler):
            images = images.to(device, memory_format=conv_layout(device))
            targets = targets.to(device)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = batches.loss_fn(net(images), targets)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(loss.detach())
            if on_batch:
                on_batch(len(targets), float(loss.detach()))
        self.scheduler.step()
        mean_loss = float(torch.stack(losses).mean())
        if not math.isfinite(mean_loss):
            raise MedxaiError(f"training diverged at epoch {epoch + 1} (loss {mean_loss})")
        return mean_loss

    def record(self, mean_loss: float, val: Evaluation, started: float) -> dict:
        """Ends the epoch (rank 0): its history entry, model.pt when it is the best so far,
        last.pt and history.json."""
        state, epoch = self.state, self.state.epoch + 1
        f1 = val.metrics.macro_f1
        entry = {
            "epoch": epoch,
            "loss": mean_loss,
            "val_accuracy": val.metrics.accuracy,
            "val_macro_f1": f1,
            "seconds": time.perf_counter() - started,
        }
        state.history.append(entry)
        state.epoch = epoch
        if f1 > state.best_f1:
            state.best_f1, state.best_epoch, state.stale_epochs = f1, epoch, 0
            config = asdict(self.config)
            save_checkpoint(
                self.out / "model.pt", self.model, self.spec, epoch=epoch, config=config
            )
        else:
            state.stale_epochs += 1
        self._save_last()
        _write_json(self.out / "history.json", {"history": state.history, **_summary(state)})
        return entry

    def _save_last(self) -> None:
        save_checkpoint(
            self.last, self.model, self.spec,
            config=asdict(self.config), train_state=asdict(self.state),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
        )  # fmt: skip

    def _restore(self) -> TrainState:
        payload = read_checkpoint(self.last)
        saved = payload.get("config", {})
        free = ("epochs", "patience")  # when to stop may change; what to learn may not
        config = asdict(self.config)
        changed = {k for k, v in config.items() if k not in free and saved.get(k) != v}
        if changed:
            raise MedxaiError(f"{self.last}: cannot resume with changed settings {sorted(changed)}")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        return TrainState(**payload["train_state"])


def _summary(state: TrainState) -> dict:
    return {
        "best_epoch": state.best_epoch,
        "best_val_macro_f1": state.best_f1,
        "balance": state.balance,
        "warning": state.warning,
    }


def evaluate_checkpoint(
    checkpoint: str | Path, records: Sequence[Record], device: torch.device, seed: int = 0
) -> Evaluation:
    model, spec = load_checkpoint(checkpoint, device)
    return evaluate(model, records, spec, device, seed=seed)


def write_metrics(path: Path, results: dict[str, Evaluation], state: TrainState) -> None:
    """RUN/metrics.json: the first test split's metrics on top, all under 'splits'."""
    splits = {split: encode(result.metrics) for split, result in results.items()}
    first = next(iter(splits.values()), {})
    payload = {**first, "splits": splits, **_summary(state), "history": state.history}
    _write_json(path, payload)
