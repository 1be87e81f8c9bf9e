"""The audit and the cleaning under torchrun (2 CPU ranks, gloo): the films are dealt to the
ranks, yet every output is the one-process run's; a rank killed mid-cleaning resumes to it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medxai.codec import to_json

RUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
       "-m", "medxai"]  # fmt: skip
ONE = [sys.executable, "-m", "medxai"]
CLEAN = ["clean", "--detector", "rapidocr", "--splits", "test.txt,test_balanced.txt"]


def files(folder):
    """Every file's bytes by relative path; the summary without its run figures (seconds, and
    how many images an earlier run had done)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "cleaning_summary.json":
                summary = json.loads(data)
                summary.pop("seconds"), summary.pop("skipped_done")
                data = json.dumps(summary).encode()
            out[str(path.relative_to(folder))] = data
    return out


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def one_process_copy(tiny_audit, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean-one") / "copy"
    run([*ONE, *CLEAN, "--root", str(tiny_audit.out / "dataset"), "--out", str(out)])
    return out


def test_a_rank_killed_mid_cleaning_resumes_to_the_same_copy(
    tiny_audit, one_process_copy, tmp_path
):
    out = tmp_path / "copy"
    command = [*RUN, *CLEAN, "--root", str(tiny_audit.out / "dataset"), "--out", str(out)]
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rank1 = out / "manifest.rank1.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and launcher.poll() is None:
        if rank1.is_file() and len(rank1.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    children = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True)
    workers = [int(p) for p in children.stdout.split()]
    assert launcher.poll() is None and len(workers) == 2, "killed while cleaning"
    os.kill(max(workers), signal.SIGKILL)  # one rank dies; torchrun stops the other
    assert launcher.wait(timeout=120) != 0
    assert not (out / "train.txt").exists(), "the copy was not finished"
    run(command)  # the rest, on 2 ranks again: the one-process copy, its journals folded
    assert files(out) == files(one_process_copy)
    assert not list(out.glob("manifest.rank*")), "rank 0 folded the ranks' journals"


def test_an_audit_of_a_given_model_is_the_same_on_two_ranks(tiny_audit_of_cleaned, tmp_path):
    config = tmp_path / "audit.json"
    config.write_text(to_json(tiny_audit_of_cleaned.result.config))
    out = tmp_path / "two"
    run([*RUN, "audit", "--config", str(config), "--out", str(out)])
    one = numbers(tiny_audit_of_cleaned.out)
    assert numbers(out) == one and '"relies_on_text"' in one


def numbers(out):
    """audit.json as text (NaN-safe), without what a run measures of itself: seconds, when
    and where it ran, and the estimate priced by timing the machine."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "seconds"}
        return [strip(v) for v in value] if isinstance(value, list) else value

    record = json.loads((out / "audit.json").read_text())
    for key in ("timings", "estimate", "created", "environment"):
        record.pop(key)
    return json.dumps(strip(record), sort_keys=True).replace(str(out), "OUT")
