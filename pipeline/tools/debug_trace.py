"""The event debugger's traces: the job's rules applied to a file's events one stage at a time.

``trace_events`` runs parse, consent, identity (each id once), the backfill's selection and the
Woopra mapping on every event, as the job would, and keeps what each stage decided in an
``EventTrace``; ``send_requests`` sends them (``--send``). The text and JSON views of a trace are
in pipeline/tools/debug_view.py, the command in pipeline/tools/debug.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import GoogleAPIError

from pipeline.files import as_os_error
from pipeline.job_settings import JobSettings
from transforms.delivery.ledger import DeliveredKeys, LedgerError, delivered_files, read_delivered
from transforms.delivery.retry import RetryPolicy
from transforms.rules.consent import ConsentDecision, ConsentPolicy, decide_consent
from transforms.rules.event_id import CONTENT_PREFIX, event_id, first_copy, ledger_key
from transforms.rules.events import (
    Event,
    InvalidInput,
    NotReplayed,
    RawInput,
    Unsupported,
    decode_nested_json,
    parse_input,
    woopra_cookie,
)
from transforms.rules.identity import MS_PER_DAY, VisitorIdentity, identity_steps
from transforms.rules.outcomes import Outcome
from transforms.rules.time_range import TimeRange
from transforms.rules.woopra_mapping import (
    Skipped,
    WoopraRequest,
    WoopraSettings,
    build_request,
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


def iso_time(ms: int) -> str:
    """Unix milliseconds as ``2026-03-02T09:21:47.005Z``."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")



def decoded_input(payload: str | bytes | dict[str, Any]) -> Any:
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
        trace = EventTrace(index, raw.source, decoded_input(raw.payload))
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


