"""Input events: parsing and validating one raw input into an ``Event`` (pure, no Beam).

An input is one JSON object (SPEC §2): a line of a JSON-lines file, a Parquet row, or a Pub/Sub
message. A dead-letter record is also valid input: its ``event`` (or its ``raw`` line) is re-read,
which is how dead letters are replayed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DELIVERED_TYPES = frozenset({"page", "track", "identify"})
UNSUPPORTED_TYPES = frozenset({"group", "alias", "screen"})


@dataclass(frozen=True)
class RawInput:
    """One input record before parsing: JSON text, or an already-decoded object (Parquet rows)."""

    payload: str | bytes | dict[str, Any]
    source: str = ""
    attributes: Mapping[str, str] | None = None  # Pub/Sub message attributes, kept for dead letters
    fallback_time_ms: int | None = None  # event time when the event has none (Pub/Sub publish time)


@dataclass(frozen=True)
class Event:
    """A validated input event: the original JSON object plus the fields the pipeline reads."""

    original: dict[str, Any]
    type: str
    visitor: str  # anonymousId, or userId where no anonymousId exists
    timestamp_ms: int  # event time, Unix milliseconds
    user_id: str | None = None
    attributes: Mapping[str, str] | None = None
    # Filled in by identity enrichment: every trait known for the visitor at this event's time.
    traits: Mapping[str, Any] = field(default_factory=dict)
    cookie: str | None = None

    @property
    def name(self) -> str | None:
        """The ``event`` name of a track call."""
        return self.original.get("event")

    @property
    def own_traits(self) -> dict[str, Any]:
        """Traits carried by this event itself: ``traits`` (identify) and ``context.traits``."""
        traits: dict[str, Any] = {}
        context = self.original.get("context")
        if isinstance(context, dict) and isinstance(context.get("traits"), dict):
            traits.update(context["traits"])
        if self.type == "identify" and isinstance(self.original.get("traits"), dict):
            traits.update(self.original["traits"])
        return traits

    @property
    def own_cookie(self) -> str | None:
        """The Woopra visitor cookie captured by the tag, ``vendor_ids.woopra_cookie``."""
        vendor_ids = self.original.get("vendor_ids")
        if isinstance(vendor_ids, dict):
            cookie = vendor_ids.get("woopra_cookie")
            if isinstance(cookie, str) and cookie:
                return cookie
        return None


@dataclass(frozen=True)
class InvalidInput:
    """Why an input could not become an event: ``invalid_json`` or ``invalid_event``."""

    reason: str
    error: str
    event: dict[str, Any] | None  # the decoded object, when there was one
    raw: str | None  # the undecodable text, for invalid_json
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Unsupported:
    """A well-formed call of a type Woopra has no equivalent for (group, alias, screen)."""

    type: str


@dataclass(frozen=True)
class NotReplayed:
    """A dead-letter record whose reason is not among those being replayed (``--replay_reasons``)."""

    reason: str  # the dead letter's own reason


ParseResult = Event | InvalidInput | Unsupported | NotReplayed


def parse_timestamp_ms(value: Any) -> int:
    """Convert an ISO-8601 string (or Unix milliseconds) to Unix milliseconds; ValueError if not."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be ISO-8601, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, datetime):  # Parquet timestamp columns arrive as datetimes
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(round(aware.timestamp() * 1000))
    if not isinstance(value, str) or not value:
        raise ValueError(f"timestamp must be ISO-8601, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:  # a naive time is taken as UTC, as the tag sends UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(round(parsed.timestamp() * 1000))


NESTED_FIELDS = ("properties", "traits", "context", "vendor_ids", "integrations", "event")


def decode_nested_json(row: dict[str, Any]) -> dict[str, Any]:
    """Parquet rows may carry nested objects as JSON strings: decode those back to objects."""
    decoded = dict(row)
    for key in NESTED_FIELDS:
        value = decoded.get(key)
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                pass  # left as a string: validation reports it
    return {k: v for k, v in decoded.items() if v is not None or k in ("event", "raw")}


def is_dead_letter(obj: Any) -> bool:
    """True for a dead-letter record (SPEC §7) rather than an event."""
    return isinstance(obj, dict) and "reason" in obj and "failed_at" in obj and ("event" in obj or "raw" in obj)


def _decode(payload: str | bytes) -> Any:
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    return json.loads(payload)


def parse_input(
    raw: RawInput, now_ms: int | None = None, replay_reasons: frozenset[str] | None = None
) -> ParseResult:
    """Turn one raw input into an ``Event``, an ``InvalidInput`` or an ``Unsupported`` call.

    An event without ``timestamp`` takes ``raw.fallback_time_ms``, else ``now_ms``, else now.
    With ``replay_reasons``, a dead-letter record of any other reason is ``NotReplayed``
    (inputs that are plain events are not affected).
    """
    if raw.fallback_time_ms is not None:
        now_ms = raw.fallback_time_ms
    payload = raw.payload
    attributes = raw.attributes
    if isinstance(payload, dict):
        obj: Any = decode_nested_json(payload)
    else:
        try:
            obj = _decode(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            return InvalidInput("invalid_json", f"invalid JSON: {exc}", None, text, attributes)
    if is_dead_letter(obj):
        if replay_reasons is not None and obj.get("reason") not in replay_reasons:
            return NotReplayed(str(obj.get("reason")))
        # Replaying a dead letter: re-read the event it carried, or the raw line it kept.
        if isinstance(obj.get("event"), dict):
            obj = obj["event"]
        elif isinstance(obj.get("raw"), str):
            return parse_input(RawInput(obj["raw"], raw.source, attributes, raw.fallback_time_ms), now_ms)
    if not isinstance(obj, dict):
        return InvalidInput("invalid_event", "event must be a JSON object", None,
                            payload if isinstance(payload, str) else None, attributes)
    return validate_event(obj, attributes, now_ms)


def validate_event(
    obj: dict[str, Any], attributes: Mapping[str, str] | None = None, now_ms: int | None = None
) -> ParseResult:
    """Check the fields SPEC §2 requires and build the ``Event``."""

    def invalid(error: str) -> InvalidInput:
        return InvalidInput("invalid_event", error, obj, None, attributes)

    call_type = obj.get("type")
    if not isinstance(call_type, str) or not call_type:
        return invalid("missing field 'type'")
    if call_type in UNSUPPORTED_TYPES:
        return Unsupported(call_type)
    if call_type not in DELIVERED_TYPES:
        return invalid(f"unknown type {call_type!r}")
    if call_type == "track":
        name = obj.get("event")
        if not isinstance(name, str) or not name.strip():
            return invalid("track call without 'event'")
    anonymous_id = _identifier(obj.get("anonymousId"))
    user_id = _identifier(obj.get("userId"))
    if anonymous_id is None and user_id is None:
        return invalid("neither 'anonymousId' nor 'userId'")
    for key in ("properties", "traits", "context", "vendor_ids"):
        if obj.get(key) is not None and not isinstance(obj[key], dict):
            return invalid(f"'{key}' must be an object")
    if obj.get("timestamp") is None:
        timestamp_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    else:
        try:
            timestamp_ms = parse_timestamp_ms(obj["timestamp"])
        except (ValueError, OverflowError) as exc:
            return invalid(f"bad 'timestamp': {exc}")
    return Event(
        original=obj,
        type=call_type,
        visitor=anonymous_id or user_id or "",
        timestamp_ms=timestamp_ms,
        user_id=user_id,
        attributes=attributes,
    )


def _identifier(value: Any) -> str | None:
    """An id field as a string; numbers are accepted (some tags send numeric user ids)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None
