"""``python -m pipeline`` started as a user starts it, watched while it runs: its output lines as
they come, a signal sent mid-run, its end awaited in bounded time."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from typing import IO

from tests.conftest import ROOT, subprocess_env


class RunningJob:
    """A ``python -m pipeline`` subprocess whose stdout and stderr lines are collected as they come."""

    def __init__(self, *args: str) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=subprocess_env(),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._stderr_lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, None), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, self._stderr_lines),
                             daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str], seen: queue.Queue[tuple[float, str]] | None) -> None:
        for line in stream:
            lines.append(line)
            if seen is not None:
                seen.put((time.monotonic() - self.started, line))

    def wait_for_stderr(self, pattern: str, timeout: float) -> tuple[float, str]:
        """The first stderr line matching ``pattern`` and when it came (seconds after the start)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, line = self._stderr_lines.get(timeout=left)
            except queue.Empty:
                break
            if re.search(pattern, line):
                return at, line
        raise AssertionError(f"no stderr line matching {pattern!r} within {timeout} s:\n{''.join(self.stderr)}")

    def finish(self, timeout: float) -> tuple[int, float]:
        """Wait for the end (killing it after ``timeout`` s); its exit status and the seconds waited."""
        waited_from = time.monotonic()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError(f"still running {timeout} s later:\n{''.join(self.stderr)}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code, time.monotonic() - waited_from

    def kill(self) -> None:
        """Stop it at once if it still runs (a test's clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    @property
    def out(self) -> str:
        """Everything it printed on stdout so far."""
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        """Everything it printed on stderr so far."""
        return "".join(self.stderr)
