"""Benchmark 8: the two sinks. Calls and time to deliver N events through tracking and through the Import API.

    python benchmarks/bench_sinks.py [--events 1000000] [--measured 10000] [--smoke]

Computed: a dry run of each sink on ``--events`` generated events (~10 per visitor) counts the calls
(tracking: one GET per event; import: one POST per body, at the default --import_max_bytes and
--import_max_visits); the time is what those calls take at the documented limits: --rate_limit 100/s
for tracking, Woopra's REST budget (300/min, 600/h, 3,000/day) for imports (pipeline/plan.py).
Measured: ``--measured`` events delivered through each sink to the stand-in (python -m woopra_standin,
in its own process) at those same limits, end to end: wall time, calls received, peak RSS.
Prints one JSON line. Everything talks to 127.0.0.1 only and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from harness import StandInProcess, events_file, load_average, run_pipeline

from pipeline.plan import about
from transforms.delivery.call_budget import WOOPRA_LIMITS, binding_limit, seconds_for

TRACKING_RATE = 100.0  # --rate_limit's default, requests per second
KEYS = {"WOOPRA_APP_ID": "standin-app", "WOOPRA_SECRET_KEY": "standin-secret"}  # the stand-in's own


def dry_run_calls(events: Path, sink: str, timeout: float) -> tuple[int, dict]:
    """The calls a dry run of ``sink`` plans for ``events``, and the run's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        run, summary = run_pipeline(["--input", str(events), "--woopra_project", "bench.example", "--sink", sink,
                                     "--dry_run", f"{tmp}/dry/"], timeout=timeout)
    calls = summary["would_send"] if sink == "track" else summary["import_calls"]
    return calls, {"wall_seconds": round(run.wall, 1), "peak_rss_mb": round(run.max_rss_mb)}


def computed(calls: dict[str, int]) -> dict[str, dict]:
    """Time for each sink's calls at the documented limits."""
    import_seconds = seconds_for(calls["import"])
    return {
        "track": {"calls": calls["track"], "seconds": calls["track"] / TRACKING_RATE,
                  "about": about(calls["track"] / TRACKING_RATE), "at": f"{TRACKING_RATE:g}/s"},
        "import": {"calls": calls["import"], "seconds": import_seconds, "about": about(import_seconds),
                   "at": binding_limit(calls["import"]).label()},
    }


def delivered(events: Path, sink: str, timeout: float) -> dict:
    """Deliver ``events`` through ``sink`` to the stand-in; wall time, calls, peak RSS."""
    with StandInProcess() as standin:
        endpoint = (["--woopra_endpoint", standin.url] if sink == "track" else
                    ["--woopra_import_endpoint", standin.url.removesuffix("/track") + "/rest/3.0/import"])
        run, summary = run_pipeline(["--input", str(events), "--woopra_project", "bench.example", "--sink", sink,
                                     "--rate_limit", f"{TRACKING_RATE:g}", *endpoint], timeout=timeout)
        calls = len(standin.received())
    sent = summary["imported"] if sink == "import" else summary["delivered_200"] + summary["delivered_202"]
    return {"events_sent": sent, "calls": calls, "wall_seconds": round(run.wall, 1),
            "peak_rss_mb": round(run.max_rss_mb), "balanced": summary["balanced"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--measured", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--smoke", action="store_true", help="2,000 events computed and measured")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.measured, args.timeout = 2_000, 2_000, 300
    os.environ.update(KEYS)  # the job's subprocesses take the environment (harness.env)
    load_before = load_average()
    big = events_file(args.events)
    calls, dry = {}, {}
    for sink in ("track", "import"):
        calls[sink], dry[sink] = dry_run_calls(big, sink, args.timeout)
    small = events_file(args.measured)
    measured = {sink: delivered(small, sink, args.timeout) for sink in ("track", "import")}
    result = {
        "benchmark": "sinks", "events": args.events, "computed": computed(calls), "dry_runs": dry,
        "measured_events": args.measured, "measured": measured,
        "budget": [limit.label() for limit in WOOPRA_LIMITS], "tracking_rate_limit": TRACKING_RATE,
        "pass_criterion": "both sinks deliver every measured event; import needs fewer calls",
        "load_average_before": load_before, "load_average_after": load_average(),
    }
    result["pass"] = (all(m["events_sent"] == measured["track"]["events_sent"] and m["balanced"]
                          for m in measured.values()) and calls["import"] < calls["track"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
