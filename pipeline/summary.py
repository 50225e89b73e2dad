"""The end-of-run summary (docs/behaviour.md#summary): counts from the job's Beam counters, and their check."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from pipeline.files import write_text
from transforms.counters import NAMESPACE
from transforms.rules.failure_cause import CAUSE_COUNTER_PREFIX
from transforms.rules.outcomes import (
    DRY_RUN_OUTCOMES,
    IMPORT_CALLS,
    READ,
    RETRIED_REQUESTS,
    RUN_OUTCOMES,
    Group,
    Outcome,
    group_outcomes,
)

# Where each read event ended up: these add up to ``read`` (transforms/rules/outcomes.py).
OUTCOME_KEYS = tuple(str(outcome) for outcome in RUN_OUTCOMES)
SUMMARY_KEYS = (READ,) + OUTCOME_KEYS + (RETRIED_REQUESTS,)
DRY_RUN_KEY = str(Outcome.WOULD_SEND)
DRY_RUN_KEYS = tuple(str(outcome) for outcome in DRY_RUN_OUTCOMES)  # would_send, would_import
DEAD_LETTER_KEYS = tuple(str(outcome) for outcome in group_outcomes(Group.DEAD_LETTERED, dry_run=False))
TOP_CAUSES = 3  # failed deliveries' causes named in the summary


def counters_from_result(result: PipelineResult) -> dict[str, int]:
    """Every counter of the job's namespace, by name (committed values, attempted as fallback)."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts: dict[str, int] = {}
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + int(value or 0)
    return counts


def failure_causes(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Failed deliveries by outcome and cause (``failure_cause/<outcome>: <cause>`` counters), most first."""
    causes: list[tuple[int, str, str]] = []
    for name, count in counts.items():
        if name.startswith(CAUSE_COUNTER_PREFIX) and count:
            outcome, _, cause = name[len(CAUSE_COUNTER_PREFIX):].partition(": ")
            causes.append((-int(count), outcome, cause))
    return [{"outcome": outcome, "cause": cause, "count": -negative}
            for negative, outcome, cause in sorted(causes)[:TOP_CAUSES]]


def build_summary(
    counts: Mapping[str, int], dry_run: bool, elapsed_seconds: float, run_id: str = "", interrupted: bool = False
) -> dict[str, Any]:
    """The summary object: every key present, the accounting identity checked.

    ``run_id`` is in the name of every file the run wrote (dead letters, dry-run requests). An
    ``interrupted`` run counts the events read that reached no outcome as ``not_processed``.
    """
    summary: dict[str, Any] = {key: int(counts.get(key, 0)) for key in SUMMARY_KEYS}
    if dry_run:
        summary.update({key: int(counts.get(key, 0)) for key in DRY_RUN_KEYS})
    if IMPORT_CALLS in counts:
        summary[IMPORT_CALLS] = int(counts[IMPORT_CALLS])
    accounted = sum(summary[key] for key in OUTCOME_KEYS) + sum(summary.get(key, 0) for key in DRY_RUN_KEYS)
    summary["dead_lettered"] = sum(summary[k] for k in DEAD_LETTER_KEYS)
    summary["accounted"] = accounted
    summary["interrupted"] = interrupted
    summary["not_processed"] = max(0, summary["read"] - accounted) if interrupted else 0
    summary["balanced"] = accounted + summary["not_processed"] == summary["read"]
    summary["failure_causes"] = failure_causes(counts)
    summary["dry_run"] = dry_run
    summary["elapsed_seconds"] = round(elapsed_seconds, 3)
    summary["events_per_second"] = round(summary["read"] / elapsed_seconds, 1) if elapsed_seconds > 0 else 0.0
    if run_id:
        summary["run_id"] = run_id
    return summary


def percent_of_read(count: int, read: int) -> str:
    """``count`` as a share of ``read``, e.g. ``59.3%``; empty when there is nothing to share."""
    return f"{100.0 * count / read:.1f}%" if read and count else ""


def outcome_groups(summary: Mapping[str, Any]) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """Sent / dead-lettered / filtered totals, each with its non-zero keys, largest first."""
    dry_run = bool(summary.get("dry_run"))
    groups = []
    for group in Group:
        title = ("would send" if dry_run else "delivered") if group is Group.SENT else str(group)
        keys = group_outcomes(group, dry_run)
        parts = sorted(((str(key), int(summary.get(key, 0))) for key in keys if summary.get(key)),
                       key=lambda part: -part[1])
        groups.append((title, sum(count for _, count in parts), parts))
    return groups


def format_summary(summary: Mapping[str, Any]) -> str:
    """A readable table of the summary: every count with its share of ``read``, then the totals."""
    read = int(summary["read"])
    rows = [("read", read)]
    rows += [(key, summary[key]) for key in OUTCOME_KEYS]
    if summary.get("dry_run"):
        rows += [(key, summary.get(key, 0)) for key in DRY_RUN_KEYS]
    width = max(len(name) for name, _ in rows + [("retried_requests", 0)])
    lines = ["Woopra delivery summary" + (" (dry run)" if summary.get("dry_run") else "")]
    lines.append(f"  {'':<{width}}  {'events':>10}  {'of read':>7}")
    lines += [f"  {name:<{width}}  {value:>10,}  {percent_of_read(value, read) if name != 'read' else '':>7}"
              for name, value in rows]
    lines.append(f"  {'retried_requests':<{width}}  {summary['retried_requests']:>10,}  (extra attempts)")
    lines.append("  " + "-" * (width + 21))
    for title, total, parts in outcome_groups(summary):
        # A lone key spelled like its group (would_send) needs no breakdown.
        detail = ", ".join(f"{key} {count:,}" for key, count in parts) if len(parts) > 1 or (
            parts and parts[0][0].replace("_", " ") != title) else ""
        label = "top reasons: " if title == "dead-lettered" and parts else ""
        lines.append(f"  {title:<{width}}  {total:>10,}  {percent_of_read(total, read):>7}"
                     + (f"  {label}{detail}" if detail else ""))
    if summary.get("failure_causes"):
        lines.append("  failed deliveries, top causes:")
        lines += [f"    {c['outcome']} {c['count']:,}: {c['cause']}" for c in summary["failure_causes"]]
    check = "ok" if summary["balanced"] else "MISMATCH"
    if summary.get("interrupted"):
        unread = "" if summary.get("input_read_to_the_end", True) else "; the rest of the input was not read"
        lines.append(f"  interrupted: {summary['not_processed']:,} events not processed{unread}")
        lines.append(f"  accounting: read {summary['read']:,} = outcomes {summary['accounted']:,}"
                     f" + not processed {summary['not_processed']:,} ({check})")
    else:
        lines.append(f"  accounting: read {summary['read']:,} = outcomes {summary['accounted']:,} ({check})")
    lines.append(f"  time: {summary['elapsed_seconds']:.1f} s, {summary['events_per_second']:,.1f} events/s")
    if summary.get("run_id"):
        lines.append(f"  run: {summary['run_id']} (in the names of this run's dead-letter and dry-run files)")
    if summary.get("files"):
        lines.append("  files written:")
        lines += [f"    {path}" for path in summary["files"]]
    return "\n".join(line.rstrip() for line in lines)


def write_summary(summary: Mapping[str, Any], path: str) -> None:
    """Write the summary as JSON to a local file (its folder created) or ``gs://``."""
    write_text(path, json.dumps(summary, indent=2, sort_keys=False) + "\n", mime_type="application/json")
