"""Dry run: write each request that would be sent, instead of sending it (SPEC §5)."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from transforms.counters import counter
from transforms.file_output import WriteJsonLines
from transforms.outcomes import Outcome
from transforms.woopra_mapping import WoopraRequest


class _CountWouldSend(beam.DoFn):
    def __init__(self) -> None:
        self.would_send = counter(Outcome.WOULD_SEND)

    def process(self, request: WoopraRequest):  # type: ignore[no-untyped-def]
        self.would_send.inc()
        yield request.as_record()


class WriteDryRun(beam.PTransform):
    """Count requests as ``would_send`` and write them as JSON lines under ``path``."""

    def __init__(self, path: str, window_seconds: float | None = None, run_id: str = "") -> None:
        super().__init__()
        self.path = path
        self.window_seconds = window_seconds
        self.run_id = run_id

    def expand(self, requests: beam.PCollection) -> Any:
        return (
            requests
            | "CountWouldSend" >> beam.ParDo(_CountWouldSend())
            | "Write" >> WriteJsonLines(self.path, "requests", self.window_seconds, self.run_id)
        )
