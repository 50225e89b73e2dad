"""Read: input files (JSON lines, optionally gzipped, or Parquet) → ``RawInput`` records."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes

from transforms.events import RawInput

TEXT_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".parq")
PARQUET_BATCH_ROWS = 4096


def input_format(path: str) -> str:
    """``parquet`` or ``jsonl`` from a file name; anything not Parquet is read as JSON lines."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "parquet" if name.endswith(PARQUET_SUFFIXES) else "jsonl"


def read_json_lines(readable: fileio.ReadableFile) -> Iterator[RawInput]:
    """Every non-blank line of a JSON-lines file (``.gz`` decompressed by its extension)."""
    path = readable.metadata.path
    # Beam's own decompressing reader splits lines in Python; gzip's does it in C.
    with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        lines = gzip.GzipFile(fileobj=handle) if path.lower().endswith(".gz") else handle
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield RawInput(line.rstrip(b"\r\n"), f"{path}:{number}")


def read_parquet_rows(readable: fileio.ReadableFile) -> Iterator[RawInput]:
    """Every row of a Parquet file as a dict (struct columns arrive as nested dicts)."""
    import pyarrow.parquet as pq  # imported here: only Parquet inputs pay for it

    path = readable.metadata.path
    with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        number = 0
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield RawInput(row, f"{path}#{number}")


def read_records(readable: fileio.ReadableFile) -> Iterator[RawInput]:
    """The records of one matched file, by its format."""
    if input_format(readable.metadata.path) == "parquet":
        return read_parquet_rows(readable)
    return read_json_lines(readable)


class ReadEvents(beam.PTransform):
    """Read every file matching the comma-separated glob patterns into ``RawInput`` records."""

    def __init__(self, file_patterns: str) -> None:
        super().__init__()
        self.patterns = [p.strip() for p in file_patterns.split(",") if p.strip()]

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "OpenFiles" >> fileio.ReadMatches()
            | "ReadRecords" >> beam.FlatMap(read_records)
        )
