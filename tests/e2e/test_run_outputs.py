"""A run's outputs: no run erases another's, and every dead letter has the contract's keys.

End to end, ``python -m pipeline`` against the local Woopra stand-in (docs/behaviour.md, "Dead letters").
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from tests.conftest import SAMPLES
from tests.e2e.test_end_to_end import run_pipeline
from woopra_standin import Rule

SAMPLE_INVALID = 5  # sample lines that are dead-lettered as invalid
RECORD_KEYS = {"reason", "error", "status", "response_body", "attempts", "failed_at", "request", "event", "raw"}
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


def dead_letter_records(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    return records


def run_samples(tmp_path: Path, endpoint: str, *more: str) -> dict:
    done = run_pipeline("--input", str(SAMPLES / "events.jsonl"), "--config", str(SAMPLES / "mapping.yaml"),
                        "--woopra_endpoint", endpoint, "--dead_letter", str(tmp_path / "dead_letter") + "/",
                        "--summary", str(tmp_path / "summary.json"), *more)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"run: {summary['run_id']}" in done.stdout
    return summary


def test_a_second_run_and_a_replay_keep_every_earlier_dead_letter(tmp_path, standin):
    first = run_samples(tmp_path, standin.url)
    assert RUN_ID.match(first["run_id"])
    folder = tmp_path / "dead_letter"
    first_files = sorted(p.name for p in folder.glob("*.jsonl"))
    assert first_files and all(first["run_id"] in name for name in first_files)
    assert len(dead_letter_records(folder)) == SAMPLE_INVALID

    second = run_samples(tmp_path, standin.url)
    assert second["run_id"] != first["run_id"]
    assert len(dead_letter_records(folder)) == 2 * SAMPLE_INVALID
    assert set(first_files) <= {p.name for p in folder.glob("*.jsonl")}

    # Replaying the first run's dead letters into the same folder adds; it never erases them.
    replay = run_pipeline("--input", str(folder / f"*{first['run_id']}*.jsonl"), "--woopra_project", "example.com",
                          "--woopra_endpoint", standin.url, "--dead_letter", str(folder) + "/",
                          "--replay_reasons", "invalid_event")
    assert replay.returncode == 0, replay.stderr
    assert set(first_files) <= {p.name for p in folder.glob("*.jsonl")}
    assert len(dead_letter_records(folder)) > 2 * SAMPLE_INVALID


def test_a_clean_run_writes_no_dead_letter_file(tmp_path, standin):
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"type": "page", "anonymousId": "a", "context": {"consent": {"analytics": True}}}))
    done = run_pipeline("--input", str(clean), "--woopra_project", "example.com", "--woopra_endpoint", standin.url,
                        "--dead_letter", str(tmp_path / "dead") + "/")
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "dead").glob("*")) if (tmp_path / "dead").exists() else True


def test_every_reason_has_the_contract_keys(tmp_path, standin):
    too_large = {"type": "track", "event": "Big", "anonymousId": "big", "timestamp": "2026-03-02T09:21:47Z",
                 "context": {"consent": {"analytics": True}}, "properties": {f"k{i}": i for i in range(3000)}}
    lines = [
        b'{"type": "track", "event": ',  # invalid_json
        b"[1]",  # invalid_event without an object: raw keeps the line
        b'{"type": "track", "anonymousId": "no-event", "context": {"consent": {"analytics": true}}}',
        json.dumps(too_large).encode(),
        b'{"type": "track", "event": "Refused", "anonymousId": "r", "context": {"consent": {"analytics": true}}}',
        b'{"type": "track", "event": "Flaky", "anonymousId": "f", "context": {"consent": {"analytics": true}}}',
        b'{"type": "track", "event": "\xff"}',  # not UTF-8
    ]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    standin.set_rules([Rule(match={"event": "Refused"}, statuses=[400], body="bad"),
                       Rule(match={"event": "Flaky"}, statuses=[503])])
    done = run_pipeline("--input", str(tmp_path / "in.jsonl"), "--woopra_project", "example.com",
                        "--woopra_endpoint", standin.url, "--dead_letter", str(tmp_path / "dead") + "/",
                        "--max_attempts", "2", "--summary", str(tmp_path / "summary.json"))
    assert done.returncode == 3, done.stderr  # of the two to send, neither was delivered
    records = {(r["reason"], (r["event"] or {}).get("event") if isinstance(r["event"], dict) else r["raw"]): r
               for r in dead_letter_records(tmp_path / "dead")}
    assert len(records) == len(lines)
    for record in records.values():
        extra = {"raw_base64"} if record["reason"] == "invalid_json" and "raw_base64" in record else set()
        assert set(record) == RECORD_KEYS | extra, record["reason"]
        assert record["failed_at"].endswith("Z")

    bad_json = records[("invalid_json", '{"type": "track", "event": ')]
    assert (bad_json["event"], bad_json["request"], bad_json["status"], bad_json["attempts"]) == (None, None, None, 0)
    assert bad_json["error"].startswith("invalid JSON: ")
    not_utf8 = records[("invalid_json", '{"type": "track", "event": "\ufffd"}')]
    assert base64.b64decode(not_utf8["raw_base64"]) == lines[-1]
    array = records[("invalid_event", "[1]")]
    assert array["event"] is None and array["error"] == "an event must be a JSON object, got an array"
    no_event = records[("invalid_event", None)]
    assert no_event["event"]["anonymousId"] == "no-event" and no_event["raw"] is None
    assert no_event["error"] == "track call without 'event'"

    big = records[("too_large", "Big")]
    assert big["event"] == too_large and big["raw"] is None and big["request"] is None
    assert re.fullmatch(r"request URL is \d+ bytes, over 8192", big["error"]), big["error"]

    refused = records[("rejected", "Refused")]
    assert (refused["status"], refused["attempts"], refused["response_body"], refused["raw"]) == (400, 1, "bad", None)
    assert refused["request"]["method"] == "GET" and refused["request"]["url"].endswith("/track/ce/")
    assert refused["request"]["params"]["event"] == "Refused"
    flaky = records[("retries_exhausted", "Flaky")]
    assert (flaky["status"], flaky["attempts"]) == (503, 2)
    assert flaky["request"]["params"]["project"] == "example.com"
