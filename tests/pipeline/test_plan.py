"""The dry run's plan (pipeline/plan.py): durations as a person says them, and the sending time."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.job_settings import resolve_settings
from pipeline.plan import about, per_second, plan_for_job, sending_plan
from tests.conftest import SAMPLES


@pytest.mark.parametrize(("seconds", "said"), [
    (0, "under 1 s"),
    (0.4, "under 1 s"),
    (1, "about 1 s"),
    (45.4, "about 45 s"),
    (89, "about 89 s"),
    (90, "about 2 min"),
    (12 * 60 + 20, "about 12 min"),
    (59 * 60 + 29, "about 59 min"),
    (59 * 60 + 31, "about 1 h"),
    (3600 + 5 * 60, "about 1 h 5 min"),
    (123_456.78, "about 34 h 18 min"),  # the issue's example: 12,345,678 requests at 100/s
    (47 * 3600 + 59 * 60, "about 47 h 59 min"),
    (2 * 86_400, "about 2 d"),
    (3 * 86_400 + 4 * 3600 + 20 * 60, "about 3 d 4 h"),
    (400 * 86_400, "about 400 d"),
])
def test_about_says_a_duration_in_two_units_at_most(seconds, said):
    assert about(seconds) == said


def test_rates_read_as_people_write_them():
    assert (per_second(100), per_second(1500), per_second(0.5), per_second(2.5)) == ("100/s", "1,500/s", "0.5/s",
                                                                                     "2.5/s")


def test_the_issue_example_with_the_in_flight_bound_stated():
    assert sending_plan(12_345_678, 100, 32) == (
        "plan: 12,345,678 requests at 100/s: about 34 h 18 min "
        "(without retries; 32 in flight keep that rate while Woopra answers within 320 ms)")


def test_several_processes_share_the_rate_and_add_their_in_flight():
    line = sending_plan(1_000_000, 40, 32, processes=2)
    assert line.startswith("plan: 1,000,000 requests at 40/s: about 6 h 57 min ")
    assert "2 processes x 32 in flight" in line and "within 1,600 ms" in line


def test_nothing_to_send_and_an_envoy_limit_are_said_plainly():
    assert sending_plan(0, 100, 32) == "plan: 0 requests to send"
    assert sending_plan(1, 100, 32).startswith("plan: 1 request at 100/s: under 1 s")
    envoy = sending_plan(500, 100, 32, rate_limiter_address="127.0.0.1:8081")
    assert "Envoy Rate Limit Service at 127.0.0.1:8081" in envoy and "about" not in envoy


def test_the_job_plan_uses_the_whole_job_rate_not_a_process_share():
    options = PipelineOptions(["--input", str(SAMPLES / "events.jsonl"), "--woopra_project", "example.com",
                               "--rate_limit", "40", "--max_in_flight", "8", "--runner", "FnApiRunner",
                               "--direct_running_mode", "multi_processing", "--direct_num_workers", "2"])
    job = resolve_settings(options)
    assert job.delivery.rate_limit == 20  # each process's share
    assert plan_for_job(2400, options, job) == (
        "plan: 2,400 requests at 40/s: about 60 s "
        "(without retries; 2 processes x 8 in flight keep that rate while Woopra answers within 400 ms)")
