"""The job's exit statuses (docs/operations.md#exit-status), printed at the end of ``--help``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transforms.rules.outcomes import Group, Outcome, group_outcomes

OK = 0  # every event read reached an outcome, and delivery worked (or nothing was to be sent)
FAILED = 1  # the job failed, or its summary does not add up (a bug)
USAGE = 2  # a bad option, config or input path: one `error:` line, nothing run
NOTHING_DELIVERED = 3  # events were to be sent and not one was delivered
INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT) or SIGTERM before the end (128 + SIGINT, as shells do)

HELP = f"""exit status:
  {OK}    every event read reached an outcome (delivered, dead-lettered or filtered) and delivery worked
  {FAILED}    the job failed, or its summary does not add up
  {USAGE}    a usage error: a bad option, config file or input path (nothing was run)
  {NOTHING_DELIVERED}    events were to be sent and not one was delivered (the summary names the causes)
  {INTERRUPTED}  interrupted by Ctrl-C or SIGTERM (the summary says what was not processed)"""


def for_summary(summary: Mapping[str, Any]) -> int:
    """The exit status a finished local run's summary deserves."""
    if summary.get("interrupted"):
        return INTERRUPTED
    if not summary["balanced"]:
        return FAILED
    if summary.get("dry_run"):
        return OK
    sent = sum(int(summary.get(str(o), 0)) for o in group_outcomes(Group.SENT, dry_run=False))
    failed = sum(int(summary.get(str(o), 0)) for o in (Outcome.REJECTED, Outcome.RETRIES_EXHAUSTED))
    return NOTHING_DELIVERED if failed and not sent else OK
