"""Redacted forms of personal data for what operators read (docs/behaviour.md#privacy): pure, no Beam.

Emails keep their first letter and domain (``j***@example.com``), IPv4 addresses their first
three octets (``203.0.113.x``), IPv6 addresses their first three groups, cookies their first four
characters (``AH47***``). Enough to tell visitors apart in a debugging session, not enough to
identify one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

MASK = "***"
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")
_WHOLE_EMAIL = re.compile(r"\s*" + _EMAIL.pattern + r"\s*")
# In free text (an unparseable input line, an error message) an IP counts only as a whole quoted
# JSON string or a query value: a bare dotted number may be a version ("Chrome/131.0.0.0").
_QUOTED_IP = re.compile(r'(?<=")([0-9A-Fa-f.:]{7,45})(?=")')
_COOKIE_IN_TEXT = re.compile(r'((?:"woopra_cookie"\s*:\s*"|"cookie"\s*:\s*"|[?&]cookie=))([^"&\s\']+)')
_IP_IN_QUERY = re.compile(r"((?:[?&]ip=))([^&\s'\"]+)")
# Fields whose value is a visitor IP or a Woopra cookie wherever they appear in an event.
IP_KEYS = frozenset({"ip"})
COOKIE_KEYS = frozenset({"cookie", "woopra_cookie"})


def looks_like_email(value: Any) -> bool:
    """True when ``value`` is a string that is an email address (and nothing else)."""
    return isinstance(value, str) and _WHOLE_EMAIL.fullmatch(value) is not None


def redact_email(email: str) -> str:
    """``jane.doe@example.com`` → ``j***@example.com``."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}{MASK}@{domain}" if local else MASK


def redact_ip(address: str) -> str:
    """``203.0.113.50`` → ``203.0.113.x``; ``2001:db8:85a3::7334`` → ``2001:db8:85a3::x``."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return MASK
    if ip.version == 4:
        return ".".join(str(ip).split(".")[:3]) + ".x"
    groups = [group.lstrip("0") or "0" for group in ip.exploded.split(":")[:3]]
    return ":".join(groups) + "::x"


def redact_cookie(cookie: str) -> str:
    """``AH47DHS5SF182DIQZJD`` → ``AH47***``; a short cookie is masked whole."""
    return cookie[:4] + MASK if len(cookie) > 8 else MASK


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def redact_text(text: str) -> str:
    """Free text (an input line, an error message) with emails, quoted IPs and cookies redacted."""
    text = _EMAIL.sub(lambda m: redact_email(m.group(0)), text)
    text = _QUOTED_IP.sub(lambda m: redact_ip(m.group(1)) if _is_ip(m.group(1)) else m.group(1), text)
    text = _IP_IN_QUERY.sub(lambda m: m.group(1) + (redact_ip(m.group(2)) if _is_ip(m.group(2)) else MASK), text)
    return _COOKIE_IN_TEXT.sub(lambda m: m.group(1) + redact_cookie(m.group(2)), text)


def redact_value(key: str, value: Any) -> Any:
    """One field of an event or one request parameter, redacted by its name and its look."""
    if not isinstance(value, str):
        return value
    name = key.lower()
    if name in IP_KEYS:
        return redact_ip(value)
    if name in COOKIE_KEYS:
        return redact_cookie(value)
    if looks_like_email(value):
        return redact_email(value)
    if _is_ip(value):
        return redact_ip(value)
    return redact_text(value)


def redact_event(value: Any, key: str = "") -> Any:
    """A decoded event (or dead-letter record), every nested field redacted; a new object."""
    if isinstance(value, Mapping):
        return {k: redact_event(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_event(item, key) for item in value]
    return redact_value(key, value)


def redact_params(params: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Woopra request parameters with ``cookie``, ``ip`` and email-like values redacted."""
    return [(key, redact_value(key, value)) for key, value in params]


def redacted_url(url: str, params: Iterable[tuple[str, str]]) -> str:
    """The full request URL with its parameters redacted (the mask's ``*`` left unencoded)."""
    return f"{url}?{urlencode(redact_params(params), safe='*')}"
