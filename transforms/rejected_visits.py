"""Dead letters of visits Woopra did not import (``--sink import``, docs/backfill.md#the-import-sink).

The grouping into visits carries no original events (transforms/rules/import_visits.py, ``ImportCall``):
the events of the few visits Woopra rejected, or whose retries ran out, are found by reading the
input once more, as identity does, and picking the inputs whose ledger key (visitor and event id)
is among those calls. Each becomes one dead letter with Woopra's answer; of several copies of one
id, the first (``first_copy``'s position order) is kept, as it was the one sent. A run whose every
visit was imported reads nothing but the input's lines, and a dry run does not read again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import apache_beam as beam
from apache_beam.pvalue import AsDict

from transforms.delivery.import_sender import ImportDelivery, NotImported, request_record
from transforms.rules.dead_letters import DeadLetter
from transforms.rules.event_id import event_id, ledger_key, position_rank
from transforms.rules.events import Event, RawInput, parse_input


class _MatchNotImportedFn(beam.DoFn):
    def __init__(self, settings: ImportDelivery, replay_reasons: tuple[str, ...] | None) -> None:
        self.settings = settings
        self.replay_reasons = frozenset(replay_reasons) if replay_reasons is not None else None

    def process(self, raw: RawInput, not_imported: Mapping[bytes, NotImported]) -> Iterator[
            tuple[bytes, tuple[int, DeadLetter]]]:
        if not not_imported:
            return
        try:
            event = parse_input(raw, replay_reasons=self.replay_reasons)
        except Exception:  # noqa: BLE001 - the first read dead-lettered this input already
            return
        if not isinstance(event, Event):
            return
        key = ledger_key(event.visitor, event_id(event.original))
        call = not_imported.get(key)
        if call is not None:
            record = DeadLetter(reason=call.reason, error=call.error, event=event.original, status=call.status,
                                response_body=call.response_body, attempts=call.attempts,
                                request=request_record(self.settings), attributes=event.attributes)
            yield key, (position_rank(event.source), record)


def _first_copy(key_copies: tuple[bytes, Iterable[tuple[int, DeadLetter]]]) -> DeadLetter:
    return min(key_copies[1], key=lambda copy: copy[0])[1]


class DeadLetterNotImported(beam.PTransform):
    """``NotImported`` calls → their events' dead letters, from ``read`` (the job's input, read again)."""

    def __init__(self, read: beam.PTransform, settings: ImportDelivery,
                 replay_reasons: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.read = read
        self.settings = settings
        self.replay_reasons = replay_reasons

    def expand(self, not_imported: beam.PCollection) -> beam.PCollection:
        by_key = not_imported | "ByKey" >> beam.Map(lambda call: (call.key, call)).with_output_types(
            tuple[bytes, NotImported])
        matched = (
            not_imported.pipeline
            | "ReadAgain" >> self.read
            | "MatchNotImported" >> beam.ParDo(_MatchNotImportedFn(self.settings, self.replay_reasons),
                                               not_imported=AsDict(by_key))
        )
        return (matched
                | "CopiesOfOneId" >> beam.GroupByKey()
                | "FirstCopy" >> beam.Map(_first_copy).with_output_types(DeadLetter))
