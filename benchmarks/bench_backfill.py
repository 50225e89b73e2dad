"""Benchmark 6: backfills (issue 12). Resume after kill -9, the ledger's cost, the two identity joins.

    python benchmarks/bench_backfill.py [--events 20000] [--rounds 3] [--size 20000] [--runs 3]
        [--identity_size 1000000] [--base /tmp/base] [--parts resume,ledger,identity] [--smoke]

Prints one JSON line per part:

1. ``backfill_resume``: ``python -m pipeline`` with ``--ledger DIR --rate_limit 1000 --max_in_flight
   32`` delivers ``--events`` generated events (harness.events_file) to the Woopra stand-in
   (``python -m woopra_standin --record FILE --delay-ms 20``, which writes each request to its file
   as it arrives, before answering). The job runs in its own process group; once the stand-in has
   recorded a share of the events (30%, 50%, 70% for 3 rounds), the whole group (the job and its
   delivery process) gets SIGKILL. The same command then runs again to completion, then once more.
   Counted from the stand-in's record: requests per run, distinct requests (each event's request
   is distinct: checked against the requests harness.request_urls builds for the file), requests
   received twice (bound: 2 x max_in_flight), and the reruns' ``skipped_ledger``.
2. ``backfill_ledger_cost``: ``--size`` events delivered unthrottled (``--rate_limit 1000000``) to
   harness.Nginx (which answers at once, so the server does not hide the job's own cost), with and
   without ``--ledger`` (a new folder each run), alternating, ``--runs`` each: events/s end to end
   and in the delivery phase, CPU per event, and the ratios (target: the ledger costs under 10%).
3. ``backfill_identity``: dry runs of (a) ``--identity_size`` single-event visitors, each a
   consented page call with its own anonymousId and a Woopra cookie only (generated here), and (b)
   ``--identity_size`` events of a tenth as many visitors (harness.events_file), with
   ``--identity_join side_input`` and ``--identity_join shuffle``, and with ``--base`` (an older
   checkout, e.g. ``git worktree add /tmp/base c3ed368``, which has no ``--identity_join``) when
   given: wall time, CPU, peak RSS (os.wait4), and the MD5 of the sorted dry-run lines, which must
   be the same for both joins. Each runs ``--identity_runs`` times (default once: a million events
   take minutes).

The rerun, dry-run and base runs are bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    DATA,
    PYTHON,
    ROOT,
    Nginx,
    StandInProcess,
    delivery_rate,
    drain_nginx_log,
    env,
    events_file,
    free_port,
    load_average,
    median,
    request_urls,
    run_pipeline,
    run_pipeline_in,
    sorted_lines_md5,
    summary_delivered,
    timed,
)

MAX_IN_FLIGHT = 32
RESUME_RATE = 1000
STANDIN_DELAY_MS = 20
LEDGER_COST_TARGET = 0.10  # the ledger may cost at most this share of events/s
JOINS = ("side_input", "shuffle")


# --- 1. Kill and resume -----------------------------------------------------------------------


class RecordTail:
    """Reads the stand-in's record file as it grows: the query of each request, run by run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def new_queries(self) -> list[str]:
        """Queries of the requests recorded since the last call (whole lines only)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        *lines, self.rest = (self.rest + chunk).split(b"\n")
        return [json.loads(line)["query"] for line in lines if line.strip()]


def ledger_keys(folder: Path) -> int:
    """Complete keys in the ledger's files (a line cut by the kill is not one)."""
    return sum(1 for path in folder.glob("*.keys") for line in path.read_text().splitlines() if len(line) == 32)


def settle(tail: RecordTail, quiet_seconds: float = 1.0) -> list[str]:
    """What the stand-in records until it has recorded nothing new for ``quiet_seconds``."""
    queries: list[str] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_seconds:
        time.sleep(0.1)
        new = tail.new_queries()
        if new:
            queries += new
            quiet_since = time.monotonic()
    return queries


def kill_fractions(rounds: int) -> list[float]:
    if rounds == 1:
        return [0.5]
    return [round(0.3 + 0.4 * i / (rounds - 1), 2) for i in range(rounds)]


