"""The ledger (``--ledger FOLDER``, docs/backfill.md#resuming-with-the-ledger): which events were delivered.

An event is recorded once Woopra has accepted it (``delivered_200``/``delivered_202``), and only
then: a rejected event, or one whose retries ran out, is not recorded, so a resumed run sends it
again and it ends in that run's dead letters (nothing a crash interrupts is lost on the way to a
dead-letter file). Its key is ``ledger_key(visitor, event id)``: 16 bytes of hash, written as 32
hex digits a line in files of each delivering process's own, ``delivered-<run id>-<pid>-<random>.keys``:

- in a local folder, each key is appended with one ``write`` before anyone sees the answer, so a
  process killed at any moment (``kill -9``) has recorded every delivered event but those whose
  answers were still on their way; every bundle ends with an ``fsync``, so what a finished bundle
  delivered survives a power loss too;
- on ``gs://``, where objects cannot be appended to, a thread of its own writes the keys gathered
  as a new object every ``REMOTE_FLUSH_SECONDS``, and every bundle ends by writing what is left:
  a kill loses at most that many seconds of keys, and a slow upload never holds up an answer.

A job started with a ledger reads the keys of the files there at launch (``delivered_files``,
``read_delivered``) and skips those events. Not Beam's file sinks: they discard a failed bundle's
files, and with them the record of requests that were really sent.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import weakref
from collections.abc import Iterable

import numpy as np
from apache_beam.io.filesystems import FileSystems

log = logging.getLogger(__name__)

LEDGER_SUFFIX = ".keys"
KEY_BYTES = 16
REMOTE_FLUSH_SECONDS = 5.0
# The files of the ledger before keys were per visitor and only delivered events were recorded.
OLD_LEDGER_SUFFIX = ".ids"


class LedgerError(ValueError):
    """A ledger folder this version cannot resume from."""


def is_local(folder: str) -> bool:
    return "://" not in folder


def _matching(folder: str, suffix: str) -> list[str]:
    pattern = FileSystems.join(folder, "*" + suffix)
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises for a missing folder: nothing recorded yet
        return []
    return sorted(metadata.path for metadata in matched)


def delivered_files(folder: str) -> list[str]:
    """The ledger files in ``folder`` now (none when the folder does not exist yet).

    Raises ``LedgerError`` for a folder written by the earlier ledger format, whose keys (any
    answered event, by id alone) would skip events this version must send.
    """
    if _matching(folder, OLD_LEDGER_SUFFIX):
        raise LedgerError(f"{folder} holds an older ledger (settled-*{OLD_LEDGER_SUFFIX}: answered events by id "
                          "alone); resume it with the version that wrote it, or give a new folder")
    return _matching(folder, LEDGER_SUFFIX)


class DeliveredKeys:
    """The keys of a ledger, sorted in one array: 16 bytes a key, looked up by binary search.

    NumPy's fixed-size bytes drop trailing zero bytes when read back; for keys of one size that
    loses nothing, so a key is compared without them."""

    def __init__(self, keys: np.ndarray) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: bytes) -> bool:
        keys = self._keys
        at = int(keys.searchsorted(key))
        return at < len(keys) and keys[at] == key.rstrip(b"\0")


def _keys_of(text: bytes) -> np.ndarray:
    # A line cut short by a kill, or anything else that is not 32 hex digits, is not a key.
    lines = [line for line in text.split() if len(line) == 2 * KEY_BYTES]
    try:
        return np.frombuffer(bytes.fromhex(b"".join(lines).decode("ascii")), dtype=f"S{KEY_BYTES}")
    except ValueError:  # some line is not hex: keep the others
        keys = []
        for line in lines:
            try:
                keys.append(bytes.fromhex(line.decode("ascii")))
            except ValueError:
                continue
        return np.array(keys, dtype=f"S{KEY_BYTES}")


def read_delivered(paths: Iterable[str]) -> DeliveredKeys:
    """The keys recorded in ``paths``."""
    parts = []
    for path in paths:
        with FileSystems.open(path) as file:
            parts.append(_keys_of(file.read()))
    keys = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=f"S{KEY_BYTES}")
    return DeliveredKeys(keys)


class LedgerWriter:
    """Records delivered events' keys for one process; thread-safe."""

    def __init__(self, folder: str, run_id: str) -> None:
        self.folder = folder
        self.name = f"delivered-{run_id or 'run'}-{os.getpid()}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self._file = _AppendFile()
        self._pending: list[bytes] = []  # remote: keys not written yet
        self._upload_lock = threading.Lock()
        self._objects = 0
        self._stop = threading.Event()
        self._failed = False
        if not is_local(folder):
            threading.Thread(target=self._upload_regularly, name="ledger-uploader", daemon=True).start()
        self._finalizer = weakref.finalize(self, self._file.close)

    def record(self, key: bytes) -> None:
        """Record one delivered event's ``ledger_key``; never raises (a failure is logged once)."""
        line = key.hex().encode("ascii") + b"\n"
        try:
            with self._lock:
                if not is_local(self.folder):
                    self._pending.append(line)
                    return
                self._file.append(os.path.join(self.folder, self.name + LEDGER_SUFFIX), line)
        except OSError as exc:
            self._report(exc)

    def flush(self) -> None:
        """Make what is recorded durable: ``fsync`` a local file, write a remote folder's keys now."""
        try:
            if is_local(self.folder):
                with self._lock:
                    self._file.sync()
            else:
                self._write_object()
        except OSError as exc:
            self._report(exc)

    def close(self) -> None:
        """Flush, stop the uploader and release the file."""
        self.flush()
        self._stop.set()
        self._finalizer()

    def _upload_regularly(self) -> None:
        while not self._stop.wait(REMOTE_FLUSH_SECONDS):
            try:
                self._write_object()
            except Exception as exc:  # noqa: BLE001 - keep trying: the keys stay pending
                self._report(exc)

    def _write_object(self) -> None:
        with self._upload_lock:
            with self._lock:
                lines, self._pending = self._pending, []
            if not lines:
                return
            self._objects += 1
            path = FileSystems.join(self.folder, f"{self.name}-{self._objects:06d}{LEDGER_SUFFIX}")
            try:
                with FileSystems.create(path, mime_type="text/plain") as file:
                    file.write(b"".join(lines))
            except BaseException:
                with self._lock:
                    self._pending[:0] = lines  # written next time, in order
                raise

    def _report(self, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            log.warning("the ledger %s could not be written (%s): a resumed run may send those events again",
                        self.folder, exc)


class _AppendFile:
    """A local file opened on first append; closed by ``close`` or when its writer is collected."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def append(self, path: str, line: bytes) -> None:
        if self.fd is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self.fd, line)  # one append: in the file even if the process is killed next

    def sync(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
