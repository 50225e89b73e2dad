"""The command line as a newcomer meets it: ``python -m pipeline`` run as a subprocess.

Every mistake is one ``error: ...`` line on stderr that says what to do, exit code 2, no traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, subprocess_env
from tests.e2e.test_end_to_end import SAMPLE_DELIVERABLE
from tests.e2e.test_streaming_pubsub import PROJECT, publish, pubsub, wait_until  # noqa: F401 (pubsub: a fixture)

SAMPLE = str(SAMPLES / "events.jsonl")


def run_job(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` from the repository root; bounded in time."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env or subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` refused before it builds anything, run in this process: the same
    entry point (``pipeline.launcher.run``) and output as ``run_job``, without starting Python."""
    from pipeline.launcher import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(args))
    return subprocess.CompletedProcess(["python", "-m", "pipeline", *args], code, out.getvalue(), err.getvalue())


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
            "--dry_run_output", f"{tmp_path}/dry/", "--dead_letter", f"{tmp_path}/dead/"]


# ----- --log_level --------------------------------------------------------------------------------

def test_log_level_debug_shows_debug_lines_and_the_default_does_not(tmp_path):
    quiet = run_job(*dry_run_args(tmp_path))
    assert quiet.returncode == 0, quiet.stderr
    assert " DEBUG " not in quiet.stderr
    debug = run_job(*dry_run_args(tmp_path), "--log_level", "debug")
    assert debug.returncode == 0, debug.stderr
    assert " DEBUG pipeline: run " in debug.stderr
    assert " INFO apache_beam" in debug.stderr  # other libraries' lines show too
    assert " DEBUG apache_beam" not in debug.stderr  # Beam's DEBUG lines print whole events


def test_bad_log_level_is_one_line():
    # The real process, once: one line on stderr, exit 2 (the tests below call the same entry point in-process).
    line = one_error_line(run_job("--input", SAMPLE, "--woopra_project", "p", "--log_level", "verbose"))
    assert "--log_level must be one of DEBUG, INFO, WARNING, ERROR" in line
    line = one_error_line(run_in_process("--input", SAMPLE, "--woopra_project", "p", "--log_level", "verbose"))
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


# ----- inputs ---------------------------------------------------------------------------------------

def test_missing_input_file_or_empty_glob_is_one_line(tmp_path):
    for pattern in (str(tmp_path / "nope.jsonl"), str(tmp_path / "*.jsonl")):
        line = one_error_line(run_in_process(*dry_run_args(tmp_path, pattern)))
        assert f"--input {pattern}: no file matches" in line


