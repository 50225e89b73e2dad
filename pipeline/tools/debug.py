"""The event debugger: ``python -m pipeline.debug EVENT_FILE|-``.

Shows what the job does with each event of a file (read as the job reads it: JSON lines, ``.gz``
too, or Parquet), stage by stage, as Datafly Signal's event debugger does: the input, the parse
result, the consent decision, the identity applied (each event id once: a later copy is a
``duplicate``), the backfill's selection (``--start``/``--end``, ``--ledger``), the Woopra mapping
and the exact request; with ``--send`` it sends the request and shows Woopra's answer. Every stage
runs the job's own rules (``transforms/``) with the job's own option validation, so what the
debugger shows is what the job would do. Personal data (emails, IPs, cookies) is redacted unless
``--show-pii`` is given.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import PipelineOptions
from google.api_core.exceptions import GoogleAPIError

from pipeline.config import ConfigError
from pipeline.files import as_os_error
from pipeline.job_settings import JobSettings, resolve_settings
from pipeline.options import OptionsError
from pipeline.tools.redact import redact_event, redact_params, redact_text, redact_value, redacted_url
from transforms.delivery.ledger import DeliveredKeys, LedgerError, delivered_files, read_delivered
from transforms.delivery.retry import RetryPolicy
from transforms.read_events import json_line_records, records_from_path
from transforms.rules.consent import ConsentDecision, ConsentPolicy, decide_consent
from transforms.rules.dead_letters import RESPONSE_BODY_LIMIT, cut_utf8
from transforms.rules.event_id import CONTENT_PREFIX, event_id, first_copy, ledger_key
from transforms.rules.events import (
    VENDOR_COOKIE,
    Event,
    InvalidInput,
    NotReplayed,
    RawInput,
    Unsupported,
    decode_nested_json,
    is_dead_letter,
    parse_input,
    woopra_cookie,
)
from transforms.rules.identity import MS_PER_DAY, VisitorIdentity, identity_steps
from transforms.rules.outcomes import Outcome
from transforms.rules.time_range import TimeRange
from transforms.rules.woopra_mapping import (
    PRESET_EVENTS,
    Skipped,
    WoopraRequest,
    WoopraSettings,
    build_request,
    woopra_event_name,
)

LABEL_WIDTH = 12


class DebugOptionsError(ValueError):
    """A bad debugger command line; the message is one line."""


@dataclass(frozen=True)
class Provenance:
    """One identity value applied to an event, and where it came from."""

    name: str  # cookie | cv_id | a trait name
    value: Any
    source: str  # event | remembered | fallback
    from_index: int | None = None  # the earlier event of the file it was remembered from
    at_ms: int | None = None  # that event's time
    field: str | None = None  # the event's field it was read from, when it is the cookie


@dataclass
class IdentityTrace:
    """The identity stage of one event: its place in the visitor's history and what it carried."""

    visitor: str
    position: int  # 1-based, among the visitor's consented events in event-time order
    of: int
    values: list[Provenance] = field(default_factory=list)
    reset: bool = False  # the visitor was idle longer than --identity_ttl_days before this event


@dataclass(frozen=True)
class CopiesTrace:
    """A consented event's id and the copies of it in the file: the job sends one of them."""

    event_id: str
    from_message_id: bool  # False: a hash of the content (the event has no messageId)
    indexes: tuple[int, ...]  # the file positions of every copy, this one included
    sent_index: int  # the copy the job sends (``first_copy``); the others are counted duplicate


@dataclass(frozen=True)
class SelectTrace:
    """The Select to send stage of one event: on to the mapping, or why not (the job's ``SelectToSend``)."""

    outcome: Outcome | None  # OUT_OF_RANGE or SKIPPED_LEDGER; None: on to the mapping
    detail: str
    ledger_key: str | None = None  # with --ledger: what the ledger records for this event, in hex


