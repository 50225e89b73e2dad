"""Read: Pub/Sub messages → ``RawInput`` records (streaming).

The message data is the UTF-8 JSON event; its attributes travel with it to the dead letter, and
its publish time (or ``timestamp_attribute``) is the event time of events without a timestamp.

Locally, Beam's DirectRunner pulls at most 10 messages per bundle, and every step of the job pays
Beam's per-bundle cost for each bundle (BENCHMARKS.md, "Streaming"): the local read asks each pull
for up to ``LOCAL_PULL_MESSAGES`` instead. Dataflow reads Pub/Sub with its own native source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub

from transforms.rules.events import RawInput

# Messages per pull, so per bundle, on Beam's DirectRunner (which acknowledges them before
# processing them: a local job that crashes loses what it had pulled, docs/streaming.md).
LOCAL_PULL_MESSAGES = 500


class _LargerPulls:
    """A Pub/Sub subscriber client whose ``pull`` asks for up to ``LOCAL_PULL_MESSAGES`` messages."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def pull(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["max_messages"] = max(int(kwargs.get("max_messages") or 0), LOCAL_PULL_MESSAGES)
        return self._client.pull(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def use_larger_local_pulls() -> None:
    """Let Beam's DirectRunner pull up to ``LOCAL_PULL_MESSAGES`` per bundle (once per process).

    Its Pub/Sub evaluator asks its subscriber client for 10 messages at a time (Beam 2.77); the
    client it gets is wrapped to ask for more. Nothing else changes: the same pull, the same
    acknowledgement. Where Beam has no such evaluator, the read keeps Beam's own size.
    """
    try:
        from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    except ImportError:
        return
    original = _PubSubReadEvaluator.__dict__.get("_get_subscriber_client")
    if not isinstance(original, classmethod) or original.__func__.__name__ == "_larger_pulls_client":
        return  # another Beam, or done already

    def _larger_pulls_client(cls: type, transform: Any) -> _LargerPulls:
        return _LargerPulls(original.__func__(cls, transform))

    _PubSubReadEvaluator._get_subscriber_client = classmethod(_larger_pulls_client)  # type: ignore[assignment]


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
        use_larger_local_pulls()  # the local runner only; Dataflow reads with its own source
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
