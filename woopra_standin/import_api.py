"""The stand-in's Import API checks: HTTP Basic credentials and the NDJSON body of visits."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def basic_auth(header: str | None) -> tuple[str, str] | None:
    """The (user, password) of an ``Authorization: Basic`` header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def parse_import_body(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """The visits of an NDJSON import body, and the first problem found (None: a valid body)."""
    visits: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            visit = json.loads(line)
        except ValueError:
            return visits, f"line {number}: not JSON"
        problem = _visit_problem(visit)
        if problem:
            return visits, f"line {number}: {problem}"
        visits.append(visit)
    return visits, None if visits else "empty body: no visit"


def _visit_problem(visit: Any) -> str | None:
    if not isinstance(visit, dict) or not isinstance(visit.get("visitor"), dict):
        return "a visit needs a visitor object"
    visitor = visit["visitor"]
    if not any(isinstance(visitor.get(key), str) and visitor[key] for key in ("cookie", "email", "id")):
        return "the visitor has no identifier (cookie, email or id)"
    actions = visit.get("actions", [])
    if not isinstance(actions, list):
        return "actions must be a list"
    for action in actions:
        if not isinstance(action, dict) or not isinstance(action.get("name"), str) or not action["name"]:
            return "an action needs a name"
        if not isinstance(action.get("time"), int) or isinstance(action.get("time"), bool):
            return "an action's time must be Unix milliseconds"
        if not isinstance(action.get("properties", {}), dict):
            return "an action's properties must be an object"
    return None