@dataclass(frozen=True)
class SendSelection:
    """The job's Select to send: the ``--start``/``--end`` slice and the ``--ledger`` keys read at launch."""

    time_range: TimeRange = TimeRange()
    ledger: str | None = None
    delivered: DeliveredKeys | None = None
    ledger_files: int = 0

    @property
    def applies(self) -> bool:
        """True when the job has the step (a slice or a ledger was given)."""
        return self.time_range.bounded or self.ledger is not None

    def select(self, event: Event) -> SelectTrace:
        """What the job's ``SelectToSend`` does with ``event``: the slice first, then the ledger."""
        digest = ledger_key(event.visitor, event_id(event.original)) if self.ledger is not None else None
        key = digest.hex() if digest is not None else None
        when = iso_time(event.timestamp_ms)
        if not self.time_range.contains(event.timestamp_ms):
            return SelectTrace(Outcome.OUT_OF_RANGE, f"event time {when} is outside {self._slice()}", key)
        if digest is not None and self.delivered is not None and digest in self.delivered:
            return SelectTrace(Outcome.SKIPPED_LEDGER, f"an earlier run delivered it: its ledger key {key} is in "
                                                       f"{self._ledger()}", key)
        reasons = [f"event time {when} is in {self._slice()}"] if self.time_range.bounded else []
        if key is not None:
            reasons.append(f"its ledger key {key} is not in {self._ledger()}")
        return SelectTrace(None, "; ".join(reasons), key)

    def _slice(self) -> str:
        start, end = self.time_range.start_ms, self.time_range.end_ms
        since = f"from {iso_time(start)} (--start, inclusive)" if start is not None else "from any time"
        until = f" to {iso_time(end)} (--end, exclusive)" if end is not None else " on (no --end)"
        return f"the slice {since}{until}"

    def _ledger(self) -> str:
        count = len(self.delivered) if self.delivered is not None else 0
        keys = "key" if count == 1 else "keys"
        files = "file" if self.ledger_files == 1 else "files"
        return f"--ledger {self.ledger} ({count} {keys} in {self.ledger_files} {files} at launch)"


def send_selection(job: JobSettings) -> SendSelection:
    """The job's slice and the keys of its ledger files as the job reads them at launch."""
    if job.ledger is None:
        return SendSelection(job.time_range)
    try:
        files = delivered_files(job.ledger)
        delivered = read_delivered(files)
    except LedgerError as exc:
        raise DebugOptionsError(f"--ledger: {exc}") from None
    except GoogleAPIError as exc:
        raise DebugOptionsError(f"cannot read --ledger {job.ledger}: {as_os_error(exc, job.ledger).strerror}") from None
    except OSError as exc:
        raise DebugOptionsError(f"cannot read --ledger {job.ledger}: {exc.strerror or exc}") from None
    return SendSelection(job.time_range, job.ledger, delivered, len(files))


@dataclass
class EventTrace:
    """Everything the debugger found out about one input."""

    index: int  # 1-based position in the file
    source: str
    input: Any  # the decoded object (a Parquet row as the job decodes it), or the text when it is not JSON
    parse: Any = None  # Event | InvalidInput | Unsupported | NotReplayed
    consent: ConsentDecision | None = None
    copies: CopiesTrace | None = None  # consented events: the event id and its copies in the file
    identity: IdentityTrace | None = None
    enriched: Event | None = None
    select: SelectTrace | None = None  # with --start/--end or --ledger, for events identity passed on
    mapping: WoopraRequest | Skipped | None = None
    response: Any = None  # DeliveryOutcome, with --send

    @property
    def duplicate(self) -> bool:
        """True when another copy of this event (same id) is the one the job sends."""
        return self.copies is not None and self.copies.sent_index != self.index

    @property
    def outcome(self) -> Outcome:
        """The outcome the job would count this input under."""
        if isinstance(self.parse, InvalidInput):
            return Outcome.INVALID
        if isinstance(self.parse, Unsupported):
            return Outcome.UNSUPPORTED
        if isinstance(self.parse, NotReplayed):
            return Outcome.SKIPPED_REPLAY
        if self.consent is not None and not self.consent.outcome.allowed:
            return Outcome(self.consent.outcome.value)
        if self.duplicate:
            return Outcome.DUPLICATE
        if self.select is not None and self.select.outcome is not None:
            return self.select.outcome
        if isinstance(self.mapping, Skipped):
            return Outcome(self.mapping.reason)
        if self.response is not None:
            return Outcome(self.response.result)
        return Outcome.WOULD_SEND


