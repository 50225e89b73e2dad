"""The suite's own rules (tests/conftest.py): a skip fails the run under WOOPRA_FAIL_ON_SKIP=1, and
``slow`` tests are deselected, not skipped, unless ``--run-slow``. Each case runs pytest in a
subprocess on a tiny test file, with the repo's conftest loaded as a plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TINY_TESTS = '''
import pytest

def test_runs():
    assert True

@pytest.mark.slow
def test_slow_one():
    assert True
'''
SKIPPING_TEST = '''
import pytest

def test_needs_something():
    pytest.skip("frobnicator is not installed")
'''
XFAIL_TEST = '''
import pytest

@pytest.mark.xfail(reason="known to be broken")
def test_broken():
    assert False
'''


def run_pytest(folder: Path, *args: str, fail_on_skip: bool) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` on ``folder`` with the repo's conftest as a plugin; bounded in time."""
    env = {k: v for k, v in os.environ.items() if k != "WOOPRA_FAIL_ON_SKIP"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the repo's conftest: a sub-second run
    if fail_on_skip:
        env["WOOPRA_FAIL_ON_SKIP"] = "1"
    # -c /dev/null: the tiny folder's own (empty) settings, not the repo's testpaths.
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "-c", os.devnull, "--rootdir", str(folder), "-W", "ignore::pytest.PytestUnknownMarkWarning",
                           *args, str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_a_skip_or_xfail_fails_the_run_and_is_named(tmp_path):
    folder = write(tmp_path / "t", "test_tiny.py", TINY_TESTS + SKIPPING_TEST + XFAIL_TEST)
    done = run_pytest(folder, fail_on_skip=True)
    assert done.returncode == 1, done.stdout
    assert "skipped tests fail this run (WOOPRA_FAIL_ON_SKIP=1)" in done.stdout
    assert "SKIPPED test_tiny.py::test_needs_something: Skipped: frobnicator is not installed" in done.stdout
    assert "SKIPPED test_tiny.py::test_broken: xfail: known to be broken" in done.stdout
    assert "1 passed, 1 skipped, 1 deselected, 1 xfailed" in done.stdout


def test_without_the_variable_a_skip_is_only_reported(tmp_path):
    folder = write(tmp_path / "t", "test_tiny.py", TINY_TESTS + SKIPPING_TEST)
    done = run_pytest(folder, fail_on_skip=False)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped, 1 deselected" in done.stdout
    assert "skipped tests fail this run" not in done.stdout


def test_slow_tests_are_deselected_not_skipped_unless_run_slow(tmp_path):
    folder = write(tmp_path / "t", "test_tiny.py", TINY_TESTS)
    default = run_pytest(folder, "-v", fail_on_skip=True)
    assert default.returncode == 0, default.stdout
    assert "1 passed, 1 deselected" in default.stdout and " skipped" not in default.stdout
    assert "test_tiny.py::test_runs PASSED" in default.stdout and "test_slow_one" not in default.stdout

    with_slow = run_pytest(folder, "-v", "--run-slow", fail_on_skip=True)
    assert with_slow.returncode == 0, with_slow.stdout
    assert "test_tiny.py::test_slow_one PASSED" in with_slow.stdout
    assert "2 passed in" in with_slow.stdout


def test_only_slow_tests_collect_nothing_without_run_slow(tmp_path):
    folder = write(tmp_path / "t", "test_tiny.py", "import pytest\n\n@pytest.mark.slow\ndef test_s():\n    pass\n")
    done = run_pytest(folder, fail_on_skip=True)
    assert done.returncode == 5, done.stdout  # pytest's "no tests ran": scripts/test.sh fails on it