def test_input_folder_reads_only_event_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "events.jsonl").write_bytes((SAMPLES / "events.jsonl").read_bytes())
    (folder / "mapping.yaml").write_bytes((SAMPLES / "mapping.yaml").read_bytes())
    (folder / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    for given in (str(folder), str(folder) + "/"):
        done = run_job(*dry_run_args(tmp_path, given))
        assert done.returncode == 0, done.stderr
        assert "accounting: read 27 = outcomes 27 (ok)" in done.stdout  # the yaml and csv were not read


def test_unsupported_file_named_explicitly_is_one_line(tmp_path):
    notes = tmp_path / "events.csv"
    notes.write_text("type,event\ntrack,x\n", encoding="utf-8")
    line = one_error_line(run_in_process(*dry_run_args(tmp_path, str(notes))))
    assert f"{notes} is not an event file" in line and ".jsonl .ndjson .json (also .gz), .parquet .parq" in line


def test_folder_without_event_files_is_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mapping.yaml").write_text("project: x\n", encoding="utf-8")
    line = one_error_line(run_in_process(*dry_run_args(tmp_path, str(tmp_path / "in"))))
    assert "no event files among 1 matched" in line


# ----- --streaming=false, --runner typo, unknown flags, missing values --------------------------------

def test_streaming_false_runs_a_batch_job_and_true_is_streaming(tmp_path):
    done = run_job(*dry_run_args(tmp_path), "--streaming=False")
    assert done.returncode == 0, done.stderr
    assert "accounting: read 27" in done.stdout
    # --streaming=true with a file source is the streaming path: --report is refused for it.
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--streaming=TRUE", "--report", "r.html"))
    assert "--report is for batch runs" in line
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--streaming=maybe"))
    assert "--streaming takes no value, or true or false; got 'maybe'" in line


def test_runner_typo_names_the_runner_and_the_known_ones(tmp_path):
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--runner", "DirectRuner"))
    assert "--runner DirectRuner is not a Beam runner; did you mean DirectRunner?" in line
    for known in ("FnApiRunner", "BundleBasedDirectRunner", "DirectRunner", "PortableRunner", "DataflowRunner"):
        assert known in line


def test_unknown_flag_and_flag_without_value_are_one_line(tmp_path):
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--max_in_flght", "3"))
    assert "unknown option --max_in_flght" in line
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--max-in-flight", "3"))
    assert "unknown option --max-in-flight" in line
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--summary"))
    assert line == "error: --summary needs a value"


# ----- config and runner config files -----------------------------------------------------------------

def test_yaml_syntax_errors_name_the_file_and_line(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("project: mywebsite.com\nevents:\n  Order Completed: [purchase\n", encoding="utf-8")
    line = one_error_line(run_in_process("--input", SAMPLE, "--config", str(config)))
    assert f"config file {config} is not valid YAML, line 4:" in line
    runner_config = tmp_path / "local.yaml"
    runner_config.write_text("runner: FnApiRunner\nrate_limit: 100\nmax_in_flight: : 3\n", encoding="utf-8")
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--runner_config", str(runner_config)))
    assert f"--runner_config: {runner_config} is not valid YAML, line 3:" in line


def test_unknown_key_in_runner_config_names_the_file_and_line(tmp_path):
    runner_config = tmp_path / "local.yaml"
    runner_config.write_text("runner: FnApiRunner\n# the rate\nrate_limt: 100\n", encoding="utf-8")
    line = one_error_line(run_in_process(*dry_run_args(tmp_path), "--runner_config", str(runner_config)))
    assert line == f"error: --runner_config {runner_config}, line 3: unknown option 'rate_limt', " \
                   "did you mean 'rate_limit'? (see python -m pipeline --help)"


# ----- Pub/Sub without the emulator or credentials ------------------------------------------------------

def test_streaming_without_emulator_or_credentials_fails_fast(tmp_path):
    env = subprocess_env()
    env.pop("PUBSUB_EMULATOR_HOST", None)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    # No gcloud config, and no probe of a GCE metadata server: nothing leaves this machine.
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="true")
    args = ["--input_subscription", "projects/my-project/subscriptions/events", "--streaming",
            "--woopra_project", "p", "--dead_letter", f"{tmp_path}/dead/"]
    line = one_error_line(run_job(*args, env=env, timeout=60))
    assert "export PUBSUB_EMULATOR_HOST=127.0.0.1:8085" in line and "scripts/pubsub_emulator.sh" in line
    assert "gcloud auth application-default login" in line


# ----- --help, --help-beam, --dry_run alias --------------------------------------------------------------

def test_help_shows_the_job_options_grouped_then_points_to_beam():
    done = run_job("--help")
    assert done.returncode == 0 and not done.stderr
    text = done.stdout
    assert text.startswith("usage: python -m pipeline [options]\n")
    headings = ["Input:", "Woopra:", "Consent & identity:", "Delivery:", "Outputs:", "Operator:"]
    positions = [text.index(f"\n{heading}\n") for heading in headings]
    assert positions == sorted(positions)
    assert "--rate_limit N" in text and "Default: 100." in text
    assert "--dry_run_output PATH" in text and "--dry_run PATH is the same" in text
    assert "Used in unit testing runners" not in text  # Beam's own --dry_run is not ours
    assert "--runner RUNNER" not in text
    assert "they are listed with --help-beam.\n\nexit status:\n" in text  # then what each status means
    assert text.rstrip().endswith("interrupted by Ctrl-C or SIGTERM (the summary says what was not processed)")
    assert len(text.splitlines()) < 150


def test_help_beam_shows_beams_options_under_our_program_name():
    done = run_job("--help-beam")
    assert done.returncode == 0 and not done.stderr
    assert done.stdout.startswith("usage: python -m pipeline ")
    assert "--runner RUNNER" in done.stdout and "--temp_location" in done.stdout


def test_dry_run_alias_still_works(tmp_path):
    args = dry_run_args(tmp_path)
    args[args.index("--dry_run_output")] = "--dry_run"
    done = run_job(*args)
    assert done.returncode == 0, done.stderr
    assert "would send                 16" in done.stdout
    assert list((tmp_path / "dry").glob("*.jsonl"))


# ----- Ctrl-C in streaming ------------------------------------------------------------------------------

@pytest.mark.pubsub
def test_ctrl_c_stops_a_local_streaming_job_promptly_with_its_summary(
        tmp_path, standin, pubsub, pubsub_emulator):  # noqa: F811 (pubsub: the fixture imported above)
    publisher, _, names = pubsub
    events_topic, events_subscription = names["events"]
    lines = (SAMPLES / "events.jsonl").read_text().splitlines()
    publish(publisher, events_topic, lines)
    launched = time.monotonic()
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--input_subscription", events_subscription, "--streaming",
         "--project", PROJECT, "--config", str(SAMPLES / "mapping.yaml"), "--woopra_endpoint", standin.url,
         "--dead_letter", f"{tmp_path}/dead/", "--summary", str(tmp_path / "summary.json"),
         "--progress_interval_seconds", "1"],
        cwd=ROOT, env=subprocess_env() | {"PUBSUB_EMULATOR_HOST": pubsub_emulator},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(job.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    settled = f"read={len(lines)} delivered={SAMPLE_DELIVERABLE} dead_lettered=5 filtered=6"
    try:
        assert wait_until(lambda: any(settled in line for line in errors), timeout=90), "".join(errors)
        started = time.monotonic()
        os.killpg(job.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group, children too
        job.wait(timeout=30)
        stopped_after = time.monotonic() - started
        stdout = job.stdout.read()  # type: ignore[union-attr]
        reader.join(timeout=5)
        stderr = "".join(errors)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode == 0, stderr
    assert stopped_after < 8, stopped_after
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "Woopra delivery summary" in stdout and re.search(rf"delivered_200 +{SAMPLE_DELIVERABLE}\b", stdout)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["read"] == len(lines) and summary["balanced"] is True, summary
    # time: is the run until Ctrl-C, not the runner's shutdown after it.
    assert summary["elapsed_seconds"] < started - launched + 1