# ----- reading ------------------------------------------------------------------------------------

def read_inputs(path: str) -> list[RawInput]:
    """The inputs of a file as the job reads them (JSON lines, ``.gz`` too, or Parquet; ``-``: stdin).

    A text input holding one JSON object or one JSON array, however it is laid out over lines,
    gives that object or each item of the array, so that an event pasted from elsewhere works.
    """
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            records = list(json_line_records(io.BytesIO(sys.stdin.read().encode("utf-8")), name))
        else:
            records = list(records_from_path(path))
    except GoogleAPIError as exc:  # a gs:// file that is missing or unreadable
        raise DebugOptionsError(f"cannot read {path}: {as_os_error(exc, path).strerror}") from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        # A missing file, or one that is not what its name says (bad gzip, not Parquet).
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise DebugOptionsError(f"cannot read {path}: {reason}") from None
    return _whole_document(records, name) or records


def _whole_document(records: list[RawInput], name: str) -> list[RawInput]:
    """The object, or the array's items, when the lines of a text input together are one JSON document."""
    lines = [record.payload for record in records if isinstance(record.payload, bytes)]
    if not lines or len(lines) < len(records):
        return []  # nothing read, or Parquet rows
    text = b"\n".join(lines)
    try:
        document = json.loads(text)
    except ValueError:
        return []
    if isinstance(document, dict) and len(records) > 1:  # one line is already the job's own record
        return [RawInput(text, name)]
    if isinstance(document, list):
        return [RawInput(json.dumps(item), f"{name}[{i}]") for i, item in enumerate(document)]
    return []


def _decoded(payload: str | bytes | dict[str, Any]) -> Any:
    """The input as the job decodes it: a Parquet row with its JSON-string columns, JSON, or else the text."""
    if isinstance(payload, dict):
        return decode_nested_json(payload)
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    try:
        return json.loads(text)
    except ValueError:
        return text


# ----- tracing: the job's rules, one stage at a time ---------------------------------------------

def trace_events(
    inputs: Sequence[RawInput], woopra: WoopraSettings, consent: ConsentPolicy, ttl_days: float,
    replay_reasons: frozenset[str] | None = None, now_ms: int | None = None,
    selection: SendSelection | None = None,
) -> list[EventTrace]:
    """Run parse, consent, identity, select to send and mapping over a file's inputs as the batch job would.

    As in the job, identity takes each event id once: of the consented copies of one id only the
    one the job sends (``first_copy``) goes on, and only its facts count; the others are
    ``duplicate``. Identity is applied per visitor in event-time order, so a call carries what
    earlier calls of the same visitor in the file said, wherever they appear in the file. The
    slice and the ledger (``selection``) come after identity: an event they hold back still taught
    identity what its visitor said.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    selection = selection or SendSelection()
    traces: list[EventTrace] = []
    copies: dict[tuple[str, str], list[EventTrace]] = {}  # (visitor, event id): copies are per visitor
    for index, raw in enumerate(inputs, start=1):
        trace = EventTrace(index, raw.source, _decoded(raw.payload))
        trace.parse = parse_input(raw, now_ms, replay_reasons)
        if isinstance(trace.parse, Event):
            trace.consent = decide_consent(trace.parse.original, consent)
            if trace.consent.outcome.allowed:
                copies.setdefault((trace.parse.visitor, event_id(trace.parse.original)), []).append(trace)
        traces.append(trace)
    by_visitor: dict[str, list[EventTrace]] = {}
    for (_, key), same_id in copies.items():
        sent = _sent_copy(same_id)
        found = CopiesTrace(key, _from_message_id(key, sent.parse), tuple(t.index for t in same_id), sent.index)
        for trace in same_id:
            trace.copies = found
        by_visitor.setdefault(sent.parse.visitor, []).append(sent)
    ttl_ms = int(ttl_days * MS_PER_DAY)
    for visitor, visits in by_visitor.items():
        _apply_identity(visitor, sorted(visits, key=lambda t: (t.parse.timestamp_ms, t.index)), ttl_ms)
    for trace in traces:
        if trace.enriched is None:
            continue
        if selection.applies:
            trace.select = selection.select(trace.enriched)
            if trace.select.outcome is not None:
                continue
        trace.mapping = build_request(trace.enriched, woopra, now_ms)
    return traces


def _sent_copy(same_id: list[EventTrace]) -> EventTrace:
    """Of the traces of one event id, the one whose event the job sends (``first_copy``)."""
    chosen = first_copy(trace.parse for trace in same_id)
    return next(trace for trace in same_id if trace.parse is chosen)


def _from_message_id(key: str, event: Event) -> bool:
    """Whether the event id is the event's ``messageId`` (else a hash of its content)."""
    return not key.startswith(CONTENT_PREFIX) or event.original.get("messageId") == key


