"""Dead letter: write every undeliverable event, with its reason, where it can be replayed."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, WriteToPubSub

from transforms.file_output import WriteJsonLines
from transforms.rules.dead_letters import DeadLetter


def is_pubsub_topic(path: str) -> bool:
    """True for ``projects/P/topics/T``."""
    parts = path.split("/")
    return len(parts) == 4 and parts[0] == "projects" and parts[2] == "topics" and all(parts)


def to_pubsub_message(dead_letter: DeadLetter) -> PubsubMessage:
    """The record as message data; ``reason`` also as an attribute, beside the input's own."""
    attributes = {str(k): str(v) for k, v in (dead_letter.attributes or {}).items()}
    attributes["reason"] = dead_letter.reason
    return PubsubMessage(data=dead_letter.to_json().encode("utf-8"), attributes=attributes)


class WriteDeadLetters(beam.PTransform):
    """Write ``DeadLetter`` records (docs/behaviour.md#dead-letters) to JSON-lines files or a Pub/Sub topic."""

    def __init__(self, path: str, window_seconds: float | None = None, run_id: str = "") -> None:
        super().__init__()
        self.path = path
        self.window_seconds = window_seconds
        self.run_id = run_id

    def expand(self, dead_letters: beam.PCollection) -> beam.pvalue.PDone:
        if is_pubsub_topic(self.path):
            return (
                dead_letters
                | "ToMessages" >> beam.Map(to_pubsub_message)
                | "Publish" >> WriteToPubSub(self.path, with_attributes=True)
            )
        return dead_letters | "Write" >> WriteJsonLines(
            self.path, "dead_letters", self.window_seconds, self.run_id, to_line=DeadLetter.to_json)
