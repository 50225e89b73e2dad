"""A Woopra tracking request as it goes on the wire: its parameters' text, its URL, its size (pure).

``build_request`` (transforms/rules/woopra_mapping.py) makes a ``WoopraRequest``; this module says
how each value is written (``format_value``), how the query is encoded (``encode_query``, exactly
as urllib would), and how a request is kept within Woopra's URL size (``fit_url``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from itertools import chain
from typing import Any
from urllib.parse import quote_plus, urlencode

from transforms.rules.outcomes import Outcome

MAX_URL_BYTES = 8 * 1024
# A cut value keeps at least this many characters: enough to recognise it in Woopra.
MIN_CUT_LENGTH = 64
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
# The characters urllib's quote_plus leaves as they are.
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


@lru_cache(maxsize=16384)
def _quote_repeated(text: str) -> str:
    return quote_plus(text)


def _quote(text: str) -> str:
    return text if _URL_SAFE.fullmatch(text) else _quote_repeated(text)


def encode_query(params: tuple[tuple[str, str], ...]) -> str:
    """``urlencode(params)`` exactly (``Jane+Doe``, ``%40``), three times faster.

    Names, numbers and ids need no escaping and are returned as they are; the values that do
    (emails, URLs, names) repeat from event to event, so their escaping is cached.
    """
    return "&".join([f"{_quote(name)}={_quote(value)}" for name, value in params])


def request_url(url: str, params: tuple[tuple[str, str], ...]) -> str:
    """A request's URL, its query encoded: what goes on the wire."""
    return f"{url}?{encode_query(params)}"


@dataclass(frozen=True)
class WoopraRequest:
    """One GET to Woopra's HTTP Tracking API, with the event it came from (for dead letters)."""

    url: str  # without query: {endpoint}/ce/ or {endpoint}/identify/
    params: tuple[tuple[str, str], ...]
    user_agent: str | None
    event: Mapping[str, Any]  # the original input event
    attributes: Mapping[str, str] | None = None
    visitor: str = ""  # the event's visitor (``Event.visitor``): with its id, the ledger's key

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers to send: the visitor's User-Agent, when known."""
        return {"User-Agent": self.user_agent} if self.user_agent else {}

    def full_url(self) -> str:
        """The URL with its encoded query, as the HTTP library sends it."""
        return request_url(self.url, self.params)

    def as_record(self) -> dict[str, Any]:
        """JSON form used by dry-run files and dead letters."""
        return {"method": "GET", "url": self.url, "params": dict(self.params), "headers": self.headers}


@dataclass(frozen=True)
class Skipped:
    """An event the mapping does not send; ``reason`` is its summary key."""

    reason: Outcome  # DROPPED_UNMAPPED | TOO_LARGE
    error: str = ""


def format_value(value: Any) -> str | None:
    """A JSON value as a Woopra parameter value; None means "leave the parameter out"."""
    kind = type(value)
    if kind is str:  # the common case first: this runs for every parameter of every event
        return value
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        text = repr(value)
        # repr switches to exponent notation for very large/small values; Woopra wants decimals.
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def clean_header_value(value: str) -> str:
    """Remove CR/LF and other control characters so a value can be an HTTP header."""
    if value.isprintable():  # fast path: no control characters at all
        return value.strip()
    return _CONTROL_CHARACTERS.sub(" ", value).strip()


def _encoded_length(key: str, value: str) -> int:
    return len(urlencode({key: value}))


def encoded_length_bound(url: str, text: str, pairs: int) -> int:
    """At least the length of ``url?query`` where ``text`` is every name and value of the query.

    Encoding turns a UTF-8 byte into at most three characters ("%XX"), and a character is one
    byte when ASCII, at most four otherwise (emoji are four).
    """
    per_character = 3 if text.isascii() else 12
    return len(url) + 1 + 2 * pairs + per_character * len(text)


def fit_url(request: WoopraRequest, limit: int = MAX_URL_BYTES) -> WoopraRequest | Skipped:
    """Keep the request URL within ``limit`` bytes by cutting the longest custom values.

    Rule: while the URL is too long, the ce_*/cv_* value with the longest encoded form is cut
    to what fits (never below MIN_CUT_LENGTH characters; cv_id and cv_email are never cut, as
    they identify the visitor). If that is not enough the event is ``too_large``.
    """
    # Cheap bound first: nearly every request is far below the limit, and encoding it just to
    # measure it would be the mapping's largest single cost.
    if encoded_length_bound(request.url, "".join(chain.from_iterable(request.params)), len(request.params)) <= limit:
        return request
    excess = len(request.full_url()) - limit
    if excess <= 0:
        return request
    params = dict(request.params)
    while excess > 0:
        cuttable = [
            (k, v) for k, v in params.items()
            if k.startswith(("ce_", "cv_")) and k not in ("cv_id", "cv_email", "ce_app")
            and len(v) > MIN_CUT_LENGTH
        ]
        if not cuttable:
            return Skipped(Outcome.TOO_LARGE, f"request URL is {excess + limit} bytes, over {limit}")
        key, value = max(cuttable, key=lambda kv: _encoded_length(*kv))
        # Encoded length per character varies (UTF-8, %-escapes): cut by the average ratio.
        ratio = _encoded_length(key, value) / max(len(value), 1)
        keep = max(MIN_CUT_LENGTH, len(value) - math.ceil(excess / ratio) - 1)
        params[key] = value[:keep]
        excess = len(request.url) + 1 + len(urlencode(params)) - limit
    return WoopraRequest(request.url, tuple(params.items()), request.user_agent, request.event,
                         request.attributes, request.visitor)
