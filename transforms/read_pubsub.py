"""Read: Pub/Sub messages → ``RawInput`` records (streaming).

The message data is the UTF-8 JSON event; its attributes travel with it to the dead letter, and
its publish time (or ``timestamp_attribute``) is the event time of events without a timestamp.

Locally, Beam's DirectRunner pulls at most 10 messages per bundle; ``python -m pipeline`` lets it
pull more (``larger_pubsub_pulls`` in pipeline/direct_runner.py). Dataflow reads Pub/Sub with its
own native source.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub

from transforms.rules.events import RawInput


class _ToRawInputFn(beam.DoFn):
    def process(self, message: PubsubMessage, timestamp=beam.DoFn.TimestampParam) -> Iterator[RawInput]:
        yield RawInput(
            payload=message.data,
            source=f"pubsub:{message.message_id}" if message.message_id else "pubsub",
            attributes=dict(message.attributes or {}),
            fallback_time_ms=timestamp.micros // 1000,
        )


class ReadPubSubEvents(beam.PTransform):
    """Read events from a Pub/Sub subscription or topic (exactly one)."""

    def __init__(
        self,
        subscription: str | None = None,
        topic: str | None = None,
        timestamp_attribute: str | None = None,
        id_label: str | None = None,
    ) -> None:
        super().__init__()
        self.subscription = subscription
        self.topic = topic
        self.timestamp_attribute = timestamp_attribute
        self.id_label = id_label

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "ReadFromPubSub" >> ReadFromPubSub(
                topic=self.topic,
                subscription=self.subscription,
                with_attributes=True,
                timestamp_attribute=self.timestamp_attribute,
                id_label=self.id_label,
            )
            | "ToRawInput" >> beam.ParDo(_ToRawInputFn())
        )
