"""Smoke tests of the benchmarks: each script runs with ``--smoke`` (tiny size, one run), prints one
JSON line with its figures and must pass. A smoke run is judged on a criterion fit for its size
(its ``pass_criterion``), looser than the full targets in BENCHMARKS.md but able to fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
HAS_NGINX = bool(shutil.which("nginx")) or Path("/usr/sbin/nginx").exists()


@pytest.fixture
def needs_nginx() -> None:
    """Fail, never skip, where nginx is missing: a skipped benchmark would pass CI untested."""
    if not HAS_NGINX:
        pytest.fail("nginx is not installed: run scripts/test.sh, or apt-get install nginx-light", pytrace=False)


def run_smoke(script: str) -> dict:
    """Run ``benchmarks/SCRIPT --smoke`` from its own folder; return its JSON line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, script, "--smoke"], cwd=BENCHMARKS, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{script} printed no JSON line:\n{done.stdout[-2000:]}"
    return json.loads(lines[-1])


def assert_keys(result: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in result]
    assert not missing, f"missing keys {missing} in {result}"


def assert_passed(result: dict) -> None:
    assert result["pass"] is True, f"{result['benchmark']} failed {result['pass_criterion']!r}: {result}"


@pytest.mark.usefixtures("needs_nginx")
def test_bench_throughput_smoke() -> None:
    result = run_smoke("bench_throughput.py")
    assert result["benchmark"] == "throughput"
    assert_keys(result, "events", "requests", "runs", "raw_aiohttp_per_second", "pipeline_events_per_second_end_to_end",
                "pipeline_delivery_phase_per_second", "median_raw", "median_pipeline", "ratio_pipeline_to_raw")
    assert result["requests"] > 0 and result["runs"] == 1
    assert_passed(result)


def test_bench_latency_smoke() -> None:
    result = run_smoke("bench_latency.py")
    assert result["benchmark"] == "latency"
    assert_keys(result, "events", "requests", "reference_ceiling_per_second", "target_per_second",
                "naive_per_second", "pipeline_delivery_per_second", "pipeline_events_per_second_end_to_end",
                "median_naive", "median_pipeline_delivery", "ratio_pipeline_to_naive", "pass_delivery_target")
    assert result["reference_ceiling_per_second"] == 1280 and result["requests"] == 500
    assert_passed(result)


def test_bench_rate_limit_smoke_shows_the_limit_holding_end_to_end() -> None:
    result = run_smoke("bench_rate_limit.py")
    assert result["benchmark"] == "rate_limit"
    assert_keys(result, "seconds", "runs", "rates", "pass")
    (rate,) = result["rates"]
    assert rate["rate"] == 200 and rate["requests"] == 600
    assert_keys(rate, "achieved_per_second", "max_1s_window", "median_achieved_over_r", "median_max_window_over_r",
                "reference_unthrottled_per_second", "pass_rate_within_3pct", "pass_max_window_le_110pct")
    # python -m pipeline --rate_limit 200, measured on the stand-in's clock: within 5% of the rate
    # over the run, never more than 110% of it in any second, though the input could go faster.
    assert_passed(result)
    assert rate["pass"] is True and rate["pass_max_window_le_110pct"] is True
    assert abs(rate["median_achieved_over_r"] - 1) <= 0.05 and rate["median_max_window_over_r"] <= 1.10
    assert min(rate["reference_unthrottled_per_second"]) > 1.5 * rate["rate"]  # so the limit did the limiting


@pytest.mark.usefixtures("needs_nginx")
def test_bench_scale_smoke() -> None:
    result = run_smoke("bench_scale.py")
    assert result["benchmark"] == "scale"
    assert result["sizes"] == [1000, 3000]
    assert_keys(result, "results", "ratio_largest_to_smallest_per_event", "pass_rss_below_2gib")
    for size in result["results"]:
        for mode in ("dry_run", "delivered"):
            assert_keys(size[mode], "median_wall_seconds", "median_cpu_seconds", "max_peak_rss_mb",
                        "wall_ms_per_event", "cpu_ms_per_event", "pass_rss_below_2gib")
            assert size[mode]["pass_rss_below_2gib"] is True
    assert_passed(result)


def test_bench_mapping_smoke() -> None:
    result = run_smoke("bench_mapping.py")
    assert result["benchmark"] == "mapping"
    assert_keys(result, "events", "events_per_second", "ratio_to_json_loads", "pass_build_request_target")
    assert set(result["events_per_second"]) >= {"parse", "consent", "identity", "build_request", "whole_chain"}
    assert result["events"] == 1000
    assert_passed(result)


def test_bench_streaming_smoke(pubsub_emulator) -> None:
    # The benchmark uses the session's emulator (PUBSUB_EMULATOR_HOST); judged on accounting, not speed.
    result = run_smoke("bench_streaming.py")
    assert result["benchmark"] == "streaming"
    assert_keys(result, "events", "visitors", "rounds", "reference_per_second", "job_per_second",
                "reference_per_second_end_to_end", "job_per_second_end_to_end", "reference_cpu_seconds_per_1000_events",
                "job_cpu_seconds_per_1000_events", "median_reference", "median_job", "ratio_job_to_reference",
                "every_event_accounted")
    assert result["events"] == 300 and result["visitors"] == 30 and result["rounds"] == 1
    for key in ("reference_per_second", "job_per_second", "job_cpu_seconds_per_1000_events"):
        assert len(result[key]) == 1 and result[key][0] > 0, (key, result)
    assert result["every_event_accounted"] is True, result
    assert_passed(result)


