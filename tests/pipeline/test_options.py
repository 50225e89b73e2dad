"""Unit tests for the options: pipeline/options.py, command_line.py, job_settings.py, dataflow_rules.py."""

from __future__ import annotations

import logging

import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from pipeline.command_line import (
    check_runner,
    check_runner_config_flags,
    expand_runner_config,
    normalize_streaming,
    runner_config_flags,
    take_dry_run,
    unknown_flags,
)
from pipeline.config import ConfigError
from pipeline.job_settings import expand_input, resolve_settings
from pipeline.launcher import parse_command_line
from pipeline.options import OptionsError, WoopraOptions, validate_endpoint
from tests.conftest import ROOT
from transforms.rules.woopra_mapping import PRESET_EVENTS

BASE = ["--input", "events/*.jsonl", "--woopra_project", "mywebsite.com"]


def settings_for(*argv):
    return resolve_settings(PipelineOptions(list(argv)))


def error_for(*argv) -> str:
    with pytest.raises(OptionsError) as info:
        settings_for(*argv)
    message = str(info.value)
    assert "\n" not in message, "option errors are one line"
    return message


# ----- defaults -----------------------------------------------------------------------------

def test_defaults_match_spec():
    settings = settings_for(*BASE)
    assert settings.source_kind == "files"
    assert settings.source == "events/*.jsonl"
    assert settings.streaming is False
    assert settings.woopra.project == "mywebsite.com"
    assert settings.woopra.endpoint == "https://www.woopra.com/track"
    assert settings.woopra.timeout_ms == 1800000
    assert settings.woopra.app == "datafly-signal"
    assert dict(settings.woopra.events) == dict(PRESET_EVENTS)
    assert settings.woopra.unmapped_events == "send"
    assert settings.woopra.property_renames["revenue"] == "amount"
    assert settings.consent.required == ("analytics",)
    assert settings.consent.default == "deny"
    assert settings.delivery.rate_limit == 100
    assert settings.delivery.max_in_flight == 32
    assert settings.delivery.request_timeout == 10
    assert settings.delivery.retry.max_attempts == 5
    assert settings.delivery.retry.max_retry_seconds == 600
    assert settings.identity_ttl_days == 30
    assert settings.dead_letter == "dead_letter/"
    assert settings.dry_run is None
    assert settings.summary is None


def test_all_options_given_are_used():
    settings = settings_for(
        *BASE, "--woopra_endpoint", "http://127.0.0.1:8080/track/", "--woopra_timeout", "60000",
        "--consent_categories", "Analytics,Marketing", "--consent_default", "allow",
        "--rate_limit", "12.5", "--max_in_flight", "4", "--max_attempts", "3", "--max_retry_seconds", "30",
        "--request_timeout", "2.5", "--identity_ttl_days", "7", "--dead_letter", "out/dead",
        "--summary", "out/summary.json", "--dry_run_output", "out/dry")
    assert settings.woopra.endpoint == "http://127.0.0.1:8080/track"
    assert settings.woopra.timeout_ms == 60000
    assert settings.consent.required == ("analytics", "marketing")
    assert settings.consent.default == "allow"
    assert settings.delivery.rate_limit == 12.5
    assert settings.delivery.max_in_flight == 4
    assert settings.delivery.retry.max_attempts == 3
    assert settings.delivery.retry.max_retry_seconds == 30
    assert settings.delivery.request_timeout == 2.5
    assert settings.identity_ttl_days == 7
    assert settings.dead_letter == "out/dead"
    assert settings.summary == "out/summary.json"
    assert settings.dry_run == "out/dry"


def test_gcp_project_flag_is_not_the_woopra_project():
    options = PipelineOptions([*BASE[:2], "--project", "my-gcp-project", "--woopra_project", "mywebsite.com"])
    settings = resolve_settings(options)
    assert settings.woopra.project == "mywebsite.com"
    assert options.view_as(GoogleCloudOptions).project == "my-gcp-project"


