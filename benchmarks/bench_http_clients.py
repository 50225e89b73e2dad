"""Delivery's HTTP client candidates side by side: benchmarks 1 and 2 for each, in one run.

    python benchmarks/bench_http_clients.py [--runs 5] [--events 100000] [--latency-events 20000]
        [--clients today,pycurl,pyreqwest,aiohttp] [--old-commit 64afa73] [--smoke]

For each round, in turn: benchmark 1's reference (the raw aiohttp loop of raw_client.py, 32 at a
time) and ``python -m pipeline`` once per candidate against the same nginx (end to end, the
delivery phase from nginx's log, CPU per 1,000 events); then benchmark 2, ``python -m pipeline``
once per candidate against the stand-in answering after 50 ms, 64 in flight (its ideal:
64 / 0.05 s = 1,280/s). Medians over the rounds; ratios are to the raw loop (benchmark 1) and
to the ideal (benchmark 2).

The candidates (benchmarks/http_candidates/candidates.py) replace the sender's client in every
process of the run through that folder's ``sitecustomize.py``: ``pycurl`` is the pipeline's own
(transforms/delivery/curl_client.py), ``today`` the home-made asyncio + httptools client that
delivery used before, read from git at ``--old-commit``. pyreqwest and httpx are not dependencies
of the project: ``pip install pyreqwest httpx`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from harness import (
    PYTHON,
    ROOT,
    Nginx,
    StandInProcess,
    delivery_rate,
    events_file,
    free_port,
    load_average,
    median,
    request_urls,
    summary_delivered,
    timed,
)

CONCURRENCY = 32  # benchmark 1
DELAY_MS, MAX_IN_FLIGHT = 50, 64  # benchmark 2
IDEAL = MAX_IN_FLIGHT / (DELAY_MS / 1000)  # 1,280 requests/s
CANDIDATES_DIR = ROOT / "benchmarks" / "http_candidates"
OLD_COMMIT = "64afa73"  # the last commit with transforms/delivery/http.py


def candidate_env(client: str, old_http: Path) -> dict[str, str]:
    return dict(os.environ, BENCH_HTTP_CLIENT=client, BENCH_OLD_HTTP_PY=str(old_http),
                PYTHONPATH=os.pathsep.join([str(CANDIDATES_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]))


def run_with(client: str, old_http: Path, args: list[str], tmp: str) -> tuple:
    summary_path = Path(tmp) / f"summary-{client}.json"
    run = timed([PYTHON, "-m", "pipeline", *args, "--woopra_project", "bench.example", "--rate_limit", "1000000",
                 "--summary", str(summary_path), "--dead_letter", f"{tmp}/dead-{client}/"],
                timeout=1800, environ=candidate_env(client, old_http))
    if run.returncode != 0:
        raise RuntimeError(f"pipeline with {client} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return run, json.loads(summary_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency-events", type=int, default=20_000)
    parser.add_argument("--clients", default="today,pycurl,pyreqwest,aiohttp")
    parser.add_argument("--old-commit", default=OLD_COMMIT)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.latency_events, args.runs = 2_000, 500, 1
    clients = args.clients.split(",")
    events, latency_events = events_file(args.events), events_file(args.latency_events)
    raw: list[float] = []
    results = {client: {"end_to_end": [], "delivery_phase": [], "cpu_per_1000": [], "latency_delivery": []}
               for client in clients}
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp, Nginx(free_port()) as nginx, \
            StandInProcess(delay_ms=DELAY_MS) as standin:
        old_http = Path(tmp) / "old_http.py"
        old_http.write_bytes(subprocess.run(["git", "show", f"{args.old_commit}:transforms/delivery/http.py"],
                                            cwd=ROOT, check=True, capture_output=True).stdout)
        urls = Path(tmp) / "urls.txt"
        sent = request_urls(events, nginx.url, urls)
        for _ in range(args.runs):
            reference = timed([PYTHON, "benchmarks/raw_client.py", str(urls), str(CONCURRENCY)], timeout=1800)
            raw.append(json.loads(reference.stdout)["per_second"])
            for client in clients:
                nginx.clear()
                run, summary = run_with(client, old_http, ["--input", str(events), "--woopra_endpoint", nginx.url,
                                                           "--max_in_flight", str(CONCURRENCY)], tmp)
                assert summary_delivered(summary) == sent, (client, summary)
                results[client]["end_to_end"].append(summary["read"] / run.wall)
                results[client]["delivery_phase"].append(delivery_rate(nginx.received()))
                results[client]["cpu_per_1000"].append(run.cpu / sent * 1000)
            for client in clients:
                standin.clear()
                run, summary = run_with(client, old_http, ["--input", str(latency_events), "--woopra_endpoint",
                                                           standin.url, "--max_in_flight", str(MAX_IN_FLIGHT)], tmp)
                received = standin.received()
                assert summary_delivered(summary) == len(received), (client, summary)
                results[client]["latency_delivery"].append(delivery_rate(received))
    raw_median = median(raw)
    table = {}
    for client, measured in results.items():
        table[client] = {
            "end_to_end_per_second": [round(r) for r in measured["end_to_end"]],
            "delivery_phase_per_second": [round(r) for r in measured["delivery_phase"]],
            "cpu_seconds_per_1000_events": [round(c, 3) for c in measured["cpu_per_1000"]],
            "latency_delivery_per_second": [round(r) for r in measured["latency_delivery"]],
            "ratio_end_to_end_to_raw": round(median(measured["end_to_end"]) / raw_median, 3),
            "ratio_delivery_phase_to_raw": round(median(measured["delivery_phase"]) / raw_median, 3),
            "median_cpu_seconds_per_1000_events": round(median(measured["cpu_per_1000"]), 3),
            "ratio_latency_to_ideal": round(median(measured["latency_delivery"]) / IDEAL, 3),
        }
    print(json.dumps({
        "benchmark": "http_clients", "events": args.events, "latency_events": args.latency_events,
        "runs": args.runs, "raw_aiohttp_per_second": [round(r) for r in raw], "median_raw": round(raw_median),
        "latency_ideal_per_second": round(IDEAL), "clients": table,
        "load_average_before": load_before, "load_average_after": load_average(),
    }))


if __name__ == "__main__":
    main()
