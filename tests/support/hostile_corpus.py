"""Hostile inputs, each one input line with the outcome the job must give it (RELIABILITY.md).

Every case is a single line of a JSON-lines file, as bytes. ``expected`` is the summary key the
event must land in; an ``invalid`` case also names its dead-letter reason. Cases that are sent
carry ``properties.case`` (``ce_case``), so a request seen by Woopra can be traced to its case.
The outcomes follow README.md (Parse, Consent, Mapping, Dead letters): text that is not JSON
(``NaN`` and ``Infinity`` included) is ``invalid_json``; JSON nested deeper than 64 levels, a lone
UTF-16 surrogate, a number too large for a float (``1e400``) or an event time outside
1970-01-01..9999-12-31 is ``invalid_event``; every dead letter keeps what was read.

Used by ``tests/e2e/test_hostile_corpus.py`` (the whole corpus in one run) and
``scripts/reliability.py`` (each case alone, and the fault runs).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The config every corpus run uses: unmapped track events are dropped (so ``dropped_unmapped``
# can be reached), everything else as in samples/mapping.yaml.
CORPUS_CONFIG: dict[str, Any] = {
    "project": "mywebsite.com",
    "app": "datafly-signal",
    "consent_categories": ["analytics"],
    "consent_default": "deny",
    "events": {"Order Completed": "purchase", "Corpus Event": "corpus_event"},
    "unmapped_events": "drop",
}

# Summary keys a case can expect (``delivered_200`` against the stand-in).
OUTCOMES = ("invalid", "too_large", "consent_denied", "consent_missing", "unsupported", "dropped_unmapped",
            "delivered_200")
DROP = object()  # a field value meaning "leave this field out"
_SPLICE = "@@SPLICE{}@@"


@dataclass(frozen=True)
class HostileCase:
    """One hostile input line and what the job must do with it."""

    name: str
    what: str
    line: bytes
    expected: str  # one of OUTCOMES
    reason: str | None = None  # the dead-letter reason, for invalid cases
    params: Mapping[str, str] = field(default_factory=dict)  # parameters the sent request must carry
    absent_headers: tuple[str, ...] = ()  # headers the sent request must not carry (lower-case)
    raw_base64: bool = False  # the dead letter must keep the exact bytes as raw_base64

    @property
    def dead_lettered(self) -> bool:
        """True when the case ends as a dead-letter record."""
        return self.expected in ("invalid", "too_large")


def event(case: str, **fields: Any) -> dict[str, Any]:
    """A deliverable track call for ``case``, with ``fields`` replaced (``DROP`` removes one)."""
    obj: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"msg-{case}",
        "anonymousId": f"anon-{case}",
        "timestamp": "2026-06-01T12:00:00.000Z",
        "properties": {"case": case, "revenue": 9.5},
        "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (corpus)", "consent": {"analytics": True}},
    }
    for key, value in fields.items():
        if value is DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def context(**fields: Any) -> dict[str, Any]:
    """The corpus context (consent granted) with ``fields`` replaced (``DROP`` removes one)."""
    ctx: dict[str, Any] = {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (corpus)", "consent": {"analytics": True}}
    for key, value in fields.items():
        if value is DROP:
            ctx.pop(key, None)
        else:
            ctx[key] = value
    return ctx


def line(obj: Any, *splices: str, ascii_only: bool = False) -> bytes:
    """``obj`` as one compact JSON line; each ``splice_marker(i)`` string is replaced by ``splices[i]`` as is."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only)
    for index, raw in enumerate(splices):
        marker = json.dumps(_SPLICE.format(index))
        assert marker in text, marker
        text = text.replace(marker, raw)
    return text.encode("utf-8", "surrogatepass")


def splice_marker(index: int = 0) -> str:
    """A placeholder value that ``line`` replaces by raw JSON text."""
    return _SPLICE.format(index)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``{"a": {"a": ... leaf}}`` with ``depth`` objects."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_text(depth: int, opener: str = '{"a":', closer: str = "}") -> str:
    """The JSON text of ``depth`` nested containers, built as text (json.dumps would recurse)."""
    return opener * depth + "1" + closer * depth


def props(case: str, **extra: Any) -> dict[str, Any]:
    """The corpus properties of ``case`` plus ``extra``."""
    return {"case": case, **extra}


