"""Identity rules (SPEC §3): what is remembered per visitor and applied to each call (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from transforms.events import Event

FALLBACK_COOKIE_LENGTH = 24


@dataclass
class VisitorIdentity:
    """Everything known about one visitor so far, each value with the event time it came from.

    Keeping the time of each value makes "newest by event time wins" hold even when a stream
    delivers a visitor's calls out of order.
    """

    traits: dict[str, tuple[int, Any]] = field(default_factory=dict)
    user_id: tuple[int, str] | None = None
    cookie: tuple[int, str] | None = None
    last_seen_ms: int = 0

    def remember(self, event: Event) -> None:
        """Fold what ``event`` says about its visitor into this identity."""
        at = event.timestamp_ms
        for key, value in event.own_traits.items():
            key = key.lower()  # Woopra's cv_ names are lower-case: "Name" and "name" are one trait
            known = self.traits.get(key)
            if known is None or known[0] <= at:
                self.traits[key] = (at, value)
        if event.user_id is not None and (self.user_id is None or self.user_id[0] <= at):
            self.user_id = (at, event.user_id)
        cookie = event.own_cookie
        if cookie is not None and (self.cookie is None or self.cookie[0] <= at):
            self.cookie = (at, cookie)
        self.last_seen_ms = max(self.last_seen_ms, at)

    def idle_longer_than(self, ttl_ms: int, at_ms: int) -> bool:
        """True when the visitor was last seen more than ``ttl_ms`` before ``at_ms`` (forget it)."""
        return bool(self.last_seen_ms) and at_ms - self.last_seen_ms > ttl_ms

    def current_traits(self) -> dict[str, Any]:
        """Trait name → newest value."""
        return {key: value for key, (_, value) in self.traits.items()}


def enrich_in_order(
    events: Iterable[Event], identity: VisitorIdentity, ttl_ms: int
) -> tuple[list[Event], VisitorIdentity]:
    """Apply one visitor's events in event-time order, starting from what was remembered.

    A gap of more than ``ttl_ms`` of event time since the visitor was last seen starts afresh:
    the visitor's remembered identity has expired. Returns the enriched events and the identity
    to remember afterwards.
    """
    enriched: list[Event] = []
    for event in sorted(events, key=lambda e: e.timestamp_ms):
        if identity.idle_longer_than(ttl_ms, event.timestamp_ms):
            identity = VisitorIdentity()
        enriched.append(enrich(event, identity))
    return enriched, identity


def fallback_cookie(anonymous_id: str) -> str:
    """A stable Woopra cookie derived from the anonymous id: same visitor, same profile."""
    digest = hashlib.blake2b(anonymous_id.encode("utf-8"), digest_size=FALLBACK_COOKIE_LENGTH // 2)
    return digest.hexdigest().upper()


def _has_identifier(traits: dict[str, Any], user_id: str | None) -> bool:
    """Whether Woopra can merge the call on cv_id or cv_email without a cookie."""
    email = traits.get("email")
    return bool(user_id) or (isinstance(email, str) and bool(email.strip()))


def enrich(event: Event, identity: VisitorIdentity) -> Event:
    """Remember what ``event`` says, then return it carrying every trait known for its visitor.

    ``identity`` is updated in place: it is the visitor's state between calls.
    """
    identity.remember(event)
    traits = identity.current_traits()
    # The call's own values win for this call even if an out-of-order call stored newer ones.
    traits.update((key.lower(), value) for key, value in event.own_traits.items())
    user_id = event.user_id or (identity.user_id[1] if identity.user_id else None)
    cookie = event.own_cookie or (identity.cookie[1] if identity.cookie else None)
    if cookie is None and not _has_identifier(traits, user_id):
        anonymous_id = event.original.get("anonymousId")
        cookie = fallback_cookie(str(anonymous_id) if anonymous_id is not None else event.visitor)
    return dataclasses.replace(event, traits=traits, user_id=user_id, cookie=cookie)