def resume_round(events: Path, count: int, expected: set[str], fraction: float, rate: float,
                 timeout: float) -> dict:
    """Kill the job once ``fraction`` of the events are recorded, rerun it to the end, then again."""
    with StandInProcess(delay_ms=STANDIN_DELAY_MS) as standin, tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger"
        summary_path = Path(tmp) / "summary.json"
        command = [PYTHON, "-m", "pipeline", "--input", str(events), "--woopra_project", "bench.example",
                   "--woopra_endpoint", standin.url, "--rate_limit", str(rate), "--max_in_flight", str(MAX_IN_FLIGHT),
                   "--ledger", str(ledger), "--summary", str(summary_path), "--dead_letter", f"{tmp}/dead/"]
        tail = RecordTail(standin.record)
        target = int(count * fraction)
        # Its own process group: SIGKILL to the group reaches the job and its delivery process.
        job = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        first: list[str] = []
        deadline = time.monotonic() + timeout
        while len(first) < target:
            if job.poll() is not None:
                raise RuntimeError(f"the job ended ({job.returncode}) before {target} requests: {len(first)}")
            if time.monotonic() > deadline:
                os.killpg(job.pid, signal.SIGKILL)
                raise TimeoutError(f"{target} requests not recorded in {timeout} s")
            time.sleep(0.02)
            first += tail.new_queries()
        recorded_at_kill = len(first)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        first += settle(tail)
        keys_after_kill = ledger_keys(ledger)
        runs = [first]
        summaries = []
        for _ in range(2):
            run = timed(command, timeout)
            if run.returncode != 0:
                raise RuntimeError(f"rerun failed ({run.returncode}):\n{run.stderr[-3000:]}")
            summaries.append(json.loads(summary_path.read_text()))
            runs.append(settle(tail, 0.5))
    received = collections.Counter(query for queries in runs for query in queries)
    twice = sum(1 for times in received.values() if times > 1)
    rerun, third = summaries
    return {
        "kill_at_fraction": fraction,
        "recorded_when_killed": recorded_at_kill,
        "requests_per_run": [len(queries) for queries in runs],
        "ledger_keys_after_kill": keys_after_kill,
        "in_flight_at_kill": len(first) - keys_after_kill,
        "rerun_skipped_ledger": rerun.get("skipped_ledger", 0),
        "rerun_delivered": summary_delivered(rerun),
        "rerun_wall_seconds": rerun["elapsed_seconds"],
        "third_run_skipped_ledger": third.get("skipped_ledger", 0),
        "third_run_delivered": summary_delivered(third),
        "distinct_events_delivered": len(received),
        "every_event_delivered": set(received) == expected,
        "events_sent_twice": twice,
        "extra_requests": sum(received.values()) - len(received),
        "third_run_sent": len(runs[2]),
        "balanced": rerun["balanced"] and third["balanced"],
    }


def bench_resume(count: int, rounds: int, rate: float, timeout: float) -> dict:
    events = events_file(count)
    with tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        request_urls(events, "http://127.0.0.1/track", urls)
        expected = {line.split("?", 1)[1] for line in urls.read_text().splitlines()}
    assert len(expected) == count, f"{count} events but {len(expected)} distinct requests: cannot tell events apart"
    load_before = load_average()
    results = [resume_round(events, count, expected, fraction, rate, timeout) for fraction in kill_fractions(rounds)]
    bound = 2 * MAX_IN_FLIGHT
    passed = all(r["every_event_delivered"] and r["distinct_events_delivered"] == count
                 and r["events_sent_twice"] <= bound and r["third_run_sent"] == 0
                 and r["third_run_skipped_ledger"] == count and r["balanced"] for r in results)
    return {
        "benchmark": "backfill_resume", "events": count, "rounds": rounds, "rate_limit": rate,
        "max_in_flight": MAX_IN_FLIGHT, "standin_delay_ms": STANDIN_DELAY_MS, "results": results,
        "max_events_sent_twice": max(r["events_sent_twice"] for r in results), "bound_sent_twice": bound,
        "pass_criterion": f"every event delivered, at most {bound} sent twice, the third run sends nothing",
        "pass": passed, "load_average_before": load_before, "load_average_after": load_average(),
    }


# --- 2. The ledger's cost -----------------------------------------------------------------------


