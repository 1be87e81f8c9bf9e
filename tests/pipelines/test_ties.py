"""Where the audit takes its source–class ties from (--ties-from, the training split, else the
test split itself), what it says of them, and the transplant it skips without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from medxai.data.records import SplitIndex
from medxai.errors import DatasetError
from medxai.report.record import DataSummary, SplitCounts
from pipelines.audit import audit_config
from pipelines.audit.data import ties, ties_split
from pipelines.audit.transplant import summarise_transplant

COUNTS = {
    "train": {"hospA": {"clear": 6, "effusion": 0}, "hospB": {"clear": 0, "effusion": 6}},
    "val": {"hospA": {"clear": 2, "effusion": 0}, "hospB": {"clear": 0, "effusion": 2}},
    "test": {"hospA": {"clear": 2, "effusion": 0}, "-": {"clear": 1, "effusion": 1}},
    "anonymous": {"-": {"clear": 3, "effusion": 3}},
}


def summary() -> DataSummary:
    splits = {name: SplitCounts(0, {}, sources) for name, sources in COUNTS.items()}
    return DataSummary(splits, ["clear", "effusion"], {}, {}, {}, {}, [], [], {})


def index(*splits: str) -> SplitIndex:
    return SplitIndex(Path("/data/films"), {name: [] for name in splits}, {}, layout="folders")


def split_of(splits: tuple[str, ...], ties_from: str | None = None) -> str:
    config = audit_config(root="/data/films", dataset="folders", ties_from=ties_from)
    train = next((name for name in splits if name.startswith("train")), None)
    return ties_split(config, index(*splits), train, ["test"])


def test_the_ties_come_from_the_named_split_else_training_else_the_test_split():
    assert split_of(("train", "val", "test")) == "train"
    assert split_of(("train", "val", "test"), ties_from="val") == "val"
    assert split_of(("val", "test")) == "test"
    with pytest.raises(DatasetError, match=r"--ties-from 'nope': no such split among val, test$"):
        split_of(("val", "test"), ties_from="nope")


def test_the_report_says_where_the_ties_came_from_and_when_they_share_the_tests_films():
    trained = ties("train", False, ["test"], summary())
    assert (trained.chosen, trained.shares_films, trained.n_sources) == ("training split", False, 2)
    assert "share" not in trained.note
    alone = ties("test", False, ["test"], summary())
    assert (alone.chosen, alone.shares_films, alone.n_sources) == ("test split", True, 1)
    assert "no training split" in alone.note and "share films" in alone.note
    named = ties("test", True, ["test"], summary())
    assert named.chosen == "--ties-from" and named.shares_films and "no training" not in named.note
    held = ties("val", True, ["test"], summary())
    assert (held.chosen, held.shares_films) == ("--ties-from", False)
    none = ties("anonymous", True, ["test"], summary())
    assert none.n_sources == 0 and "no film of anonymous names its source" in none.note


def test_without_ties_the_transplant_is_skipped_with_the_reason():
    moved = summarise_transplant([], {"test": []}, {}, 10, 0, ties_split="test")
    assert moved.pooled is None and moved.skipped == (
        "no transplant: no film of test names its source, so no hospital's text is tied to a class"
    )
    mixed = summarise_transplant([], {"test": []}, {"a": ["x", "y"], "b": ["x", "y"]}, 10, 0,
                                 ties_split="test")  # fmt: skip
    assert "every source of test sends every class" in mixed.skipped
