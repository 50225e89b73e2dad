"""Issue 21, item 5: which shapes each extension takes (docs/behaviour.md#input-events).

A ``.json`` file holding an array gives each item as one event (``path[index]``), one object is one
event however it is laid out, and JSON lines stay JSON lines. Malformed input stays a counted dead
letter, never a crash. The readers are pure (any open binary file); one test runs the job's read.
"""

from __future__ import annotations

import gzip
import io
import json
import os

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import batch_pipeline
from transforms.parse_events import ParseEvents
from transforms.read_events import ReadEvents, file_records
from transforms.rules.events import Event, InvalidInput, NotReplayed, Unsupported, parse_input

NOW_MS = 1_900_000_000_000


def event(i: int) -> dict:
    return {"type": "track", "event": "Order Completed", "anonymousId": f"a-{i}",
            "timestamp": "2026-03-02T09:00:00Z", "context": {"consent": {"analytics": True}}}


def read(content: bytes, path: str = "events.json") -> list:
    data = gzip.compress(content) if path.endswith(".gz") else content
    return list(file_records(io.BytesIO(data), path))


def outcomes(content: bytes, path: str = "events.json") -> list:
    results = []
    for raw in read(content, path):
        parsed = parse_input(raw, now_ms=NOW_MS)
        results.append((raw.source, parsed.visitor if isinstance(parsed, Event) else parsed.reason))
    return results


@pytest.mark.parametrize("content", [
    json.dumps([event(0), event(1), event(2)]).encode(),
    json.dumps([event(0), event(1), event(2)], indent=2).encode(),  # pretty-printed, over lines
    b"\xef\xbb\xbf \n\n" + json.dumps([event(0), event(1), event(2)]).encode() + b"\n\n",
], ids=["one-line", "indented", "bom-and-blank-lines"])
def test_a_json_array_is_one_event_per_item_with_its_index(content):
    assert outcomes(content) == [("events.json[0]", "a-0"), ("events.json[1]", "a-1"), ("events.json[2]", "a-2")]


def test_a_gzipped_json_array_too():
    content = json.dumps([event(0), event(1)]).encode()
    assert outcomes(content, "e.json.gz") == [("e.json.gz[0]", "a-0"), ("e.json.gz[1]", "a-1")]


def test_items_keep_their_exact_text():
    item = '{"type": "page", "anonymousId": "x",   "properties": {"n": 1.50}}'
    assert [raw.payload for raw in read(f"[ {item} ,\n {item}]".encode())] == [item, item]


def test_an_empty_array_is_no_event():
    assert read(b"[]\n") == [] and read(b"  [ \n ] ") == []


def test_an_object_over_several_lines_is_one_event():
    content = b"\n" + json.dumps(event(7), indent=2).encode()
    assert outcomes(content) == [("events.json:2", "a-7")]


def test_json_lines_named_json_stay_json_lines():
    content = "\n".join(json.dumps(event(i)) for i in range(3)).encode()
    assert outcomes(content) == [("events.json:1", "a-0"), ("events.json:2", "a-1"), ("events.json:3", "a-2")]


def test_a_jsonl_file_holding_an_array_is_unchanged_one_invalid_event():
    content = json.dumps([event(0), event(1)]).encode()
    assert outcomes(content, "events.jsonl") == [("events.jsonl:1", "invalid_event")]


@pytest.mark.parametrize("content, expected", [
    # An item that is not JSON: the items before it are read, the rest is one invalid_json.
    (b'[{"type": "page", "anonymousId": "a-0"}, {"type": NaN}, {"type": "page"}]',
     [("events.json[0]", "a-0"), ("events.json[1]", "invalid_json")]),
    # A truncated export.
    (b'[{"type": "page", "anonymousId": "a-0"}, {"type": "pa', [("events.json[0]", "a-0"),
                                                                  ("events.json[1]", "invalid_json")]),
    # A missing comma, junk after the array.
    (b'[{"type": "page", "anonymousId": "a-0"} {"x": 1}]', [("events.json[0]", "a-0"),
                                                            ("events.json[1]", "invalid_json")]),
    (b'[{"type": "page", "anonymousId": "a-0"}] trailing', [("events.json[0]", "a-0"),
                                                            ("events.json[1]", "invalid_json")]),
    (b"[", [("events.json[0]", "invalid_json")]),
    (b"[] x", [("events.json[0]", "invalid_json")]),
    # Items that are JSON but not events, and an array of arrays.
    (b'[1, "x", null, [1]]', [(f"events.json[{i}]", "invalid_event") for i in range(4)]),
    # Too deep for the parser: the rest is refused by the depth rule.
    (b"[" + b"[" * 5000 + b"]" * 5000 + b"]", [("events.json[0]", "invalid_event")]),
    # Not UTF-8: read line by line, each line its own dead letter.
    (b'[\n{"type": "page", "anonymousId": "\xff"}\n]', [("events.json:1", "invalid_json"),
                                                      ("events.json:2", "invalid_json"),
                                                      ("events.json:3", "invalid_json")]),
    # An object spread over lines that is not JSON: each line is a dead letter, as before.
    (b'{\n"type": \n', [("events.json:1", "invalid_json"), ("events.json:2", "invalid_json")]),
    (b"42", [("events.json:1", "invalid_event")]),
], ids=["bad-item", "truncated", "missing-comma", "trailing-junk", "open-bracket", "junk-after-empty",
        "not-objects", "too-deep", "not-utf8", "broken-object", "scalar"])
def test_malformed_json_files_are_counted_dead_letters_never_a_crash(content, expected):
    assert outcomes(content) == expected
    assert all(isinstance(parse_input(raw, now_ms=NOW_MS), (Event, InvalidInput)) for raw in read(content))


def test_the_job_reads_a_json_array_file_as_its_events(tmp_path):
    (tmp_path / "export.json").write_text(json.dumps([event(0), event(1), 42]))
    with batch_pipeline() as p:
        parsed = p | ReadEvents(str(tmp_path / "export.json")) | ParseEvents()
        assert_that(parsed.events | "Visitors" >> beam.Map(lambda e: (e.visitor, e.source)),
                    equal_to([("a-0", f"{tmp_path}/export.json[0]"), ("a-1", f"{tmp_path}/export.json[1]")]))
        assert_that(parsed.dead_letters | "Reasons" >> beam.Map(lambda d: d.reason),
                    equal_to(["invalid_event"]), label="OneDeadLetter")


_ITEM = st.one_of(st.just(json.dumps(event(0))), st.just("NaN"), st.just("[1"), st.just('"x"'), st.just("{"),
                  st.text(alphabet='[]{},: "\n\\a1', max_size=8))


@settings(max_examples=int(os.environ.get("WOOPRA_PROPERTY_EXAMPLES", "200")), deadline=None)
@given(st.one_of(
    st.binary(max_size=64),
    st.lists(_ITEM, max_size=5).map(lambda items: ("[" + ",".join(items) + "]").encode()),
    st.lists(_ITEM, max_size=5).map(lambda items: ("[\n" + ",\n".join(items)).encode()),
))
def test_any_json_file_content_reads_to_counted_outcomes_never_a_crash(content):
    for path in ("f.json", "f.json.gz"):
        for raw in read(content, path):
            assert isinstance(parse_input(raw, now_ms=NOW_MS), (Event, InvalidInput, Unsupported, NotReplayed))
