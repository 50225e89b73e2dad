"""Owner-only files (README, "Dead letters and replay"): dead-letter and dry-run files carry emails,
IPs and cookies, so the job creates them mode 0o600, in batch and as streaming's windowed files.
Each test first proves there are files to check: no files is a failure, never a vacuous pass."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE, run_pipeline

OWNER_ONLY = 0o600


def modes(paths: list[Path]) -> dict[str, str]:
    return {path.name: oct(stat.S_IMODE(os.stat(path).st_mode)) for path in paths}


def assert_owner_only(paths: list[Path], what: str) -> None:
    assert paths, f"no {what} files were written: nothing to check"
    wrong = {name: mode for name, mode in modes(paths).items() if mode != oct(OWNER_ONLY)}
    assert not wrong, f"{what} files not {oct(OWNER_ONLY)}: {wrong}"


def test_batch_dead_letter_and_dry_run_files_are_owner_only(tmp_path):
    # A permissive umask, as a shell may have: the job must not rely on the caller's.
    old = os.umask(0o022)
    try:
        done = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                            "--woopra_endpoint", "http://127.0.0.1:9/track", "--dry_run", str(tmp_path / "dry") + "/",
                            "--dead_letter", str(tmp_path / "dead") + "/")
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    dry = sorted((tmp_path / "dry").glob("*.jsonl"))
    dead = sorted((tmp_path / "dead").glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in dry) == SAMPLE_DELIVERABLE
    assert sum(len(p.read_text().splitlines()) for p in dead) == 5
    assert_owner_only(dry, "dry-run")
    assert_owner_only(dead, "dead-letter")


@pytest.mark.pubsub
def test_streaming_windowed_dead_letter_files_are_owner_only(debug_streaming_run):
    run = debug_streaming_run
    assert run.returncode == 0, run.stderr[-3000:]
    files = run.dead_letter_files()
    # Windowed names: <prefix>-<window start>-<window end>-<pane>-<shard>-of-<n>.jsonl
    assert files and all("-of-" in p.name for p in files), [p.name for p in files]
    assert sum(len(p.read_text().splitlines()) for p in files) >= 5
    assert_owner_only(files, "windowed dead-letter")
