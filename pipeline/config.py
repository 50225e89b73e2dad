"""The integration config file (docs/behaviour.md#config-file): YAML or JSON, strictly validated."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.files import read_text


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class IntegrationConfig:
    """What a config file may set; None means "not set here" (flags and defaults decide)."""

    project: str | None = None
    timeout: int | None = None
    app: str | None = None
    consent_categories: tuple[str, ...] | None = None
    consent_default: str | None = None
    events: Mapping[str, str] = field(default_factory=dict)
    unmapped_events: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    traits: Mapping[str, str] = field(default_factory=dict)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"config key '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"config key '{key}' must be a positive integer, got {value!r}")
    return value


def _string_map(key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{key}' must be a mapping of name: name, got {type(value).__name__}")
    result: dict[str, str] = {}
    for name, target in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"config key '{key}' has an empty or non-string name: {name!r}")
        result[name.strip()] = _string(f"{key}.{name}", target)
    return result


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _categories(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"config key '{key}' must be a non-empty list of category names")
    return tuple(_string(f"{key}[{i}]", item).lower() for i, item in enumerate(value))


_PARSERS = {
    "project": _string,
    "timeout": _positive_int,
    "app": _string,
    "consent_categories": _categories,
    "consent_default": lambda k, v: _choice(k, v, ("deny", "allow")),
    "events": _string_map,
    "unmapped_events": lambda k, v: _choice(k, v, ("send", "drop")),
    "properties": _string_map,
    # Trait names are compared lower-cased, as Woopra's cv_ names are.
    "traits": lambda k, v: {name.lower(): target for name, target in _string_map(k, v).items()},
}


def parse_config(document: Any) -> IntegrationConfig:
    """Validate a decoded config document; ConfigError names the first bad key."""
    if document is None:
        return IntegrationConfig()
    if not isinstance(document, dict):
        raise ConfigError("config must be a mapping of keys to values at the top level")
    values: dict[str, Any] = {}
    for key, value in document.items():
        parser = _PARSERS.get(key)
        if parser is None:
            raise ConfigError(f"unknown config key '{key}' (known: {', '.join(_PARSERS)})")
        values[key] = parser(key, value)
    return IntegrationConfig(**values)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``line N: what is wrong`` from a YAML error, on one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def load_config(path: str) -> IntegrationConfig:
    """Read and validate a YAML or JSON config file, local or ``gs://``."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text) if path.lower().endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON, line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML, {yaml_problem(exc)}") from None
    try:
        return parse_config(document)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