def bench_ledger_cost(count: int, runs: int, timeout: float, smoke: bool = False) -> dict:
    events = events_file(count)
    load_before = load_average()
    figures: dict[str, dict[str, list[float]]] = {
        mode: {"events_per_second": [], "delivery_phase_per_second": [], "cpu_ms_per_event": [], "wall_seconds": []}
        for mode in ("without_ledger", "with_ledger")}
    ledger_matches = True
    with Nginx(free_port()) as nginx:
        for _ in range(runs):
            for mode in figures:
                with tempfile.TemporaryDirectory() as tmp:
                    args = ["--input", str(events), "--woopra_project", "bench.example", "--woopra_endpoint",
                            nginx.url, "--rate_limit", "1000000", "--max_in_flight", str(MAX_IN_FLIGHT)]
                    if mode == "with_ledger":
                        args += ["--ledger", f"{tmp}/ledger"]
                    drain_nginx_log(nginx)
                    run, summary = run_pipeline(args, timeout=timeout)
                    received = drain_nginx_log(nginx)
                    delivered = summary_delivered(summary)
                    assert summary["read"] == count and delivered == len(received) == count, (summary, len(received))
                    if mode == "with_ledger":
                        ledger_matches &= ledger_keys(Path(tmp) / "ledger") == delivered
                values = figures[mode]
                values["events_per_second"].append(count / run.wall)
                values["delivery_phase_per_second"].append(delivery_rate(received))
                values["cpu_ms_per_event"].append(run.cpu / count * 1000)
                values["wall_seconds"].append(run.wall)
    medians = {mode: {key: median(values) for key, values in per_mode.items()} for mode, per_mode in figures.items()}
    plain, ledger = medians["without_ledger"], medians["with_ledger"]
    rate_ratio = ledger["events_per_second"] / plain["events_per_second"]
    result: dict = {"benchmark": "backfill_ledger_cost", "events": count, "runs": runs, "max_in_flight": MAX_IN_FLIGHT}
    for mode, values in figures.items():
        result[mode] = {
            "events_per_second": [round(v) for v in values["events_per_second"]],
            "delivery_phase_per_second": [round(v) for v in values["delivery_phase_per_second"]],
            "cpu_ms_per_event": [round(v, 4) for v in values["cpu_ms_per_event"]],
            "wall_seconds": [round(v, 2) for v in values["wall_seconds"]],
            "median_events_per_second": round(medians[mode]["events_per_second"]),
            "median_delivery_phase_per_second": round(medians[mode]["delivery_phase_per_second"]),
            "median_cpu_ms_per_event": round(medians[mode]["cpu_ms_per_event"], 4),
        }
    result |= {
        "ratio_events_per_second_ledger_to_plain": round(rate_ratio, 3),
        "ratio_delivery_phase_ledger_to_plain": round(
            ledger["delivery_phase_per_second"] / plain["delivery_phase_per_second"], 3),
        "ratio_cpu_per_event_ledger_to_plain": round(ledger["cpu_ms_per_event"] / plain["cpu_ms_per_event"], 3),
        "ledger_holds_every_delivered_event": ledger_matches,
    }
    if smoke:  # one small run each is mostly Beam's start-up: judged on what the ledger holds, not speed
        result |= {"pass_criterion": "every event delivered and in the ledger", "pass": ledger_matches}
    else:
        result |= {"pass_criterion": f"median events/s with the ledger >= {1 - LEDGER_COST_TARGET:.2f} of without",
                   "pass": rate_ratio >= 1 - LEDGER_COST_TARGET and ledger_matches}
    result |= {
        "load_average_before": load_before, "load_average_after": load_average(),
    }
    return result


# --- 3. Identity joins --------------------------------------------------------------------------


