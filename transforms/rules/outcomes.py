"""Outcomes: where each read event ends, named once for the whole project (pure, no Beam).

Every read event ends as exactly one ``Outcome``; the outcomes add up to ``read`` in the summary
(docs/behaviour.md, "Summary"). The counters, the summary, the progress line, the run report,
the debugger and the dead-letter tool all take their names, groups and meanings from here, so a
new outcome is added in this file only.
"""

from __future__ import annotations

from enum import StrEnum

READ = "read"  # the counter every outcome adds up to
RETRIED_REQUESTS = "retried_requests"  # extra attempts: a count of requests, not of events
IMPORT_CALLS = "import_calls"  # --sink import: POSTs made (a dry run: bodies written); not an outcome


class Group(StrEnum):
    """How the summary, the progress line and the report group outcomes."""

    SENT = "sent"
    DEAD_LETTERED = "dead-lettered"
    FILTERED = "filtered"


class Outcome(StrEnum):
    """One read event's end; the value is its summary key and its Beam counter's name."""

    INVALID = "invalid"
    TOO_LARGE = "too_large"
    CONSENT_DENIED = "consent_denied"
    CONSENT_MISSING = "consent_missing"
    UNSUPPORTED = "unsupported"
    DROPPED_UNMAPPED = "dropped_unmapped"
    SKIPPED_REPLAY = "skipped_replay"
    DUPLICATE = "duplicate"
    SKIPPED_LEDGER = "skipped_ledger"
    OUT_OF_RANGE = "out_of_range"
    DELIVERED_200 = "delivered_200"
    DELIVERED_202 = "delivered_202"
    REJECTED = "rejected"
    RETRIES_EXHAUSTED = "retries_exhausted"
    IMPORTED = "imported"  # --sink import: Woopra's Import API accepted the body holding its visit
    WOULD_SEND = "would_send"  # a dry run's stand-in for the delivered outcomes
    WOULD_IMPORT = "would_import"  # --sink import, dry run: its visit is in a body written instead of sent

    @property
    def group(self) -> Group:
        """Sent, dead-lettered or filtered."""
        return _GROUPS[self]

    @property
    def meaning(self) -> str:
        """What the outcome means for the event, in a few words (the debugger shows it)."""
        return _MEANINGS[self]

    @property
    def delivered(self) -> bool:
        """True when Woopra accepted the request."""
        return self in (Outcome.DELIVERED_200, Outcome.DELIVERED_202, Outcome.IMPORTED)


_GROUPS = {
    Outcome.INVALID: Group.DEAD_LETTERED,
    Outcome.TOO_LARGE: Group.DEAD_LETTERED,
    Outcome.CONSENT_DENIED: Group.FILTERED,
    Outcome.CONSENT_MISSING: Group.FILTERED,
    Outcome.UNSUPPORTED: Group.FILTERED,
    Outcome.DROPPED_UNMAPPED: Group.FILTERED,
    Outcome.SKIPPED_REPLAY: Group.FILTERED,
    Outcome.DUPLICATE: Group.FILTERED,
    Outcome.SKIPPED_LEDGER: Group.FILTERED,
    Outcome.OUT_OF_RANGE: Group.FILTERED,
    Outcome.DELIVERED_200: Group.SENT,
    Outcome.DELIVERED_202: Group.SENT,
    Outcome.REJECTED: Group.DEAD_LETTERED,
    Outcome.RETRIES_EXHAUSTED: Group.DEAD_LETTERED,
    Outcome.IMPORTED: Group.SENT,
    Outcome.WOULD_SEND: Group.SENT,
    Outcome.WOULD_IMPORT: Group.SENT,
}
_MEANINGS = {
    Outcome.INVALID: "the job writes a dead letter",
    Outcome.TOO_LARGE: "the job writes a dead letter (too_large)",
    Outcome.CONSENT_DENIED: "filtered by consent: counted, not sent, not a dead letter",
    Outcome.CONSENT_MISSING: "filtered by consent: counted, not sent, not a dead letter",
    Outcome.UNSUPPORTED: "counted, not sent",
    Outcome.DROPPED_UNMAPPED: "counted, not sent (config unmapped_events: drop)",
    Outcome.SKIPPED_REPLAY: "counted, not replayed",
    Outcome.DUPLICATE: "another copy of this event (same id) is sent instead: counted, not sent",
    Outcome.SKIPPED_LEDGER: "an earlier run delivered this event (its visitor and id are in --ledger): "
                            "counted, not sent",
    Outcome.OUT_OF_RANGE: "its event time is outside --start/--end: counted, not sent",
    Outcome.DELIVERED_200: "Woopra processed it",
    Outcome.DELIVERED_202: "Woopra queued it (normal under load; not retried)",
    Outcome.REJECTED: "Woopra refused it: the job does not retry, it writes a dead letter (rejected)",
    Outcome.RETRIES_EXHAUSTED: "a retryable failure: the job retries it up to --max_attempts, then writes a dead "
                               "letter (retries_exhausted)",
    Outcome.IMPORTED: "imported: Woopra's Import API accepted the body holding its visit (--sink import)",
    Outcome.WOULD_SEND: "the job would send the request above",
    Outcome.WOULD_IMPORT: "a dry run of --sink import: its visit is in a body written instead of sent",
}

# A dry run's sent outcomes: WOULD_SEND (tracking) and WOULD_IMPORT (--sink import) take the place
# of the delivered ones.
DRY_RUN_OUTCOMES = (Outcome.WOULD_SEND, Outcome.WOULD_IMPORT)
# Summary order: the outcomes of a real run.
RUN_OUTCOMES = tuple(o for o in Outcome if o not in DRY_RUN_OUTCOMES)


def group_outcomes(group: Group, dry_run: bool) -> tuple[Outcome, ...]:
    """The outcomes of ``group`` in a run (``dry_run``: the DRY_RUN_OUTCOMES are the only sent ones)."""
    if group is Group.SENT:
        return DRY_RUN_OUTCOMES if dry_run else (Outcome.DELIVERED_200, Outcome.DELIVERED_202, Outcome.IMPORTED)
    return tuple(o for o in RUN_OUTCOMES if o.group is group)


def delivered_outcome(status: int) -> Outcome:
    """The outcome of a 2xx answer: 202 is queued, every other 2xx processed."""
    return Outcome.DELIVERED_202 if status == 202 else Outcome.DELIVERED_200


class DeadLetterReason(StrEnum):
    """Why an event was dead-lettered: the ``reason`` of its record."""

    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    TOO_LARGE = "too_large"
    REJECTED = "rejected"
    RETRIES_EXHAUSTED = "retries_exhausted"

    @property
    def outcome(self) -> Outcome:
        """The outcome the event is counted under."""
        if self in (DeadLetterReason.INVALID_JSON, DeadLetterReason.INVALID_EVENT):
            return Outcome.INVALID
        return Outcome(self.value)

    @property
    def replayable(self) -> bool:
        """True for failures of sending, worth replaying once Woopra or the config is fixed."""
        return self in (DeadLetterReason.REJECTED, DeadLetterReason.RETRIES_EXHAUSTED)
