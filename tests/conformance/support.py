"""What the job sends for a peer's test case, and the check that every difference is explained.

Each case is a peer's public fixture translated by hand into our input (a Segment-shaped event),
with the parameters the peer sends for it (as text, as they go on the wire) and the parameters we
send. ``assert_conformance`` runs the job's own rules (Parse → Consent → Identity → Map, no Beam)
and then checks, parameter by parameter, that wherever we differ from the peer the case or the
module says which convention we follow and why. Woopra's own browser tracker wins ties
(docs/behaviour.md#beside-woopras-tracker).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transforms.rules.consent import ConsentPolicy, decide_consent
from transforms.rules.events import Event, RawInput, Unsupported, parse_input
from transforms.rules.identity import MS_PER_DAY, VisitorIdentity, enrich_in_order
from transforms.rules.woopra_mapping import Skipped, WoopraRequest, WoopraSettings, build_request

PROJECT = "conformance.example"
SETTINGS = WoopraSettings(project=PROJECT)
NOW_MS = 1_900_000_000_000
# The peers have no consent step of their own: their cases are run as --consent_default allow.
CONSENT = ConsentPolicy(default="allow")
ABSENT = None  # a parameter that is not sent

# Parameters we send on every call and no peer case shows; each with why (behaviour.md#woopra-mapping).
OUR_OWN = {
    "project": "ours is --woopra_project / config `project`, the name Woopra's tracker sends",
    "response": "we ask for a JSON answer to tell success from failure (the tracker reads none)",
    "timeout": "we send the visit's idle timeout explicitly, as the tracker does (default 1800000, documented)",
    "ce_app": "we name the job's own source as an event property (documented contract)",
}


@dataclass(frozen=True)
class Sent:
    """One request as sent: its endpoint (``ce`` or ``identify``), parameters and User-Agent."""

    endpoint: str
    params: dict[str, str]
    user_agent: str | None


@dataclass(frozen=True)
class Case:
    """One peer case translated: where it comes from, our input, what the peer and we send."""

    name: str
    source: str  # repository + path (+ the case's own name) it is translated from
    events: tuple[Mapping[str, Any], ...]  # our input; the last is the call compared
    peer: Mapping[str, str | None]  # the peer's parameters for the last call, as text
    ours: Mapping[str, str | None]  # ours for the last call (ABSENT: not sent)
    differences: Mapping[str, str] = field(default_factory=dict)  # parameter → the convention we follow, why
    peer_endpoint: str | None = None  # "ce" | "identify" | None when the peer refuses the call
    peer_refuses: str | None = None  # the peer's error, when it sends nothing


def send(*events: Mapping[str, Any], settings: WoopraSettings = SETTINGS) -> list[Sent | str]:
    """The job's rules on the events, in event-time order: each a request, or its outcome's name."""
    results: list[Sent | str] = []
    parsed: list[Event] = []
    for number, obj in enumerate(events, start=1):
        result = parse_input(RawInput(json.dumps(copy.deepcopy(obj)), f"case:{number}"), now_ms=NOW_MS)
        if isinstance(result, Unsupported):
            results.append("unsupported")
        elif not isinstance(result, Event):
            results.append(result.reason)
        elif not decide_consent(result.original, CONSENT).outcome.allowed:
            results.append("consent")
        else:
            parsed.append(result)
    enriched, _ = enrich_in_order(parsed, VisitorIdentity(), 30 * MS_PER_DAY)
    for event in enriched:
        request = build_request(event, settings, now_ms=NOW_MS)
        if isinstance(request, Skipped):
            results.append(str(request.reason))
        else:
            assert isinstance(request, WoopraRequest)
            results.append(Sent(request.url.rstrip("/").rsplit("/", 1)[1], dict(request.params), request.user_agent))
    return results


def assert_conformance(case: Case, module_notes: Mapping[str, str]) -> Sent | str:
    """Check ``case``: we send ``case.ours``; every parameter where we differ from the peer is explained."""
    *_, last = send(*case.events)
    if isinstance(last, str):
        assert case.ours == {"outcome": last}, f"{case.name}: not sent ({last})"
        assert case.peer_refuses, f"{case.name}: we refuse a call the peer sends"
        return last
    assert case.peer_endpoint is not None, f"{case.name}: the peer refuses it; we send it, say why"
    for name, value in case.ours.items():
        assert last.params.get(name) == value, f"{case.name}: {name} = {last.params.get(name)!r}, want {value!r}"
    notes = {**OUR_OWN, **module_notes, **case.differences}
    compared = set(case.peer) | set(last.params)
    unexplained = sorted(name for name in compared
                         if case.peer.get(name) != last.params.get(name) and name not in notes)
    assert not unexplained, f"{case.name}: we differ from the peer on {unexplained} and do not say why"
    stale = sorted(name for name in case.differences if case.peer.get(name) == last.params.get(name))
    assert not stale, f"{case.name}: a difference is stated for {stale} but we send what the peer sends"
    return last


def params_where_we_agree(case: Case, sent: Sent) -> list[str]:
    """The parameters the peer and we send alike (for the report, and to keep each case honest)."""
    return sorted(name for name, value in case.peer.items() if value is not None and sent.params.get(name) == value)


def differing_parameters(case: Case) -> set[str]:
    """The parameters where we and the peer differ for ``case`` (none when either sends nothing)."""
    *_, last = send(*case.events)
    if isinstance(last, str) or case.peer_endpoint is None:
        return set()
    return {name for name in set(case.peer) | set(last.params) if case.peer.get(name) != last.params.get(name)}


def assert_every_note_is_used(cases: list[Case], module_notes: Mapping[str, str]) -> None:
    """A module's shared note must explain a difference of at least one of its cases: none is stale."""
    used = set().union(*(differing_parameters(case) for case in cases))
    stale = sorted(set(module_notes) - used)
    assert not stale, f"notes for parameters where no case differs: {stale}"
