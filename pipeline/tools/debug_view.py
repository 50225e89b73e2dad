"""The event debugger's views of a trace: the text a person reads, and one JSON line per event."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pipeline.tools.debug_trace import LABEL_WIDTH, EventTrace, Provenance, SelectTrace, iso_time
from pipeline.tools.redact import redact_event, redact_params, redact_text, redact_value, redacted_url
from transforms.rules.consent import ConsentPolicy
from transforms.rules.dead_letters import RESPONSE_BODY_LIMIT, cut_utf8
from transforms.rules.events import (
    VENDOR_COOKIE,
    Event,
    InvalidInput,
    NotReplayed,
    Unsupported,
    is_dead_letter,
)
from transforms.rules.outcomes import Outcome
from transforms.rules.woopra_mapping import (
    PRESET_EVENTS,
    Skipped,
    WoopraRequest,
    WoopraSettings,
    woopra_event_name,
)


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


class _Stages:
    """The debugger's lines for one event: each stage labelled and numbered in the order shown."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.shown = 0

    def add(self, name: str, first: str, *more: str) -> None:
        label = ""
        if name:  # no name: more of the stage above
            self.shown += 1
            label = f"{self.shown} {name}"
        self.lines.append(f"{label:<{LABEL_WIDTH}}{first}")
        self.lines.extend(" " * LABEL_WIDTH + line for line in more)


def format_trace(
    trace: EventTrace, total: int, settings: WoopraSettings, consent: ConsentPolicy, show_pii: bool
) -> str:
    """The plain-text debugger view of one event, stage by stage (numbered in the order shown)."""
    stages = _Stages()
    title = f"Event {trace.index} of {total} ({trace.source})"
    stages.lines += [title, "─" * max(len(title), 60)]
    _input_stage(stages, trace, show_pii)
    _parse_stage(stages, trace.parse, show_pii)
    if trace.consent is not None:
        decision = trace.consent
        verdict = "allowed" if decision.outcome.allowed else "filtered, not sent"
        stages.add("Consent", f"{decision.outcome.value}: {decision.detail} ({verdict})",
                   f"read from {decision.shape or 'nowhere: the event has no context.consent'}; required: "
                   f"{', '.join(consent.required)}; without information: {consent.default}")
    _identity_stage(stages, trace, show_pii)
    if trace.select is not None:
        _select_stage(stages, trace.select)
    if trace.mapping is not None and trace.enriched is not None:
        _request_stages(stages, trace, settings, show_pii)
    meaning = trace.outcome.meaning
    stages.lines.append(f"{'Outcome':<{LABEL_WIDTH}}{trace.outcome}" + (f": {meaning}" if meaning else ""))
    return "\n".join(stages.lines)


def _input_stage(stages: _Stages, trace: EventTrace, show_pii: bool) -> None:
    shown_input = trace.input if show_pii else (
        redact_event(trace.input) if not isinstance(trace.input, str) else redact_text(trace.input))
    stages.add("Input", *_input_lines(shown_input))
    if is_dead_letter(trace.input):
        record = trace.input
        status = f", HTTP {record.get('status')}" if record.get("status") else ""
        stages.add("", f"(a dead-letter record: reason {record.get('reason')}{status}, failed at "
                       f"{record.get('failed_at')}; its event is what is replayed)")


def _parse_stage(stages: _Stages, parsed: Any, show_pii: bool) -> None:
    if isinstance(parsed, InvalidInput):
        stages.add("Parse", f"{parsed.reason}: {parsed.error if show_pii else redact_text(parsed.error)}",
                   f"→ dead letter, reason {parsed.reason}")
    elif isinstance(parsed, Unsupported):
        stages.add("Parse", f"{parsed.type} call: Woopra has no equivalent → counted unsupported, not sent")
    elif isinstance(parsed, NotReplayed):
        stages.add("Parse", f"dead letter of reason {parsed.reason}: not in --replay_reasons → skipped_replay")
    else:
        what = f'{parsed.type} "{parsed.name}"' if parsed.type == "track" else f"{parsed.type} call"
        time_note = "" if parsed.original.get("timestamp") is not None else " (no timestamp: read time)"
        stages.add("Parse", f"ok: {what}", f"visitor {parsed.visitor}" + (
            " (anonymousId)" if parsed.original.get("anonymousId") else " (userId: no anonymousId)"),
            f"event time {iso_time(parsed.timestamp_ms)}{time_note}")


def _identity_stage(stages: _Stages, trace: EventTrace, show_pii: bool) -> None:
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
        stages.add("Identity", f"visitor's event {identity.position} of {identity.of} in event-time order",
                   *_copies_lines(trace), *reset, *rows)
    elif trace.duplicate and trace.copies is not None:
        stages.add("Identity", f"duplicate: event {trace.copies.sent_index} of the file is the copy of this event "
                               "the job sends", *_copies_lines(trace),
                   "(of the copies of one id the job sends the one with the earliest event time, then the least by "
                   "what it says about its visitor, then by a hash of where it was read, not the first in the file; "
                   "this copy teaches identity nothing)")


def _select_stage(stages: _Stages, select: SelectTrace) -> None:
    if select.outcome is Outcome.OUT_OF_RANGE:
        stages.add("Select", f"out_of_range: {select.detail} (not sent)",
                   "(identity still learned from it: the job selects after identity)")
    elif select.outcome is Outcome.SKIPPED_LEDGER:
        stages.add("Select", f"skipped_ledger: {select.detail} (not sent)")
    else:
        stages.add("Select", f"to send: {select.detail}")


def _request_stages(stages: _Stages, trace: EventTrace, settings: WoopraSettings, show_pii: bool) -> None:
    assert trace.mapping is not None and trace.enriched is not None
    if isinstance(trace.mapping, Skipped):
        stages.add("Mapping", f"skipped: {trace.mapping.reason}: {trace.mapping.error}",
                   *(["→ dead letter, reason too_large"] if trace.mapping.reason == "too_large" else []))
        return
    request = trace.mapping
    stages.add("Mapping", f"WoopraRequest: {_mapping_note(trace.enriched, settings)}")
    params = list(request.params) if show_pii else redact_params(request.params)
    url = request.full_url() if show_pii else redacted_url(request.url, request.params)
    key_width = max(len(key) for key, _ in params)
    param_rows = [f"  {key:<{key_width}}  {value}{_parameter_note(key, value)}" for key, value in params]
    headers = [f"  {name}: {value}" for name, value in request.headers.items()] or [
        "  (no User-Agent in the event: the pipeline's own is sent)"]
    stages.add("Request", f"GET {url}", f"params ({len(params)})", *param_rows, "headers", *headers)
    stages.add("Response", *_response_lines(trace.response, show_pii, settings.endpoint))


def _parameter_note(key: str, value: str) -> str:
    if key == "timestamp" and value.isdigit():
        return f"   ({iso_time(int(value))})"
    if key in PARAMETER_NOTES:
        return f"   ({PARAMETER_NOTES[key]})"
    if key.startswith("ce_campaign_"):
        return "   (campaign: utm_/woo_ of the page's address, else context.campaign)"
    return ""


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