# ----- source ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "argv",
    [
        ["--woopra_project", "p"],
        ["--woopra_project", "p", "--input", "a.jsonl",
         "--input_subscription", "projects/my-project/subscriptions/woopra-events", "--streaming"],
        ["--woopra_project", "p", "--input", "a.jsonl", "--input_topic", "projects/my-project/topics/woopra-events"],
        ["--woopra_project", "p", "--input_subscription", "projects/my-project/subscriptions/woopra-events",
         "--input_topic", "projects/my-project/topics/woopra-events", "--streaming"],
    ],
    ids=["none", "input+subscription", "input+topic", "subscription+topic"],
)
def test_exactly_one_source(argv):
    message = error_for(*argv)
    assert "exactly one of --input, --input_subscription, --input_topic" in message


@pytest.mark.parametrize("flag, value, kind", [
    ("--input_subscription", "projects/my-project/subscriptions/woopra-events", "subscription"),
    ("--input_topic", "projects/my-project/topics/woopra-events", "topic"),
])
def test_pubsub_source_requires_streaming(flag, value, kind):
    message = error_for(flag, value, "--woopra_project", "p")
    assert "--streaming" in message
    settings = settings_for(flag, value, "--woopra_project", "p", "--streaming")
    assert settings.source_kind == kind
    assert settings.source == value
    assert settings.streaming is True


@pytest.mark.parametrize("flag, value", [
    ("--input_subscription", "projects/my-project/topics/woopra-events"),
    ("--input_subscription", "S"),
    ("--input_topic", "projects/my-project/subscriptions/woopra-events"),
    ("--input_topic", "projects//topics/T"),
    ("--input_topic", "projects/P/topics/T"),
])
def test_malformed_pubsub_paths_are_rejected(flag, value):
    message = error_for(flag, value, "--woopra_project", "p", "--streaming")
    assert flag in message


# ----- project ------------------------------------------------------------------------------

def test_woopra_project_is_required():
    message = error_for("--input", "a.jsonl")
    assert "--woopra_project" in message