def _apply_identity(visitor: str, visits: list[EventTrace], ttl_ms: int) -> None:
    """The identity step for one visitor's events, already in event-time order."""
    seen: list[EventTrace] = []
    steps = identity_steps([trace.parse for trace in visits], VisitorIdentity(), ttl_ms)
    for position, (trace, step) in enumerate(zip(visits, steps, strict=True), start=1):
        if step.reset:
            seen = []
        seen.append(trace)
        trace.enriched = step.enriched
        trace.identity = IdentityTrace(visitor, position, len(visits),
                                       _provenance(step.event, step.enriched, step.identity, seen), step.reset)


def _provenance(event: Event, enriched: Event, identity: VisitorIdentity, seen: list[EventTrace]) -> list[Provenance]:
    """Where the cookie, cv_id and each trait applied to ``event`` came from."""

    def remembered(name: str, value: Any, at_ms: int, said_it: Callable[[Event], bool]) -> Provenance:
        origin = next((t for t in seen if t.parse.timestamp_ms == at_ms and said_it(t.parse)), None)
        return Provenance(name, value, "remembered", origin.index if origin else None, at_ms)

    values: list[Provenance] = []
    if event.own_cookie:
        values.append(Provenance("cookie", event.own_cookie, "event", field=woopra_cookie(event.original)[1]))
    elif enriched.cookie and identity.cookie and identity.cookie[1] == enriched.cookie:
        values.append(remembered("cookie", enriched.cookie, identity.cookie[0],
                                 lambda e: e.own_cookie == enriched.cookie))
    elif enriched.cookie:
        values.append(Provenance("cookie", enriched.cookie, "fallback"))
    if event.user_id:
        values.append(Provenance("cv_id", event.user_id, "event"))
    elif enriched.user_id and identity.user_id:
        values.append(remembered("cv_id", enriched.user_id, identity.user_id[0],
                                 lambda e: e.user_id == enriched.user_id))
    own = {key.lower() for key in event.own_traits}
    for name, value in enriched.traits.items():
        if name in own or name not in identity.traits:
            values.append(Provenance(name, value, "event"))
        else:
            values.append(remembered(name, value, identity.traits[name][0], _says_trait(name)))
    return values


def _says_trait(name: str) -> Callable[[Event], bool]:
    """Whether an event carries trait ``name`` itself (trait names compare lower-cased)."""
    return lambda event: name in {key.lower() for key in event.own_traits}


def send_requests(traces: Iterable[EventTrace], request_timeout: float) -> None:
    """Send each mapped request once (no retry) and keep Woopra's answer on its trace."""
    from transforms.delivery.sender import WoopraSender  # only --send needs the HTTP client

    sender = WoopraSender(RetryPolicy(max_attempts=1), request_timeout=request_timeout, max_in_flight=1)
    try:
        for trace in traces:
            if isinstance(trace.mapping, WoopraRequest):
                trace.response = sender.send(trace.mapping)
    finally:
        sender.close()


# ----- showing ------------------------------------------------------------------------------------

