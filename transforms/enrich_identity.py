"""Identity: one copy of each event, given what its visitor said about themselves by then, in event time.

Both modes apply the same pure rules (``transforms/rules/identity.py``, ``rules/event_id.py``),
and agree (docs/behaviour.md#identity, docs/backfill.md#each-event-once):

- **Batch** (bounded input): identity reads the input once more, first (the *identity pass*), and keeps of
  every call the job delivers only its id and what it says about its visitor (an ``IdentityFact``).
  A combiner folds each visitor's calls into a ``VisitorSurvey``: copies of one id count once, with
  the fact of the copy that is sent (``first_copy``); for the ids the visitor sent more than once,
  where that copy was read becomes a small side input, and the second read sends the copy read
  there and counts the others ``duplicate``, without grouping or holding any event. The summary's
  ``IdentityTimeline`` (only for visitors with more than one call who said something: a lone call
  already carries all it says) lets each call look its event time up, so an identify that appears
  later in the input still enriches the calls after it. The lookup is either a dict side input
  that every worker process holds whole (``side_input``, fastest on one machine), or a join through
  the shuffle by visitor (``shuffle``: memory per process does not grow with the number of
  visitors; the runner spills to disk).
- **Streaming** (unbounded input): a stateful DoFn. Arriving events wait in a bag until the
  watermark passes the latest arrival's event time, or now where that is earlier (an event from
  the future holds nothing back); the waiting events are then applied in event-time order and
  what is known about the visitor is kept in state. Copies of an id released within
  ``dedup_window_seconds`` (processing time) of each other are counted ``duplicate``; the ids are
  kept per visitor for that long. With Pub/Sub the watermark is about "now", so events wait very
  little. A call that arrives after its visitor's later events were released still updates the
  remembered traits (newest event time wins) but cannot change what was already sent.

Remembered identity is forgotten after ``ttl_days`` without activity: between two events more
than that far apart in event time (both modes, so batch and stream agree), and in streaming by
an expiry timer ``ttl_days`` after the visitor was last active (the clock at their last release),
which clears the state so a job that runs for months
keeps bounded state. Calls at the very same millisecond see each other's facts in batch; in
streaming, the one released first does not see the other's.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam

from transforms.identity_batch import JOINS, enrich_in_batch
from transforms.identity_streaming import enrich_in_stream
from transforms.rules.consent import ConsentPolicy
from transforms.rules.identity import MS_PER_DAY

__all__ = ["JOINS", "EnrichIdentity"]


class EnrichIdentity(beam.PTransform):
    """One copy of each event, with its visitor's remembered traits, ``cv_id`` and cookie.

    docs/behaviour.md#identity, docs/backfill.md#each-event-once. Outputs ``events`` and
    ``dead_letters`` (an event the rules could not be applied to). The mode follows the input: a
    bounded one (files) is enriched from identity timelines, an unbounded one (Pub/Sub) by the
    stateful DoFn.

    ``first_read`` (batch) is the job's read transform: identity reads the input once more, first,
    keeping only the ids and facts of calls that ``consent`` and ``replay_reasons`` let through, so
    the events themselves stream through without being held. Without it the survey is made of the
    events, which makes the runner keep them until it is done (tests, small inputs). ``join``
    (batch) is ``side_input`` or ``shuffle``.
    """

    def __init__(
        self,
        ttl_days: float = 30.0,
        first_read: beam.PTransform | None = None,
        consent: ConsentPolicy | None = None,
        replay_reasons: Iterable[str] | None = None,
        join: str = "side_input",
        dedup_window_seconds: float = 600.0,
    ) -> None:
        super().__init__()
        if join not in JOINS:
            raise ValueError(f"join must be one of {JOINS}, got {join!r}")
        self.ttl_ms = int(ttl_days * MS_PER_DAY)
        self.first_read = first_read
        self.consent = consent or ConsentPolicy()
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None
        self.join = join
        self.dedup_window_ms = int(dedup_window_seconds * 1000)

    def expand(self, events: beam.PCollection):  # a DoOutputsTuple, which Beam takes for a wrong type hint
        if not events.is_bounded:
            return enrich_in_stream(events, self.ttl_ms, self.dedup_window_ms)
        return enrich_in_batch(events, self.ttl_ms, self.first_read, self.consent, self.replay_reasons, self.join)
