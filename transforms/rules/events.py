"""Input events: parsing and validating one raw input into an ``Event`` (pure, no Beam).

An input is one JSON object (docs/behaviour.md#input-events): a line of a JSON-lines file, a Parquet row, or a Pub/Sub
message. A dead-letter record is also valid input: its ``event`` (or its ``raw`` line) is re-read,
which is how dead letters are replayed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from transforms.rules.json_text import (
    MAX_DEPTH,
    UTF8_BOM,
    decode_json,
    input_as_text,
    json_decoder,
    may_have_structure_problem,
    structure_problem,
)

__all__ = ["MAX_DEPTH", "UTF8_BOM", "json_decoder"]  # the job's JSON rules, read through this module too

DELIVERED_TYPES = frozenset({"page", "track", "identify"})
UNSUPPORTED_TYPES = frozenset({"group", "alias", "screen"})
# Event times Woopra can take: from the Unix epoch (earlier times are not meaningful to Woopra)
# to the last millisecond of year 9999.
FIRST_EVENT_MS = 0
LAST_EVENT_MS = 253_402_300_799_999


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
    source: str = ""  # where it was read: "file:line", "file#row" or "pubsub:<message id>"

    @property
    def name(self) -> str | None:
        """The ``event`` name of a track call."""
        return self.original.get("event")

    @property
    def anonymous_id(self) -> str | None:
        """The call's ``anonymousId`` as text (numbers accepted), None when it has none."""
        return _identifier(self.original.get("anonymousId"))

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
        """The Woopra visitor cookie this call carries (``woopra_cookie``)."""
        return woopra_cookie(self.original)[0]