def iso_time(ms: int) -> str:
    """Unix milliseconds as ``2026-03-02T09:21:47.005Z``."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _shown(key: str, value: Any, show_pii: bool) -> Any:
    return value if show_pii else redact_value(key, value)


def _text_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _mapping_note(event: Event, settings: WoopraSettings) -> str:
    """How the Woopra event name was chosen."""
    if event.type == "identify":
        return "identify call → /identify/ (a visitor update: no event name)"
    name = woopra_event_name(event, settings)
    if event.type == "page":
        return f"page call → event={name}"
    own_name = str(event.name).strip()
    if own_name not in settings.events:
        return f"{own_name!r} is not mapped: " + ("sent under its own name" if name is not None
                                                  else "dropped (unmapped_events: drop)")
    origin = "preset" if PRESET_EVENTS.get(own_name) == name else "config events:"
    return f"{own_name!r} → event={name} ({origin})"


# Where a parameter named after Woopra's tracker comes from (docs/behaviour.md#beside-woopras-tracker).
PARAMETER_NOTES = {
    "ce_url": "the page's path and query, as Woopra's tracker sends url",
    "ce_uri": "the page's full address, as Woopra's tracker sends uri",
    "language": "context.locale",
    "screen": "context.screen",
}


def _provenance_note(item: Provenance) -> str:
    if item.source == "event":
        where = {"cookie": item.field or VENDOR_COOKIE, "cv_id": "userId"}.get(item.name, "traits")
        return f"from this event ({where})"
    if item.source == "fallback":
        return "derived from anonymousId (no Woopra cookie known)"
    origin = f"event {item.from_index}" if item.from_index else "an earlier event"
    return f"remembered from {origin} at {iso_time(item.at_ms)}" if item.at_ms is not None else "remembered"


def _input_lines(shown: Any) -> list[str]:
    """An object one top-level key a line (values as compact JSON); text as it is."""
    if not isinstance(shown, dict):
        return [shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False, default=str)]
    # default=str: Parquet rows may hold values JSON has no type for (timestamps, decimals).
    items = [f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False, default=str)}"
             for key, value in shown.items()]
    return ["{"] + [item + ("," if i < len(items) - 1 else "") for i, item in enumerate(items)] + ["}"]


def format_trace(
    trace: EventTrace, total: int, settings: WoopraSettings, consent: ConsentPolicy, show_pii: bool
) -> str:
    """The plain-text debugger view of one event, stage by stage (numbered in the order shown)."""
    lines: list[str] = []
    pad = " " * LABEL_WIDTH
    shown_stages = 0

    def stage(name: str, first: str, *more: str) -> None:
        nonlocal shown_stages
        label = ""
        if name:  # no name: more of the stage above
            shown_stages += 1
            label = f"{shown_stages} {name}"
        lines.append(f"{label:<{LABEL_WIDTH}}{first}")
        lines.extend(pad + line for line in more)

    title = f"Event {trace.index} of {total} ({trace.source})"
    lines += [title, "─" * max(len(title), 60)]
    shown_input = trace.input if show_pii else (
        redact_event(trace.input) if not isinstance(trace.input, str) else redact_text(trace.input))
    stage("Input", *_input_lines(shown_input))
    if is_dead_letter(trace.input):
        record = trace.input
        status = f", HTTP {record.get('status')}" if record.get("status") else ""
        stage("", f"(a dead-letter record: reason {record.get('reason')}{status}, failed at "
                  f"{record.get('failed_at')}; its event is what is replayed)")

    parsed = trace.parse
    if isinstance(parsed, InvalidInput):
        stage("Parse", f"{parsed.reason}: {parsed.error if show_pii else redact_text(parsed.error)}",
              f"→ dead letter, reason {parsed.reason}")
    elif isinstance(parsed, Unsupported):
        stage("Parse", f"{parsed.type} call: Woopra has no equivalent → counted unsupported, not sent")
    elif isinstance(parsed, NotReplayed):
        stage("Parse", f"dead letter of reason {parsed.reason}: not in --replay_reasons → skipped_replay")
    else:
        what = f'{parsed.type} "{parsed.name}"' if parsed.type == "track" else f"{parsed.type} call"
        time_note = "" if parsed.original.get("timestamp") is not None else " (no timestamp: read time)"
        stage("Parse", f"ok: {what}", f"visitor {parsed.visitor}" + (
            " (anonymousId)" if parsed.original.get("anonymousId") else " (userId: no anonymousId)"),
            f"event time {iso_time(parsed.timestamp_ms)}{time_note}")

    if trace.consent is not None:
        decision = trace.consent
        verdict = "allowed" if decision.outcome.allowed else "filtered, not sent"
        stage("Consent", f"{decision.outcome.value}: {decision.detail} ({verdict})",
              f"read from {decision.shape or 'nowhere: the event has no context.consent'}; required: "
              f"{', '.join(consent.required)}; without information: {consent.default}")

    if trace.identity is not None:
        identity = trace.identity
        values = identity.values
        width = max([len(v.name) for v in values] + [6])
        shown = [(v, _text_value(_shown(v.name, v.value, show_pii))) for v in values]
        value_width = min(max([len(text) for _, text in shown] + [10]), 40)
        rows = [f"{v.name:<{width}}  {text:<{value_width}}  {_provenance_note(v)}" for v, text in shown]
        if not any(v.name == "cookie" for v in values):
            rows.append(f"{'cookie':<{width}}  {'(none)':<{value_width}}  Woopra merges on cv_id/cv_email")
        reset = ["(idle longer than --identity_ttl_days: earlier traits forgotten)"] if identity.reset else []
        stage("Identity", f"visitor's event {identity.position} of {identity.of} in event-time order",
              *_copies_lines(trace), *reset, *rows)
    elif trace.duplicate and trace.copies is not None:
        stage("Identity", f"duplicate: event {trace.copies.sent_index} of the file is the copy of this event the "
                          "job sends", *_copies_lines(trace),
              "(of the copies of one id the job sends the one with the earliest event time, then the least by what "
              "it says about its visitor, then by a hash of where it was read, not the first in the file; this "
              "copy teaches identity nothing)")

    if trace.select is not None:
        select = trace.select
        if select.outcome is Outcome.OUT_OF_RANGE:
            stage("Select", f"out_of_range: {select.detail} (not sent)",
                  "(identity still learned from it: the job selects after identity)")
        elif select.outcome is Outcome.SKIPPED_LEDGER:
            stage("Select", f"skipped_ledger: {select.detail} (not sent)")
        else:
            stage("Select", f"to send: {select.detail}")

    if trace.mapping is not None and trace.enriched is not None:
        if isinstance(trace.mapping, Skipped):
            stage("Mapping", f"skipped: {trace.mapping.reason}: {trace.mapping.error}",
                  *(["→ dead letter, reason too_large"] if trace.mapping.reason == "too_large" else []))
        else:
            request = trace.mapping
            stage("Mapping", f"WoopraRequest: {_mapping_note(trace.enriched, settings)}")
            params = list(request.params) if show_pii else redact_params(request.params)
            url = request.full_url() if show_pii else redacted_url(request.url, request.params)
            key_width = max(len(key) for key, _ in params)
            param_rows = []
            for key, value in params:
                if key == "timestamp" and value.isdigit():
                    note = f"   ({iso_time(int(value))})"
                else:
                    note = f"   ({PARAMETER_NOTES[key]})" if key in PARAMETER_NOTES else ""
                    if key.startswith("ce_campaign_") and key not in PARAMETER_NOTES:
                        note = "   (campaign: utm_/woo_ of the page's address, else context.campaign)"
                param_rows.append(f"  {key:<{key_width}}  {value}{note}")
            headers = [f"  {name}: {value}" for name, value in request.headers.items()] or [
                "  (no User-Agent in the event: the pipeline's own is sent)"]
            stage("Request", f"GET {url}", f"params ({len(params)})", *param_rows, "headers", *headers)
            stage("Response", *_response_lines(trace.response, show_pii, settings.endpoint))
    meaning = trace.outcome.meaning
    lines.append(f"{'Outcome':<{LABEL_WIDTH}}{trace.outcome}" + (f": {meaning}" if meaning else ""))
    return "\n".join(lines)


def _copies_lines(trace: EventTrace) -> list[str]:
    """The event id, and the other copies of it in the file if there are any."""
    copies = trace.copies
    if copies is None or (len(copies.indexes) == 1 and not trace.duplicate):
        return []
    how = "its messageId" if copies.from_message_id else "a hash of its content: no messageId"
    others = [i for i in copies.indexes if i != copies.sent_index]
    counted = f"event{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} counted duplicate"
    sent = "this one" if copies.sent_index == trace.index else f"event {copies.sent_index}"
    return [f"event id {copies.event_id} ({how}): {len(copies.indexes)} copies in the file, {sent} sent, {counted}"]


def _response_lines(outcome: Any, show_pii: bool, endpoint: str) -> list[str]:
    if outcome is None:
        return [f"not sent (--send sends it to {endpoint}{real_woopra_note(endpoint)})"]
    lines = [f"HTTP {outcome.status}" if outcome.status is not None else f"no response: {outcome.error}",
             f"{outcome.result} in {outcome.elapsed_seconds * 1000:.0f} ms"]
    if outcome.response_body:
        body = cut_utf8(outcome.response_body, RESPONSE_BODY_LIMIT)
        lines.append(f"body: {body if show_pii else redact_text(body)}")
    return lines


def real_woopra_note(endpoint: str) -> str:
    """``: the real Woopra, under the project above`` when ``endpoint`` is Woopra's own host."""
    host = urlsplit(endpoint).hostname or ""
    return ": the real Woopra, under the project above" if host == "woopra.com" or host.endswith(".woopra.com") else ""


