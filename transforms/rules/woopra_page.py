"""What Woopra's tracker reads from the page and the browser, read from a call instead (pure).

The page's address as ``ce_url``/``ce_uri``/``ce_domain``, its campaign (``ce_campaign_*``), the
browser's language and screen: each named and shaped as Woopra's own tracker sends it
(docs/behaviour.md#woopra-mapping).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from transforms.rules.woopra_request import format_value

# Page fields that become the page-view parameters rather than plain ce_<key> properties.
PAGE_FIELDS = frozenset({"url", "path", "title", "referrer", "search"})


class PageAddress(NamedTuple):
    """A page's address as Woopra's tracker sends it (docs/behaviour.md#woopra-mapping): ``url`` is
    the path and query, ``uri`` the full address, ``domain`` its host."""

    url: str | None
    uri: str | None
    domain: str | None
    query: str  # the full address's query string, without "?": its campaign parameters


@lru_cache(maxsize=4096)
def _split_address(address: str) -> PageAddress | None:
    """The parts of a full address (``https://host/path?query``); None when it is not one."""
    try:
        parts = urlsplit(address)
        hostname = parts.hostname
    except ValueError:  # e.g. "http://[::1": not an address Woopra could use either
        return None
    if not parts.scheme or not parts.netloc:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return PageAddress(path, address, hostname, parts.query)


def page_address(page: Mapping[str, Any]) -> PageAddress:
    """``ce_url``/``ce_uri``/``ce_domain`` from a page's fields, as the tracker has them: from a full
    ``url`` when there is one, else ``path`` (or a relative ``url``) and ``search``."""
    url = page.get("url")
    if isinstance(url, str) and url:
        split = _split_address(url)
        if split is not None:
            return split
    path = page.get("path")
    path = path if isinstance(path, str) and path else (url if isinstance(url, str) and url else None)
    if path is None:
        return PageAddress(None, None, None, "")
    search = page.get("search")
    query = ""
    if "?" in path:
        query = path.split("?", 1)[1].split("#", 1)[0]
    elif isinstance(search, str) and search.lstrip("?"):
        query = search.lstrip("?")
        path = f"{path}?{query}"
    return PageAddress(path, None, None, query)


def page_fields(context: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Page fields from ``context.page`` overlaid by the call's ``properties``."""
    page = context.get("page")
    fields = {k: v for k, v in page.items() if k in PAGE_FIELDS} if isinstance(page, dict) else {}
    fields.update({k: v for k, v in properties.items() if k in PAGE_FIELDS and v is not None})
    return fields


# Woopra's tracker reads these from the page address, ``utm_<key>`` else ``woo_<key>``, and sends
# them as the event's ``campaign_<key>`` (``campaign`` as ``campaign_name``): docs/behaviour.md#woopra-mapping.
CAMPAIGN_KEYS = ("campaign", "content", "id", "medium", "source", "term")
_CAMPAIGN_PARAMETERS = {key: "ce_campaign_" + ("name" if key == "campaign" else key) for key in CAMPAIGN_KEYS}
# context.campaign (Segment's names) → the same parameters.
_CONTEXT_CAMPAIGN_PARAMETERS = {"name": "ce_campaign_name", "campaign": "ce_campaign_name",
                                **{key: _CAMPAIGN_PARAMETERS[key] for key in CAMPAIGN_KEYS if key != "campaign"}}


@lru_cache(maxsize=4096)
def address_campaign(query: str) -> tuple[tuple[str, str], ...]:
    """The campaign parameters of an address's query string, as Woopra's tracker reads them:
    ``utm_<key>``, else ``woo_<key>``, for each campaign key."""
    if "utm_" not in query and "woo_" not in query:
        return ()
    values: dict[str, str] = {}
    for name, value in parse_qsl(query):
        values.setdefault(name, value)  # the first of a repeated parameter
    found = []
    for key in CAMPAIGN_KEYS:
        chosen = values.get("utm_" + key) or values.get("woo_" + key)
        if chosen:
            found.append((_CAMPAIGN_PARAMETERS[key], chosen))
    return tuple(found)


def campaign_params(context: Mapping[str, Any], query: str) -> dict[str, str]:
    """``ce_campaign_*`` of a page or track call: ``context.campaign``, overlaid by the ``utm_``/``woo_``
    parameters of the page's address (what the tracker would read there)."""
    params: dict[str, str] = {}
    campaign = context.get("campaign")
    if isinstance(campaign, dict) and campaign:
        for key, value in campaign.items():
            name = _CONTEXT_CAMPAIGN_PARAMETERS.get(key) if isinstance(key, str) else None
            if name is not None and name not in params:
                formatted = format_value(value)
                if formatted:
                    params[name] = formatted
    if query:
        params.update(address_campaign(query))
    return params


def visit_params(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``language`` (``context.locale``) and ``screen`` (``context.screen``, ``1440x900``), as the
    tracker sends them: unprefixed, on every call."""
    params = []
    locale = context.get("locale")
    if isinstance(locale, str) and locale.strip():
        params.append(("language", locale.strip()))
    screen = context.get("screen")
    if isinstance(screen, dict):
        width, height = _screen_side(screen.get("width")), _screen_side(screen.get("height"))
        if width and height:
            params.append(("screen", f"{width}x{height}"))
    return params


def _screen_side(value: Any) -> int | None:
    """A screen's width or height in pixels: a positive whole number (``1440``, ``1440.0``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 0 < value < 1_000_000 else None


