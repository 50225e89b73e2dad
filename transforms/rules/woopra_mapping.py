"""The Woopra mapping (docs/behaviour.md#woopra-mapping): one enriched event → one HTTP Tracking API request (pure).

Parameter order follows the purchase example of docs/behaviour.md: project, response, timeout, ce_app, event, cookie,
ip, timestamp, language, screen, cv_*, ce_* (a page's own, the campaign, the properties), then the page's ``referer``.
Each parameter is named as Woopra's tracker names it (docs/behaviour.md#beside-woopras-tracker).
Order does not matter to Woopra; a stable order makes dry-run files and tests easy to read.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property, lru_cache, partial
from itertools import chain
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

from transforms.rules.events import Event
from transforms.rules.outcomes import Outcome

DEFAULT_ENDPOINT = "https://www.woopra.com/track"
DEFAULT_TIMEOUT_MS = 1_800_000
DEFAULT_APP = "datafly-signal"
MAX_URL_BYTES = 8 * 1024
# A cut value keeps at least this many characters: enough to recognise it in Woopra.
MIN_CUT_LENGTH = 64

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
# Page fields that become the page-view parameters rather than plain ce_<key> properties.
_PAGE_FIELDS = frozenset({"url", "path", "title", "referrer", "search"})
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
# The characters urllib's quote_plus leaves as they are.
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


@lru_cache(maxsize=16384)
def _quote_repeated(text: str) -> str:
    return quote_plus(text)


def _quote(text: str) -> str:
    return text if _URL_SAFE.fullmatch(text) else _quote_repeated(text)


def encode_query(params: tuple[tuple[str, str], ...]) -> str:
    """``urlencode(params)`` exactly (``Jane+Doe``, ``%40``), three times faster.

    Names, numbers and ids need no escaping and are returned as they are; the values that do
    (emails, URLs, names) repeat from event to event, so their escaping is cached.
    """
    return "&".join([f"{_quote(name)}={_quote(value)}" for name, value in params])


def request_url(url: str, params: tuple[tuple[str, str], ...]) -> str:
    """A request's URL, its query encoded: what goes on the wire."""
    return f"{url}?{encode_query(params)}"


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


@dataclass(frozen=True)
class WoopraRequest:
    """One GET to Woopra's HTTP Tracking API, with the event it came from (for dead letters)."""

    url: str  # without query: {endpoint}/ce/ or {endpoint}/identify/
    params: tuple[tuple[str, str], ...]
    user_agent: str | None
    event: Mapping[str, Any]  # the original input event
    attributes: Mapping[str, str] | None = None
    visitor: str = ""  # the event's visitor (``Event.visitor``): with its id, the ledger's key

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers to send: the visitor's User-Agent, when known."""
        return {"User-Agent": self.user_agent} if self.user_agent else {}

    def full_url(self) -> str:
        """The URL with its encoded query, as the HTTP library sends it."""
        return request_url(self.url, self.params)

    def as_record(self) -> dict[str, Any]:
        """JSON form used by dry-run files and dead letters."""
        return {"method": "GET", "url": self.url, "params": dict(self.params), "headers": self.headers}


@dataclass(frozen=True)
class Skipped:
    """An event the mapping does not send; ``reason`` is its summary key."""

    reason: Outcome  # DROPPED_UNMAPPED | TOO_LARGE
    error: str = ""


def format_value(value: Any) -> str | None:
    """A JSON value as a Woopra parameter value; None means "leave the parameter out"."""
    kind = type(value)
    if kind is str:  # the common case first: this runs for every parameter of every event
        return value
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        text = repr(value)
        # repr switches to exponent notation for very large/small values; Woopra wants decimals.
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


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


def clean_header_value(value: str) -> str:
    """Remove CR/LF and other control characters so a value can be an HTTP header."""
    if value.isprintable():  # fast path: no control characters at all
        return value.strip()
    return _CONTROL_CHARACTERS.sub(" ", value).strip()


# A visitor's User-Agent and a site's page URLs repeat from event to event: cache their cleaning
# and parsing (bounded, as the values come from the visitors).
@lru_cache(maxsize=1024)
def _clean_user_agent(value: str) -> str:
    return clean_header_value(value)


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


