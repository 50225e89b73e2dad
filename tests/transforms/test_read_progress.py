"""Bytes read for the progress line (transforms/read_events.py, ``count_progress``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter

from tests.conftest import batch_pipeline
from transforms.counters import NAMESPACE, process_tally
from transforms.read_events import (
    BYTES_READ,
    BYTES_READ_EVERY,
    ReadEvents,
    counting_bytes,
    input_bytes,
    json_line_records,
)


def write_inputs(folder: Path) -> None:
    lines = [json.dumps({"type": "track", "event": "E", "anonymousId": f"a-{i}", "n": i}) for i in range(2500)]
    (folder / "plain.jsonl").write_text("\n".join(lines[:1200]) + "\n")
    with gzip.open(folder / "packed.jsonl.gz", "wt") as handle:
        handle.write("\n".join(lines[1200:]) + "\n")
    pq.write_table(pa.table({"type": ["page"] * 50, "anonymousId": [f"p-{i}" for i in range(50)]}),
                   folder / "rows.parquet")


def bytes_counted(count_progress: bool, pattern: str) -> int:
    pipeline = batch_pipeline()
    _ = pipeline | ReadEvents(pattern, count_progress=count_progress)
    result = pipeline.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(BYTES_READ))
    return sum(int(counter.committed or 0) for counter in query["counters"])


def test_the_delivering_read_counts_every_file_byte_as_stored(tmp_path):
    write_inputs(tmp_path)
    on_disk = sum(path.stat().st_size for path in tmp_path.iterdir())
    pattern = str(tmp_path / "*")
    assert input_bytes(pattern) == on_disk
    parquet = (tmp_path / "rows.parquet").stat().st_size
    assert input_bytes(f"{tmp_path / '*.jsonl'},{tmp_path / '*.gz'}") == on_disk - parquet
    assert bytes_counted(True, pattern) == on_disk  # the .gz file by its compressed size
    assert bytes_counted(False, pattern) == 0  # the read for identity counts nothing


def test_bytes_are_counted_as_the_file_is_read_never_past_its_size(tmp_path):
    path = tmp_path / "packed.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:  # barely compressed: gzip reads it in several chunks
        handle.write(b"".join(json.dumps({"n": i, "pad": str(i) * 40}).encode() + b"\n" for i in range(5000)))
    file_size = path.stat().st_size
    before = process_tally().get(BYTES_READ, 0)
    seen = []
    with path.open("rb") as handle:
        for number, _ in enumerate(counting_bytes(json_line_records(handle, str(path)), handle, file_size,
                                                  by_offset=True), start=1):
            if number % BYTES_READ_EVERY == 1:
                seen.append(process_tally().get(BYTES_READ, 0) - before)
    # It grew while the file was read, by the compressed offset (gzip reads ahead of the lines).
    assert seen == sorted(seen) and len(set(seen)) > 2
    assert seen[0] == 0 and seen[len(seen) // 2] < file_size
    assert process_tally().get(BYTES_READ, 0) - before == file_size