def dead_letter(event_value: Any, raw: Any, reason: str = "rejected") -> dict[str, Any]:
    """A dead-letter record as the job writes it (README.md, Dead letters and replay)."""
    return {"reason": reason, "error": "HTTP 400", "status": 400, "response_body": None, "attempts": 1,
            "failed_at": "2026-06-01T12:00:05Z", "request": None, "event": event_value, "raw": raw}


def _cases() -> list[HostileCase]:
    cases: list[HostileCase] = []

    def add(name: str, what: str, data: bytes, expected: str, reason: str | None = None, **kw: Any) -> None:
        cases.append(HostileCase(name, what, data, expected, reason, **kw))

    def invalid_json(name: str, what: str, data: bytes, **kw: Any) -> None:
        add(name, what, data, "invalid", "invalid_json", **kw)

    def invalid_event(name: str, what: str, data: bytes, **kw: Any) -> None:
        add(name, what, data, "invalid", "invalid_event", **kw)

    def sent(name: str, what: str, data: bytes, **kw: Any) -> None:
        add(name, what, data, "delivered_200", **kw)

    # --- the control: a plain event is delivered --------------------------------------------
    sent("control", "a well-formed track call", line(event("control")),
         params={"event": "purchase", "ce_case": "control", "ce_amount": "9.5"})

    # --- not JSON ---------------------------------------------------------------------------
    good = line(event("x"))
    invalid_json("truncated", "the line stops mid-string", good[:40])
    invalid_json("trailing_garbage", "a valid object followed by `xyz`", good + b"xyz")
    invalid_json("two_objects", "two objects on one line", good + good)
    invalid_json("empty_values", 'fields without values: `{"type":,"event":}`', b'{"type":,"event":}')
    invalid_json("single_quotes", "JavaScript-style single quotes", b"{'type':'track'}")
    invalid_json("trailing_comma", "a trailing comma before `}`", good[:-1] + b",}")
    invalid_json("nan_property", "a `NaN` literal as a property value",
                 line(event("nan_property", properties={"case": "nan_property", "v": splice_marker()}), "NaN"))
    invalid_json("infinity_property", "an `Infinity` literal as a property value",
                 line(event("infinity_property", properties={"case": "infinity_property", "v": splice_marker()}),
                      "Infinity"))
    invalid_json("minus_infinity_trait", "`-Infinity` as a trait of an identify call",
                 line(event("minus_infinity_trait", type="identify", traits={"score": splice_marker()}),
                      "-Infinity"))
    invalid_json("number_1e400", "`1e400` as a property value (too large for a number: infinity to Python)",
                  line(event("number_1e400", properties={"case": "number_1e400", "v": splice_marker()}), "1e400"))
    invalid_json("int_5000_digits", "a 5000-digit integer property (over Python's 4300-digit limit)",
                  line(event("int_5000_digits", properties={"case": "int_5000_digits", "v": splice_marker()}),
                       "9" * 5000))
    sent("int_4000_digits", "a 4000-digit integer property (under the limit): sent in full",
         line(event("int_4000_digits", properties={"case": "int_4000_digits", "v": splice_marker()}), "7" * 4000),
         params={"ce_v": "7" * 4000})
    sent("float_max", "the largest float, 1.7976931348623157e308, sent in plain decimal",
         line(event("float_max", properties={"case": "float_max", "v": splice_marker()}), "1.7976931348623157e308"))
    sent("float_tiny", "the smallest float, 5e-324, sent in plain decimal",
         line(event("float_tiny", properties={"case": "float_tiny", "v": splice_marker()}), "5e-324"))
    invalid_json("invalid_utf8", "bytes 0xFF 0xFE inside a string (not UTF-8)",
                 good.replace(b'"x"', b'"ab\xff\xfecd"', 1), raw_base64=True)
    invalid_json("overlong_utf8", "an overlong UTF-8 encoding of `/` (0xC0 0xAF)",
                 good.replace(b'"x"', b'"\xc0\xaf"', 1), raw_base64=True)
    invalid_json("latin1_text", "Latin-1 text (`caf\\xe9`) instead of UTF-8",
                 good.replace(b'"x"', b'"caf\xe9"', 1), raw_base64=True)
    invalid_event("lone_surrogate_value", "a lone `\\ud83d` escape in a property value",
                  line(event("lone_surrogate_value", properties={"case": "lone_surrogate_value", "v": "a\ud83d"}),
                       ascii_only=True))
    invalid_event("lone_surrogate_key", "a lone `\\ud83d` escape in a property key",
                  line(event("lone_surrogate_key", properties={"case": "lone_surrogate_key", "k\ud83d": 1}),
                       ascii_only=True))
    invalid_event("lone_low_surrogate", "a lone low surrogate `\\ude00` in the user agent",
                  line(event("lone_low_surrogate", context=context(userAgent="UA \ude00")), ascii_only=True))
    invalid_event("lone_surrogate_invalid", "a lone surrogate in an event that is invalid anyway (no type)",
                  line(event("lone_surrogate_invalid", type=DROP, event="Bad \ud83d"), ascii_only=True))
    sent("surrogate_pair_emoji", "an escaped surrogate pair `\\ud83d\\ude00` (a valid emoji)",
         line(event("surrogate_pair_emoji", properties={"case": "surrogate_pair_emoji", "v": "hi \U0001f600"}),
              ascii_only=True), params={"ce_v": "hi \U0001f600"})
    sent("raw_emoji", "a raw 4-byte UTF-8 emoji in a value", line(
        event("raw_emoji", properties={"case": "raw_emoji", "v": "\U0001f680 launch"})),
         params={"ce_v": "\U0001f680 launch"})
    sent("escaped_nul", "an escaped NUL `\\u0000` inside a value",
         line(event("escaped_nul", properties={"case": "escaped_nul", "v": "a\x00b"})), params={"ce_v": "a\x00b"})
    invalid_json("raw_nul_in_string", "a raw NUL byte inside a string", good.replace(b'"x"', b'"a\x00b"', 1))
    invalid_json("raw_nul_between_tokens", "a raw NUL byte between tokens", good.replace(b",", b",\x00", 1))
    invalid_json("raw_control_char", "a raw control character (0x01) inside a string",
                 good.replace(b'"x"', b'"a\x01b"', 1))
    invalid_json("raw_tab_in_string", "a raw TAB inside a string", good.replace(b'"x"', b'"a\tb"', 1))
    sent("escaped_controls", "escaped control characters `\\u0007\\u001b` in a value",
         line(event("escaped_controls", properties={"case": "escaped_controls", "v": "bell\x07esc\x1b"})))
    sent("raw_del_char", "a raw DEL (0x7F), allowed unescaped in JSON",
         line(event("raw_del_char", properties={"case": "raw_del_char", "v": "a\x7fb"})))
    sent("bom_line_start", "a UTF-8 byte order mark at the start of the line",
         b"\xef\xbb\xbf" + line(event("bom_line_start")), params={"ce_case": "bom_line_start"})
    sent("crlf_line_end", "a line ending in CR LF", line(event("crlf_line_end")) + b"\r",
         params={"ce_case": "crlf_line_end"})
    sent("bare_cr_between_tokens", "a bare CR (JSON whitespace) between tokens",
         line(event("bare_cr_between_tokens")).replace(b",", b",\r", 1))
    sent("line_separator_chars", "raw U+2028, U+2029 and U+0085 inside a value (not line breaks here)",
         line(event("line_separator_chars", properties={"case": "line_separator_chars", "v": "a\u2028b\u2029c\x85d"})),
         params={"ce_v": "a\u2028b\u2029c\x85d"})
    sent("whitespace_padding", "100 KB of spaces between tokens",
         line(event("whitespace_padding")).replace(b",", b"," + b" " * 100_000, 1))

    # --- JSON that is not an object ---------------------------------------------------------
    for name, text in (("array", b"[1]"), ("number", b"42"), ("string", b'"s"'), ("null", b"null"),
                       ("true", b"true"), ("empty_object", b"{}")):
        invalid_event(f"top_level_{name}", f"`{text.decode()}` as the whole line", text)

    # --- deep nesting -----------------------------------------------------------------------
    invalid_event("deep_properties_1000", "a property nested 1,000 objects deep",
                  line(event("deep_properties_1000", properties={"case": "deep_properties_1000",
                                                                 "v": splice_marker()}), nested_text(1000)))
    invalid_event("deep_context_1000", "`context.extra` nested 1,000 arrays deep",
                  line(event("deep_context_1000", context=context(extra=splice_marker())),
                       nested_text(1000, "[", "]")))
    invalid_event("deep_top_level_array", "the line is 1,000 nested arrays", nested_text(1000, "[", "]").encode())
    invalid_event("deep_top_level_object", "the line is 1,000 nested objects", nested_text(1000).encode())
    invalid_event("deep_100000", "a property nested 100,000 arrays deep (past any recursion limit)",
                  line(event("deep_100000", properties={"case": "deep_100000", "v": splice_marker()}),
                       nested_text(100_000, "[", "]")))
    invalid_event("deep_properties_70", "a property nested 70 objects deep (over 64)",
                  line(event("deep_properties_70", properties={"case": "deep_properties_70", "v": nested(70)})))
    sent("nested_properties_20", "a property nested 20 objects deep: sent as compact JSON",
         line(event("nested_properties_20", properties={"case": "nested_properties_20", "v": nested(20)})),
         params={"ce_v": json.dumps(nested(20), separators=(",", ":"))})

    # --- wrong field types ------------------------------------------------------------------
    invalid_event("type_number", "`type` is a number", line(event("type_number", type=1)))
    invalid_event("properties_list", "`properties` is a list", line(event("properties_list", properties=[1, 2])))
    invalid_event("context_string", "`context` is a string", line(event("context_string", context="ctx")))
    invalid_event("traits_array", "`traits` is an array (identify)",
                  line(event("traits_array", type="identify", traits=["a"])))
    invalid_event("anonymous_id_object", "`anonymousId` is an object, no userId",
                  line(event("anonymous_id_object", anonymousId={"id": "a"})))
    invalid_event("anonymous_id_bool", "`anonymousId` is `true`, no userId",
                  line(event("anonymous_id_bool", anonymousId=True)))
    invalid_event("anonymous_id_empty", "`anonymousId` is an empty string, no userId",
                  line(event("anonymous_id_empty", anonymousId="")))
    invalid_event("anonymous_id_whitespace", "`anonymousId` is only spaces, no userId",
                  line(event("anonymous_id_whitespace", anonymousId="   ")))
    sent("user_id_numeric", "`userId` is a number and there is no anonymousId: its text is `cv_id`",
         line(event("user_id_numeric", anonymousId=DROP, userId=9_007_199_254)), params={"cv_id": "9007199254"})
    sent("context_traits_list", "`context.traits` is a list (ignored)",
         line(event("context_traits_list", context=context(traits=[1, 2]))))
    invalid_event("vendor_ids_string", "`vendor_ids` is a string", line(event("vendor_ids_string", vendor_ids="c")))
    sent("duplicate_key_last_wins", 'the key `"event"` twice: the last one counts',
         line(event("duplicate_key_last_wins")).replace(b'"event":"Order Completed"',
                                                        b'"event":"Nope","event":"Order Completed"', 1),
         params={"event": "purchase"})

    # --- timestamps -------------------------------------------------------------------------
    for name, value, what in (
        ("ts_1e20", 1e20, "`timestamp` 1e20 (ms): after year 9999"),
        ("ts_minus_1e20", -1e20, "`timestamp` -1e20 (ms): before 1970"),
        ("ts_year_1900", "1900-01-01T00:00:00Z", "the year 1900"),
        ("ts_before_epoch", "1969-12-31T23:59:59Z", "one second before the Unix epoch"),
        ("ts_negative_ms", -1, "`timestamp` -1 (ms)"),
        ("ts_year_10000", "10000-01-01T00:00:00Z", "year 10000 as text"),
        ("ts_not_a_date", "not a date", "`timestamp` is `not a date`"),
        ("ts_bool", True, "`timestamp` is `true`"),
        ("ts_empty", "", "`timestamp` is an empty string"),
        ("ts_object", {"ms": 1}, "`timestamp` is an object"),
    ):
        invalid_event(name, what, line(event(name, timestamp=value)))
    invalid_json("ts_nan", "`timestamp` is a `NaN` literal", line(event("ts_nan", timestamp=splice_marker()), "NaN"))
    invalid_event("ts_4000_digits", "`timestamp` is a 4000-digit integer",
                  line(event("ts_4000_digits", timestamp=splice_marker()), "1" * 4000))
    sent("ts_epoch", "exactly 1970-01-01T00:00:00Z", line(event("ts_epoch", timestamp="1970-01-01T00:00:00Z")),
         params={"timestamp": "0"})
    sent("ts_year_9999", "the year 9999 (sent as now: never in the future)",
         line(event("ts_year_9999", timestamp="9999-12-30T00:00:00Z")))
    sent("ts_numeric_ms", "`timestamp` in Unix milliseconds", line(event("ts_numeric_ms", timestamp=1780315200000)),
         params={"timestamp": "1780315200000"})
    sent("ts_offset_plus", "a +05:30 offset", line(event("ts_offset_plus", timestamp="2026-06-01T17:30:00+05:30")),
         params={"timestamp": "1780315200000"})
    sent("ts_offset_minus", "a -08:00 offset", line(event("ts_offset_minus", timestamp="2026-06-01T04:00:00-08:00")),
         params={"timestamp": "1780315200000"})
    sent("ts_naive", "no time zone (taken as UTC)", line(event("ts_naive", timestamp="2026-06-01T12:00:00")),
         params={"timestamp": "1780315200000"})
    sent("ts_next_year", "next year: sent, its time clamped to now", line(event("ts_next_year",
                                                                                 timestamp="2099-01-01T00:00:00Z")))
    sent("ts_null", "`timestamp` null: the read time", line(event("ts_null", timestamp=None)))

    # --- call types -------------------------------------------------------------------------
    for call_type in ("group", "alias", "screen"):
        add(f"type_{call_type}", f"a `{call_type}` call", line(event(f"type_{call_type}", type=call_type)),
            "unsupported")
    invalid_event("type_unknown", "`type` is `purchase`", line(event("type_unknown", type="purchase")))
    invalid_event("type_capitalised", "`type` is `Track`", line(event("type_capitalised", type="Track")))
    invalid_event("type_missing", "no `type`", line(event("type_missing", type=DROP)))
    invalid_event("track_without_event", "a track call without `event`", line(event("track_without_event", event=DROP)))
    invalid_event("track_empty_event", "a track call with `event` \"\"", line(event("track_empty_event", event="")))
    invalid_event("track_event_number", "a track call with `event` 42", line(event("track_event_number", event=42)))
    add("track_unmapped", "a track event the config does not map (`unmapped_events: drop`)",
        line(event("track_unmapped", event="Something Else")), "dropped_unmapped")
    sent("page_call", "a page call", line(event("page_call", type="page", event=DROP, properties={
        "case": "page_call", "url": "https://shop.example.com/a?b=c#d", "title": "A"})),
         params={"event": "pv", "ce_domain": "shop.example.com"})
    sent("identify_call", "an identify call", line(event(
        "identify_call", type="identify", event=DROP, userId="u-identify",
        traits={"Email": "a@example.com", "case": "identify_call"})),
         params={"cv_email": "a@example.com", "cv_id": "u-identify"})

    # --- consent ----------------------------------------------------------------------------
    add("consent_denied", "`context.consent.analytics` false",
        line(event("consent_denied", context=context(consent={"analytics": False}))), "consent_denied")
    add("consent_missing", "no `context.consent`", line(event("consent_missing", context=context(consent=DROP))),
        "consent_missing")
    sent("consent_canonical", "`context.consent.canonical` grants analytics",
         line(event("consent_canonical", context=context(consent={"canonical": {"analytics": True}}))))
    add("consent_canonical_wins", "canonical denies while the flat map grants: canonical wins",
        line(event("consent_canonical_wins", context=context(consent={"canonical": {"analytics": False},
                                                                      "analytics": True}))), "consent_denied")
    sent("consent_categories", "`context.consent.categories` grants analytics",
         line(event("consent_categories", context=context(consent={"categories": {"analytics": True}}))))
    sent("consent_case", "`ANALYTICS: \"Granted\"` (names and words compare case-insensitively)",
         line(event("consent_case", context=context(consent={"ANALYTICS": "Granted"}))))
    add("consent_string", "`context.consent` is the string `yes`",
        line(event("consent_string", context=context(consent="yes"))), "consent_missing")
    add("consent_list", "`context.consent` is a list",
        line(event("consent_list", context=context(consent=["analytics"]))), "consent_missing")
    add("consent_unknown_word", "`analytics: \"maybe\"`",
        line(event("consent_unknown_word", context=context(consent={"analytics": "maybe"}))), "consent_missing")

    # --- huge values ------------------------------------------------------------------------
    sent("property_100kb", "a 100 KB property value: cut to fit 8 KiB",
         line(event("property_100kb", properties={"case": "property_100kb", "big": "x" * 100_000})))
    sent("emoji_100kb", "a property of 25,000 emoji (100 KB): cut to fit 8 KiB",
         line(event("emoji_100kb", properties={"case": "emoji_100kb", "big": "\U0001f600" * 25_000})))
    add("properties_10000", "10,000 properties", line(event("properties_10000", properties={
        "case": "properties_10000", **{f"p{i:05d}": "v" for i in range(10_000)}})), "too_large")
    add("user_id_100kb", "a 100 KB userId (never cut: it identifies the visitor)",
        line(event("user_id_100kb", userId="u" * 100_000)), "too_large")
    add("key_10kb", "a property key of 10 KB (names are never cut)",
        line(event("key_10kb", properties={"case": "key_10kb", "k" * 10_000: 1})), "too_large")

    # --- keys and values that must be encoded, not concatenated -----------------------------
    special = {"a&b": "1", "c=d": "2", "e?f": "3", "g#h": "4", "i j": "5", "ключ": "6", "": "7", "project": "evil",
               "ce_app": "evil", "cookie": "evil"}
    sent("special_keys", "keys `a&b`, `c=d`, `e?f`, `g#h`, `i j`, `ключ`, the empty key, `project`, `ce_app`",
         line(event("special_keys", properties={"case": "special_keys", **special})),
         params={"ce_a&b": "1", "ce_c=d": "2", "ce_e?f": "3", "ce_g#h": "4", "ce_i j": "5", "ce_ключ": "6",
                 "ce_": "7", "ce_project": "evil", "project": "mywebsite.com", "ce_app": "datafly-signal"})
    sent("user_agent_crlf", "a User-Agent with CR LF and an injected header",
         line(event("user_agent_crlf", context=context(userAgent="Mozilla/5.0\r\nX-Injected: 1"))),
         absent_headers=("x-injected",))
    sent("user_agent_number", "a User-Agent that is a number", line(event("user_agent_number",
                                                                          context=context(userAgent=42))))

    # --- the Woopra cookie ------------------------------------------------------------------
    sent("cookie_numeric", "`vendor_ids.woopra_cookie` is a number: its text is the cookie",
         line(event("cookie_numeric", vendor_ids={"woopra_cookie": 1234567890})), params={"cookie": "1234567890"})
    sent("cookie_object", "`vendor_ids.woopra_cookie` is an object (ignored)",
         line(event("cookie_object", vendor_ids={"woopra_cookie": {"v": "C"}})))
    sent("cookie_empty", "`vendor_ids.woopra_cookie` is empty (ignored)",
         line(event("cookie_empty", vendor_ids={"woopra_cookie": ""})))

    # --- dead letters as input --------------------------------------------------------------
    sent("dead_letter_replay", "a dead-letter record: its event is replayed",
         line(dead_letter(event("dead_letter_replay"), None)), params={"ce_case": "dead_letter_replay"})
    invalid_json("dead_letter_raw_invalid", "a dead letter whose `raw` is invalid JSON",
                 line(dead_letter(None, '{"type": "tr', "invalid_json")))
    sent("dead_letter_raw_valid", "a dead letter whose `raw` is a valid event",
         line(dead_letter(None, json.dumps(event("dead_letter_raw_valid")), "invalid_json")),
         params={"ce_case": "dead_letter_raw_valid"})
    invalid_event("dead_letter_empty", "a dead letter with neither `event` nor `raw`", line(dead_letter(None, None)))
    add("dead_letter_unsupported", "a dead letter carrying a group call",
        line(dead_letter(event("dead_letter_unsupported", type="group"), None)), "unsupported")
    return cases


CASES: tuple[HostileCase, ...] = tuple(_cases())


def expected_counts(cases: tuple[HostileCase, ...] = CASES) -> Counter[str]:
    """How many cases should land in each summary key."""
    return Counter(case.expected for case in cases)


def expected_reasons(cases: tuple[HostileCase, ...] = CASES) -> Counter[str]:
    """How many dead letters of each reason the cases should give."""
    return Counter(case.reason or case.expected for case in cases if case.dead_lettered)


def corpus_bytes(cases: tuple[HostileCase, ...] = CASES) -> bytes:
    """All cases as one JSON-lines file."""
    return b"".join(case.line.rstrip(b"\n") + b"\n" for case in cases)


def _check_unique() -> None:
    names = Counter(case.name for case in CASES)
    repeated = [name for name, count in names.items() if count > 1]
    if repeated:
        raise ValueError(f"repeated case names: {repeated}")
    for case in CASES:
        if b"\n" in case.line or case.expected not in OUTCOMES or not case.line.strip():
            raise ValueError(f"case {case.name}: bad line or outcome")


_check_unique()
