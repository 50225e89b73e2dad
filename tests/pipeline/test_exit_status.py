"""Unit tests for pipeline/exit_status.py: the status a finished run's summary deserves (docs/operations.md)."""

from __future__ import annotations

from pipeline import exit_status
from pipeline.summary import build_summary


def status(dry_run: bool = False, interrupted: bool = False, **counts: int) -> int:
    read = counts.pop("read", sum(counts.values()))
    return exit_status.for_summary(build_summary({"read": read, **counts}, dry_run, 1.0, interrupted=interrupted))


def test_delivered_some_is_ok_even_with_dead_letters():
    assert status(delivered_200=1, retries_exhausted=9, invalid=3) == exit_status.OK


def test_nothing_delivered_of_what_was_to_be_sent_is_its_own_status():
    assert status(retries_exhausted=16, invalid=5) == exit_status.NOTHING_DELIVERED == 3
    assert status(rejected=2) == exit_status.NOTHING_DELIVERED


def test_nothing_to_send_is_ok():
    assert status() == exit_status.OK  # an empty input
    assert status(invalid=5, consent_denied=2) == exit_status.OK
    assert status(dry_run=True, would_send=0, invalid=1) == exit_status.OK


def test_interrupted_and_unbalanced():
    assert status(interrupted=True, read=10, delivered_200=3) == exit_status.INTERRUPTED == 130
    assert status(read=10, delivered_200=3) == exit_status.FAILED


def test_help_lists_every_status():
    for code in (exit_status.OK, exit_status.FAILED, exit_status.USAGE, exit_status.NOTHING_DELIVERED,
                 exit_status.INTERRUPTED):
        assert f"\n  {code} " in "\n" + exit_status.HELP.split("\n", 1)[1]
