"""Owner-only JSON-lines files: where dead letters and dry-run requests are written."""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam


def file_prefix(path: str, default_name: str) -> str:
    """A shard prefix: a path ending in ``/`` (or an existing directory) gets ``default_name``."""
    if path.endswith("/") or os.path.isdir(path):
        return path.rstrip("/") + "/" + default_name
    return path


def to_json_line(record: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 kept as is."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


class WriteJsonLines(beam.PTransform):
    """Write JSON-serialisable dicts as ``<prefix>-SSSSS-of-NNNNN.jsonl`` files.

    These files carry emails, IPs and cookies (they must, to be replayable): the launcher sets
    the process umask so they are created readable by their owner only (SPEC §9).
    """

    def __init__(self, path: str, default_name: str) -> None:
        super().__init__()
        self.prefix = file_prefix(path, default_name)

    def expand(self, records: beam.PCollection) -> beam.pvalue.PDone:
        return (
            records
            | "ToJson" >> beam.Map(to_json_line)
            | "WriteFiles" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl")
        )
