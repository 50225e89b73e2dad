"""The command line as a newcomer meets it: ``python -m pipeline`` run as a subprocess.

Every mistake is one ``error: ...`` line on stderr that says what to do, exit code 2, no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SAMPLES, subprocess_env

SAMPLE = str(SAMPLES / "events.jsonl")


def run_job(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` from the repository root; bounded in time."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env or subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command line (exit code 2, nothing else on stderr)."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def dry_run_args(tmp_path: Path, *inputs: str) -> list[str]:
    """A dry run of ``inputs`` (the sample by default) with its outputs under ``tmp_path``."""
    return ["--input", ",".join(inputs) or SAMPLE, "--config", str(SAMPLES / "mapping.yaml"),
            "--dry_run", f"{tmp_path}/dry/", "--dead_letter", f"{tmp_path}/dead/"]


# ----- --log_level --------------------------------------------------------------------------------

def test_log_level_debug_shows_debug_lines_and_the_default_does_not(tmp_path):
    quiet = run_job(*dry_run_args(tmp_path))
    assert quiet.returncode == 0, quiet.stderr
    assert " DEBUG " not in quiet.stderr
    debug = run_job(*dry_run_args(tmp_path), "--log_level", "debug")
    assert debug.returncode == 0, debug.stderr
    assert " DEBUG apache_beam" in debug.stderr  # the root logger follows at DEBUG


def test_bad_log_level_is_one_line():
    line = one_error_line(run_job("--input", SAMPLE, "--woopra_project", "p", "--log_level", "verbose"))
    assert "--log_level must be one of DEBUG, INFO, WARNING, ERROR" in line


def test_configure_logging_sets_the_job_loggers_and_root_only_at_debug():
    import logging

    from pipeline.launcher import configure_logging

    root, job = logging.getLogger(), logging.getLogger("transforms")
    saved = {logger: logger.level for logger in (root, job, logging.getLogger("pipeline"))}
    try:
        configure_logging("ERROR")
        assert (job.level, root.level) == (logging.ERROR, logging.ERROR)
        configure_logging("INFO")
        assert (job.level, logging.getLogger("pipeline").level, root.level) == (logging.INFO, logging.INFO,
                                                                                 logging.WARNING)
        configure_logging("DEBUG")
        assert (job.level, root.level) == (logging.DEBUG, logging.DEBUG)
    finally:
        for logger, level in saved.items():
            logger.setLevel(level)
