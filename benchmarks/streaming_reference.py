"""The streaming reference: Beam's streaming DirectRunner alone, none of the job's work.

    python benchmarks/streaming_reference.py SUBSCRIPTION STATUS_FILE [TIMEOUT_SECONDS] [--with_job_fixes]

``ReadFromPubSub`` → ``json.loads`` → a counting DoFn, on ``BundleBasedDirectRunner`` (the runner
``python -m pipeline --streaming`` picks locally), reading SUBSCRIPTION on the emulator named by
PUBSUB_EMULATOR_HOST. Every 50 ms it rewrites STATUS_FILE with
``{"count", "first_at", "last_at"}``: messages counted so far, and the wall clock of the first and
the last. It runs until it is killed, or for TIMEOUT_SECONDS (default 600) at most.

``--with_job_fixes`` gives the reference what the job gives itself on this runner: pulls of up to
500 messages (transforms/read_pubsub.py) and the two per-bundle fixes of pipeline/direct_runner.py,
so the job can also be compared with the fastest a trivial pipeline goes here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions


class DrainTally:
    """Messages counted so far, and when the first and the last were counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def add(self) -> None:
        now = time.time()
        with self.lock:
            self.count += 1
            self.first_at = self.first_at or now
            self.last_at = now


TALLY = DrainTally()


class _CountFn(beam.DoFn):
    def process(self, event: object):  # emits nothing
        # The runner pickles DoFns (a copy of this module's globals would come along): count in
        # the tally of the running script itself, which is this process's __main__.
        sys.modules["__main__"].TALLY.add()


def main() -> None:
    with_job_fixes = "--with_job_fixes" in sys.argv
    argv = [arg for arg in sys.argv if arg != "--with_job_fixes"]
    subscription, status_file = argv[1], argv[2]
    timeout = float(argv[3]) if len(argv) > 3 else 600.0
    if with_job_fixes:
        from pipeline.direct_runner import speed_up_direct_runner

        speed_up_direct_runner()
    project = subscription.split("/")[1]
    options = PipelineOptions(["--runner=BundleBasedDirectRunner", "--streaming", f"--project={project}"])
    pipeline = beam.Pipeline(options=options)
    _ = (pipeline
         | "ReadFromPubSub" >> beam.io.ReadFromPubSub(subscription=subscription)
         | "Parse" >> beam.Map(json.loads)
         | "Count" >> beam.ParDo(_CountFn()))
    pipeline.run()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with TALLY.lock:
            status = {"count": TALLY.count, "first_at": TALLY.first_at, "last_at": TALLY.last_at}
        Path(status_file + ".tmp").write_text(json.dumps(status))
        os.replace(status_file + ".tmp", status_file)  # never half written
        time.sleep(0.05)
    # The DirectRunner's cancel waits for its Pub/Sub pull (up to 30 s): leave without it.
    os._exit(0)


if __name__ == "__main__":
    main()
