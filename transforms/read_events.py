"""Read: input files (JSON lines, optionally gzipped, or Parquet) → ``RawInput`` records.

The per-format readers take any open binary file, so the operator tools (``records_from_path``)
read a local file exactly as the job reads it.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, BinaryIO

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import interruption
from transforms.counters import counter
from transforms.rules.events import UTF8_BOM, RawInput, json_decoder

TEXT_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".parq")
PARQUET_BATCH_ROWS = 4096
SUPPORTED_INPUTS = ".jsonl .ndjson .json (also .gz), .parquet .parq"  # for messages: is_supported_input
# Progress (pipeline/progress.py): bytes of input files read so far, a counter beside the summary's.
BYTES_READ = "input_bytes_read"
BYTES_READ_EVERY = 100  # records between two looks at the file offset
# The job's own JSON rules (no NaN, no infinities) for telling a JSON array or object apart.
_DECODER = json_decoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def is_supported_input(path: str) -> bool:
    """Whether a file name is one the job reads: JSON lines (optionally gzipped) or Parquet."""
    name = path.lower()
    return name.endswith(PARQUET_SUFFIXES) or name.removesuffix(".gz").endswith(TEXT_SUFFIXES)


def input_format(path: str) -> str:
    """``parquet`` or ``jsonl`` from a file name (the launcher refuses names ``is_supported_input`` rejects)."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "parquet" if name.endswith(PARQUET_SUFFIXES) else "jsonl"


def json_line_records(stream: BinaryIO, path: str, read_at_ms: int | None = None) -> Iterator[RawInput]:
    """Every non-blank line of an open JSON-lines file as ``path:line`` (``.gz`` decompressed by its name)."""
    # Beam's own decompressing reader splits lines in Python; gzip's does it in C.
    lines = gzip.GzipFile(fileobj=stream) if path.lower().endswith(".gz") else stream
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield RawInput(line.rstrip(b"\r\n"), f"{path}:{number}", fallback_time_ms=read_at_ms)


def _complete_json(line: bytes) -> bool:
    """Whether one line is a whole JSON value by itself (a JSON-lines record)."""
    try:
        _DECODER.decode(line.decode("utf-8").lstrip("\ufeff"))
    except (ValueError, RecursionError):
        return False
    return True


def _skip_space(text: str, position: int) -> int:
    """The position of the first character from ``position`` on that is not JSON whitespace."""
    space = _WHITESPACE.match(text, position)
    return space.end() if space is not None else position


def _array_items(text: str) -> list[tuple[int, str]] | None:
    """Each item of a JSON array as the exact text it was read from, with its index; None when
    ``text`` does not start as a JSON array (then it is read as JSON lines).

    Where the array stops being JSON (an item that is not, a missing comma, a missing ``]``,
    anything after it), the rest of the text from there is one more item: the job refuses it as
    ``invalid_json``, a counted dead letter, and the items before it are read as usual.
    """
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        return None
    items: list[tuple[int, str]] = []
    position = _skip_space(text, position + 1)
    if text.startswith("]", position):
        position = _skip_space(text, position + 1)
        return items + [(0, text[position:])] if position < len(text) else items
    while True:
        try:
            _, end = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            break  # not JSON from here on: nothing tells where a next item would start
        items.append((len(items), text[position:end]))
        position = _skip_space(text, end)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
        elif text.startswith("]", position):
            position = _skip_space(text, position + 1)
            if position == len(text):
                return items
            break
        else:
            break
    items.append((len(items), text[position:]))
    return items


def json_document_records(stream: BinaryIO, path: str, read_at_ms: int | None = None) -> Iterator[RawInput]:
    """The records of a ``.json`` file (docs/behaviour.md#input-events): a JSON array gives each of its
    items as ``path[index]`` (from 0); one object, however it is laid out over lines, is one record
    (``path:line`` of its first line); anything else is read as JSON lines, so malformed input
    stays a counted dead letter per line. A JSON-lines file named ``.json`` is still read line by line,
    as it is read: only an array, or an object spread over lines, is read whole."""
    lines = iter(gzip.GzipFile(fileobj=stream) if path.lower().endswith(".gz") else stream)
    head: list[bytes] = []  # the lines up to the first that is not blank
    first = b""
    for line in lines:
        first = (line if head else line.removeprefix(UTF8_BOM)).strip()
        head.append(line)
        if first:
            break
    if not (first.startswith(b"[") or (first.startswith(b"{") and not _complete_json(first))):
        yield from _numbered_lines(chain(head, lines), path, read_at_ms)
        return
    whole = b"".join(chain(head, lines))
    try:
        text = whole.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError:
        text = None
    items = _array_items(text) if text is not None and first.startswith(b"[") else None
    if items is not None:
        for index, item in items:
            yield RawInput(item, f"{path}[{index}]", fallback_time_ms=read_at_ms)
        return
    if text is not None and first.startswith(b"{") and _is_one_object(text):
        yield RawInput(text.strip(), f"{path}:{len(head)}", fallback_time_ms=read_at_ms)
        return
    yield from _numbered_lines(whole.splitlines(keepends=True), path, read_at_ms)


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(_DECODER.decode(text), dict)
    except (ValueError, RecursionError):
        return False


def _numbered_lines(lines: Iterable[bytes], path: str, read_at_ms: int | None) -> Iterator[RawInput]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield RawInput(line.rstrip(b"\r\n"), f"{path}:{number}", fallback_time_ms=read_at_ms)


