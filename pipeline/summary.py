"""The end-of-run summary (SPEC §8): counts from the job's Beam counters, and their check."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from transforms.counters import NAMESPACE

# Where each read event ended up: these add up to ``read``.
OUTCOME_KEYS = (
    "invalid", "too_large", "consent_denied", "consent_missing", "unsupported", "dropped_unmapped",
    "delivered_200", "delivered_202", "rejected", "retries_exhausted",
)
SUMMARY_KEYS = ("read",) + OUTCOME_KEYS + ("retried_requests",)
DRY_RUN_KEY = "would_send"


def counters_from_result(result: PipelineResult) -> dict[str, int]:
    """Every counter of the job's namespace, by name (committed values, attempted as fallback)."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts: dict[str, int] = {}
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + int(value or 0)
    return counts


def build_summary(counts: Mapping[str, int], dry_run: bool, elapsed_seconds: float) -> dict[str, Any]:
    """The summary object: every key present, the accounting identity checked."""
    summary: dict[str, Any] = {key: int(counts.get(key, 0)) for key in SUMMARY_KEYS}
    if dry_run:
        summary[DRY_RUN_KEY] = int(counts.get(DRY_RUN_KEY, 0))
    accounted = sum(summary[key] for key in OUTCOME_KEYS) + summary.get(DRY_RUN_KEY, 0)
    summary["dead_lettered"] = sum(summary[k] for k in ("invalid", "too_large", "rejected", "retries_exhausted"))
    summary["accounted"] = accounted
    summary["balanced"] = accounted == summary["read"]
    summary["dry_run"] = dry_run
    summary["elapsed_seconds"] = round(elapsed_seconds, 3)
    summary["events_per_second"] = round(summary["read"] / elapsed_seconds, 1) if elapsed_seconds > 0 else 0.0
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of the summary."""
    rows = [("read", summary["read"])]
    rows += [(key, summary[key]) for key in OUTCOME_KEYS]
    if summary.get("dry_run"):
        rows.append((DRY_RUN_KEY, summary[DRY_RUN_KEY]))
    rows.append(("retried_requests", summary["retried_requests"]))
    width = max(len(name) for name, _ in rows)
    lines = ["Woopra delivery summary" + (" (dry run)" if summary.get("dry_run") else "")]
    lines += [f"  {name:<{width}}  {value:>10,}" for name, value in rows]
    check = "ok" if summary["balanced"] else "MISMATCH"
    lines.append(f"  accounting: read {summary['read']:,} = outcomes {summary['accounted']:,} ({check})")
    lines.append(f"  time: {summary['elapsed_seconds']:.1f} s, {summary['events_per_second']:,.1f} events/s")
    return "\n".join(lines)


def write_summary(summary: Mapping[str, Any], path: str) -> None:
    """Write the summary as JSON, creating the parent directory."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=False)
        handle.write("\n")