def _page_fields(context: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Page fields from ``context.page`` overlaid by the call's ``properties``."""
    page = context.get("page")
    fields = {k: v for k, v in page.items() if k in _PAGE_FIELDS} if isinstance(page, dict) else {}
    fields.update({k: v for k, v in properties.items() if k in _PAGE_FIELDS and v is not None})
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


def _add(params: dict[str, str], key: str, value: Any) -> None:
    formatted = value if type(value) is str else format_value(value)  # str: most values, no call
    if formatted is not None:
        params[key] = formatted


def build_request(event: Event, settings: WoopraSettings, now_ms: int | None = None) -> WoopraRequest | Skipped:
    """Map one enriched event to its Woopra request (or say why it is not sent)."""
    original = event.original
    is_identify = event.type == "identify"
    if is_identify:
        event_name = None
    else:
        event_name = woopra_event_name(event, settings)
        if event_name is None:
            return Skipped(Outcome.DROPPED_UNMAPPED, f"unmapped event {event.name!r}")

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    # Top-level parameters first, then the custom ones (cv_*, ce_*) in the same dict. Their
    # prefixes keep them apart from every top-level key but ce_app, which is set again below.
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
    raw_context = original.get("context")
    context: Mapping[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    _add(params, "ip", context.get("ip"))
    params["timestamp"] = str(min(event.timestamp_ms, now_ms))  # Woopra refuses future times
    if "locale" in context or "screen" in context:
        params.update(visit_params(context))

    # The loops below format str values inline: nearly every value is one, and this is the
    # mapping's hottest code.
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

    referer = None
    if not is_identify:
        properties = original.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        is_page = event.type == "page"
        if is_page:
            page = _page_fields(context, properties)
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
            if is_page and key in _PAGE_FIELDS:
                continue  # sent above as the page view's own parameters
            formatted = value if type(value) is str else format_value(value)
            if formatted is not None:
                params[property_parameters[key]] = formatted

    params["ce_app"] = settings.app  # a property or trait named (ce_)app cannot replace it
    if referer is not None:
        _add(params, "referer", referer)

    url = settings.identify_url if is_identify else settings.event_url
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str) and user_agent:
        cleaned = _clean_user_agent(user_agent)
        # The event's own string when cleaning left it as it was: a pickled request then holds
        # it once (with the event), not twice.
        user_agent = user_agent if cleaned == user_agent else cleaned
    else:
        user_agent = None
    # Positional: calling a class with keywords builds a kwargs dict, a cost per event.
    request = WoopraRequest(url, tuple(params.items()), user_agent, original, event.attributes, event.visitor)
    # fit_url's cheap bound, taken here where it is cheaper to measure (on the dict, not the
    # pairs): nearly every request is far below the limit.
    if encoded_length_bound(url, "".join([*params, *params.values()]), len(params)) <= MAX_URL_BYTES:
        return request
    return fit_url(request)


def _encoded_length(key: str, value: str) -> int:
    return len(urlencode({key: value}))


def encoded_length_bound(url: str, text: str, pairs: int) -> int:
    """At least the length of ``url?query`` where ``text`` is every name and value of the query.

    Encoding turns a UTF-8 byte into at most three characters ("%XX"), and a character is one
    byte when ASCII, at most four otherwise (emoji are four).
    """
    per_character = 3 if text.isascii() else 12
    return len(url) + 1 + 2 * pairs + per_character * len(text)


def fit_url(request: WoopraRequest, limit: int = MAX_URL_BYTES) -> WoopraRequest | Skipped:
    """Keep the request URL within ``limit`` bytes by cutting the longest custom values.

    Rule: while the URL is too long, the ce_*/cv_* value with the longest encoded form is cut
    to what fits (never below MIN_CUT_LENGTH characters; cv_id and cv_email are never cut, as
    they identify the visitor). If that is not enough the event is ``too_large``.
    """
    # Cheap bound first: nearly every request is far below the limit, and encoding it just to
    # measure it would be the mapping's largest single cost.
    if encoded_length_bound(request.url, "".join(chain.from_iterable(request.params)), len(request.params)) <= limit:
        return request
    excess = len(request.full_url()) - limit
    if excess <= 0:
        return request
    params = dict(request.params)
    while excess > 0:
        cuttable = [
            (k, v) for k, v in params.items()
            if k.startswith(("ce_", "cv_")) and k not in ("cv_id", "cv_email", "ce_app")
            and len(v) > MIN_CUT_LENGTH
        ]
        if not cuttable:
            return Skipped(Outcome.TOO_LARGE, f"request URL is {excess + limit} bytes, over {limit}")
        key, value = max(cuttable, key=lambda kv: _encoded_length(*kv))
        # Encoded length per character varies (UTF-8, %-escapes): cut by the average ratio.
        ratio = _encoded_length(key, value) / max(len(value), 1)
        keep = max(MIN_CUT_LENGTH, len(value) - math.ceil(excess / ratio) - 1)
        params[key] = value[:keep]
        excess = len(request.url) + 1 + len(urlencode(params)) - limit
    return WoopraRequest(request.url, tuple(params.items()), request.user_agent, request.event,
                         request.attributes, request.visitor)
