"""Owner-only JSON-lines files: where dead letters and dry-run requests are written."""

from __future__ import annotations

import os
import posixpath
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.transforms import window

from transforms.rules.dead_letters import to_json_line


def new_run_id(now: float | None = None) -> str:
    """A run's id: its UTC start time and 4 random hex digits, e.g. ``20261201T093012Z-3f9a``.

    Sorts by start time; the random part keeps two runs started in the same second apart.
    """
    started = time.gmtime(time.time() if now is None else now)
    return time.strftime("%Y%m%dT%H%M%SZ", started) + "-" + secrets.token_hex(2)


def file_prefix(path: str, default_name: str, run_id: str = "") -> str:
    """A run's shard prefix: a path ending in ``/`` (or an existing directory) gets ``default_name``;
    the run id follows, so that no run writes over another run's files."""
    if path.endswith("/") or os.path.isdir(path):
        path = path.rstrip("/") + "/" + default_name
    return f"{path}-{run_id}" if run_id else path


# Dead letters and dry-run requests carry emails, IPs and cookies (docs/behaviour.md#privacy).
OWNER_ONLY_UMASK = 0o077


def owner_only_files() -> None:
    """Make this process create files readable by their owner only, keeping any stricter umask bits.

    The launcher sets this for local runners; a worker in another process (a portable runner's
    SDK worker pool, Dataflow) has its own umask, so the writing steps set it there too.
    """
    current = os.umask(OWNER_ONLY_UMASK)  # never looser than 0o077 in between
    if current | OWNER_ONLY_UMASK != OWNER_ONLY_UMASK:
        os.umask(current | OWNER_ONLY_UMASK)


class _ToLineFn(beam.DoFn):
    """Each record as its JSON line, in a worker that creates owner-only files."""

    def __init__(self, to_line: Callable[[Any], str]) -> None:
        self.to_line = to_line

    def setup(self) -> None:
        # Batch files are written in this step's fused stage, so in this process.
        owner_only_files()

    def process(self, record: Any) -> Iterator[str]:
        yield self.to_line(record)


def _owner_only_text_sink(destination: Any) -> fileio.TextSink:
    # Streaming files are written after a shuffle, maybe in another process: Beam asks for the
    # sink just before it creates each file.
    owner_only_files()
    return fileio.TextSink()


def _stamp_now(element: Any) -> window.TimestampedValue:
    # Windows of failure time, not event time: a backfill's old events are not late data.
    return window.TimestampedValue(element, time.time())


class WriteJsonLines(beam.PTransform):
    """Write records as JSON lines (``to_line`` makes each one's line) under a path prefix.

    Each record becomes its line in the same step: Beam's coders would refuse a dict holding
    text UTF-8 cannot encode (a lone surrogate), which ``to_json_line`` writes as an escape.

    Batch: ``<prefix>-<run id>-SSSSS-of-NNNNN.jsonl``, no file when there are no records.
    Streaming (``window_seconds`` given): one file per window of processing time,
    ``<prefix>-<run id>-<window start>-<window end>-...jsonl``, written when the window closes.
    The run id keeps every run's files apart: a run never replaces another run's output.

    These files carry emails, IPs and cookies (they must, to be replayable): they are created
    readable by their owner only, in whichever process writes them (docs/behaviour.md#privacy).
    """

    def __init__(
        self,
        path: str,
        default_name: str,
        window_seconds: float | None = None,
        run_id: str = "",
        to_line: Callable[[Any], str] = to_json_line,
    ) -> None:
        super().__init__()
        self.prefix = file_prefix(path, default_name, run_id)
        self.window_seconds = window_seconds
        self.to_line = to_line

    def expand(self, records: beam.PCollection) -> beam.pvalue.PDone:
        lines = records | "ToJson" >> beam.ParDo(_ToLineFn(self.to_line))
        if self.window_seconds is None:
            return lines | "WriteFiles" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl",
                                                               skip_if_empty=True)
        directory, name = posixpath.split(self.prefix)
        return (
            lines
            | "StampFailureTime" >> beam.Map(_stamp_now)
            | "Window" >> beam.WindowInto(window.FixedWindows(self.window_seconds))
            | "WriteWindowedFiles" >> fileio.WriteToFiles(
                path=directory or ".",
                file_naming=fileio.default_file_naming(prefix=name, suffix=".jsonl"),
                shards=1,
                sink=_owner_only_text_sink,
            )
        )
