"""Resumable stages: each stage's result is a JSON file written when (and only when) it ends.

A re-run with the same output folder returns a finished stage's stored result without
running it, so a killed pipeline resumes at the stage it was in (which may itself resume
finer-grained work, such as training from `last.pt`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from medxai.atomic import atomic_write_text
from medxai.codec import decode, encode
from medxai.errors import MedxaiError
from medxai.outputs import LOCK_NAME

T = TypeVar("T")


class StageCache:
    """Runs named stages under OUT/stages/, recording each one's seconds."""

    def __init__(self, out: Path, on_start: Callable[[str], None] | None = None) -> None:
        self.folder = out / "stages"
        self.timings: dict[str, float] = {}
        self.resumed: list[str] = []
        self.on_start = on_start

    def run(self, name: str, kind: type[T], work: Callable[[], T]) -> T:
        """The stage's record: read back when stored, else computed by `work` and stored."""
        path = self.folder / f"{name}.json"
        if path.is_file():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise MedxaiError(f"{path}: corrupt stage record ({err}); delete it") from err
            if not isinstance(stored, dict) or set(stored) != {"seconds", "result"}:
                raise MedxaiError(f"{path}: not a stage record; delete it")
            result = decode(kind, stored["result"], f"{path} (from another medxai version?)")
            self.timings[name] = stored["seconds"]
            self.resumed.append(name)
            return result
        if self.on_start:
            self.on_start(name)
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        self.timings[name] = seconds
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"seconds": seconds, "result": encode(result)}) + "\n")
        return result


def claim_folder(out: Path, config: dict) -> None:
    """OUT/audit_config.json pins the settings; a re-run with others would mix results."""
    config = json.loads(json.dumps(config))  # tuples → lists, as they come back from disk
    out.mkdir(parents=True, exist_ok=True)
    path = out / "audit_config.json"
    if path.is_file():
        stored, given = _flat(json.loads(path.read_text(encoding="utf-8"))), _flat(config)
        changed = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        if changed:
            raise MedxaiError(
                f"{out} holds an audit with other settings ({', '.join(changed)}); "
                "use the same options to resume it, or choose another --out"
            )
        return
    if any(p.name not in (".gitkeep", LOCK_NAME) for p in out.iterdir()):
        raise MedxaiError(f"{out} is not empty and holds no audit to resume; choose another --out")
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")


def _flat(tree: object, prefix: str = "") -> dict[str, object]:
    """Nested settings as {"train.epochs": 20, ...}."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, object] = {}
    for key, value in tree.items():
        out |= _flat(value, f"{prefix}{key}.")
    return out
