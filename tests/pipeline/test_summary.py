"""Unit tests for pipeline/summary.py: the end-of-run summary and its accounting (docs/behaviour.md#summary)."""

from __future__ import annotations

import json

import pytest

from pipeline.summary import OUTCOME_KEYS, SUMMARY_KEYS, build_summary, format_summary, write_summary

CONTRACT_KEYS = ("read", "invalid", "too_large", "consent_denied", "consent_missing", "unsupported",
             "dropped_unmapped", "delivered_200", "delivered_202", "rejected", "retries_exhausted",
             "retried_requests")
CONTRACT_OUTCOMES = CONTRACT_KEYS[1:-1]

BALANCED = {
    "read": 100, "invalid": 3, "too_large": 1, "consent_denied": 10, "consent_missing": 6, "unsupported": 2,
    "dropped_unmapped": 4, "delivered_200": 60, "delivered_202": 8, "rejected": 5, "retries_exhausted": 1,
    "retried_requests": 9,
}


def test_summary_keys_are_the_spec_keys():
    assert set(CONTRACT_KEYS) <= set(SUMMARY_KEYS)
    # Our additions, outcomes too: skipped_replay (dead letters a --replay_reasons replay leaves out),
    # the backfill outcomes duplicate, skipped_ledger and out_of_range, and the import sink's imported
    # (docs/backfill.md).
    assert set(OUTCOME_KEYS) == set(CONTRACT_OUTCOMES) | {
        "skipped_replay", "duplicate", "skipped_ledger", "out_of_range", "imported"}
    assert "retried_requests" not in OUTCOME_KEYS and "read" not in OUTCOME_KEYS


def test_every_spec_key_present_as_int_even_when_never_counted():
    summary = build_summary({}, dry_run=False, elapsed_seconds=1.0)
    for key in CONTRACT_KEYS:
        assert summary[key] == 0 and type(summary[key]) is int, key
    assert summary["balanced"] is True


def test_balanced_when_outcomes_add_up_to_read():
    summary = build_summary(BALANCED, dry_run=False, elapsed_seconds=2.0)
    assert {k: summary[k] for k in CONTRACT_KEYS} == BALANCED
    assert summary["accounted"] == 100
    assert summary["balanced"] is True
    assert summary["dead_lettered"] == 3 + 1 + 5 + 1


@pytest.mark.parametrize("key", CONTRACT_OUTCOMES)
def test_unbalanced_when_any_outcome_is_off_by_one(key):
    counts = dict(BALANCED)
    counts[key] += 1
    summary = build_summary(counts, dry_run=False, elapsed_seconds=1.0)
    assert summary["balanced"] is False
    assert summary["accounted"] == 101


def test_retried_requests_are_not_an_outcome():
    counts = dict(BALANCED, retried_requests=1000)
    assert build_summary(counts, dry_run=False, elapsed_seconds=1.0)["balanced"] is True


def test_unbalanced_when_read_exceeds_outcomes():
    summary = build_summary(dict(BALANCED, read=150), dry_run=False, elapsed_seconds=1.0)
    assert summary["balanced"] is False


def test_dry_run_would_send_takes_the_place_of_delivered():
    counts = dict(BALANCED, delivered_200=0, delivered_202=0, rejected=0, retries_exhausted=0, would_send=74)
    summary = build_summary(counts, dry_run=True, elapsed_seconds=1.0)
    assert summary["would_send"] == 74
    assert summary["dry_run"] is True
    assert summary["balanced"] is True
    unbalanced = build_summary(dict(counts, would_send=73), dry_run=True, elapsed_seconds=1.0)
    assert unbalanced["balanced"] is False


def test_imported_is_sent_and_would_import_takes_its_place_in_a_dry_run():
    counts = dict(BALANCED, delivered_200=0, delivered_202=0, imported=68, import_calls=3)
    summary = build_summary(counts, dry_run=False, elapsed_seconds=1.0)
    assert summary["balanced"] and summary["import_calls"] == 3
    assert any(line.split()[:2] == ["delivered", "68"] for line in format_summary(summary).splitlines())
    dry = dict(counts, imported=0, rejected=0, retries_exhausted=0, would_import=74)
    summary = build_summary(dry, dry_run=True, elapsed_seconds=1.0)
    assert summary["would_import"] == 74 and summary["balanced"] is True
    assert "import_calls" not in build_summary(BALANCED, dry_run=False, elapsed_seconds=1.0)


def test_would_send_absent_outside_dry_run():
    summary = build_summary(dict(BALANCED, would_send=5), dry_run=False, elapsed_seconds=1.0)
    assert "would_send" not in summary
    assert summary["balanced"] is True


def test_rate_and_elapsed():
    summary = build_summary(BALANCED, dry_run=False, elapsed_seconds=4.0)
    assert summary["elapsed_seconds"] == 4.0
    assert summary["events_per_second"] == 25.0
    assert build_summary(BALANCED, dry_run=False, elapsed_seconds=0.0)["events_per_second"] == 0.0


