"""The hostile-input corpus (tests/support/hostile_corpus.py) in one ``python -m pipeline`` run against the stand-in.

Each case is one input line with its expected outcome; the run must not fail, its summary must
balance, every count must match the corpus, and every dead letter must keep what was read.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.summary import OUTCOME_KEYS
from tests.conftest import ROOT, subprocess_env
from tests.support.hostile_corpus import (
    CASES,
    CORPUS_CONFIG,
    HostileCase,
    corpus_bytes,
    expected_counts,
    expected_reasons,
)

_CASE_IN_TEXT = re.compile(r'"case":\s*"([a-z0-9_]+)"')


def run_corpus(tmp_path: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    """Write the corpus and its config, and run the job on them; bounded in time."""
    (tmp_path / "corpus.jsonl").write_bytes(corpus_bytes())
    (tmp_path / "corpus.json").write_text(json.dumps(CORPUS_CONFIG))
    args = ["--input", str(tmp_path / "corpus.jsonl"), "--config", str(tmp_path / "corpus.json"),
            "--woopra_endpoint", endpoint, "--dead_letter", str(tmp_path / "dead") + "/",
            "--summary", str(tmp_path / "summary.json"), "--rate_limit", "1000"]
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def dead_letters(folder: Path) -> list[dict[str, Any]]:
    """Every dead-letter record written under ``folder``."""
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        records += [json.loads(text) for text in path.read_text(encoding="utf-8").split("\n") if text.strip()]
    return records


def canonical(value: Any) -> str:
    """``value`` as JSON with sorted keys, to compare decoded objects."""
    return json.dumps(value, sort_keys=True)


def case_of_dead_letter(record: dict[str, Any], by_raw: dict[str, str]) -> str | None:
    """The corpus case a dead letter came from, when it can be told (for failure messages)."""
    event = record.get("event")
    if isinstance(event, dict) and isinstance(event.get("properties"), dict):
        case = event["properties"].get("case")
        if isinstance(case, str):
            return case
    if event is not None and canonical(event) in by_raw:
        return by_raw[canonical(event)]
    raw = record.get("raw")
    if isinstance(raw, str):
        if raw in by_raw:
            return by_raw[raw]
        found = _CASE_IN_TEXT.search(raw)
        if found:
            return found.group(1)
    return None


def observed_outcomes(records: list[dict[str, Any]], requests: list[dict[str, Any]]) -> dict[str, str]:
    """Case name → what was seen of it: its dead-letter reason, or ``delivered_200``."""
    by_raw = {case.line.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r"): case.name for case in CASES}
    for case in CASES:  # also by the decoded object, and by the raw line a dead-letter input carries
        try:
            decoded = json.loads(case.line)
        except (ValueError, RecursionError):
            continue
        by_raw.setdefault(canonical(decoded), case.name)
        if isinstance(decoded, dict) and isinstance(decoded.get("raw"), str):
            by_raw.setdefault(decoded["raw"], case.name)
    seen: dict[str, str] = {}
    for record in records:
        name = case_of_dead_letter(record, by_raw)
        if name is not None:
            seen[name] = record["reason"] if record["reason"] == "too_large" else f"invalid/{record['reason']}"
    for request in requests:
        name = request["params"].get("ce_case") or request["params"].get("cv_case")
        if name is not None and request["status"] == 200:
            seen[name] = "delivered_200"
    return seen


def differences(seen: dict[str, str]) -> list[str]:
    """Cases whose visible outcome (dead letter or request) differs from the expected one."""
    wrong = []
    for case in CASES:
        want = f"invalid/{case.reason}" if case.expected == "invalid" else case.expected
        got = seen.get(case.name, "not sent, no dead letter")
        visible = case.dead_lettered or case.expected == "delivered_200"
        if (visible and got != want) or (not visible and case.name in seen):
            wrong.append(f"{case.name}: expected {want}, observed {got}")
    return wrong


def check_request(case: HostileCase, request: dict[str, Any]) -> list[str]:
    """What is wrong with the request a delivered case produced."""
    problems = [f"{case.name}: {key} = {request['params'].get(key)!r}, expected {value!r}"
                for key, value in case.params.items() if request["params"].get(key) != value]
    problems += [f"{case.name}: header {name} was sent" for name in case.absent_headers if name in request["headers"]]
    return problems


def test_the_whole_corpus_in_one_run(tmp_path, standin):
    done = run_corpus(tmp_path, standin.url)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]

    records = dead_letters(tmp_path / "dead")
    requests = standin.requests
    wrong = differences(observed_outcomes(records, requests))
    summary = json.loads((tmp_path / "summary.json").read_text())

    assert summary["read"] == len(CASES)
    assert summary["balanced"] and summary["read"] == sum(summary[key] for key in OUTCOME_KEYS), summary
    expected = expected_counts()
    observed = {key: summary[key] for key in OUTCOME_KEYS if summary[key] or expected[key]}
    assert observed == {key: count for key, count in expected.items() if count}, "\n".join(wrong)
    assert not wrong, "\n".join(wrong)

    # One dead letter per invalid or too-large case, each keeping what was read.
    assert len(records) == summary["invalid"] + summary["too_large"]
    assert Counter(r["reason"] for r in records) == expected_reasons()
    assert all(r.get("event") is not None or r.get("raw") is not None for r in records)
    kept_bytes = {base64.b64decode(r["raw_base64"]) for r in records if r.get("raw_base64")}
    for case in CASES:
        if case.raw_base64:
            assert case.line in kept_bytes, case.name

    # The delivered cases sent what they must, and nothing else was sent.
    assert all(r["status"] == 200 for r in requests)
    by_case = {r["params"].get("ce_case") or r["params"].get("cv_case"): r for r in requests}
    problems = [problem for case in CASES if case.expected == "delivered_200" and case.name in by_case
                for problem in check_request(case, by_case[case.name])]
    assert not problems, "\n".join(problems)
    assert len(requests) == expected["delivered_200"]
