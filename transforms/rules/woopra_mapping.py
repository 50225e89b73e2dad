"""The Woopra mapping (docs/behaviour.md#woopra-mapping): one enriched event → one HTTP Tracking API request (pure).

Parameter order follows the purchase example of docs/behaviour.md: project, response, timeout, ce_app, event, cookie,
ip, timestamp, language, screen, cv_*, ce_* (a page's own, the campaign, the properties), then the page's ``referer``.
Each parameter is named as Woopra's tracker names it (docs/behaviour.md#beside-woopras-tracker).
Order does not matter to Woopra; a stable order makes dry-run files and tests easy to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from typing import Any

from transforms.rules.events import Event
from transforms.rules.outcomes import Outcome
from transforms.rules.woopra_page import PAGE_FIELDS, campaign_params, page_address, page_fields, visit_params
from transforms.rules.woopra_request import (
    MAX_URL_BYTES,
    Skipped,
    WoopraRequest,
    clean_header_value,
    encode_query,
    encoded_length_bound,
    fit_url,
    format_value,
    request_url,
)

# The request's own names, imported from here by the steps that build and send requests.
__all__ = ["MAX_URL_BYTES", "PRESET_EVENTS", "Skipped", "WoopraRequest", "WoopraSettings", "build_request",
           "clean_header_value", "encode_query", "fit_url", "format_value", "request_url"]

DEFAULT_ENDPOINT = "https://www.woopra.com/track"
DEFAULT_TIMEOUT_MS = 1_800_000
DEFAULT_APP = "datafly-signal"

# The preset: Signal event → Woopra event (docs/behaviour.md#woopra-mapping).
PRESET_EVENTS: Mapping[str, str] = {
    "Signed Up": "signup",
    "Logged In": "login",
    "Products Searched": "search",
    "Product Viewed": "product_viewed",
    "Plan Viewed": "plan_viewed",
    "Product Added": "add_to_cart",
    "Checkout Started": "checkout_started",
    "Order Completed": "purchase",
    "Subscription Started": "subscription_started",
    "Lead Generated": "lead",
}
PAGE_EVENT = "pv"
PRESET_PROPERTY_RENAMES: Mapping[str, str] = {"revenue": "amount"}
WOOPRA_PREFIXES = ("ce_", "cv_", "cs_")


@dataclass(frozen=True)
class WoopraSettings:
    """Everything the mapping needs besides the event: the integration's "Field Mappings"."""

    project: str
    endpoint: str = DEFAULT_ENDPOINT
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    app: str = DEFAULT_APP
    events: Mapping[str, str] = field(default_factory=lambda: dict(PRESET_EVENTS))
    unmapped_events: str = "send"  # send | drop
    property_renames: Mapping[str, str] = field(default_factory=lambda: dict(PRESET_PROPERTY_RENAMES))
    trait_renames: Mapping[str, str] = field(default_factory=dict)

    # Cached: read for every event (a frozen dataclass's cached_property writes its __dict__).
    @cached_property
    def event_url(self) -> str:
        """``{endpoint}/ce/``: page and track calls."""
        return self.endpoint.rstrip("/") + "/ce/"

    @cached_property
    def identify_url(self) -> str:
        """``{endpoint}/identify/``: visitor-only trait updates."""
        return self.endpoint.rstrip("/") + "/identify/"

    @cached_property
    def timeout_param(self) -> str:
        """``timeout`` as sent."""
        return str(self.timeout_ms)

    @cached_property
    def _trait_parameters(self) -> _ParameterNames:
        """Trait key → its ``cv_`` parameter name, remembered per key."""
        return _ParameterNames(partial(_trait_parameter, renames=self.trait_renames))

    @cached_property
    def _property_parameters(self) -> _ParameterNames:
        """Property key → its ``ce_`` parameter name, remembered per key."""
        return _ParameterNames(partial(_property_parameter, renames=self.property_renames))


def woopra_event_name(event: Event, settings: WoopraSettings) -> str | None:
    """The Woopra event name for a page/track call; None when an unmapped event is dropped."""
    if event.type == "page":
        return settings.events.get("page", PAGE_EVENT)
    name = str(event.name).strip()
    mapped = settings.events.get(name)
    if mapped is not None:
        return mapped
    return name if settings.unmapped_events == "send" else None


def _trait_parameter(key: str, renames: Mapping[str, str]) -> str:
    """A trait's parameter name: lowercased, renamed, ``cv_`` unless it carries a Woopra prefix."""
    name = key.lower()
    if renames:
        name = renames.get(name, name).lower()
    return name if name.startswith(WOOPRA_PREFIXES) else "cv_" + name


def _property_parameter(key: str, renames: Mapping[str, str]) -> str:
    """A property's parameter name: renamed, ``ce_`` unless it carries a Woopra prefix."""
    name = renames.get(key, key)
    return name if name.startswith(WOOPRA_PREFIXES) else "ce_" + name


class _ParameterNames(dict[str, str]):
    """Key → parameter name, worked out once per key: the same few keys come in every event."""

    MAX_KEYS = 4096  # the keys come from the events: keep the memory bounded

    def __init__(self, name_of: Callable[[str], str]) -> None:
        super().__init__()
        self.name_of = name_of

    def __missing__(self, key: str) -> str:
        name = self.name_of(key)
        if len(self) < self.MAX_KEYS:
            self[key] = name
        return name


