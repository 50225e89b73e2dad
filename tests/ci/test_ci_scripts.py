"""The README's two commands and CI's wiring: scripts/try.sh, scripts/test.sh, .ci/run, and the
Pub/Sub backend check that scripts/test.sh makes through ``scripts/pubsub_emulator.sh status``."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.conftest import ROOT

SCRIPTS = ROOT / "scripts"
EMULATOR_PACKAGE = "google-cloud-cli-pubsub-emulator"


def emulator_package_installed() -> bool:
    done = subprocess.run(["dpkg", "-s", EMULATOR_PACKAGE], capture_output=True, text=True, timeout=30)
    return done.returncode == 0 and "Status: install ok installed" in done.stdout


def status(port: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PUBSUB_PORT=port, PUBSUB_STATE_DIR=f"/tmp/pubsub-emulator-{port}")
    return subprocess.run(["bash", str(SCRIPTS / "pubsub_emulator.sh"), "status"], env=env, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.pubsub
def test_status_names_googles_emulator_where_its_package_is_installed(pubsub_emulator):
    port = pubsub_emulator.rsplit(":", 1)[1]
    done = status(port)
    assert done.returncode == 0, done.stderr
    if emulator_package_installed():
        assert done.stdout.strip() == "emulator", "the tests are not running against Google's Pub/Sub emulator"
    else:
        assert done.stdout.strip() in {"emulator", "pstest"}


def test_status_fails_where_nothing_serves_the_port():
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = status(port)
    assert done.returncode == 1 and done.stdout == "" and "not running" in done.stderr


def test_ci_runs_the_readme_test_command():
    run = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in run.splitlines()  # the lock lane: the whole suite
    assert "LOCK=newest VENV=.venv-newest WOOPRA_PROPERTY_EXAMPLES=40 bash scripts/test.sh -m canary" in run


@pytest.mark.parametrize("script", ["try.sh", "test.sh", "venv.sh", "pubsub_emulator.sh"])
def test_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_test_script_fails_on_skips_on_no_tests_and_on_another_backend():
    text = (SCRIPTS / "test.sh").read_text()
    assert 'WOOPRA_FAIL_ON_SKIP=1 "$PY" -m pytest' in text
    assert '[[ $status -ne 5 ]] || die "pytest collected no tests"' in text
    assert '[[ $backend == "$want_backend" ]] || die' in text and 'echo "pubsub backend: $backend' in text
