"""The ledger (``--ledger FOLDER``, docs/backfill.md#resuming-with-the-ledger): which events are settled.

An event is *settled* once its request has an answer: delivered, or dead-lettered after a send
(rejected, retries exhausted). Each delivering process records the ``ledger_key`` of every settled
event in files of its own, ``settled-<run id>-<pid>-<random>.ids``, one key per line:

- in a local folder, each key is appended with one ``write`` as its answer arrives, so a process
  killed at any moment (``kill -9``) has recorded every answer but those in flight;
- on ``gs://``, where objects cannot be appended to, keys are written as a new object every
  ``REMOTE_FLUSH_SECONDS`` and at the end of every bundle: a kill loses at most that many seconds
  of answers.

A job started with a ledger reads the keys of the files there at launch (``settled_files``) and
skips those events. Not Beam's file sinks: they discard a failed bundle's files, and with them the
record of requests that were really sent.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterable

from apache_beam.io.filesystems import FileSystems

LEDGER_SUFFIX = ".ids"
REMOTE_FLUSH_SECONDS = 5.0


def _is_local(folder: str) -> bool:
    return "://" not in folder


def settled_files(folder: str) -> list[str]:
    """The ledger files in ``folder`` now (none when the folder does not exist yet)."""
    pattern = FileSystems.join(folder, "*" + LEDGER_SUFFIX)
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises for a missing folder: nothing settled yet
        return []
    return sorted(metadata.path for metadata in matched)


def read_settled(paths: Iterable[str]) -> set[bytes]:
    """The keys recorded in ``paths``, as the 16 bytes of hash each stands for (``id_digest``)."""
    keys: set[bytes] = set()
    for path in paths:
        with FileSystems.open(path) as file:
            for line in file.read().splitlines():
                line = line.strip()
                if len(line) == 32:  # a line cut short by a kill is not a key
                    try:
                        keys.add(bytes.fromhex(line.decode("ascii")))
                    except ValueError:
                        continue
    return keys


def key_digest(key: str) -> bytes:
    """A ``ledger_key`` as the digest ``read_settled`` holds."""
    return bytes.fromhex(key)


class LedgerWriter:
    """Records settled keys for one process; thread-safe (answers arrive on the sender's threads)."""

    def __init__(self, folder: str, run_id: str) -> None:
        self.folder = folder
        self.name = f"settled-{run_id or 'run'}-{os.getpid()}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pending: list[str] = []
        self._flushed_at = time.monotonic()
        self._objects = 0

    def record(self, key: str) -> None:
        """Record one settled event's ``ledger_key``."""
        line = key + "\n"
        with self._lock:
            if _is_local(self.folder):
                if self._fd is None:
                    os.makedirs(self.folder, exist_ok=True)
                    path = os.path.join(self.folder, self.name + LEDGER_SUFFIX)
                    self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.write(self._fd, line.encode("ascii"))  # one append: in the file even if killed next
                return
            self._pending.append(line)
            if time.monotonic() - self._flushed_at >= REMOTE_FLUSH_SECONDS:
                self._write_object()

    def flush(self) -> None:
        """Write what is buffered (remote folders; local keys are written as they come)."""
        with self._lock:
            if self._pending:
                self._write_object()

    def _write_object(self) -> None:
        self._objects += 1
        path = FileSystems.join(self.folder, f"{self.name}-{self._objects:06d}{LEDGER_SUFFIX}")
        with FileSystems.create(path, mime_type="text/plain") as file:
            file.write("".join(self._pending).encode("ascii"))
        self._pending.clear()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        """Flush and release the file."""
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