# A visitor's User-Agent and a site's page URLs repeat from event to event: cache their cleaning
# and parsing (bounded, as the values come from the visitors).
@lru_cache(maxsize=1024)
def _clean_user_agent(value: str) -> str:
    return clean_header_value(value)


def _add(params: dict[str, str], key: str, value: Any) -> None:
    formatted = value if type(value) is str else format_value(value)  # str: most values, no call
    if formatted is not None:
        params[key] = formatted


def build_request(event: Event, settings: WoopraSettings, now_ms: int | None = None) -> WoopraRequest | Skipped:
    """Map one enriched event to its Woopra request (or say why it is not sent)."""
    is_identify = event.type == "identify"
    event_name = None if is_identify else woopra_event_name(event, settings)
    if event_name is None and not is_identify:
        return Skipped(Outcome.DROPPED_UNMAPPED, f"unmapped event {event.name!r}")
    raw_context = event.original.get("context")
    context: Mapping[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    # Top-level parameters first, then the custom ones (cv_*, ce_*) in the same dict. Their
    # prefixes keep them apart from every top-level key but ce_app, which is set again below.
    params = _top_level_params(event, settings, event_name, context, now_ms)
    _add_visitor_params(params, event, settings)
    referer = None if is_identify else _add_event_params(params, event, settings, context)
    params["ce_app"] = settings.app  # a property or trait named (ce_)app cannot replace it
    if referer is not None:
        _add(params, "referer", referer)
    url = settings.identify_url if is_identify else settings.event_url
    # Positional: calling a class with keywords builds a kwargs dict, a cost per event.
    request = WoopraRequest(url, tuple(params.items()), _user_agent(context), event.original, event.attributes,
                            event.visitor)
    # fit_url's cheap bound, taken here where it is cheaper to measure (on the dict, not the
    # pairs): nearly every request is far below the limit.
    if encoded_length_bound(url, "".join([*params, *params.values()]), len(params)) <= MAX_URL_BYTES:
        return request
    return fit_url(request)


def _top_level_params(event: Event, settings: WoopraSettings, event_name: str | None, context: Mapping[str, Any],
                      now_ms: int | None) -> dict[str, str]:
    """project, response, timeout, ce_app, event, cookie, ip, timestamp, language, screen."""
    params: dict[str, str] = {
        "project": settings.project,
        "response": "json",
        "timeout": settings.timeout_param,
        "ce_app": settings.app,
    }
    if event_name is not None:
        params["event"] = event_name
    if event.cookie:
        params["cookie"] = event.cookie
    _add(params, "ip", context.get("ip"))
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    params["timestamp"] = str(min(event.timestamp_ms, now_ms))  # Woopra refuses future times
    if "locale" in context or "screen" in context:
        params.update(visit_params(context))
    return params


# The loops below format str values inline: nearly every value is one, and this is the mapping's
# hottest code.

def _add_visitor_params(params: dict[str, str], event: Event, settings: WoopraSettings) -> None:
    """``cv_id`` (the user id) and a ``cv_`` parameter per trait."""
    user_id = event.user_id
    if user_id:
        params["cv_id"] = user_id
    trait_parameters = settings._trait_parameters
    for key, value in event.traits.items():
        name = trait_parameters[key]
        if name == "cv_id" and user_id:
            continue  # cv_id is the userId when there is one (docs/behaviour.md#identity), not an "id" trait
        formatted = value if type(value) is str else format_value(value)
        if formatted is not None:
            params[name] = formatted


def _add_event_params(params: dict[str, str], event: Event, settings: WoopraSettings,
                      context: Mapping[str, Any]) -> str | None:
    """A page's own ``ce_`` parameters, the campaign, a ``ce_`` parameter per property; returns the
    page's referrer (sent last, as ``referer``)."""
    original = event.original
    properties = original.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    is_page = event.type == "page"
    referer = None
    if is_page:
        page = page_fields(context, properties)
        address = page_address(page)
        # As Woopra's tracker: url is the path and query, uri the full address.
        _add(params, "ce_url", address.url)
        _add(params, "ce_title", page.get("title"))
        _add(params, "ce_uri", address.uri)
        _add(params, "ce_domain", address.domain)
        if page.get("search"):
            _add(params, "ce_search", page.get("search"))
        _add(params, "ce_name", original.get("name"))
        referer = page.get("referrer") or None
        query = address.query
    else:
        # A track call of a page: the campaign of the page it happened on.
        page_context = context.get("page")
        query = page_address(page_context).query if isinstance(page_context, dict) else ""
    if query or "campaign" in context:
        # Before the properties: a property of the same name wins, as in the tracker.
        params.update(campaign_params(context, query))
    property_parameters = settings._property_parameters
    for key, value in properties.items():
        if is_page and key in PAGE_FIELDS:
            continue  # sent above as the page view's own parameters
        formatted = value if type(value) is str else format_value(value)
        if formatted is not None:
            params[property_parameters[key]] = formatted
    return referer


def _user_agent(context: Mapping[str, Any]) -> str | None:
    user_agent = context.get("userAgent")
    if not isinstance(user_agent, str) or not user_agent:
        return None
    cleaned = _clean_user_agent(user_agent)
    # The event's own string when cleaning left it as it was: a pickled request then holds it
    # once (with the event), not twice.
    return user_agent if cleaned == user_agent else cleaned