def run_benchmark_lines(script: str, *args: str, timeout: float = 600) -> dict[str, dict]:
    """Run ``benchmarks/SCRIPT ARGS`` from its own folder; its JSON lines by their ``benchmark``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, script, *args], cwd=BENCHMARKS, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {result["benchmark"]: result for result in results}


def assert_resumed_without_loss(resume: dict) -> None:
    """Kill -9 and rerun with a ledger: every event delivered, at most 2 x max_in_flight twice, then nothing."""
    assert_keys(resume, "events", "rounds", "max_in_flight", "results", "max_events_sent_twice", "bound_sent_twice")
    assert resume["bound_sent_twice"] == 2 * resume["max_in_flight"]
    for kill in resume["results"]:
        assert_keys(kill, "kill_at_fraction", "requests_per_run", "ledger_keys_after_kill", "rerun_skipped_ledger",
                    "distinct_events_delivered", "every_event_delivered", "events_sent_twice", "third_run_sent")
        first, rerun, third = kill["requests_per_run"]
        assert 0 < first < resume["events"] and rerun > 0, kill  # killed halfway, finished by the rerun
        assert kill["every_event_delivered"] is True and kill["distinct_events_delivered"] == resume["events"], kill
        assert kill["events_sent_twice"] <= resume["bound_sent_twice"], kill
        assert kill["rerun_skipped_ledger"] == kill["ledger_keys_after_kill"] > 0, kill
        assert third == kill["third_run_sent"] == 0 and kill["third_run_skipped_ledger"] == resume["events"], kill
        assert kill["balanced"] is True, kill
    assert_passed(resume)


@pytest.mark.usefixtures("needs_nginx")
def test_bench_backfill_smoke() -> None:
    # One line per part, judged on correctness, not speed: kill -9 halfway and resume with the
    # ledger, delivery with and without the ledger, and the two identity joins' dry runs.
    results = run_benchmark_lines("bench_backfill.py", "--smoke")
    assert set(results) == {"backfill_resume", "backfill_ledger_cost", "backfill_identity"}, results
    resume = results["backfill_resume"]
    assert resume["events"] == 1000 and resume["rounds"] == len(resume["results"]) == 1
    assert_resumed_without_loss(resume)

    cost = results["backfill_ledger_cost"]
    assert_keys(cost, "events", "runs", "without_ledger", "with_ledger", "ratio_events_per_second_ledger_to_plain",
                "ratio_cpu_per_event_ledger_to_plain", "ledger_holds_every_delivered_event")
    for mode in ("without_ledger", "with_ledger"):
        assert_keys(cost[mode], "events_per_second", "cpu_ms_per_event", "median_events_per_second",
                    "median_cpu_ms_per_event")
        assert len(cost[mode]["events_per_second"]) == 1 and cost[mode]["median_events_per_second"] > 0
    assert cost["ledger_holds_every_delivered_event"] is True
    assert_passed(cost)

    identity = results["backfill_identity"]
    assert set(identity["results"]) == {"single_event_visitors", "ten_events_per_visitor"}
    for entry in identity["results"].values():
        for join in ("side_input", "shuffle"):
            assert_keys(entry[join], "wall_seconds", "cpu_seconds", "peak_rss_mb", "would_send", "requests_md5")
            assert entry[join]["would_send"] == entry["events"] == 2000
        assert entry["same_requests_side_input_and_shuffle"] is True, entry
    assert_passed(identity)


@pytest.mark.slow
def test_bench_backfill_full_kill_and_resume() -> None:
    # The full run of BENCHMARKS.md section 6, part 1: 20,000 events, killed at 30%, 50% and 70%.
    results = run_benchmark_lines("bench_backfill.py", "--parts", "resume", timeout=1800)
    resume = results["backfill_resume"]
    assert resume["events"] == 20_000 and len(resume["results"]) == 3
    assert_resumed_without_loss(resume)


def test_bench_memory_smoke() -> None:
    result = run_smoke("bench_memory.py")
    (run,) = result["results"]
    assert run["events"] == 2000 and result["pass"], result
    assert 0 < run["peak_rss_mib"] <= run["target_mib"] == 450


@pytest.mark.slow  # two dry runs and two delivered runs of 2,000 events; CI leaves it out
def test_bench_sinks_smoke() -> None:
    result = run_smoke("bench_sinks.py")
    assert result["benchmark"] == "sinks"
    assert_keys(result, "computed", "measured", "dry_runs", "budget")
    assert result["computed"]["import"]["calls"] < result["computed"]["track"]["calls"]
    assert_passed(result)


@pytest.mark.slow
@pytest.mark.usefixtures("needs_nginx")
def test_bench_http_clients_smoke_compares_the_client_with_the_one_before_it() -> None:
    """Slow (two clients, both benchmarks, about a minute): run with --run-slow. pyreqwest and httpx,
    not dependencies of the project, are left out, so it needs nothing more installed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "bench_http_clients.py", "--smoke", "--clients", "today,pycurl"],
                          cwd=BENCHMARKS, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["benchmark"] == "http_clients" and set(result["clients"]) == {"today", "pycurl"}
    for figures in result["clients"].values():
        assert_keys(figures, "ratio_end_to_end_to_raw", "ratio_delivery_phase_to_raw",
                    "median_cpu_seconds_per_1000_events", "ratio_latency_to_ideal")
        assert figures["ratio_latency_to_ideal"] > 0.3  # 64 in flight, not one at a time