def parquet_row_records(stream: BinaryIO, path: str, read_at_ms: int | None = None) -> Iterator[RawInput]:
    """Every row of an open Parquet file as a dict, ``path#row`` (struct columns arrive as nested dicts)."""
    import pyarrow.parquet as pq  # imported here: only Parquet inputs pay for it

    number = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield RawInput(row, f"{path}#{number}", fallback_time_ms=read_at_ms)


def file_records(stream: BinaryIO, path: str, read_at_ms: int | None = None) -> Iterator[RawInput]:
    """The records of one open file, by the format its name says; ``read_at_ms`` dates events without a time."""
    if input_format(path) == "parquet":
        return parquet_row_records(stream, path, read_at_ms)
    if path.lower().removesuffix(".gz").endswith(".json"):
        return json_document_records(stream, path, read_at_ms)
    return json_line_records(stream, path, read_at_ms)


def records_from_path(path: str) -> Iterator[RawInput]:
    """The records of one file (local or ``gs://``), as the job reads them, for the operator tools."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        yield from file_records(handle, path)


def is_folder(path: str) -> bool:
    """A path that names a folder: it ends in ``/``, or is a local directory."""
    return path.endswith(("/", os.sep)) or ("://" not in path and os.path.isdir(path))


def event_files(pattern: str) -> tuple[list[str], int]:
    """The event files a path names, local or ``gs://``: a file, a glob's matches, or a folder's
    files (one level); and how many files it matched in all, event files or not."""
    query = pattern.rstrip("/" + os.sep) + "/*" if is_folder(pattern) else pattern
    matched = [m.path for m in FileSystems.match([query])[0].metadata_list
               if "://" in m.path or not os.path.isdir(m.path)]
    return sorted(path for path in matched if is_supported_input(path)), len(matched)


def split_patterns(file_patterns: str) -> list[str]:
    """The comma-separated patterns of ``--input``, as ``ReadEvents`` matches them."""
    return [p.strip() for p in file_patterns.split(",") if p.strip()]


def input_bytes(file_patterns: str) -> int:
    """The size of every file ``ReadEvents(file_patterns)`` reads, local or ``gs://``, as stored
    (a ``.gz`` file counts its compressed size); a file matched by two patterns counts once, as it
    is read once."""
    sizes = {m.path: m.size_in_bytes for pattern in split_patterns(file_patterns)
             for m in FileSystems.match([pattern])[0].metadata_list}
    return sum(sizes.values())


def counting_bytes(records: Iterator[RawInput], handle: BinaryIO, size: int, by_offset: bool) -> Iterator[RawInput]:
    """``records`` unchanged, adding the bytes of the file read so far to the ``BYTES_READ`` counter.

    ``by_offset``: every ``BYTES_READ_EVERY`` records the file offset counts (for ``.gz`` the
    compressed offset, as far as gzip has read ahead); otherwise (Parquet, whose reader seeks)
    the file counts when its last record is read. Either way a file adds exactly ``size``.
    """
    bytes_read = counter(BYTES_READ)
    counted = 0
    for number, record in enumerate(records, start=1):
        yield record
        if by_offset and number % BYTES_READ_EVERY == 0:
            offset = min(handle.tell(), size)
            if offset > counted:
                bytes_read.inc(offset - counted)
                counted = offset
    if size > counted:
        bytes_read.inc(size - counted)


def read_records(
    readable: fileio.ReadableFile, read_at_ms: int | None = None, count_progress: bool = False
) -> Iterator[RawInput]:
    """The records of one file matched by Beam; ``count_progress`` counts its bytes as they are read."""
    path = readable.metadata.path
    with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        records = file_records(handle, path, read_at_ms)
        if count_progress:
            records = counting_bytes(records, handle, readable.metadata.size_in_bytes,
                                     by_offset=input_format(path) == "jsonl")
        for record in records:
            if interruption.stop_requested():  # Ctrl-C: the rest is not read (a resumed run reads it all)
                interruption.note_input_cut_short()
                return
            yield record


def _any_one(same_file: Iterable[Any]) -> Any:
    return next(iter(same_file))


class ReadEvents(beam.PTransform):
    """Read every file matching the comma-separated glob patterns into ``RawInput`` records.

    An event without a ``timestamp`` takes ``read_at_ms`` (the job's start: one time for the whole
    job, so the two reads of a batch job agree on it), else the time it is parsed.
    ``count_progress`` counts the bytes read (``BYTES_READ``) for the progress line: set it on one
    read only, the one whose events are delivered, so that the count ends at ``input_bytes``.
    """

    def __init__(self, file_patterns: str, read_at_ms: int | None = None, count_progress: bool = False) -> None:
        super().__init__()
        self.patterns = split_patterns(file_patterns)
        self.read_at_ms = read_at_ms
        self.count_progress = count_progress

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            # A file two patterns match is read once: its events are not sent twice.
            | "KeyByPath" >> beam.Map(lambda metadata: (metadata.path, metadata))
            | "EachFileOnce" >> beam.CombinePerKey(_any_one)
            | "Files" >> beam.Values()
            | "OpenFiles" >> fileio.ReadMatches()
            | "ReadRecords" >> beam.FlatMap(read_records, self.read_at_ms, self.count_progress)
        )
