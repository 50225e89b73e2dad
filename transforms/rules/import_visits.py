"""Woopra's Import API (``--sink import``, docs/backfill.md#the-import-sink): events → visits → bodies (pure).

Each event is mapped exactly as the tracking path maps it (``build_request``), then written the way
the Import API takes it: the ``cv_*`` parameters become the visitor's properties and the ``ce_*`` ones
the action's, without their prefixes; ``cookie`` joins the visitor, ``event`` and ``timestamp``
become the action's ``name`` and ``time`` (Unix ms). An identify call has no action: its traits join
the visitor of its visit. A visitor's calls in time order make visits: a new visit begins after
``timeout_ms`` without a call (Woopra's own idle timeout). Each visit is one NDJSON line
``{"visitor": {...}, "actions": [...]}``; lines are packed into bodies of at most ``max_bytes`` and
``max_visits``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from transforms.rules.event_id import event_id, ledger_key
from transforms.rules.events import Event
from transforms.rules.woopra_mapping import Skipped, WoopraSettings, build_request

DEFAULT_IMPORT_ENDPOINT = "https://www.woopra.com/rest/3.0/import"
# Bodies: 4 MB and 5,000 visits (docs/backfill.md#sizing-import-bodies). The per-day call limit is
# what bounds an import, so a body should be large; 4 MB stays well below the 10 MB request limits
# common in front of REST APIs, and halving a rejected body of 5,000 visits isolates one bad visit
# in 2 × 13 extra calls.
DEFAULT_MAX_BYTES = 4_000_000
DEFAULT_MAX_VISITS = 5_000
# A mapped call is at most 8 KiB of URL (woopra_mapping.MAX_URL_BYTES), so any visit can be cut into
# lines within this floor of --import_max_bytes.
MIN_MAX_BYTES = 64 * 1024
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def _json(value: object) -> str:
    """Compact JSON, UTF-8 kept as is; text UTF-8 cannot hold (a lone surrogate) as JSON escapes."""
    text = _JSON.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ASCII_JSON.encode(value)
    return text


_TIME_AND_KEY = struct.Struct(">q16s")


class ImportCall(NamedTuple):
    """One event as the import branch carries it to the grouping: compact, its parts already JSON.

    Not the original event: the few events of a rejected visit are found again by reading the
    input once more (transforms/rejected_visits.py), so the grouping carries a third of the bytes.
    """

    time_ms: int
    key: bytes  # ledger_key(visitor, event id): what the ledger records once its visit is imported
    action: str  # the action's JSON, or "" for an identify call (visitor properties only)
    visitor: str  # the visitor object's JSON as this call knows it (cookie, id, email, traits)

    def to_bytes(self) -> bytes:
        """The call as one bytes object, as it crosses the grouping.

        A local runner holds every value of a GroupByKey decoded in memory until the group is
        read: one bytes object is a third of the memory of a tuple of strings (BENCHMARKS.md).
        """
        return _TIME_AND_KEY.pack(self.time_ms, self.key) + f"{self.action}\n{self.visitor}".encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ImportCall:
        """The call ``to_bytes`` wrote (JSON text holds no raw newline, so the first one separates)."""
        time_ms, key = _TIME_AND_KEY.unpack_from(data)
        action, _, visitor = data[_TIME_AND_KEY.size:].decode("utf-8").partition("\n")
        return cls(time_ms, key, action, visitor)


@dataclass(frozen=True)
class VisitLine:
    """One line of an import body: a visit (or a part of a long one) and the calls it holds."""

    line: str  # {"visitor": ..., "actions": [...]}, without the newline
    keys: tuple[bytes, ...]
    times: tuple[int, ...]  # each call's event time, ms

    @property
    def size(self) -> int:
        """Bytes in a body: UTF-8 and its newline."""
        return len(self.line.encode("utf-8")) + 1


def import_call(event: Event, settings: WoopraSettings, now_ms: int | None = None) -> ImportCall | Skipped:
    """Map one enriched event as the tracking path does, then split it into visitor and action."""
    request = build_request(event, settings, now_ms)
    if isinstance(request, Skipped):
        return request
    visitor: dict[str, str] = {}
    properties: dict[str, str] = {}
    name = time_ms = None
    for key, value in request.params:
        if key.startswith("cv_"):
            visitor[key[3:]] = value
        elif key.startswith("ce_"):
            properties[key[3:]] = value
        elif key == "cookie":
            visitor["cookie"] = value
        elif key == "event":
            name = value
        elif key == "timestamp":
            time_ms = int(value)
    time_ms = event.timestamp_ms if time_ms is None else time_ms
    action = _json({"name": name, "time": time_ms, "properties": properties}) if name is not None else ""
    return ImportCall(time_ms, ledger_key(event.visitor, event_id(event.original)), action, _json(visitor))


def visit_line(visitor: str, actions: Sequence[str]) -> str:
    """A visit's line from its visitor's JSON and its actions' JSON (none: a visitor-only line)."""
    if not actions:
        return f'{{"visitor":{visitor}}}'
    return f'{{"visitor":{visitor},"actions":[{",".join(actions)}]}}'