def test_summary_is_json_serialisable(tmp_path):
    summary = build_summary(BALANCED, dry_run=False, elapsed_seconds=1.0)
    path = tmp_path / "out" / "summary.json"
    write_summary(summary, str(path))
    loaded = json.loads(path.read_text(encoding="utf-8"))
    for key in CONTRACT_KEYS:
        assert loaded[key] == BALANCED[key]


def test_format_summary_lists_every_count_and_says_ok():
    text = format_summary(build_summary(BALANCED, dry_run=False, elapsed_seconds=2.0))
    for key in CONTRACT_KEYS:
        assert key in text
    assert "(ok)" in text
    assert "MISMATCH" not in text
    assert "would_send" not in text
    assert "dry run" not in text


def test_format_summary_flags_a_mismatch():
    text = format_summary(build_summary(dict(BALANCED, read=99), dry_run=False, elapsed_seconds=2.0))
    assert "MISMATCH" in text


def test_format_summary_dry_run_shows_would_send():
    counts = {"read": 3, "would_send": 2, "invalid": 1}
    text = format_summary(build_summary(counts, dry_run=True, elapsed_seconds=1.0))
    assert "dry run" in text
    line = next(line for line in text.splitlines() if "would_send" in line)
    assert line.split()[1] == "2"
    assert "(ok)" in text


def test_skipped_replay_joins_the_accounting_identity():
    counts = dict(BALANCED, read=107, skipped_replay=7)
    summary = build_summary(counts, dry_run=False, elapsed_seconds=1.0)
    assert summary["skipped_replay"] == 7 and summary["balanced"] is True
    assert build_summary(dict(counts, skipped_replay=6), dry_run=False, elapsed_seconds=1.0)["balanced"] is False


def test_format_summary_shows_shares_of_read_and_the_top_dead_letter_reasons():
    text = format_summary(build_summary(BALANCED, dry_run=False, elapsed_seconds=2.0))
    lines = text.splitlines()
    assert next(line for line in lines if line.split()[0] == "delivered_200").split()[1:] == ["60", "60.0%"]
    delivered = next(line for line in lines if line.strip().startswith("delivered "))
    assert delivered.split()[1:3] == ["68", "68.0%"]
    dead = next(line for line in lines if line.strip().startswith("dead-lettered"))
    # Largest first: rejected 5, invalid 3, too_large 1, retries_exhausted 1.
    assert dead.split("top reasons: ")[1] == "rejected 5, invalid 3, too_large 1, retries_exhausted 1"
    filtered = next(line for line in lines if line.strip().startswith("filtered"))
    assert "consent_denied 10, consent_missing 6, dropped_unmapped 4, unsupported 2" in filtered
    assert all(line == line.rstrip() for line in lines)


def test_failed_deliveries_are_summed_by_cause_top_three_first():
    counts = dict(BALANCED, **{"failure_cause/rejected: HTTP 400 from h:1": 5,
                               "failure_cause/retries_exhausted: connection refused by h:1": 1,
                               "failure_cause/retries_exhausted: HTTP 503 from h:1": 2,
                               "failure_cause/rejected: h:1 not found (DNS)": 1})
    summary = build_summary(counts, dry_run=False, elapsed_seconds=1.0)
    assert summary["failure_causes"] == [
        {"outcome": "rejected", "cause": "HTTP 400 from h:1", "count": 5},
        {"outcome": "retries_exhausted", "cause": "HTTP 503 from h:1", "count": 2},
        {"outcome": "rejected", "cause": "h:1 not found (DNS)", "count": 1}]
    text = format_summary(summary)
    assert "  failed deliveries, top causes:\n    rejected 5: HTTP 400 from h:1\n" in text
    assert "failed deliveries" not in format_summary(build_summary(BALANCED, dry_run=False, elapsed_seconds=1.0))


def test_an_interrupted_run_counts_what_reached_no_outcome_as_not_processed():
    counts = dict(BALANCED, read=130)
    assert not build_summary(counts, dry_run=False, elapsed_seconds=1.0)["balanced"]
    summary = build_summary(counts, dry_run=False, elapsed_seconds=1.0, interrupted=True)
    assert (summary["interrupted"], summary["not_processed"], summary["balanced"]) == (True, 30, True)
    text = format_summary(summary)
    assert "  interrupted: 30 events not processed\n" in text
    assert "  accounting: read 130 = outcomes 100 + not processed 30 (ok)" in text


def test_the_files_written_close_the_table():
    summary = build_summary(BALANCED, dry_run=False, elapsed_seconds=1.0, run_id="20261201T000000Z-abcd")
    summary["files"] = ["out/dead/dead_letters-20261201T000000Z-abcd-00000-of-00001.jsonl", "out/summary.json"]
    assert format_summary(summary).endswith(
        "  files written:\n    out/dead/dead_letters-20261201T000000Z-abcd-00000-of-00001.jsonl\n    out/summary.json")


def test_an_interrupted_run_says_when_the_input_was_not_read_to_the_end():
    summary = build_summary(BALANCED, dry_run=False, elapsed_seconds=1.0, interrupted=True)
    summary["input_read_to_the_end"] = False
    assert "  interrupted: 0 events not processed; the rest of the input was not read\n" in format_summary(summary)
