"""Benchmark 1: delivery ceiling vs the pipeline, no latency (nginx answers 200 at once).

    python benchmarks/bench_throughput.py [--events 100000] [--runs 3] [--smoke]

Reference, measured in the same run against the same nginx: the raw aiohttp loop of
benchmarks/raw_client.py with the same concurrency, no Beam. Then ``python -m pipeline`` on the
same events end to end (file input, batch, default local runner). Runs alternate, and medians
are compared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from harness import (
    PYTHON,
    Nginx,
    delivery_rate,
    events_file,
    free_port,
    load_average,
    median,
    request_urls,
    run_pipeline,
    timed,
)

CONCURRENCY = 32
TARGET = 0.6  # end to end, of the raw client's rate
# At 2,000 events the end-to-end rate is mostly Beam's start-up, so a smoke run judges the
# delivery phase instead: a quarter of the raw rate, which a sender that lost its concurrency
# (one request at a time against nginx) does not reach.
SMOKE_DELIVERY_PHASE = 0.25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny size, one run (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.runs = 2_000, 1
    events = events_file(args.events)
    raw_rates, pipe_rates, pipe_delivery_rates, cpu_per_1000, peak_rss_mb = [], [], [], [], []
    load_before = load_average()
    with Nginx(free_port()) as nginx, tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        sent = request_urls(events, nginx.url, urls)
        for _ in range(args.runs):
            raw = timed([PYTHON, "benchmarks/raw_client.py", str(urls), str(CONCURRENCY)], timeout=1800)
            raw_rates.append(json.loads(raw.stdout)["per_second"])
            nginx.clear()
            run, summary = run_pipeline(["--input", str(events), "--woopra_project", "bench.example",
                                         "--woopra_endpoint", nginx.url, "--rate_limit", "1000000",
                                         "--max_in_flight", str(CONCURRENCY)])
            delivered = summary["delivered_200"] + summary["delivered_202"]
            assert delivered == sent, (delivered, sent)
            pipe_rates.append(summary["read"] / run.wall)
            pipe_delivery_rates.append(delivery_rate(nginx.received()))
            cpu_per_1000.append(run.cpu / delivered * 1000)
            peak_rss_mb.append(run.max_rss_mb)
    raw_median, pipe_median = median(raw_rates), median(pipe_rates)
    phase_ratio = median(pipe_delivery_rates) / raw_median
    if args.smoke:
        criterion, passed = f"delivery phase >= {SMOKE_DELIVERY_PHASE} of raw", phase_ratio >= SMOKE_DELIVERY_PHASE
    else:
        criterion, passed = f"end to end >= {TARGET} of raw", pipe_median / raw_median >= TARGET
    print(json.dumps({
        "benchmark": "throughput", "events": args.events, "requests": sent, "runs": args.runs,
        "raw_aiohttp_per_second": [round(r) for r in raw_rates],
        "pipeline_events_per_second_end_to_end": [round(r) for r in pipe_rates],
        "pipeline_delivery_phase_per_second": [round(r) for r in pipe_delivery_rates],
        "pipeline_cpu_seconds_per_1000_events": [round(c, 3) for c in cpu_per_1000],
        "pipeline_peak_rss_mb": [round(r) for r in peak_rss_mb],
        "median_raw": round(raw_median), "median_pipeline": round(pipe_median),
        "ratio_pipeline_to_raw": round(pipe_median / raw_median, 3),
        "ratio_delivery_phase_to_raw": round(phase_ratio, 3),
        "pass_criterion": criterion, "pass": passed,
        "load_average_before": load_before, "load_average_after": load_average(),
    }))


if __name__ == "__main__":
    main()