def single_visitors_file(count: int) -> Path:
    """``count`` consented page calls, each of its own visitor (anonymousId) with a Woopra cookie
    only: no user id, no traits (made once, kept under benchmarks/data/)."""
    path = DATA / f"single-visitors-{count}.jsonl"
    if path.exists():
        return path
    rng = random.Random(12)
    now_ms = int(time.time() * 1000)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    DATA.mkdir(parents=True, exist_ok=True)
    with partial.open("w") as handle:
        for n in range(count):
            at = now_ms - rng.randint(1, 60 * 86_400_000)
            handle.write(json.dumps({
                "type": "page", "messageId": f"{rng.getrandbits(128):032x}",
                "anonymousId": f"{rng.getrandbits(64):016x}-{n:08d}", "timestamp": at,
                "properties": {"url": f"https://shop.example.com/p/{n % 5000}", "path": f"/p/{n % 5000}",
                               "title": f"Product {n % 5000}", "referrer": "https://www.google.com/"},
                "context": {"ip": f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                            "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                            "consent": {"analytics": True, "marketing": False}},
                "vendor_ids": {"woopra_cookie": f"C{n:011d}"},
            }, separators=(",", ":")) + "\n")
    os.replace(partial, path)
    return path


def identity_dry_run(events: Path, join: str | None, base: Path | None, timeout: float) -> dict:
    """One dry run: its time, CPU, peak RSS and the MD5 of its sorted request lines."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--input", str(events), "--woopra_project", "bench.example", "--dry_run_output", f"{tmp}/requests/"]
        if join:
            args += ["--identity_join", join]
        run, summary = run_pipeline_in(base, args, timeout) if base else run_pipeline(args, timeout)
        md5, lines = sorted_lines_md5(sorted(Path(tmp, "requests").glob("*.jsonl")))
    assert lines == summary["would_send"], (lines, summary)
    # One line on stderr per run, so a long set that fails later keeps what it measured.
    print(f"identity dry run {events.name} join={join} base={base}: {run.wall:.1f} s, {run.cpu:.1f} CPU-s, "
          f"{run.max_rss_mb:.0f} MB, md5 {md5}", file=sys.stderr, flush=True)
    return {"wall_seconds": round(run.wall, 1), "cpu_seconds": round(run.cpu, 1), "peak_rss_mb": round(run.max_rss_mb),
            "would_send": summary["would_send"], "requests_md5": md5}


def bench_identity(size: int, runs: int, base: Path | None, timeout: float) -> dict:
    inputs = {"single_event_visitors": (single_visitors_file(size), size),
              "ten_events_per_visitor": (events_file(size), size // 10)}
    load_before = load_average()
    contenders: list[tuple[str, str | None, Path | None]] = [(join, join, None) for join in JOINS]
    if base:
        contenders.append(("base", None, base))
    results: dict = {}
    for name, (path, visitors) in inputs.items():
        measured: dict[str, list[dict]] = {contender: [] for contender, _, _ in contenders}
        for _ in range(runs):
            for contender, join, root in contenders:
                measured[contender].append(identity_dry_run(path, join, root, timeout))
        entry: dict = {"events": size, "visitors": visitors}
        for contender, done in measured.items():
            entry[contender] = {
                "wall_seconds": [d["wall_seconds"] for d in done], "cpu_seconds": [d["cpu_seconds"] for d in done],
                "peak_rss_mb": [d["peak_rss_mb"] for d in done],
                "median_wall_seconds": median([d["wall_seconds"] for d in done]),
                "max_peak_rss_mb": max(d["peak_rss_mb"] for d in done),
                "would_send": done[0]["would_send"], "requests_md5": sorted({d["requests_md5"] for d in done}),
            }
        digests = {contender: tuple(entry[contender]["requests_md5"]) for contender in measured}
        entry["same_requests_side_input_and_shuffle"] = (
            len(digests["side_input"]) == 1 and digests["side_input"] == digests["shuffle"])
        if base:
            entry["same_requests_as_base"] = digests["base"] == digests["side_input"]
        entry["rss_shuffle_to_side_input"] = round(
            entry["shuffle"]["max_peak_rss_mb"] / entry["side_input"]["max_peak_rss_mb"], 3)
        entry["wall_shuffle_to_side_input"] = round(
            entry["shuffle"]["median_wall_seconds"] / entry["side_input"]["median_wall_seconds"], 3)
        results[name] = entry
    same = all(entry["same_requests_side_input_and_shuffle"] for entry in results.values())
    return {
        "benchmark": "backfill_identity", "events": size, "runs": runs, "base": str(base) if base else None,
        "results": results, "same_requests": same,
        "pass_criterion": "identical dry-run requests with side_input and shuffle", "pass": same,
        "load_average_before": load_before, "load_average_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="resume,ledger,identity", help="comma-separated parts to run")
    parser.add_argument("--events", type=int, default=20_000, help="events of the kill-and-resume part")
    parser.add_argument("--rounds", type=int, default=3, help="kill points (30%%..70%% of the events)")
    parser.add_argument("--rate_limit", type=float, default=RESUME_RATE, help="of the kill-and-resume runs")
    parser.add_argument("--size", type=int, default=20_000, help="events of the ledger-cost part")
    parser.add_argument("--runs", type=int, default=3, help="ledger-cost runs with and without")
    parser.add_argument("--identity_size", type=int, default=1_000_000, help="events of each identity input")
    parser.add_argument("--identity_runs", type=int, default=1, help="dry runs per identity contender")
    parser.add_argument("--base", type=Path, help="an older checkout to compare the identity part with")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds, per pipeline run")
    parser.add_argument("--smoke", action="store_true", help="small sizes, one round and run (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.rounds, args.rate_limit = 1_000, 1, 250
        args.size, args.runs, args.identity_size, args.identity_runs = 1_000, 1, 2_000, 1
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    # Generate first, so generating is never inside a timed window.
    if "resume" in parts:
        events_file(args.events)
    if "ledger" in parts:
        events_file(args.size)
    if "identity" in parts:
        single_visitors_file(args.identity_size)
        events_file(args.identity_size)
    if "resume" in parts:
        print(json.dumps(bench_resume(args.events, args.rounds, args.rate_limit, args.timeout)), flush=True)
    if "ledger" in parts:
        print(json.dumps(bench_ledger_cost(args.size, args.runs, args.timeout, args.smoke)), flush=True)
    if "identity" in parts:
        print(json.dumps(bench_identity(args.identity_size, args.identity_runs, args.base, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
