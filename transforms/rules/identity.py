"""Identity rules (docs/behaviour.md#identity): what is remembered per visitor and applied to each call (pure).

Two ways to apply them, with the same result:

- **In order** (``enrich_in_order``): replay a visitor's calls in event-time order, remembering
  as they go. Streaming and the debugger do this.
- **From a timeline** (``IdentityTimeline``): first fold what every call *says* (an
  ``IdentityFact``: its traits, user id and cookie, a few bytes) into a visitor's identity over
  event time, then enrich each call by looking its time up. A batch job does this, so it never
  has to hold a visitor's whole history of events, only their facts.

A visitor's activity is split into *spans*: runs of calls each no more than the TTL after the
previous one. Identity never crosses from one span into the next (the remembered identity
expired in the gap).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from transforms.rules.consent import ConsentPolicy, decide_consent
from transforms.rules.events import Event, RawInput, parse_input

FALLBACK_COOKIE_LENGTH = 24
MS_PER_DAY = 86_400_000


def _shared(text: str | None) -> str | None:
    """One object for every copy of the same id or cookie: a visitor's calls repeat theirs, and a
    batch identity pass compares the facts of a visitor's calls (pickling keeps the sharing)."""
    return sys.intern(text) if type(text) is str else text


class IdentityFact(NamedTuple):
    """What one call says about its visitor, at its event time (trait names lower-cased)."""

    at_ms: int
    traits: Mapping[str, Any] | None = None
    user_id: str | None = None
    cookie: str | None = None

    @classmethod
    def of(cls, event: Event) -> IdentityFact:
        own = event.own_traits
        # Woopra's cv_ names are lower-case: "Name" and "name" are one trait.
        traits = {key.lower(): value for key, value in own.items()} if own else None
        return cls(event.timestamp_ms, traits, _shared(event.user_id), _shared(event.own_cookie))

    @property
    def says_something(self) -> bool:
        return bool(self.traits) or self.user_id is not None or self.cookie is not None


@dataclass
class VisitorIdentity:
    """Everything known about one visitor so far, each value with the event time it came from.

    Keeping the time of each value makes "newest by event time wins" hold even when a stream
    delivers a visitor's calls out of order.
    """

    traits: dict[str, tuple[int, Any]] = field(default_factory=dict)
    user_id: tuple[int, str] | None = None
    cookie: tuple[int, str] | None = None
    last_seen_ms: int = 0

    def remember(self, event: Event) -> None:
        """Fold what ``event`` says about its visitor into this identity."""
        self.learn(IdentityFact.of(event))

    def learn(self, fact: IdentityFact) -> None:
        """Fold one call's fact in; a value replaces the known one unless that one is newer."""
        at = fact.at_ms
        if fact.traits:
            for key, value in fact.traits.items():
                known = self.traits.get(key)
                if known is None or known[0] <= at:
                    self.traits[key] = (at, value)
        if fact.user_id is not None and (self.user_id is None or self.user_id[0] <= at):
            self.user_id = (at, fact.user_id)
        if fact.cookie is not None and (self.cookie is None or self.cookie[0] <= at):
            self.cookie = (at, fact.cookie)
        self.last_seen_ms = max(self.last_seen_ms, at)

    def idle_longer_than(self, ttl_ms: int, at_ms: int) -> bool:
        """True when the visitor was last seen more than ``ttl_ms`` before ``at_ms`` (forget it)."""
        return bool(self.last_seen_ms) and at_ms - self.last_seen_ms > ttl_ms

    def current_traits(self) -> dict[str, Any]:
        """Trait name → newest value."""
        return {key: value for key, (_, value) in self.traits.items()}

    def known(self) -> KnownIdentity:
        """The newest values, without their times: what a call is enriched with."""
        return KnownIdentity(self.current_traits(), self.user_id[1] if self.user_id else None,
                             self.cookie[1] if self.cookie else None)


class KnownIdentity(NamedTuple):
    """What is known about a visitor at one moment: trait name → value, user id, cookie."""

    traits: Mapping[str, Any]
    user_id: str | None
    cookie: str | None


class IdentityStep(NamedTuple):
    """One call applied in order: the call, the call enriched, the identity after it, and whether
    the visitor's remembered identity had expired before it."""

    event: Event
    enriched: Event
    identity: VisitorIdentity
    reset: bool


def identity_steps(events: Iterable[Event], identity: VisitorIdentity, ttl_ms: int) -> Iterator[IdentityStep]:
    """Apply one visitor's events in event-time order, starting from what was remembered.

    A gap of more than ``ttl_ms`` of event time since the visitor was last seen starts afresh:
    the visitor's remembered identity has expired.
    """
    for event in sorted(events, key=lambda e: e.timestamp_ms):
        reset = identity.idle_longer_than(ttl_ms, event.timestamp_ms)
        if reset:
            identity = VisitorIdentity()
        yield IdentityStep(event, enrich(event, identity), identity, reset)