def merged_visitor(visitors: Iterable[str]) -> str:
    """The visitor objects of a visit's calls, in time order, as one: a later value wins."""
    merged: dict[str, object] = {}
    seen: set[str] = set()
    for text in visitors:
        if text not in seen:  # a visitor's calls mostly repeat one object
            seen.add(text)
            merged.update(json.loads(text))
    return _json(merged)


def split_visits(calls: Iterable[ImportCall], timeout_ms: int, max_bytes: int = DEFAULT_MAX_BYTES) -> list[VisitLine]:
    """One visitor's calls as visit lines: time order, a new visit after ``timeout_ms`` idle.

    A visit whose line would pass ``max_bytes`` is cut into several lines of the same visitor.
    """
    ordered = sorted(calls, key=lambda call: (call.time_ms, call.key))
    lines: list[VisitLine] = []
    visit: list[ImportCall] = []
    for call in ordered:
        if visit and call.time_ms - visit[-1].time_ms > timeout_ms:
            lines += _visit_lines(visit, max_bytes)
            visit = []
        visit.append(call)
    if visit:
        lines += _visit_lines(visit, max_bytes)
    return lines


def _visit_lines(visit: list[ImportCall], max_bytes: int) -> list[VisitLine]:
    """A visit's line, or lines when one would pass ``max_bytes`` (each call's action is at most ~8 KiB)."""
    whole = _line_of(visit)
    if whole.size <= max_bytes:
        return [whole]
    lines: list[VisitLine] = []
    part: list[ImportCall] = []
    budget = max_bytes // 2  # the visitor object repeats on every part; it is small beside a part's actions
    used = 0
    for call in visit:
        size = len(call.action.encode("utf-8")) + 1
        if part and used + size > budget:
            lines.append(_line_of(part))
            part, used = [], 0
        part.append(call)
        used += size
    lines.append(_line_of(part))
    return lines


def _line_of(calls: Sequence[ImportCall]) -> VisitLine:
    line = visit_line(merged_visitor(call.visitor for call in calls), [call.action for call in calls if call.action])
    return VisitLine(line, tuple(c.key for c in calls), tuple(c.time_ms for c in calls))


@dataclass(frozen=True)
class ImportBody:
    """One POST to the Import API: visit lines, NDJSON."""

    visits: tuple[VisitLine, ...]

    @property
    def calls(self) -> int:
        """Events in the body."""
        return sum(len(visit.keys) for visit in self.visits)

    def payload(self) -> bytes:
        """The body as sent: one line per visit, each ending in a newline."""
        return "".join(visit.line + "\n" for visit in self.visits).encode("utf-8")

    def body_id(self) -> str:
        """A stable name for the body (dry-run file names): a hash of its calls' ledger keys."""
        digest = hashlib.blake2b(digest_size=6)
        for visit in self.visits:
            for key in visit.keys:
                digest.update(key)
        return digest.hexdigest()

    def halves(self) -> tuple[ImportBody, ImportBody]:
        """The body split in two (a body of two visits or more): how a rejected body is narrowed down."""
        middle = len(self.visits) // 2
        return ImportBody(self.visits[:middle]), ImportBody(self.visits[middle:])


class BodyPacker:
    """Packs visit lines, as they come, into bodies of at most ``max_bytes`` and ``max_visits``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_visits: int = DEFAULT_MAX_VISITS) -> None:
        self.max_bytes = max_bytes
        self.max_visits = max_visits
        self._visits: list[VisitLine] = []
        self._bytes = 0

    def add(self, visit: VisitLine) -> ImportBody | None:
        """Take one line; returns the body it closed, if it did not fit beside the others."""
        size = visit.size
        full = None
        if self._visits and (self._bytes + size > self.max_bytes or len(self._visits) >= self.max_visits):
            full = self.flush()
        self._visits.append(visit)
        self._bytes += size
        return full

    def flush(self) -> ImportBody | None:
        """The body being packed, if any, closed."""
        if not self._visits:
            return None
        body = ImportBody(tuple(self._visits))
        self._visits, self._bytes = [], 0
        return body


def pack_bodies(visits: Iterable[VisitLine], max_bytes: int = DEFAULT_MAX_BYTES,
                max_visits: int = DEFAULT_MAX_VISITS) -> Iterator[ImportBody]:
    """Every visit line packed into bodies, in order."""
    packer = BodyPacker(max_bytes, max_visits)
    for visit in visits:
        body = packer.add(visit)
        if body is not None:
            yield body
    last = packer.flush()
    if last is not None:
        yield last
