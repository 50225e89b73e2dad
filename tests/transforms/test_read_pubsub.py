"""The local Pub/Sub read: Beam's DirectRunner pulls up to LOCAL_PULL_MESSAGES per bundle."""

from __future__ import annotations

from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator

from transforms.read_pubsub import LOCAL_PULL_MESSAGES, _LargerPulls, use_larger_local_pulls


class _RecordingClient:
    def __init__(self) -> None:
        self.pulls: list[dict] = []
        self.acknowledged: list[str] = []

    def pull(self, **kwargs: object) -> str:
        self.pulls.append(kwargs)
        return "response"

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        self.acknowledged.extend(ack_ids)


def test_the_wrapped_client_asks_for_more_messages_and_acknowledges_as_before() -> None:
    client = _RecordingClient()
    wrapped = _LargerPulls(client)
    # What Beam 2.77's evaluator asks for; the rest of its call goes through unchanged.
    assert wrapped.pull(subscription="projects/p/subscriptions/s", max_messages=10, timeout=30) == "response"
    assert client.pulls == [{"subscription": "projects/p/subscriptions/s", "max_messages": LOCAL_PULL_MESSAGES,
                             "timeout": 30}]
    wrapped.acknowledge(subscription="projects/p/subscriptions/s", ack_ids=["a", "b"])
    assert client.acknowledged == ["a", "b"]


def test_the_direct_runner_evaluator_gets_the_wrapped_client_once() -> None:
    use_larger_local_pulls()
    patched = _PubSubReadEvaluator.__dict__["_get_subscriber_client"]
    use_larger_local_pulls()  # a second read transform in the same process wraps nothing more
    assert _PubSubReadEvaluator.__dict__["_get_subscriber_client"] is patched
    assert patched.__func__.__name__ == "_larger_pulls_client"
