"""Delivery's HTTP client candidates alone, no pipeline: GETs against nginx, 32 at a time on one loop.

    python benchmarks/bench_http_clients_alone.py [--requests 20000] [--runs 3]
        [--clients today,pycurl,pyreqwest,aiohttp,httpx] [--old-commit 64afa73] [--smoke]

Each run sends the same request URLs through each candidate of benchmarks/http_candidates/ in
turn, each in a fresh process, and measures requests/s and the process's CPU per 1,000 requests
(every thread: pyreqwest's runtime threads too). The pipeline's own client is ``pycurl``; ``today``
is the client delivery used before, read from git. pyreqwest and httpx: ``pip install pyreqwest
httpx`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_http_clients import OLD_COMMIT, candidate_env
from harness import PYTHON, ROOT, Nginx, events_file, free_port, load_average, median, request_urls, timed

CONCURRENCY = 32


async def send_all(client_name: str, urls: list[str]) -> dict:
    """In the candidate's process: send every URL, 32 at a time; count non-200 answers."""
    from transforms.delivery import sender  # with BENCH_HTTP_CLIENT, sitecustomize replaced its client

    client = sender.HttpClient(10.0, CONCURRENCY)
    pending = iter(urls)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for url in pending:
            status = (await client.get(url, "Mozilla/5.0 (bench)"))[0]
            errors += status != 200

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.aclose()
    return {"client": client_name, "per_second": len(urls) / wall, "cpu_ms_per_1000": cpu / len(urls) * 1e6,
            "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", default="today,pycurl,pyreqwest,aiohttp,httpx")
    parser.add_argument("--old-commit", default=OLD_COMMIT)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("CLIENT", "URLS"), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.one:
        urls = [line.strip() for line in open(args.one[1]) if line.strip()]
        print(json.dumps(asyncio.run(send_all(args.one[0], urls))), flush=True)
        # Without the interpreter's teardown, as the pipeline ends: pyreqwest 0.15.1's runtime
        # threads abort the interpreter while it finalizes (PyGILState_Release).
        os._exit(0)
    if args.smoke:
        args.requests, args.runs = 1_000, 1
    clients = args.clients.split(",")
    measured: dict[str, dict[str, list[float]]] = {c: {"per_second": [], "cpu_ms_per_1000": []} for c in clients}
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp, Nginx(free_port()) as nginx:
        old_http = Path(tmp) / "old_http.py"
        old_http.write_bytes(subprocess.run(["git", "show", f"{args.old_commit}:transforms/delivery/http.py"],
                                            cwd=ROOT, check=True, capture_output=True).stdout)
        urls = Path(tmp) / "urls.txt"
        request_urls(events_file(args.requests), nginx.url, urls)
        for _ in range(args.runs):
            for client in clients:
                run = timed([PYTHON, "benchmarks/bench_http_clients_alone.py", "--one", client, str(urls)],
                            timeout=900, environ=candidate_env(client, old_http))
                if run.returncode != 0:
                    sys.exit(f"{client} failed:\n{run.stderr[-3000:]}")
                result = json.loads(run.stdout.splitlines()[-1])
                assert result["errors"] == 0, result
                measured[client]["per_second"].append(result["per_second"])
                measured[client]["cpu_ms_per_1000"].append(result["cpu_ms_per_1000"])
    print(json.dumps({
        "benchmark": "http_clients_alone", "requests": args.requests, "runs": args.runs,
        "concurrency": CONCURRENCY,
        "clients": {client: {"per_second": [round(r) for r in figures["per_second"]],
                             "cpu_ms_per_1000_requests": [round(c) for c in figures["cpu_ms_per_1000"]],
                             "median_per_second": round(median(figures["per_second"])),
                             "median_cpu_ms_per_1000_requests": round(median(figures["cpu_ms_per_1000"]))}
                    for client, figures in measured.items()},
        "load_average_before": load_before, "load_average_after": load_average(),
    }))


if __name__ == "__main__":
    main()