def trace_record(trace: EventTrace, show_pii: bool) -> dict[str, Any]:
    """The ``--json`` view of one event: every stage as data."""
    shown_input = trace.input if show_pii else (
        redact_event(trace.input) if not isinstance(trace.input, str) else redact_text(trace.input))
    record: dict[str, Any] = {"index": trace.index, "source": trace.source, "input": shown_input,
                              "dead_letter_record": is_dead_letter(trace.input)}
    parsed = trace.parse
    if isinstance(parsed, InvalidInput):
        record["parse"] = {"result": str(Outcome.INVALID), "reason": parsed.reason,
                           "error": parsed.error if show_pii else redact_text(parsed.error)}
    elif isinstance(parsed, Unsupported):
        record["parse"] = {"result": str(Outcome.UNSUPPORTED), "type": parsed.type}
    elif isinstance(parsed, NotReplayed):
        record["parse"] = {"result": str(Outcome.SKIPPED_REPLAY), "dead_letter_reason": parsed.reason}
    else:
        record["parse"] = {"result": "event", "type": parsed.type, "event": parsed.name, "visitor": parsed.visitor,
                           "timestamp_ms": parsed.timestamp_ms, "timestamp": iso_time(parsed.timestamp_ms)}
    if trace.consent is not None:
        record["consent"] = {"outcome": trace.consent.outcome.value, "allowed": trace.consent.outcome.allowed,
                             "shape": trace.consent.shape, "detail": trace.consent.detail}
    if trace.copies is not None:
        record["copies"] = {"event_id": trace.copies.event_id, "from_message_id": trace.copies.from_message_id,
                            "indexes": list(trace.copies.indexes), "sent_index": trace.copies.sent_index,
                            "duplicate": trace.duplicate}
    if trace.identity is not None:
        record["identity"] = {
            "visitor": trace.identity.visitor, "position": trace.identity.position, "of": trace.identity.of,
            "reset": trace.identity.reset,
            "values": [{"name": v.name, "value": _shown(v.name, v.value, show_pii), "source": v.source,
                        "from_index": v.from_index, "at": iso_time(v.at_ms) if v.at_ms is not None else None}
                       for v in trace.identity.values],
        }
    if trace.select is not None:
        record["select"] = {"result": str(trace.select.outcome or "to_send"), "detail": trace.select.detail,
                            "ledger_key": trace.select.ledger_key}
    if isinstance(trace.mapping, Skipped):
        record["mapping"] = {"result": "skipped", "reason": trace.mapping.reason, "error": trace.mapping.error}
    elif isinstance(trace.mapping, WoopraRequest):
        request = trace.mapping
        params = list(request.params) if show_pii else redact_params(request.params)
        record["mapping"] = {"result": "request"}
        record["request"] = {
            "method": "GET", "url": request.url,
            "full_url": request.full_url() if show_pii else redacted_url(request.url, request.params),
            "params": dict(params), "headers": request.headers,
        }
    if trace.response is not None:
        body = cut_utf8(trace.response.response_body or "", RESPONSE_BODY_LIMIT)
        record["response"] = {"status": trace.response.status, "result": trace.response.result,
                              "body": body if show_pii else redact_text(body), "error": trace.response.error,
                              "elapsed_ms": round(trace.response.elapsed_seconds * 1000, 1)}
    record["outcome"] = trace.outcome
    return record


