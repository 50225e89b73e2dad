"""Shared fixtures (pinned local runners, the Woopra stand-in, sample paths) and the suite's rules:
``slow`` tests run only with ``--run-slow``, and with WOOPRA_FAIL_ON_SKIP=1 a skipped test fails the run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# No test may reach Google's metadata server (a link-local address, not loopback): google-auth
# would probe it when it looks for credentials. Set before google-auth is imported, and inherited
# by every `python -m pipeline` a test starts.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from woopra_standin import StandIn  # noqa: E402

if TYPE_CHECKING:
    from apache_beam.testing.test_pipeline import TestPipeline

# Beam's DirectRunner would first try to download the Prism runner: pin local runners.
BATCH_RUNNER = "FnApiRunner"
STREAMING_RUNNER = "BundleBasedDirectRunner"


# Beam is imported where a pipeline is built, not at collection: pytest runs that need no pipeline
# (tests/ci/test_suite_rules.py starts several) start seconds sooner.
def batch_pipeline() -> TestPipeline:
    """A TestPipeline on the offline batch runner."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    return TestPipeline(runner=BATCH_RUNNER, options=PipelineOptions([]))


def streaming_pipeline() -> TestPipeline:
    """A TestPipeline on the streaming-capable local runner (TestStream, Pub/Sub)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    return TestPipeline(runner=STREAMING_RUNNER, options=PipelineOptions(["--streaming"]))


@pytest.fixture
def standin():
    """A Woopra stand-in on a free loopback port, stopped after the test."""
    server = StandIn(port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sample_events() -> Path:
    """The bundled sample events file."""
    return SAMPLES / "events.jsonl"


def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m pipeline`` subprocesses: the repo importable, and this Python's
    environment first on PATH, as an activated virtual environment has it (Beam's worker pool
    starts its SDK workers as ``python``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


EMULATOR_SCRIPT = ROOT / "scripts" / "pubsub_emulator.sh"


@pytest.fixture(scope="session")
def pubsub_emulator():
    """``host:port`` of a running Pub/Sub emulator: the one in PUBSUB_EMULATOR_HOST, the one already
    serving PUBSUB_PORT (8085), or one this session starts (and stops) with scripts/pubsub_emulator.sh;
    a session stops only a server it started."""
    import socket
    import subprocess

    existing = os.environ.get("PUBSUB_EMULATOR_HOST")
    if existing:
        host, _, port_text = existing.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port_text)), timeout=5).close()
        except (OSError, ValueError) as exc:  # fail, never skip: the streaming tests would not run
            pytest.fail(f"PUBSUB_EMULATOR_HOST={existing} but no Pub/Sub server answers there ({exc}); start one "
                        "with `bash scripts/pubsub_emulator.sh start`, or unset the variable", pytrace=False)
        yield existing
        return
    port = os.environ.get("PUBSUB_PORT", "8085")
    host = f"127.0.0.1:{port}"
    try:  # one already serves the port (another session's, or the developer's): use it, leave it running
        socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
    except OSError:
        pass
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        return
    env = dict(os.environ, PUBSUB_PORT=port)
    started = subprocess.run(["bash", str(EMULATOR_SCRIPT), "start"], env=env, capture_output=True,
                             text=True, timeout=240)
    if started.returncode != 0:
        raise RuntimeError(f"could not start the Pub/Sub emulator:\n{started.stdout}\n{started.stderr}")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        subprocess.run(["bash", str(EMULATOR_SCRIPT), "stop"], env=env, capture_output=True, timeout=60)



@pytest.fixture(scope="session")
def debug_streaming_run(pubsub_emulator, tmp_path_factory):
    """One streaming run of the sample at ``--log_level DEBUG`` with windowed dead-letter files
    (tests/support/streaming_run.py), shared by the tests that read its output."""
    from tests.support.streaming_run import run_sample_streaming

    return run_sample_streaming(tmp_path_factory.mktemp("streaming-debug"), pubsub_emulator,
                                ("--log_level", "DEBUG"))

# --- Suite rules (README, "Tests") -------------------------------------------------------------

FAIL_ON_SKIP_VARIABLE = "WOOPRA_FAIL_ON_SKIP"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-slow``: also run the tests marked ``slow``."""
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (deselected otherwise)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``slow`` tests unless ``--run-slow``: deselected, not skipped, since a skip fails CI."""
    if config.getoption("--run-slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
        config.hook.pytest_deselected(items=slow)


class SkipLedger:
    """Every skipped or xfailed test of the session; with WOOPRA_FAIL_ON_SKIP=1 any of them fails
    the run, so a missing nginx, Chromium or Pub/Sub emulator never turns into a green run that
    tested less."""

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember a skipped or xfailed test with its reason."""
        if not report.skipped:
            return
        if hasattr(report, "wasxfail"):
            reason = f"xfail: {report.wasxfail}"
        else:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        self.skipped.append(f"{report.nodeid}: {reason}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Turn a passing run that skipped something into a failing one."""
        if self.enforce and self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Name the skipped tests that failed the run."""
        if self.enforce and self.skipped:
            terminalreporter.section(f"skipped tests fail this run ({FAIL_ON_SKIP_VARIABLE}=1)", red=True)
            for line in self.skipped:
                terminalreporter.write_line(f"SKIPPED {line}")


def pytest_configure(config: pytest.Config) -> None:
    """Register the skip ledger."""
    config.pluginmanager.register(SkipLedger(os.environ.get(FAIL_ON_SKIP_VARIABLE) == "1"), "woopra-skip-ledger")
