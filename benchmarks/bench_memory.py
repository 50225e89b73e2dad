"""Benchmark 7c: the peak memory of a local dry run (the backfill's identity survey sets it).

    python benchmarks/bench_memory.py [--sizes 300000,1000000] [--smoke]

For each size, a generated file (``harness.events_file``: 10 events a visitor, so 300,000 events
are 30,000 visitors) goes through ``python -m pipeline --dry_run DIR/`` once; the peak resident
size of that process (``os.wait4``, MiB; the local runner is one process) is compared with its
target. ``--smoke``: 2,000 events, judged against the largest target, which is able to fail but
fit for the size.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from harness import PYTHON, events_file, load_average, timed

TARGET_MIB = {300_000: 450, 1_000_000: 800}  # issue 19's targets
SMOKE_TARGET_MIB = 450


def peak_of_dry_run(events: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = timed([PYTHON, "-m", "pipeline", "--input", str(events_file(events)), "--woopra_project",
                     "example.com", "--dry_run", f"{tmp}/requests/", "--dead_letter", f"{tmp}/dead/"], timeout)
    if run.returncode != 0:
        raise RuntimeError(f"the dry run of {events} events failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return {"events": events, "peak_rss_mib": round(run.max_rss_mb), "wall_seconds": round(run.wall, 1),
            "cpu_seconds": round(run.cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300000,1000000")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    sizes = [2000] if args.smoke else [int(size) for size in args.sizes.split(",")]
    load_before = load_average()
    results = []
    for events in sizes:
        result = peak_of_dry_run(events, args.timeout)
        target = SMOKE_TARGET_MIB if args.smoke else TARGET_MIB.get(events)
        result |= {"target_mib": target, "pass": target is None or result["peak_rss_mib"] <= target}
        results.append(result)
    print(json.dumps({"benchmark": "memory", "results": results, "pass_criterion": "peak RSS <= target MiB",
                      "pass": all(result["pass"] for result in results), "load_average_before": load_before,
                      "load_average_after": load_average()}))


if __name__ == "__main__":
    main()
