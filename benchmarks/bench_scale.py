"""Benchmark 4: scale. Does the cost per event stay flat from 10k to 1M events, and memory bounded?

    python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--runs 3] [--large_runs 1] [--smoke]

For each size, a generated file (harness.events_file, under the gitignored benchmarks/data/) goes
through ``python -m pipeline`` twice per run, alternating: a dry run (``--dry_run TMP/``, nothing
sent) and a delivered run (against harness.Nginx, ``--rate_limit 1000000``). Each run reports wall
time, CPU (user+sys), peak RSS (target: < 2 GiB) and wall and CPU per event.

Reference, measured in the same run: the smallest size. Growth is linear when the cost per event
at the largest size is about that at the smallest (``ratio_largest_to_smallest_per_event`` near
1; above 1 is superlinear). As that ratio includes the fixed start-up of each run, the marginal
cost per event between consecutive sizes is reported too (flat from step to step = linear).
Sizes of 500,000 events and more run ``--large_runs`` times (default once: a million events takes
minutes per run); every run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from harness import (
    Nginx,
    delivery_rate,
    drain_nginx_log,
    events_file,
    free_port,
    load_average,
    median,
    run_pipeline,
    summary_delivered,
)

RSS_LIMIT_MB = 2048
LARGE = 500_000


def one_size(nginx: Nginx, size: int, runs: int, timeout: float) -> dict:
    events = events_file(size)
    result: dict = {"events": size, "runs": runs}
    per_mode: dict[str, dict[str, list[float]]] = {
        mode: {"wall": [], "cpu": [], "rss": [], "rate": []} for mode in ("dry_run", "delivered")}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            run, summary = run_pipeline(["--input", str(events), "--woopra_project", "bench.example",
                                         "--dry_run", f"{tmp}/requests/"], timeout=timeout)
        assert summary["read"] == size and summary.get("would_send", 0) > 0, summary
        dry = per_mode["dry_run"]
        dry["wall"].append(run.wall)
        dry["cpu"].append(run.cpu)
        dry["rss"].append(run.max_rss_mb)
        drain_nginx_log(nginx)
        run, summary = run_pipeline(["--input", str(events), "--woopra_project", "bench.example",
                                     "--woopra_endpoint", nginx.url, "--rate_limit", "1000000"], timeout=timeout)
        received = drain_nginx_log(nginx)
        assert summary["read"] == size and summary_delivered(summary) == len(received) > 0, (summary, len(received))
        sent = per_mode["delivered"]
        sent["wall"].append(run.wall)
        sent["cpu"].append(run.cpu)
        sent["rss"].append(run.max_rss_mb)
        sent["rate"].append(delivery_rate(received))
    for mode, values in per_mode.items():
        wall, cpu = median(values["wall"]), median(values["cpu"])
        peak = max(values["rss"])
        result[mode] = {
            "wall_seconds": [round(w, 1) for w in values["wall"]],
            "cpu_seconds": [round(c, 1) for c in values["cpu"]],
            "peak_rss_mb": [round(r) for r in values["rss"]],
            "median_wall_seconds": round(wall, 2), "median_cpu_seconds": round(cpu, 2),
            "wall_ms_per_event": round(wall / size * 1000, 4), "cpu_ms_per_event": round(cpu / size * 1000, 4),
            "events_per_second": round(size / wall), "max_peak_rss_mb": round(peak),
            "pass_rss_below_2gib": peak < RSS_LIMIT_MB,
        }
        if values["rate"]:
            result[mode]["delivery_phase_per_second"] = [round(r) for r in values["rate"]]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated event counts")
    parser.add_argument("--runs", type=int, default=3, help=f"runs per size below {LARGE:,} events")
    parser.add_argument("--large_runs", type=int, default=1, help=f"runs per size of {LARGE:,} events or more")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds, per pipeline run")
    parser.add_argument("--smoke", action="store_true", help="sizes 1000,3000, one run (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.runs = "1000,3000", 1
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    for size in sizes:  # generate first, so generating is never inside a timed window
        events_file(size)
    load_before = load_average()
    with Nginx(free_port()) as nginx:
        results = [one_size(nginx, size, args.runs if size < LARGE else args.large_runs, args.timeout)
                   for size in sizes]
    smallest, largest = results[0], results[-1]
    growth = {
        mode: {
            "wall_per_event": round(largest[mode]["wall_ms_per_event"] / smallest[mode]["wall_ms_per_event"], 3),
            "cpu_per_event": round(largest[mode]["cpu_ms_per_event"] / smallest[mode]["cpu_ms_per_event"], 3),
        } for mode in ("dry_run", "delivered")}
    # The per-event cost above includes the fixed start-up (seconds of Beam set-up), which makes
    # small sizes look dear. The marginal cost between consecutive sizes leaves it out: linear
    # growth means the marginal cost stays flat from one step to the next.
    for previous, current in zip(results, results[1:], strict=False):
        added = current["events"] - previous["events"]
        for mode in ("dry_run", "delivered"):
            for key in ("wall", "cpu"):
                extra = current[mode][f"median_{key}_seconds"] - previous[mode][f"median_{key}_seconds"]
                current[mode][f"marginal_{key}_ms_per_event"] = round(extra / added * 1000, 4)
    if len(results) >= 3:
        first, last = results[1], results[-1]
        for mode in ("dry_run", "delivered"):
            for key in ("wall", "cpu"):
                growth[mode][f"marginal_{key}_last_step_to_first_step"] = round(
                    last[mode][f"marginal_{key}_ms_per_event"] / first[mode][f"marginal_{key}_ms_per_event"], 3)
    print(json.dumps({
        "benchmark": "scale", "sizes": sizes, "results": results,
        "ratio_largest_to_smallest_per_event": growth,
        "ratio_sizes": f"{largest['events']}/{smallest['events']}",
        "pass_rss_below_2gib": all(r[mode]["pass_rss_below_2gib"] for r in results
                                   for mode in ("dry_run", "delivered")),
        "pass_criterion": "peak RSS < 2 GiB; wall time per event at the largest size <= at the smallest",
        "pass": all(r[mode]["pass_rss_below_2gib"] for r in results for mode in ("dry_run", "delivered"))
        and all(growth[mode]["wall_per_event"] <= 1.0 for mode in ("dry_run", "delivered")),
        "load_average_before": load_before, "load_average_after": load_average(),
    }))


if __name__ == "__main__":
    main()
