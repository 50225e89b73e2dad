"""Builds the job's graph: Read → Parse → Consent → Identity → (Select to send) → Map to Woopra → Deliver
→ Dead letter.

Each step is one composite transform of ``transforms/``; every step's dead letters (events it
could not handle) go to the one dead-letter step. Select to send is there for a backfill's
``--start``/``--end`` and ``--ledger`` only (docs/backfill.md). With ``--sink import`` Map to Woopra →
Deliver is replaced by Group into visits → Send imports (Woopra's Import API, docs/backfill.md#the-import-sink).
"""

from __future__ import annotations

import time

import apache_beam as beam

from pipeline.job_settings import JobSettings
from transforms import (
    ConsentFilter,
    CountPerMinute,
    DeliverToWoopra,
    EnrichIdentity,
    MapToWoopra,
    ParseEvents,
    ReadEvents,
    ReadPubSubEvents,
    SelectToSend,
    WriteDeadLetters,
)
from transforms.delivery.ledger import delivered_files
from transforms.import_visits import GroupIntoVisits
from transforms.rejected_visits import DeadLetterNotImported
from transforms.send_imports import NOT_IMPORTED, SendImports


def read_source(job: JobSettings, read_at_ms: int | None = None, count_progress: bool = False) -> beam.PTransform:
    """The read transform for the job's source: the rest of the graph does not know which.

    ``count_progress``: the read whose bytes the progress line reports (a batch job reads twice).
    """
    if job.source_kind == "files":
        return ReadEvents(job.source, read_at_ms, count_progress=count_progress)
    return ReadPubSubEvents(
        subscription=job.source if job.source_kind == "subscription" else None,
        topic=job.source if job.source_kind == "topic" else None,
        timestamp_attribute=job.timestamp_attribute,
        id_label=job.id_label,
    )


def build_pipeline(pipeline: beam.Pipeline, job: JobSettings) -> beam.Pipeline:
    """Add the delivery graph for ``job`` to ``pipeline`` and return it (not run)."""
    # One read time for the whole job, so both reads of a batch job date undated events alike.
    started_ms = int(time.time() * 1000)
    raw = pipeline | "Read" >> read_source(job, started_ms, count_progress=True)
    parsed = raw | "Parse" >> ParseEvents(job.replay_reasons)
    consented = parsed.events | "Consent" >> ConsentFilter(job.consent)
    enriched = consented.events | "Identity" >> EnrichIdentity(
        job.identity_ttl_days, first_read=read_source(job, started_ms), consent=job.consent,
        replay_reasons=job.replay_reasons, join=job.identity_join, dedup_window_seconds=job.dedup_window_seconds)
    to_send = enriched.events
    if job.time_range.bounded or job.ledger:
        # The ledger as it is at launch: what this run delivers is not skipped by this run.
        ledger_files = delivered_files(job.ledger) if job.ledger else []
        to_send = to_send | "SelectToSend" >> SelectToSend(job.time_range, tuple(ledger_files))
    if job.imports is not None:
        sent, sending_dead_letters = import_visits(to_send, job, read_source(job, started_ms))
    else:
        mapped = to_send | "MapToWoopra" >> MapToWoopra(job.woopra)
        delivered = mapped.requests | "Deliver" >> DeliverToWoopra(
            job.delivery, dry_run_path=job.dry_run, window_seconds=job.file_window_seconds, run_id=job.run_id,
            ledger=job.ledger)
        sent, sending_dead_letters = delivered.delivered, [mapped.dead_letters, delivered.dead_letters]
    dead_letters = (
        (parsed.dead_letters, consented.dead_letters, enriched.dead_letters, *sending_dead_letters)
        | "CollectDeadLetters" >> beam.Flatten()
    )
    _ = dead_letters | "DeadLetter" >> WriteDeadLetters(job.dead_letter, job.file_window_seconds, job.run_id)
    if job.report:
        # Side branch for the HTML run report (pipeline/tools/report.py): counts per minute of event time.
        _ = (sent, dead_letters) | "ReportCounts" >> CountPerMinute(job.report)
    return pipeline


def import_visits(events: beam.PCollection, job: JobSettings,
                  read_again: beam.PTransform) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """``--sink import``: Group into visits → Send imports (→ the dead letters of visits not imported, from
    ``read_again``); returns what was sent and the dead letters."""
    imports = job.imports
    assert imports is not None
    grouped = events | "GroupIntoVisits" >> GroupIntoVisits(job.woopra, imports.max_bytes, imports.max_visits)
    sent = grouped["bodies"] | "SendImports" >> SendImports(
        imports.delivery, imports.credentials, dry_run_path=job.dry_run, run_id=job.run_id, ledger=job.ledger,
        spread_over_workers=job.delivery.spread_over_workers)
    if job.dry_run:
        return sent.imported, [grouped["dead_letters"]]
    not_imported = sent[NOT_IMPORTED] | "DeadLetterNotImported" >> DeadLetterNotImported(
        read_again, imports.delivery, job.replay_reasons)
    return sent.imported, [grouped["dead_letters"], not_imported]