@dataclass(frozen=True)
class InvalidInput:
    """Why an input could not become an event: ``invalid_json`` or ``invalid_event``."""

    reason: str
    error: str
    event: dict[str, Any] | None  # the decoded object, when it can be kept and replayed
    raw: str | None  # the input as text, whenever ``event`` cannot hold it
    attributes: Mapping[str, str] | None = None
    raw_base64: str | None = None  # the exact input bytes, when they were not UTF-8 text


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
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(round(aware.timestamp() * 1000))
    if not isinstance(value, str) or not value:
        raise ValueError(f"timestamp must be ISO-8601, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:  # a naive time is taken as UTC, as the tag sends UTC
        parsed = parsed.replace(tzinfo=UTC)
    return int(round(parsed.timestamp() * 1000))


def event_time_ms(value: Any) -> int:
    """An event's ``timestamp`` as Unix ms within 1970..9999; ValueError naming the problem."""
    try:
        timestamp_ms = parse_timestamp_ms(value)
    except OverflowError as exc:
        raise ValueError(f"{value!r} is out of range ({exc})") from None
    if timestamp_ms < FIRST_EVENT_MS:
        raise ValueError(f"{value!r} is before 1970-01-01T00:00:00Z, the earliest time Woopra takes")
    if timestamp_ms > LAST_EVENT_MS:
        raise ValueError(f"{value!r} is after 9999-12-31T23:59:59.999Z")
    return timestamp_ms


NESTED_FIELDS = ("properties", "traits", "context", "vendor_ids", "integrations", "event")


def decode_nested_json(row: dict[str, Any]) -> dict[str, Any]:
    """Parquet rows may carry nested objects as JSON strings: decode those back to objects."""
    decoded = dict(row)
    for key in NESTED_FIELDS:
        value = decoded.get(key)
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                decoded[key] = decode_json(value)
            except (ValueError, RecursionError):
                pass  # left as a string: validation reports it
    return {k: v for k, v in decoded.items() if v is not None or k in ("event", "raw")}


def is_dead_letter(obj: Any) -> bool:
    """True for a dead-letter record (docs/behaviour.md#dead-letters) rather than an event."""
    return isinstance(obj, dict) and "reason" in obj and "failed_at" in obj and ("event" in obj or "raw" in obj)


def parse_input(
    raw: RawInput, now_ms: int | None = None, replay_reasons: frozenset[str] | None = None
) -> ParseResult:
    """Turn one raw input into an ``Event``, an ``InvalidInput`` or an ``Unsupported`` call.

    An event without ``timestamp`` takes ``raw.fallback_time_ms``, else ``now_ms``, else now.
    With ``replay_reasons``, a dead-letter record of any other reason is ``NotReplayed``
    (inputs that are plain events are not affected). Never raises on what it is given.
    """
    if raw.fallback_time_ms is not None:
        now_ms = raw.fallback_time_ms
    decoded = _decoded(raw)
    if isinstance(decoded, InvalidInput):
        return decoded
    obj, text = decoded
    if is_dead_letter(obj):
        reason = obj.get("reason")
        if replay_reasons is not None and not (isinstance(reason, str) and reason in replay_reasons):
            return NotReplayed(str(reason)[:100])
        carried = _carried_input(obj, raw)
        if carried is not None:
            return parse_input(carried, now_ms)
        if isinstance(obj.get("event"), dict):
            obj = obj["event"]
    if not isinstance(obj, dict):
        kept_text = text if text is not None else _json_text(obj)
        return InvalidInput("invalid_event", f"an event must be a JSON object, got {_json_kind(obj)}", None,
                            kept_text, raw.attributes)
    return validate_event(obj, raw.attributes, now_ms, raw.source)


def _decoded(raw: RawInput) -> tuple[Any, str | None] | InvalidInput:
    """The input's JSON value and the text it was read from (None for a Parquet row), or why it is
    not an input the job can carry: not UTF-8, not JSON, too deep, a lone surrogate."""
    payload, attributes = raw.payload, raw.attributes
    text: str | None = None
    if isinstance(payload, dict):
        obj: Any = decode_nested_json(payload)
        checked = False
    elif isinstance(payload, (str, bytes)):
        text, raw_base64 = input_as_text(payload)
        if raw_base64 is not None:
            return InvalidInput("invalid_json", "invalid JSON: the input is not UTF-8 text", None, text,
                                attributes, raw_base64)
        try:
            obj = decode_json(text)
        except RecursionError:  # JSON, but deeper than the parser goes: the depth rule refuses it
            return InvalidInput("invalid_event", f"invalid event: nested deeper than {MAX_DEPTH} levels", None,
                                text, attributes)
        except ValueError as exc:
            return InvalidInput("invalid_json", f"invalid JSON: {exc}", None, text, attributes)
        checked = not may_have_structure_problem(text)
    else:
        return InvalidInput("invalid_event", f"an input must be JSON text, got {type(payload).__name__}",
                            None, _json_text(payload), attributes)
    problem = None if checked else structure_problem(obj)
    if problem is not None and problem.startswith("nested"):
        # Kept as the text that was read: a too-deep object cannot be written back out as JSON.
        return InvalidInput("invalid_event", f"invalid event: {problem}", None,
                            text if text is not None else _json_text(obj), attributes)
    if problem is not None:
        return InvalidInput("invalid_event", f"invalid event: {problem}", obj if isinstance(obj, dict) else None,
                            None if isinstance(obj, dict) else _json_text(obj), attributes)
    return obj, text


def _carried_input(dead_letter: dict[str, Any], raw: RawInput) -> RawInput | None:
    """What a replayed dead letter kept of its input, to be read again: its exact bytes, or the
    line it kept as text (None: it carries the event itself, or nothing readable)."""
    if isinstance(dead_letter.get("raw_base64"), str):
        try:
            original = base64.b64decode(dead_letter["raw_base64"], validate=True)
        except ValueError:
            original = None
        if original is not None:
            return RawInput(original, raw.source, raw.attributes, raw.fallback_time_ms)
    if not isinstance(dead_letter.get("event"), dict) and isinstance(dead_letter.get("raw"), str):
        return RawInput(dead_letter["raw"], raw.source, raw.attributes, raw.fallback_time_ms)
    return None


def input_text(raw: RawInput) -> str:
    """What was read, as text for a dead letter's ``raw`` (undecodable bytes as U+FFFD)."""
    payload = raw.payload
    if isinstance(payload, (str, bytes)):
        return input_as_text(payload)[0]
    return _json_text(payload)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _json_text(value: Any) -> str:
    """A decoded value written back as JSON (ASCII escapes keep lone surrogates writable)."""
    try:
        return json.dumps(value, ensure_ascii=True, default=str)
    except (ValueError, TypeError, RecursionError):
        return "(the input could not be written back as JSON)"


def validate_event(
    obj: dict[str, Any], attributes: Mapping[str, str] | None = None, now_ms: int | None = None, source: str = ""
) -> ParseResult:
    """Check the fields docs/behaviour.md#input-events requires and build the ``Event``."""

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
            timestamp_ms = event_time_ms(obj["timestamp"])
        except ValueError as exc:
            return invalid(f"bad 'timestamp': {exc}")
    return Event(
        original=obj,
        type=call_type,
        visitor=anonymous_id or user_id or "",
        timestamp_ms=timestamp_ms,
        user_id=user_id,
        attributes=attributes,
        source=source,
    )


VENDOR_COOKIE = "vendor_ids.woopra_cookie"
EXTERNAL_ID_COOKIE = "context.externalId woopraId"
INTEGRATIONS_COOKIE = "integrations.Woopra.cookie"


def woopra_cookie(original: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The Woopra visitor cookie an event carries, and the field it came from (docs/behaviour.md#identity):
    the first of ``vendor_ids.woopra_cookie`` (our tag), ``context.externalId`` of type ``woopraId``
    (RudderStack's events), ``integrations.Woopra.cookie`` (Segment-style events)."""
    vendor_ids = original.get("vendor_ids")
    if isinstance(vendor_ids, dict):
        cookie = _identifier(vendor_ids.get("woopra_cookie"))
        if cookie is not None:
            return cookie, VENDOR_COOKIE
    context = original.get("context")
    if isinstance(context, dict) and "externalId" in context:
        cookie = external_id_cookie(context["externalId"])
        if cookie is not None:
            return cookie, EXTERNAL_ID_COOKIE
    integrations = original.get("integrations")
    if isinstance(integrations, dict) and integrations:
        cookie = integrations_cookie(integrations)
        if cookie is not None:
            return cookie, INTEGRATIONS_COOKIE
    return None, None


def external_id_cookie(external_ids: Any) -> str | None:
    """The ``id`` of the first ``{"type": "woopraId", "id": ...}`` in a RudderStack ``context.externalId``
    list (the type compared case-insensitively)."""
    if not isinstance(external_ids, list):
        return None
    for entry in external_ids:
        if isinstance(entry, dict) and isinstance(entry.get("type"), str) and entry["type"].lower() == "woopraid":
            cookie = _identifier(entry.get("id"))
            if cookie is not None:
                return cookie
    return None


def integrations_cookie(integrations: Mapping[str, Any]) -> str | None:
    """``integrations.Woopra.cookie`` of a Segment-style event (``Woopra`` as Segment spells it, else
    any casing of it)."""
    options = integrations.get("Woopra")
    if not isinstance(options, dict):
        options = next((value for key, value in integrations.items()
                        if isinstance(key, str) and key.lower() == "woopra" and isinstance(value, dict)), None)
    return _identifier(options.get("cookie")) if options is not None else None


def _identifier(value: Any) -> str | None:
    """An id field as a string; numbers are accepted (some tags send numeric user ids)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None
