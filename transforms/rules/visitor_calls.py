"""A visitor's calls as the batch identity pass keeps them, and what it concludes from them (pure).

The identity pass of a batch job reads the input once before delivering it and keeps, of each call
the job delivers, a ``CallRecord``: its id's hash, what it says about its visitor (an
``IdentityFact``) and where it was read. ``VisitorCalls`` holds one visitor's records compactly
(36 bytes a call; each different fact once, since a visitor's calls mostly repeat the same cookie
and user id); ``summarize`` turns them into a ``VisitorSummary``: the visitor's identity timeline,
and for the ids read more than once, where the copy that is sent was read
(docs/backfill.md#each-event-once).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from transforms.rules.event_id import canonical_json, fact_rank
from transforms.rules.identity import IdentityFact, IdentityTimeline, merge_spans

# What the identity pass keeps of one call: its id (``id_digest``), its fact, where it was read
# (``position_rank``).
CallRecord = tuple[bytes, IdentityFact, int]
# One call in ``VisitorCalls.calls``: id digest, position rank, event time (ms), fact number (-1: none).
_CALL = struct.Struct("<16sqqi")
_SAYS_NOTHING = -1


@dataclass(slots=True)
class VisitorCalls:
    """One visitor's calls as the survey keeps them: 36 bytes each, and each different thing they
    say about the visitor once (most calls of a visitor repeat the same cookie and user id).

    Copies of an id are kept as they come; which one is sent is decided at the end (``sent_copies``).
    """

    calls: bytearray = field(default_factory=bytearray)
    facts: list[IdentityFact] = field(default_factory=list)  # at_ms 0: the time is the call's
    fact_numbers: dict[tuple[str | None, str | None, str], int] | None = None  # rebuilt after ``drop_index``

    def add(self, key: bytes, position: int, at_ms: int, fact: IdentityFact | None) -> None:
        number = self._number(fact) if fact is not None and fact.says_something else _SAYS_NOTHING
        self.calls += _CALL.pack(key, position, at_ms, number)

    def add_all(self, other: VisitorCalls) -> None:
        for key, position, at_ms, number in _CALL.iter_unpack(other.calls):
            self.add(key, position, at_ms, other.facts[number] if number != _SAYS_NOTHING else None)

    def drop_index(self) -> None:
        """Forget the lookup of facts (it is rebuilt when needed): less to carry between steps."""
        self.fact_numbers = None

    def _number(self, fact: IdentityFact) -> int:
        if self.fact_numbers is None:
            self.fact_numbers = {}
            for number, known in enumerate(self.facts):
                self.fact_numbers.setdefault(_fact_key(known), number)
        key = _fact_key(fact)
        known_number = self.fact_numbers.get(key)
        if known_number is not None and self.facts[known_number].traits == fact.traits:
            return known_number
        # New, or the same JSON text for different values (a date and its text): kept apart.
        self.facts.append(fact._replace(at_ms=0))
        self.fact_numbers.setdefault(key, len(self.facts) - 1)
        return len(self.facts) - 1

    def sent_copies(self) -> tuple[dict[bytes, tuple[int, IdentityFact]], dict[bytes, int]]:
        """Per id, the copy that is sent (``first_copy``: its position and its fact, at its time),
        and per id read more than once, how many copies."""
        sent: dict[bytes, tuple[int, IdentityFact]] = {}
        copies: dict[bytes, int] = {}
        for key, position, at_ms, number in _CALL.iter_unpack(self.calls):
            fact = self.facts[number]._replace(at_ms=at_ms) if number != _SAYS_NOTHING else IdentityFact(at_ms)
            known = sent.get(key)
            if known is None:
                sent[key] = (position, fact)
                continue
            copies[key] = copies.get(key, 1) + 1
            if _is_first(fact, position, known[1], known[0]):
                sent[key] = (position, fact)
        return sent, copies


def _fact_key(fact: IdentityFact) -> tuple[str | None, str | None, str]:
    return fact.user_id, fact.cookie, canonical_json(fact.traits) if fact.traits else ""


class VisitorSummary(NamedTuple):
    """What the identity pass concludes about one visitor: their timeline (None when no call needs
    one), and for each id they sent more than once, where the copy that is sent was read."""

    timeline: IdentityTimeline | None
    first_copies: tuple[tuple[bytes, int], ...]


def summarize(calls: VisitorCalls, ttl_ms: int) -> VisitorSummary:
    """Copies of an id count once, with the fact of the copy the job sends (``first_copy``), so the
    timeline is what the visitor said in the calls that are sent."""
    sent, copies = calls.sent_copies()
    first_copies = tuple((key, sent[key][0]) for key in copies)
    facts = [fact for _, fact in sent.values() if fact.says_something]
    # A lone call already carries everything it says: its visitor needs no timeline.
    if not facts or len(sent) < 2:
        return VisitorSummary(None, first_copies)
    spans = merge_spans(((fact.at_ms, fact.at_ms) for _, fact in sent.values()), ttl_ms)
    return VisitorSummary(IdentityTimeline.build(spans, facts), first_copies)


def _is_first(fact: IdentityFact, position: int, than: IdentityFact, than_position: int) -> bool:
    # Within one visitor, the order of ``first_copy``: what the call says, then where it was read.
    return (fact_rank(fact), position) < (fact_rank(than), than_position)
