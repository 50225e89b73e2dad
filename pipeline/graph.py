"""Builds the job's graph: Read → Parse → Consent → Identity → Map to Woopra → Deliver → Dead letter.

Each step is one composite transform of ``transforms/``; a batch job's identity step reads the
input once more, first (``transforms/enrich_identity.py``).
"""

from __future__ import annotations

import time

import apache_beam as beam

from pipeline.options import JobSettings
from pipeline.report import counts_prefix
from transforms.consent_filter import ConsentFilter
from transforms.deliver import DeliverToWoopra
from transforms.dry_run import WriteDryRun
from transforms.enrich_identity import EnrichIdentity
from transforms.map_to_woopra import MapToWoopra
from transforms.minute_counts import CountPerMinute
from transforms.parse_events import ParseEvents
from transforms.read_events import ReadEvents
from transforms.read_pubsub import ReadPubSubEvents
from transforms.write_dead_letters import WriteDeadLetters


def read_source(job: JobSettings, read_at_ms: int | None = None) -> beam.PTransform:
    """The read transform for the job's source: the rest of the graph does not know which."""
    if job.source_kind == "files":
        return ReadEvents(job.source, read_at_ms)
    return ReadPubSubEvents(
        subscription=job.source if job.source_kind == "subscription" else None,
        topic=job.source if job.source_kind == "topic" else None,
        timestamp_attribute=job.timestamp_attribute,
        id_label=job.id_label,
    )


def build_pipeline(pipeline: beam.Pipeline, job: JobSettings) -> beam.Pipeline:
    """Add the delivery graph for ``job`` to ``pipeline`` and return it (not run)."""
    started_ms = int(time.time() * 1000)
    raw = pipeline | "Read" >> read_source(job, started_ms)
    parsed = raw | "Parse" >> ParseEvents(job.replay_reasons)
    consented = parsed.events | "Consent" >> ConsentFilter(job.consent)
    # A batch job's identity reads the input once more, first (transforms/enrich_identity.py).
    enriched = consented.events | "Identity" >> EnrichIdentity(
        job.identity_ttl_days, read_source(job, started_ms), job.consent, job.replay_reasons)
    mapped = enriched.events | "MapToWoopra" >> MapToWoopra(job.woopra)
    dead_letters = [parsed.dead_letters, consented.dead_letters, enriched.dead_letters, mapped.dead_letters]
    sent = mapped.requests
    if job.dry_run:
        _ = mapped.requests | "DryRun" >> WriteDryRun(job.dry_run, job.file_window_seconds, job.run_id)
    else:
        delivered = mapped.requests | "Deliver" >> DeliverToWoopra(job.delivery)
        dead_letters.append(delivered.dead_letters)
        sent = delivered.delivered
    all_dead_letters = dead_letters | "CollectDeadLetters" >> beam.Flatten()
    _ = all_dead_letters | "DeadLetter" >> WriteDeadLetters(job.dead_letter, job.file_window_seconds, job.run_id)
    if job.report:
        # Side branch for the HTML run report: counts per minute of event time (pipeline/report.py).
        _ = (sent, all_dead_letters) | "ReportCounts" >> CountPerMinute(counts_prefix(job.report))
    return pipeline
