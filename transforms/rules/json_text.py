"""The job's rules for JSON text (pure): how an input is decoded, and what it may not hold.

No ``NaN``/``Infinity``, no number too large for a float, no lone UTF-16 surrogate, no nesting
deeper than ``MAX_DEPTH`` (docs/behaviour.md#input-events).
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

# Deeper JSON is refused (docs/behaviour.md): real events nest a handful of levels, and a very
# deep one would exhaust the recursion of every later step that walks or copies it.
MAX_DEPTH = 64
UTF8_BOM = b"\xef\xbb\xbf"
# A JSON escape of a UTF-16 surrogate: only text with one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


# NaN and Infinity are not JSON (Python's parser accepts them unless told otherwise), and a
# number too large for a float (1e400) would silently become infinity. One decoder for every
# input: ``json.loads`` with options builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def json_decoder() -> json.JSONDecoder:
    """A decoder with the job's rules: no ``NaN``/``Infinity``, no number too large for a float."""
    return _DECODER


def decode_json(text: str) -> Any:
    return _DECODER.decode(text)


def input_as_text(payload: str | bytes) -> tuple[str, str | None]:
    """The input as text (a UTF-8 byte-order mark dropped), and the exact bytes when not UTF-8.

    Undecodable bytes are kept twice: readable with U+FFFD in their place, and exact in base64.
    """
    if isinstance(payload, str):
        return (payload[1:] if payload.startswith("\ufeff") else payload), None
    if payload.startswith(UTF8_BOM):
        payload = payload[len(UTF8_BOM):]
    try:
        return payload.decode("utf-8"), None
    except UnicodeDecodeError:
        return payload.decode("utf-8", "replace"), base64.b64encode(payload).decode("ascii")


def structure_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a decoded JSON value cannot travel through the job, or None: too deep, or a lone surrogate.

    Iterative, so it is safe however deep the value is.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            for key, member in item.items():
                if isinstance(key, str) and _has_lone_surrogate(key):
                    return f"a key holds a lone UTF-16 surrogate: {key.encode('utf-8', 'backslashreplace')!r}"
                pending.append((member, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            pending.extend((member, depth + 1) for member in item)
        elif isinstance(item, str) and _has_lone_surrogate(item):
            return f"a value holds a lone UTF-16 surrogate: {item.encode('utf-8', 'backslashreplace')[:80]!r}"
    return None


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def may_have_structure_problem(text: str) -> bool:
    """Cheap test on the input text: can its JSON be too deep or hold a lone surrogate?"""
    return (text.count("{") + text.count("[") > MAX_DEPTH
            or _SURROGATE_ESCAPE.search(text) is not None or _has_lone_surrogate(text))


