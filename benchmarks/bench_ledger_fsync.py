"""The ledger's fsync at the end of every bundle: what it costs per event (docs/backfill.md).

    python bench_ledger_fsync.py [--keys 100000] [--bundle 500] [--runs 5] [--folder DIR]

Records ``--keys`` keys with ``LedgerWriter`` into a local folder, once calling ``flush()`` (the
fsync) after every ``--bundle`` keys, as the Deliver step does at each bundle's end, and once
never, alternating ``--runs`` times; prints one JSON line with the medians and the cost per fsync
and per event. The folder's disk decides the answer: run it where the ledger will live.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transforms.delivery.ledger import LedgerWriter  # noqa: E402


def record(folder: str, keys: list[bytes], bundle: int | None) -> float:
    writer = LedgerWriter(folder, "bench")
    started = time.perf_counter()
    for n, key in enumerate(keys, start=1):
        writer.record(key)
        if bundle and n % bundle == 0:
            writer.flush()
    elapsed = time.perf_counter() - started
    writer._stop.set()
    writer._finalizer()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--bundle", type=int, default=500, help="keys per bundle (a local streaming pull)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--folder", default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    keys = [os.urandom(16) for _ in range(args.keys)]
    with tempfile.TemporaryDirectory(dir=args.folder) as base:
        synced, unsynced = [], []
        for run in range(args.runs):
            synced.append(record(os.path.join(base, f"s{run}"), keys, args.bundle))
            unsynced.append(record(os.path.join(base, f"u{run}"), keys, None))
    fsyncs = args.keys // args.bundle
    with_sync, without = statistics.median(synced), statistics.median(unsynced)
    print(json.dumps({
        "keys": args.keys, "bundle": args.bundle, "runs": args.runs, "fsyncs_per_run": fsyncs,
        "median_seconds_with_fsync": round(with_sync, 3), "median_seconds_without": round(without, 3),
        "ms_per_fsync": round((with_sync - without) / fsyncs * 1000, 3),
        "us_per_event_for_fsync": round((with_sync - without) / args.keys * 1e6, 2),
        "us_per_event_recording": round(without / args.keys * 1e6, 2),
    }))


if __name__ == "__main__":
    main()