def enrich_in_order(
    events: Iterable[Event], identity: VisitorIdentity, ttl_ms: int
) -> tuple[list[Event], VisitorIdentity]:
    """The events of ``identity_steps`` enriched, and the identity to remember afterwards."""
    enriched: list[Event] = []
    for step in identity_steps(events, identity, ttl_ms):
        enriched.append(step.enriched)
        identity = step.identity
    return enriched, identity


def fallback_cookie(anonymous_id: str) -> str:
    """A stable Woopra cookie derived from the anonymous id: same visitor, same profile."""
    digest = hashlib.blake2b(anonymous_id.encode("utf-8"), digest_size=FALLBACK_COOKIE_LENGTH // 2)
    return digest.hexdigest().upper()


def enrich(event: Event, identity: VisitorIdentity) -> Event:
    """Remember what ``event`` says, then return it carrying every trait known for its visitor.

    ``identity`` is updated in place: it is the visitor's state between calls.
    """
    identity.remember(event)
    return with_known_identity(event, identity.known())


def with_known_identity(event: Event, known: KnownIdentity | None) -> Event:
    """``event`` carrying what is known about its visitor at its time (None: nothing yet)."""
    traits = dict(known.traits) if known else {}
    # The call's own values win for this call even if an out-of-order call stored newer ones.
    traits.update((key.lower(), value) for key, value in event.own_traits.items())
    user_id = event.user_id or (known.user_id if known else None)
    cookie = event.own_cookie or (known.cookie if known else None)
    if cookie is None:
        # Every call of an anonymousId carries the same derived cookie, identified or not: the
        # identified calls are what tie that cookie (the anonymous history) to cv_id/cv_email
        # (docs/behaviour.md#identity). A call with only a userId keeps cv_id alone.
        anonymous_id = event.anonymous_id
        if anonymous_id is not None:
            cookie = fallback_cookie(anonymous_id)
    return dataclasses.replace(event, traits=traits, user_id=user_id, cookie=cookie)


def merge_spans(spans: Iterable[tuple[int, int]], ttl_ms: int) -> list[tuple[int, int]]:
    """Sorted activity spans ``(first_ms, last_ms)``, joining any two at most ``ttl_ms`` apart.

    Spans of parts of a visitor's calls merge into the spans of all of them, in any order:
    this is what lets a combiner build them without sorting the calls.
    """
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first - merged[-1][1] <= ttl_ms:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


class IdentityTimeline(NamedTuple):
    """What is known about one visitor at every moment of event time, built from their facts.

    Stored as the moments it changes: ``changes[i]`` holds from ``change_times[i]`` until the
    next change, within the span it was learnt in.
    """

    span_starts: list[int]
    change_times: list[int]
    changes: list[KnownIdentity]

    @classmethod
    def build(cls, spans: list[tuple[int, int]], facts: Iterable[IdentityFact]) -> IdentityTimeline:
        """Fold ``facts`` in event-time order, starting afresh at each span (``merge_spans``)."""
        span_starts = [first for first, _ in spans]
        change_times: list[int] = []
        changes: list[KnownIdentity] = []
        identity, span = VisitorIdentity(), -1
        for fact in sorted(facts, key=lambda f: f.at_ms):
            fact_span = bisect_right(span_starts, fact.at_ms) - 1
            if fact_span != span:
                identity, span = VisitorIdentity(), fact_span
            identity.learn(fact)
            known = identity.known()
            if change_times and change_times[-1] == fact.at_ms:
                changes[-1] = known  # several facts at one moment: the moment ends with the last
            elif not changes or known != changes[-1] or span_starts[span] > change_times[-1]:
                change_times.append(fact.at_ms)
                changes.append(known)
        return cls(span_starts, change_times, changes)

    def at(self, at_ms: int) -> KnownIdentity | None:
        """What is known at ``at_ms`` (facts at that very moment included), None if nothing."""
        change = bisect_right(self.change_times, at_ms) - 1
        if change < 0:
            return None
        span_start = self.span_starts[max(bisect_right(self.span_starts, at_ms) - 1, 0)]
        return self.changes[change] if self.change_times[change] >= span_start else None


def delivered_event(raw: RawInput, consent: ConsentPolicy, replay_reasons: frozenset[str] | None) -> Event | None:
    """The ``Event`` of an input the job will deliver, else None (the job's own rules).

    A batch job's first read keeps only these: a fact counts only from a call the job delivers.
    """
    event = parse_input(raw, replay_reasons=replay_reasons)
    if not isinstance(event, Event) or not decide_consent(event.original, consent).outcome.allowed:
        return None
    return event
