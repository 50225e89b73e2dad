"""Owner-only JSON-lines files: where dead letters and dry-run requests are written."""

from __future__ import annotations

import os
import posixpath
import secrets
import time
from collections.abc import Callable
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

    These files carry emails, IPs and cookies (they must, to be replayable): the launcher sets
    the process umask so they are created readable by their owner only (docs/behaviour.md#privacy).
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
        lines = records | "ToJson" >> beam.Map(self.to_line)
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
            )
        )
