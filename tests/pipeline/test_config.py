"""Unit tests for pipeline/config.py: the integration config file (README "Config file")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import ConfigError, IntegrationConfig, load_config, parse_config

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

README_YAML = """\
project: mywebsite.com          # same as --woopra_project (the flag wins)
timeout: 1800000
app: datafly-signal             # ce_app
consent_categories: [analytics]
events:                         # merged over the default preset
  Order Completed: purchase
  Trial Started: trial_started
unmapped_events: send           # send | drop
properties:                     # event property renames (before prefixing)
  revenue: amount
traits:                         # trait renames (before prefixing)
  full_name: name
"""

README_EXPECTED = IntegrationConfig(
    project="mywebsite.com",
    timeout=1800000,
    app="datafly-signal",
    consent_categories=("analytics",),
    events={"Order Completed": "purchase", "Trial Started": "trial_started"},
    unmapped_events="send",
    properties={"revenue": "amount"},
    traits={"full_name": "name"},
)


def test_spec_yaml_example_loads(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(README_YAML, encoding="utf-8")
    assert load_config(str(path)) == README_EXPECTED


def test_same_config_as_json_loads(tmp_path):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({
        "project": "mywebsite.com", "timeout": 1800000, "app": "datafly-signal",
        "consent_categories": ["analytics"],
        "events": {"Order Completed": "purchase", "Trial Started": "trial_started"},
        "unmapped_events": "send", "properties": {"revenue": "amount"}, "traits": {"full_name": "name"},
    }), encoding="utf-8")
    assert load_config(str(path)) == README_EXPECTED


def test_yml_extension_and_json_content_in_yaml_file_both_load(tmp_path):
    a = tmp_path / "a.yml"
    a.write_text("project: a.example\nunmapped_events: drop\n", encoding="utf-8")
    b = tmp_path / "b.yaml"
    b.write_text('{"project": "b.example", "consent_default": "allow"}', encoding="utf-8")
    assert load_config(str(a)) == IntegrationConfig(project="a.example", unmapped_events="drop")
    assert load_config(str(b)) == IntegrationConfig(project="b.example", consent_default="allow")


def test_bundled_sample_mapping_loads():
    config = load_config(str(SAMPLES / "mapping.yaml"))
    assert config.project == "mywebsite.com"
    assert config.events["Order Completed"] == "purchase"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_yaml_config_is_all_defaults(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_config(str(path)) == IntegrationConfig()


def test_partial_config_leaves_the_rest_unset():
    config = parse_config({"events": {"Video Played": "video_play"}})
    assert config.project is None and config.timeout is None and config.app is None
    assert config.consent_categories is None and config.unmapped_events is None
    assert dict(config.events) == {"Video Played": "video_play"}
    assert dict(config.properties) == {} and dict(config.traits) == {}


def test_consent_categories_are_lowercased_and_may_be_a_comma_string():
    assert parse_config({"consent_categories": ["Analytics", "MARKETING"]}).consent_categories == (
        "analytics", "marketing")
    assert parse_config({"consent_categories": "analytics, functional"}).consent_categories == (
        "analytics", "functional")


def test_null_maps_are_empty():
    config = parse_config({"events": None, "properties": None, "traits": None})
    assert (dict(config.events), dict(config.properties), dict(config.traits)) == ({}, {}, {})


# ----- every key's type error names the key --------------------------------------------------

@pytest.mark.parametrize(
    "document, key",
    [
        ({"project": 123}, "project"),
        ({"project": ""}, "project"),
        ({"project": ["a"]}, "project"),
        ({"timeout": "1800000"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"timeout": 1.5}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"app": 5}, "app"),
        ({"app": "  "}, "app"),
        ({"consent_categories": []}, "consent_categories"),
        ({"consent_categories": 5}, "consent_categories"),
        ({"consent_categories": {"analytics": True}}, "consent_categories"),
        ({"consent_categories": [1]}, "consent_categories"),
        ({"consent_categories": ["analytics", ""]}, "consent_categories"),
        ({"consent_default": "maybe"}, "consent_default"),
        ({"consent_default": True}, "consent_default"),
        ({"events": ["Order Completed"]}, "events"),
        ({"events": "purchase"}, "events"),
        ({"events": {"Order Completed": 5}}, "events"),
        ({"events": {"Order Completed": ""}}, "events"),
        ({"events": {"Order Completed": None}}, "events"),
        ({"unmapped_events": "ignore"}, "unmapped_events"),
        ({"unmapped_events": False}, "unmapped_events"),
        ({"properties": ["revenue"]}, "properties"),
        ({"properties": {"revenue": 1}}, "properties"),
        ({"traits": "full_name"}, "traits"),
        ({"traits": {"full_name": ["name"]}}, "traits"),
    ],
)
def test_wrong_type_error_names_the_key(document, key):
    with pytest.raises(ConfigError) as info:
        parse_config(document)
    message = str(info.value)
    assert f"'{key}" in message
    assert "\n" not in message


@pytest.mark.parametrize("key", ["projet", "Project", "event_map", "unmapped"])
def test_unknown_key_is_named(key):
    with pytest.raises(ConfigError) as info:
        parse_config({"project": "p", key: "x"})
    assert f"'{key}'" in str(info.value)
    assert "unknown" in str(info.value)


@pytest.mark.parametrize("document", [["project", "p"], "project: p", 42])
def test_non_mapping_document_is_rejected(document):
    with pytest.raises(ConfigError):
        parse_config(document)


def test_config_error_from_file_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("project: p\ntimeout: soon\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert str(path) in message and "'timeout'" in message
    assert "\n" not in message


def test_unknown_key_in_json_file_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"project": "p", "unmaped_events": "drop"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="'unmaped_events'"):
        load_config(str(path))


@pytest.mark.parametrize(
    "name, text",
    [
        ("bad.yaml", "project: [unclosed\nevents:\n  a: b\n"),
        ("bad.yaml", "events:\n  a: b\n   c: d\n"),
        ("bad.yaml", "project: p\n\tapp: x\n"),
        ("bad.json", '{"project": "p",}'),
        ("bad.json", ""),
    ],
)
def test_invalid_yaml_or_json_gives_a_one_line_message(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert "not valid" in message


def test_missing_file_is_a_config_error_naming_the_path(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("name, text, expected", [
    ("c.yaml", "project: p\nevents:\n  a: b\n   c: d\n", "is not valid YAML, line 4: "),
    ("c.yaml", "project: p\nevents: [a\n", "is not valid YAML, line 3: expected ',' or ']'"),
    ("c.json", '{"project": "p",\n "events": }\n', "is not valid JSON, line 2: Expecting value"),
])
def test_syntax_errors_name_the_file_and_line(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(f"config file {path} {expected}")
