"""Event ids (docs/backfill.md#each-event-once): what makes two inputs the same event (pure, no Beam).

An event's id is its ``messageId`` (text, or a number as its text), else a hash of its content:
``content:`` and the 128-bit BLAKE2b of its JSON with keys sorted, so two copies that differ only
in key order or whitespace are one event. Replays of dead letters carry the event they kept, so a
replayed event has the id it had in the run that dead-lettered it.

Copies are calls of one visitor with one id (a ``messageId`` two visitors share is two events).
Of several copies, the job sends the *first* (``first_copy``): the one with the earliest event time,
then the least by what it says about its visitor, then by where it was read (a fixed order of
``file:line`` positions), so both reads of a batch job, every worker and every run pick the same
copy, and identity learns from that copy only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from transforms.rules.events import Event
from transforms.rules.identity import IdentityFact

CONTENT_PREFIX = "content:"


def canonical_json(value: Any) -> str:
    """``value`` as JSON with keys sorted: the same text for the same content, whatever the order."""
    # ensure_ascii keeps lone surrogates writable; default=str covers Parquet's dates and bytes.
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    except (TypeError, ValueError, RecursionError):  # keys that cannot be sorted: still one stable text
        return ascii(value)


def _content_hash(original: Mapping[str, Any]) -> str:
    return hashlib.blake2b(canonical_json(original).encode("ascii"), digest_size=16).hexdigest()


def event_id(original: Mapping[str, Any]) -> str:
    """The event's id: its ``messageId``, else ``content:`` and a hash of its content."""
    message_id = original.get("messageId")
    if isinstance(message_id, str) and message_id.strip():
        return message_id
    if isinstance(message_id, (int, float)) and not isinstance(message_id, bool):
        return str(message_id)
    return CONTENT_PREFIX + _content_hash(original)


def fact_rank(fact: IdentityFact) -> tuple[int, str, str, str]:
    """Orders copies by what they say about their visitor (the first two keys of ``first_copy``)."""
    traits = canonical_json(fact.traits) if fact.traits else ""
    return fact.at_ms, fact.user_id or "", fact.cookie or "", traits


def identity_rank(event: Event) -> tuple[tuple[int, str, str, str], str]:
    """Orders copies by what identity learns from them: their fact, then their visitor."""
    return fact_rank(IdentityFact.of(event)), event.visitor


POSITION_OFFSET = 1 << 63  # position ranks are shifted into a signed 64-bit integer's range


def position_rank(source: str) -> int:
    """Orders copies that say the same by where they were read (``Event.source``): a number in a
    signed 64-bit integer's range (Beam's integer coder), so the identity pass keeps 8 bytes a call
    rather than the path."""
    digest = hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") - POSITION_OFFSET


def first_copy(copies: Iterable[Event]) -> Event:
    """The copy of one id that the job sends; identity's facts come from the same copy."""
    return min(copies, key=lambda event: (identity_rank(event), position_rank(event.source)))


def id_digest(event_id_text: str) -> bytes:
    """The id's 128-bit hash: what the batch identity pass and the ledger keep per call, fewer bytes than
    most ids (and bytes, which Beam's coders carry as they are)."""
    return hashlib.blake2b(event_id_text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def ledger_key(visitor: str, event_id_text: str) -> bytes:
    """What the ledger records for a delivered event: 16 bytes of hash of its visitor and its id,
    the identity each-id-once uses (a ``messageId`` two visitors share is two events). Written as
    32 hex digits: no personal data, one line whatever the ids hold."""
    text = f"{len(visitor)}:{visitor}{event_id_text}"  # the length: no other split gives the same text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
