"""Dead letter: write every undeliverable event, with its reason, where it can be replayed."""

from __future__ import annotations

import apache_beam as beam

from transforms.dead_letters import DeadLetter
from transforms.file_output import WriteJsonLines


class WriteDeadLetters(beam.PTransform):
    """Write ``DeadLetter`` records as JSON lines under a path prefix (SPEC §7)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def expand(self, dead_letters: beam.PCollection) -> beam.pvalue.PDone:
        return (
            dead_letters
            | "ToRecords" >> beam.Map(DeadLetter.to_dict)
            | "Write" >> WriteJsonLines(self.path, "dead_letters")
        )