# ----- command line -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise DebugOptionsError(message)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The debugger's own flags, and the job's mapping flags it passes on."""
    parser = _Parser(prog="python -m pipeline.debug", allow_abbrev=False,
                     description="Show what the job does with each event of a file, stage by stage.")
    add = parser.add_argument
    add("event_file", metavar="EVENT_FILE|-",
        help="An input file of the job (JSON lines, .gz too, or Parquet), one JSON object or array, or - for stdin.")
    for flag in ("--config", "--woopra_project", "--woopra_endpoint", "--woopra_timeout", "--consent_categories",
                 "--consent_default", "--identity_ttl_days", "--request_timeout", "--replay_reasons", "--start",
                 "--end", "--ledger"):
        add(flag, help="As for the job (python -m pipeline --help).")
    add("--send", action="store_true", help="Really send each request (once, no retry) and show the response.")
    add("--show-pii", "--show_pii", dest="show_pii", action="store_true",
        help="Show emails, IPs and cookies in full (redacted by default).")
    add("--json", action="store_true", help="One JSON object per event instead of text.")
    add("--events", metavar="N[,N...]",
        help="Show (and --send) only these events, by position in the file (1 = first; a Parquet file's row "
             "number); every event still counts for identity.")
    return parser.parse_args(list(argv))


