import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from medxai.cli.application import main
from medxai.data.covidx import CovidxDataset, load_covidx
from medxai.data.transforms import (
    Augmentation,
    Preprocessing,
    augmentation_chain,
    build_transforms,
)
from medxai.errors import MedxaiError
from medxai.models.checkpoint import read_checkpoint
from medxai.models.training import (
    BalancedBatchSampler,
    DecodedOnce,
    SeededAugment,
    TrainConfig,
    _rng,
    cached,
    fit,
    patient_split,
)

CPU = torch.device("cpu")
CLASSES = ("normal", "pneumonia", "COVID-19")
TINY = dict(model="covidnet-s", epochs=3, batch_size=8, image_size=32, lr=3e-3, seed=5)


def test_validation_split_is_patient_disjoint_and_covers_every_class(toy_covidx):
    records = load_covidx(toy_covidx)["train.txt"]
    train, val = patient_split(records, 0.25, seed=1)
    assert len(train) + len(val) == len(records)
    assert not {r.patient_id for r in train} & {r.patient_id for r in val}
    assert {r.label for r in val} == {"normal", "pneumonia", "COVID-19"}
    assert patient_split(records, 0.25, seed=1) == (train, val)
    assert patient_split(records, 0.25, seed=2) != (train, val)


def test_balanced_batches_hold_the_covid_share_and_every_other_image_once():
    targets = [0] * 50 + [1] * 40 + [2] * 10
    sampler = BalancedBatchSampler(targets, positive=2, batch_size=10, share=0.3, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13  # ceil(90 others / 7 per batch)
    assert [len(b) for b in batches] == [10] * 12 + [9]
    assert all(sum(targets[i] == 2 for i in batch) == 3 for batch in batches)
    positives = Counter(i for batch in batches for i in batch if targets[i] == 2)
    assert set(positives) == set(range(90, 100)), "every positive is used before any repeats"
    assert max(positives.values()) - min(positives.values()) <= 1
    others = Counter(i for batch in batches for i in batch if targets[i] != 2)
    assert set(others) == set(range(90)) and set(others.values()) == {1}
    sampler.set_epoch(1)
    assert list(sampler) != batches
    shards = [
        list(BalancedBatchSampler(targets, 2, 10, 0.3, seed=0, rank=r, world=2)) for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 7
    seen = [{i for batch in shard for i in batch if targets[i] != 2} for shard in shards]
    assert seen[0] | seen[1] == set(range(90))


def read_state(path):
    return read_checkpoint(path)["state_dict"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(toy_covidx, tmp_path):
    records = load_covidx(toy_covidx)["train.txt"]
    config = TrainConfig(**TINY, patience=10)
    torch.manual_seed(123)  # the global RNG before fit is irrelevant: the config seeds the run
    fit(config, records, tmp_path / "full", CPU)
    torch.manual_seed(456)

    def crash_after_first_epoch(entry):
        if entry["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, records, tmp_path / "cut", CPU, on_epoch=crash_after_first_epoch)
    state, _ = fit(config, records, tmp_path / "cut", CPU, resume=True)
    assert [e["epoch"] for e in state.history] == [1, 2, 3]
    full, resumed = (
        read_state(tmp_path / "full" / "last.pt"),
        read_state(tmp_path / "cut" / "last.pt"),
    )
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=0, msg=key)
    history = json.loads((tmp_path / "cut" / "history.json").read_text())["history"]
    full_history = json.loads((tmp_path / "full" / "history.json").read_text())["history"]
    assert [h["loss"] for h in history] == [h["loss"] for h in full_history]

    with pytest.raises(MedxaiError, match="already holds a run"):
        fit(config, records, tmp_path / "full", CPU)
    changed = TrainConfig(**{**TINY, "lr": 1e-2}, patience=3)
    with pytest.raises(MedxaiError, match=r"changed settings \['lr'\]"):
        fit(changed, records, tmp_path / "full", CPU, resume=True)


class Counted(CovidxDataset):
    """A CovidxDataset that counts its reads from disk."""

    reads = 0

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


@pytest.mark.parametrize("spill", [False, True])
@pytest.mark.parametrize("prep", [Preprocessing(24), Preprocessing(20, 3, 0.08, resize=28)])
def test_decoded_once_inputs_augment_exactly_as_the_whole_chain(
    toy_covidx, prep, spill, tmp_path, monkeypatch
):
    """Training decodes each image once and augments the cached eval-chain output every
    epoch: bit for bit what the whole training chain gives for the same (seed, epoch, i),
    whether the decoded inputs stay in memory or spill to a file under OUT."""
    if spill:
        monkeypatch.setattr("medxai.models.training.CACHE_BYTES", 1)
    records = load_covidx(toy_covidx)["train.txt"][:12]
    whole = CovidxDataset(records, CLASSES, prep.channels, build_transforms(prep, Augmentation()))
    counted = Counted(records, CLASSES, prep.channels, build_transforms(prep))
    decoded = DecodedOnce(counted, prep, tmp_path)
    assert decoded.store.spilled == spill
    split = SeededAugment(decoded, augmentation_chain(prep, Augmentation()), seed=5)
    for epoch in (0, 2):
        split.set_epoch(epoch)
        for i in range(len(records)):
            whole.transform.set_random_state(seed=int(_rng(5, epoch, i).integers(2**31)))
            (expected, label), (got, got_label) = whole[i], split[i]
            assert got_label == label and torch.equal(got, expected)
    assert counted.reads == len(records)  # each image decoded once over both epochs
    assert not torch.equal(split[0][0], decoded[0][0])  # and augmented on top
    assert list(tmp_path.iterdir()) == [], "a spilled file is unlinked once open"


def test_inputs_are_cached_unless_workers_load_them_or_they_outgrow_memory_with_nowhere_to_go(
    toy_covidx, tmp_path, monkeypatch
):
    records = load_covidx(toy_covidx)["train.txt"]
    prep = Preprocessing(24)
    dataset = CovidxDataset(records, CLASSES, 1, build_transforms(prep))
    assert not cached(dataset, prep, workers=0).store.spilled
    assert cached(dataset, prep, workers=2) is dataset
    monkeypatch.setattr("medxai.models.training.CACHE_BYTES", 48 * 24 * 24 * 4 - 1)
    assert cached(dataset, prep, workers=0) is dataset
    assert cached(dataset, prep, workers=0, spill=tmp_path).store.spilled


def test_a_training_whose_inputs_spill_to_a_file_learns_exactly_as_one_in_memory(
    toy_covidx, tmp_path, monkeypatch
):
    records = load_covidx(toy_covidx)["train.txt"]
    config = TrainConfig(**{**TINY, "epochs": 2}, patience=10)
    kept, _ = fit(config, records, tmp_path / "kept", CPU)
    monkeypatch.setattr("medxai.models.training.CACHE_BYTES", 1)
    spilled, _ = fit(config, records, tmp_path / "spilled", CPU)
    assert [h["loss"] for h in spilled.history] == [h["loss"] for h in kept.history]
    assert all(torch.equal(a, b) for a, b in zip(
        read_state(tmp_path / "kept" / "model.pt").values(),
        read_state(tmp_path / "spilled" / "model.pt").values(), strict=True,
    ))  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "spilled").iterdir()) == sorted(
        p.name for p in (tmp_path / "kept").iterdir()
    ), "no spilled file is left in OUT"


def test_train_and_evaluate_commands_write_the_metrics_contract(toy_covidx, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--root", str(toy_covidx), "--out", str(run), "--epochs", "2",
            "--batch-size", "8", "--image-size", "32", "--lr", "3e-3", "--workers", "0",
            "--device", "cpu", "--seed", "1"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "macro_f1", "per_class", "confusion"}
    assert set(metrics["per_class"]["COVID-19"]) >= {"precision", "recall", "f1", "support", "ci"}
    assert np.array(metrics["confusion"]).sum() == 12
    assert metrics["best_epoch"] in (1, 2) and len(metrics["history"]) == 2
    out = tmp_path / "balanced.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate-model", "--checkpoint", str(run / "model.pt"), "--root", str(toy_covidx),
              "--split", "test.txt", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert exit_info.value.code == 0
    again = json.loads(out.read_text())
    assert again["accuracy"] == metrics["accuracy"] and again["confusion"] == metrics["confusion"]


def test_torchrun_with_two_cpu_processes(toy_covidx, tmp_path):
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", "29531", "-m", "medxai", "train", "--root", str(toy_covidx),
               "--out", str(run), "--epochs", "1", "--batch-size", "8", "--image-size", "32",
               "--workers", "0", "--device", "cpu"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / "model.pt").is_file() and (run / "metrics.json").is_file()
    history = json.loads((run / "history.json").read_text())["history"]
    assert len(history) == 1


def test_unreadable_training_image_stops_with_one_line_or_is_skipped_and_listed(
    toy_covidx, tmp_path, capsys
):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(toy_covidx, root)
    broken = sorted((root / "train").iterdir())[0]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    args = ["train", "--root", str(root), "--epochs", "1", "--batch-size", "64",
            "--image-size", "16", "--workers", "1", "--device", "cpu"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "stop")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert err[-1] == f"medxai: error: {broken}: corrupt or truncated PNG file"
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "skip"), "--skip-unreadable"])
    assert exit_info.value.code == 0
    err = capsys.readouterr().err
    assert f"skipped {broken}: corrupt or truncated PNG file" in err and "skipped 1 of 48" in err
