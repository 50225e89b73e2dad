"""The import sink's options (pipeline/import_settings.py): checked, one line each, before anything is read."""

from __future__ import annotations

import json

import pytest

from pipeline.import_settings import import_credentials
from pipeline.launcher import parse_command_line
from pipeline.options import OptionsError
from tests.conftest import ROOT
from transforms.delivery.call_budget import CallLimit

BATCH = ["--input", str(ROOT / "samples" / "events.jsonl"), "--config", str(ROOT / "samples" / "mapping.yaml"),
         "--runner", "FnApiRunner", "--sink", "import"]
KEYS = {"WOOPRA_APP_ID": "app", "WOOPRA_SECRET_KEY": "key"}


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def test_defaults_are_woopras_limits_and_the_documented_body_sizes():
    _, job = parse_command_line(BATCH)
    imports = job.imports
    assert imports is not None and imports.credentials is not None
    assert imports.delivery.limits == (CallLimit(300, 60), CallLimit(600, 3600), CallLimit(3000, 86_400))
    assert (imports.max_bytes, imports.max_visits, imports.delivery.max_in_flight) == (4_000_000, 5_000, 2)
    assert imports.delivery.url == f"https://www.woopra.com/rest/3.0/import?project={job.woopra.project}"
    assert parse_command_line(BATCH[:-2])[1].imports is None  # track: today's job


def test_the_limits_are_shared_by_the_worker_processes():
    _, job = parse_command_line([*BATCH, "--rate_limit_processes", "4", "--import_budget", "10/min,600/h,3000/day"])
    assert job.imports is not None
    assert [limit.calls for limit in job.imports.delivery.limits] == [2, 150, 750]
    _, job = parse_command_line([*BATCH, "--import_budget", "2/s"])
    assert job.imports is not None and job.imports.delivery.limits == (CallLimit(2, 1.0),)


@pytest.mark.parametrize(("args", "message"), [
    (["--sink", "bulk"], "--sink must be track or import, got 'bulk'"),
    (["--streaming"], "--sink import is for batch backfills from files; leave out --streaming"),
    (["--woopra_import_endpoint", "http://woopra.example/import"],
     "--woopra_import_endpoint must use https:// unless its host is loopback"),
    (["--import_max_bytes", "1000"], "--import_max_bytes must be at least 65536"),
    (["--import_budget", "300/minute"], "--import_budget: '300/minute' is not CALLS/UNIT"),
])
def test_bad_import_options_are_one_line(args, message):
    argv = [*BATCH, *args]
    if "--streaming" in args:
        argv = ["--input_subscription", "projects/my-project/subscriptions/events", "--woopra_project", "example.com",
                "--sink", "import", "--streaming"]
    with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_command_line(argv)


def test_a_dry_run_needs_no_credentials(monkeypatch):
    for name in KEYS:
        monkeypatch.delenv(name)
    with pytest.raises(OptionsError, match="needs Woopra's Access Keys: set WOOPRA_APP_ID and WOOPRA_SECRET_KEY"):
        parse_command_line(BATCH)
    _, job = parse_command_line([*BATCH, "--dry_run", "out/dry/"])
    assert job.imports is not None and job.imports.credentials is None


def test_credentials_from_a_file_win_and_errors_never_quote_it(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"app_id": "a", "secret_key": "very-secret"}))
    assert import_credentials(str(path), {}).secret_key == "very-secret"
    path.write_text('{"app_id": "a", "secret_key": "very-secret",}')  # not JSON
    with pytest.raises(OptionsError) as error:
        import_credentials(str(path), {})
    assert "very-secret" not in str(error.value) and "is not JSON" in str(error.value)
    with pytest.raises(OptionsError, match="cannot read"):
        import_credentials(str(tmp_path / "missing.json"), {})