def test_woopra_project_from_config(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("project: fromconfig.com\n", encoding="utf-8")
    settings = settings_for("--input", "a.jsonl", "--config", str(config))
    assert settings.woopra.project == "fromconfig.com"


def test_woopra_project_flag_wins_over_config(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("project: fromconfig.com\ntimeout: 5000\n", encoding="utf-8")
    settings = settings_for("--input", "a.jsonl", "--config", str(config), "--woopra_project", "flag.com")
    assert settings.woopra.project == "flag.com"
    assert settings.woopra.timeout_ms == 5000


def test_woopra_timeout_flag_wins_over_config(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("timeout: 5000\n", encoding="utf-8")
    settings = settings_for(*BASE, "--config", str(config), "--woopra_timeout", "7000")
    assert settings.woopra.timeout_ms == 7000


def test_config_file_settings_reach_the_mapping(tmp_path):
    config = tmp_path / "mapping.json"
    config.write_text('{"app": "my-app", "events": {"Trial Started": "trial_started", "Order Completed": "order"},'
                      ' "unmapped_events": "drop", "properties": {"price": "unit_price"},'
                      ' "traits": {"full_name": "name"}, "consent_default": "allow"}', encoding="utf-8")
    settings = settings_for(*BASE, "--config", str(config))
    assert settings.woopra.app == "my-app"
    assert settings.woopra.events["Trial Started"] == "trial_started"
    assert settings.woopra.events["Order Completed"] == "order"
    assert settings.woopra.events["Signed Up"] == "signup"  # preset kept
    assert settings.woopra.unmapped_events == "drop"
    assert settings.woopra.property_renames == {"revenue": "amount", "price": "unit_price"}
    assert settings.woopra.trait_renames == {"full_name": "name"}
    assert settings.consent.default == "allow"


def test_invalid_config_stops_with_error_naming_the_key(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("project: p\nunmapped_events: ignore\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unmapped_events"):
        settings_for("--input", "a.jsonl", "--config", str(config))


# ----- consent categories ---------------------------------------------------------------------

def test_consent_categories_from_config_when_no_flag(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("consent_categories: [Analytics, functional]\n", encoding="utf-8")
    settings = settings_for(*BASE, "--config", str(config))
    assert settings.consent.required == ("analytics", "functional")


def test_consent_categories_flag_wins_over_config(tmp_path):
    config = tmp_path / "mapping.yaml"
    config.write_text("consent_categories: [functional]\nconsent_default: allow\n", encoding="utf-8")
    settings = settings_for(*BASE, "--config", str(config), "--consent_categories", " Marketing , analytics ",
                            "--consent_default", "deny")
    assert settings.consent.required == ("marketing", "analytics")
    assert settings.consent.default == "deny"


@pytest.mark.parametrize("flag, value", [("--consent_categories", ", ,"), ("--consent_default", "maybe")])
def test_bad_consent_flags_are_named(flag, value):
    assert flag in error_for(*BASE, flag, value)


# ----- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "option, value",
    [
        ("rate_limit", "0"),
        ("rate_limit", "-5"),
        ("rate_limit", "abc"),
        ("rate_limit", "nan"),
        ("rate_limit", "inf"),
        ("max_in_flight", "abc"),
        ("max_in_flight", "0"),
        ("max_in_flight", "1.5"),
        ("max_in_flight", "100000"),
        ("max_attempts", "0"),
        ("max_attempts", "two"),
        ("max_retry_seconds", "-1"),
        ("request_timeout", "0"),
        ("request_timeout", "x"),
        ("woopra_timeout", "0"),
        ("woopra_timeout", "30m"),
        ("identity_ttl_days", "0"),
        ("identity_ttl_days", "-1"),
    ],
)
def test_number_out_of_range_or_malformed_names_the_option(option, value):
    message = error_for(*BASE, f"--{option}", value)
    assert f"--{option}" in message
    assert value in message


# ----- endpoint -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://www.woopra.com/track", "https://www.woopra.com/track"),
        ("https://www.woopra.com/track/", "https://www.woopra.com/track"),
        ("https://eu.example.com:8443/track", "https://eu.example.com:8443/track"),
        ("http://127.0.0.1:8080/track", "http://127.0.0.1:8080/track"),
        ("http://127.5.6.7/track", "http://127.5.6.7/track"),
        ("http://localhost:9000/track/", "http://localhost:9000/track"),
        ("http://LOCALHOST:9000/track", "http://LOCALHOST:9000/track"),
        ("http://[::1]:9000/track", "http://[::1]:9000/track"),
    ],
)
def test_validate_endpoint_accepts_https_and_loopback_http(url, expected):
    assert validate_endpoint(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://www.woopra.com/track",
        "http://10.0.0.5/track",
        "http://localhost.evil.com/track",
        "http://0.0.0.0/track",
        "https://www.woopra.com/track?project=x",
        "https://www.woopra.com/track#frag",
        "ftp://www.woopra.com/track",
        "www.woopra.com/track",
        "https:///track",
        "",
        "http://[::1/track",
        "http://127.0.0.1:8_0/track",
        "https://www.woopra.com:70000/track",
    ],
)
def test_validate_endpoint_rejects(url):
    with pytest.raises(OptionsError) as info:
        validate_endpoint(url)
    assert "--woopra_endpoint" in str(info.value)


def test_resolve_settings_validates_the_endpoint():
    assert "--woopra_endpoint" in error_for(*BASE, "--woopra_endpoint", "http://example.com/track")


# ----- unsupported options are refused, not ignored -------------------------------------------

def test_pubsub_dead_letter_topic_is_refused_in_batch():
    assert "--dead_letter" in error_for(*BASE, "--dead_letter", "projects/my-project/topics/woopra-dead")


def test_malformed_pubsub_dead_letter_topic_is_named():
    assert "--dead_letter" in error_for("--input_subscription", "projects/my-project/subscriptions/woopra-events",
                                        "--woopra_project", "p", "--streaming",
                                        "--dead_letter", "projects/my-project/subscriptions/x")


def test_rate_limiter_address_must_be_host_and_port():
    assert "--rate_limiter_address must be host:port" in error_for(*BASE, "--rate_limiter_address", "localhost")


def test_rate_limiter_address_selects_the_global_limiter():
    settings = resolve_settings(PipelineOptions([*BASE, "--rate_limiter_address", "127.0.0.1:8081"]))
    assert settings.delivery.rate_limiter_address == "127.0.0.1:8081"
    from apache_beam.io.components.rate_limiter import EnvoyRateLimiter

    assert isinstance(settings.delivery.limiter(), EnvoyRateLimiter)


def test_rate_limit_is_shared_across_worker_processes():
    local = resolve_settings(PipelineOptions([*BASE, "--rate_limit", "100", "--direct_running_mode",
                                              "multi_processing", "--direct_num_workers", "4"]))
    assert local.delivery.rate_limit == 25
    dataflow = resolve_settings(PipelineOptions([*BASE, "--rate_limit", "100", "--runner", "DataflowRunner",
                                                 "--num_workers", "5", "--autoscaling_algorithm", "NONE"]))
    assert dataflow.delivery.rate_limit == 20
    explicit = resolve_settings(PipelineOptions([*BASE, "--rate_limit", "100", "--rate_limit_processes", "8"]))
    assert explicit.delivery.rate_limit == 12.5


# ----- runner configs -------------------------------------------------------------------------

def test_runner_config_flags_from_yaml(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(
        "runner: DirectRunner\nmax_in_flight: 8\nrate_limit: 12.5\nstreaming: true\nsave_main_session: false\n"
        "experiments: [use_runner_v2, no_use_multiple_sdk_containers]\nsummary: null\n", encoding="utf-8")
    assert runner_config_flags(str(path)) == [
        "--runner=DirectRunner", "--max_in_flight=8", "--rate_limit=12.5", "--streaming",
        "--experiments=use_runner_v2", "--experiments=no_use_multiple_sdk_containers"]


def test_runner_config_keys_with_dashes_or_leading_dashes_become_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("--max-in-flight: 3\n", encoding="utf-8")
    assert runner_config_flags(str(path)) == ["--max_in_flight=3"]


def test_empty_runner_config_gives_no_flags(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert runner_config_flags(str(path)) == []


@pytest.mark.parametrize("text", ["runner: [unclosed\n", "- a\n- b\n", "runner_config: other.yaml\n"])
def test_bad_runner_config_is_a_one_line_options_error(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OptionsError) as info:
        runner_config_flags(str(path))
    assert "--runner_config" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_runner_config_is_an_options_error(tmp_path):
    with pytest.raises(OptionsError, match="--runner_config"):
        runner_config_flags(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_expand_runner_config_command_line_flags_win(tmp_path, form):
    path = tmp_path / "job.yaml"
    path.write_text("max_in_flight: 8\nrate_limit: 50\nwoopra_project: fromrunner.com\n", encoding="utf-8")
    runner_args = ["--runner_config", str(path)] if form == "separate" else [f"--runner_config={str(path)}"]
    argv = ["--input", "a.jsonl", *runner_args, "--max_in_flight", "4"]
    expanded = expand_runner_config(argv)
    assert expanded[-len(argv):] == argv
    settings = resolve_settings(PipelineOptions(expanded))
    assert settings.delivery.max_in_flight == 4  # the flag wins
    assert settings.delivery.rate_limit == 50  # from the runner config
    assert settings.woopra.project == "fromrunner.com"


def test_expand_runner_config_booleans_reach_beam(tmp_path):
    path = tmp_path / "stream.yaml"
    path.write_text("streaming: true\n", encoding="utf-8")
    expanded = expand_runner_config(["--runner_config", str(path), "--input_subscription",
                                     "projects/my-project/subscriptions/woopra-events", "--woopra_project", "p"])
    options = PipelineOptions(expanded)
    assert options.view_as(StandardOptions).streaming is True
    assert resolve_settings(options).source_kind == "subscription"


def test_expand_without_runner_config_is_unchanged():
    assert expand_runner_config(BASE) == BASE


def test_expand_runner_config_needs_a_file_name():
    with pytest.raises(OptionsError):
        expand_runner_config(["--input", "a", "--runner_config"])


# ----- --dry_run and unknown flags ------------------------------------------------------------

@pytest.mark.parametrize(
    "argv, flags",
    [
        (["--input", "a", "--dry_run", "out/dry"], ["--input", "a", "--dry_run_output=out/dry"]),
        (["--dry_run=out/dry", "--input", "a"], ["--dry_run_output=out/dry", "--input", "a"]),
        (["--dry_run", "one", "--dry_run=two"], ["--dry_run_output=one", "--dry_run_output=two"]),
        (["--input", "a", "--dry_run_output", "x"], ["--input", "a", "--dry_run_output", "x"]),
    ],
)
def test_take_dry_run_rewrites_the_alias(argv, flags):
    assert take_dry_run(argv) == flags


@pytest.mark.parametrize("argv", [["--dry_run", "out/dry"], ["--dry_run_output", "out/dry"],
                                  ["--dry_run", "one", "--dry_run_output=out/dry"]])
def test_dry_run_alias_and_new_name_reach_the_settings_and_not_beam(argv):
    from apache_beam.options.pipeline_options import TestOptions

    options = PipelineOptions(take_dry_run([*BASE, *argv]))
    assert resolve_settings(options).dry_run == "out/dry"  # the last one given wins
    assert not options.view_as(TestOptions).dry_run  # Beam's flag would stop Dataflow submitting


@pytest.mark.parametrize("argv", [["--dry_run"], ["--dry_run", "--input", "a"], ["--dry_run="]])
def test_dry_run_needs_a_path(argv):
    with pytest.raises(OptionsError, match="--dry_run"):
        take_dry_run(argv)


@pytest.mark.parametrize(
    "argv, unknown",
    [
        ([*BASE, "--max_in_flght", "3"], ["--max_in_flght"]),
        ([*BASE, "--max_in_flght=3"], ["--max_in_flght"]),
        ([*BASE, "--woopra_projet", "x", "--ratelimit=5"], ["--woopra_projet", "--ratelimit"]),
        ([*BASE, "--max_in"], ["--max_in"]),  # abbreviations are not accepted
        ([*BASE, "--max_in_flight", "3", "--runner", "DirectRunner", "--project", "gcp", "--streaming",
          "--rate_limit=5", "--dead_letter", "x"], []),
    ],
)
def test_unknown_flags_reports_typos(argv, unknown):
    assert unknown_flags(argv) == unknown


def test_woopra_options_registered_with_beam():
    options = PipelineOptions(BASE).view_as(WoopraOptions)
    assert options.woopra_project == "mywebsite.com"
    assert options.input == "events/*.jsonl"


# ----- operator tools: --replay_reasons, --report ------------------------------------------------

def test_replay_reasons_and_report_default_to_off():
    settings = settings_for(*BASE)
    assert settings.replay_reasons is None and settings.report is None


def test_replay_reasons_are_parsed_and_deduplicated():
    settings = settings_for(*BASE, "--replay_reasons", " rejected,retries_exhausted,rejected ")
    assert settings.replay_reasons == ("rejected", "retries_exhausted")


@pytest.mark.parametrize(("value", "message"), [
    ("rejectd", "--replay_reasons: unknown reason 'rejectd'"),
    (",", "--replay_reasons must name at least one of invalid_json"),
])
def test_bad_replay_reasons_are_named(value, message):
    assert message in error_for(*BASE, "--replay_reasons", value)


def test_report_is_for_batch_runs():
    assert settings_for(*BASE, "--report", "out/report.html").report == "out/report.html"
    message = error_for("--input_subscription", "projects/my-project/subscriptions/s", "--streaming",
                        "--woopra_project", "p", "--report", "r.html")
    assert message.startswith("--report is for batch runs")


# ----- newcomer frictions: --streaming values, runner names, runner-config keys, inputs -------------------

@pytest.mark.parametrize("argv, flags", [
    (["--streaming=false", "--input", "a"], ["--input", "a"]),
    (["--streaming=True"], ["--streaming"]),
    (["--streaming", "FALSE", "--input", "a"], ["--input", "a"]),
    (["--streaming", "--input", "a"], ["--input", "a", "--streaming"]),
    # The last one wins: a runner config's flags come first, the command line's after.
    (["--streaming", "--input", "a", "--streaming=false"], ["--input", "a"]),
    (["--streaming=false", "--streaming"], ["--streaming"]),
])
def test_normalize_streaming_accepts_true_and_false(argv, flags):
    assert normalize_streaming(argv) == flags


def test_normalize_streaming_refuses_other_values():
    with pytest.raises(OptionsError, match="--streaming takes no value, or true or false; got 'yes'"):
        normalize_streaming(["--streaming=yes"])


@pytest.mark.parametrize("runner", ["FnApiRunner", "BundleBasedDirectRunner", "direct", "DataflowRunner",
                                    "PortableRunner", "apache_beam.runners.direct.direct_runner.DirectRunner"])
def test_known_runners_pass(runner):
    check_runner(["--runner", runner])


@pytest.mark.parametrize("runner, message", [
    ("DirectRuner", "--runner DirectRuner is not a Beam runner; did you mean DirectRunner? known: DataflowRunner"),
    ("my.module.Runner", "--runner my.module.Runner: no such runner class"),
])
def test_unknown_runner_is_named(runner, message):
    with pytest.raises(OptionsError) as info:
        check_runner(["--runner", runner])
    assert str(info.value).startswith(message)


def test_runner_config_typo_names_file_and_line(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("runner: FnApiRunner\nstreaming: false\nmax_in_flght: 3\n", encoding="utf-8")
    with pytest.raises(OptionsError) as info:
        check_runner_config_flags(str(path))
    assert str(info.value).startswith(f"--runner_config {path}, line 3: unknown option 'max_in_flght'")
    path.write_text("runner: FnApiRunner\ndry_run: out/\nstreaming: true\n", encoding="utf-8")
    check_runner_config_flags(str(path))  # the --dry_run alias and booleans are known


def test_unknown_flags_of_beam_flags_without_a_value_is_one_line():
    with pytest.raises(OptionsError, match="^--input needs a value$"):
        unknown_flags(["--woopra_project", "p", "--input"])


def test_expand_input_keeps_globs_and_expands_folders(tmp_path):
    for name in ("a.jsonl", "b.json.gz", "c.parquet", "notes.txt", "mapping.yaml"):
        (tmp_path / name).write_text("{}\n", encoding="utf-8")
    assert expand_input(f"{tmp_path}/*.jsonl") == f"{tmp_path}/*.jsonl"
    expanded = expand_input(f"{tmp_path}/")
    assert sorted(expanded.split(",")) == [f"{tmp_path}/a.jsonl", f"{tmp_path}/b.json.gz", f"{tmp_path}/c.parquet"]
    assert sorted(expand_input(f"{tmp_path}/*").split(",")) == sorted(expanded.split(","))
    assert expand_input("gs://bucket/events/") == "gs://bucket/events/"  # left to Beam


@pytest.mark.parametrize("pattern, message", [
    ("missing.jsonl", "no file matches"),
    ("*.csv", "no file matches"),
    ("notes.txt", "notes.txt is not an event file; the job reads .jsonl .ndjson .json (also .gz), .parquet .parq"),
    ("*.txt", "no event files among 1 matched"),
])
def test_expand_input_refuses_what_it_cannot_read(tmp_path, pattern, message):
    (tmp_path / "notes.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(OptionsError) as info:
        expand_input(f"{tmp_path}/{pattern}")
    assert message in str(info.value)


@pytest.mark.parametrize("name, supported", [
    ("a.jsonl", True), ("a.NDJSON", True), ("a.json.gz", True), ("a.parquet", True), ("a.parq", True),
    ("a.yaml", False), ("a.csv", False), ("a.parquet.gz", False), ("a.gz", False),
])
def test_is_supported_input(name, supported):
    from transforms.read_events import is_supported_input

    assert is_supported_input(name) is supported


# ----- backfill options (docs/backfill.md) ------------------------------------------------------------

def test_backfill_options_default_to_no_slice_no_ledger_and_a_ten_minute_window():
    settings = settings_for(*BASE)
    assert not settings.time_range.bounded and settings.ledger is None
    assert settings.dedup_window_seconds == 600 and settings.identity_join == "side_input"


def test_start_and_end_become_a_time_range(tmp_path):
    settings = settings_for(*BASE, "--start", "2024-03-01", "--end", "2024-04-01T00:00:00Z",
                            "--ledger", str(tmp_path / "ledger") + "/")
    assert (settings.time_range.start_ms, settings.time_range.end_ms) == (1_709_251_200_000, 1_711_929_600_000)
    assert settings.ledger == str(tmp_path / "ledger")


@pytest.mark.parametrize("argv, message", [
    (["--start", "March"], "--start: 'March' is not an ISO 8601 date"),
    (["--end", "2024-02-30"], "--end: '2024-02-30' is not an ISO 8601 date"),
    (["--start", "2024-03-02", "--end", "2024-03-01"], "--end must be after --start"),
    (["--identity_join", "hash"], "--identity_join must be auto, side_input or shuffle"),
    (["--dedup_window", "-1"], "--dedup_window must be at least 0"),
])
def test_bad_backfill_options_are_named(argv, message):
    assert message in error_for(*BASE, *argv)


def test_a_ledger_that_is_a_file_is_refused(tmp_path):
    not_a_folder = tmp_path / "ledger.txt"
    not_a_folder.write_text("x")
    assert "--ledger must be a folder" in error_for(*BASE, "--ledger", str(not_a_folder))


def test_identity_join_auto_goes_through_the_shuffle_on_distributed_runners():
    assert settings_for(*BASE, "--runner", "FnApiRunner").identity_join == "side_input"
    assert settings_for(*BASE, "--runner", "PortableRunner").identity_join == "shuffle"
    assert settings_for(*BASE, "--runner", "FnApiRunner", "--identity_join", "shuffle").identity_join == "shuffle"


@pytest.mark.parametrize("flag, meant", [
    ("--max_in_flght", "--max_in_flight"), ("--max-in-flight", "--max_in_flight"), ("--max_in", "--max_in_flight"),
    ("--woopra_projet", "--woopra_project"), ("--ratelimit", "--rate_limit"), ("--deadletter", "--dead_letter"),
])
def test_a_typo_of_the_jobs_own_option_is_refused(flag, meant):
    with pytest.raises(OptionsError) as info:
        parse_command_line([*BASE, f"{flag}=3"])
    assert str(info.value) == (f"unknown option {flag}, did you mean {meant}? "
                               "python -m pipeline --help lists the options")


def test_other_unknown_options_pass_through_with_a_warning(caplog):
    """As Beam does: Dataflow's launcher adds options Beam does not declare, e.g. --launcher_machine_type."""
    argv = ["--input", str(ROOT / "samples" / "events.jsonl"), "--woopra_project", "x",
            "--launcher_machine_type=n1-standard-2", "--some_runner_option", "7"]
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        options, _ = parse_command_line(argv)
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(message.startswith("--launcher_machine_type is not an option of this job or of Beam; it is passed on")
               for message in warned), warned
    assert any(message.startswith("--some_runner_option") for message in warned), warned
    passed_on = options.get_all_options(retain_unknown_options=True)
    assert passed_on["launcher_machine_type"] == "n1-standard-2"


def test_an_unknown_runner_config_key_that_is_no_typo_passes_with_a_warning(tmp_path, caplog):
    path = tmp_path / "job.yaml"
    path.write_text("runner: FnApiRunner\nlauncher_machine_type: n1-standard-2\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        check_runner_config_flags(str(path))
    assert any("line 2: --launcher_machine_type is not an option" in r.getMessage() for r in caplog.records)