def selected_positions(value: str | None, total: int) -> set[int] | None:
    """``--events 2,5``: the 1-based positions to show; None shows every event."""
    if value is None:
        return None
    positions: set[int] = set()
    for part in value.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= total:
            raise DebugOptionsError(f"--events must be positions from 1 to {total}, got {part.strip()!r}")
        positions.add(int(part))
    return positions


def job_settings(args: argparse.Namespace) -> JobSettings:
    """The job's own validation of the flags it shares (``--input`` is a stand-in: nothing is read)."""
    flags = ["--input=-"]
    for name in ("config", "woopra_project", "woopra_endpoint", "woopra_timeout", "consent_categories",
                 "consent_default", "identity_ttl_days", "request_timeout", "replay_reasons", "start", "end",
                 "ledger"):
        value = getattr(args, name)
        if value is not None:
            flags.append(f"--{name}={value}")
    return resolve_settings(PipelineOptions(flags))


def run(argv: Sequence[str]) -> int:
    """Debug every event of the file; 2 on bad options, 1 when ``--send`` got no 2xx."""
    try:
        args = parse_arguments(argv)
        job = job_settings(args)
        selection = send_selection(job)
        inputs = read_inputs(args.event_file)
        shown = selected_positions(args.events, len(inputs))
    except (DebugOptionsError, OptionsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    replay = frozenset(job.replay_reasons) if job.replay_reasons is not None else None
    every = trace_events(inputs, job.woopra, job.consent, job.identity_ttl_days, replay, selection=selection)
    traces = [t for t in every if shown is None or t.index in shown]
    if args.send:
        send_requests(traces, job.delivery.request_timeout)
    for trace in traces:
        if args.json:
            print(json.dumps(trace_record(trace, args.show_pii), ensure_ascii=False, default=str))
        else:
            print(format_trace(trace, len(every), job.woopra, job.consent, args.show_pii))
            print()
    if not traces and not args.json:
        print("no events in the file")
    failed = args.send and any(t.response is not None and not t.response.delivered for t in traces)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    try:
        code = run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (``| head -2``): that is the end, not an error. Python's own recipe: point
        # stdout at devnull so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
