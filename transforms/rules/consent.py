"""Consent rules (docs/behaviour.md#input-events): which events the integration may deliver (pure, no Beam)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from transforms.rules.outcomes import Outcome

ALWAYS_GRANTED = frozenset({"essential"})
_GRANTED_WORDS = frozenset({"true", "granted", "yes", "allow", "allowed", "1", "opt_in", "opt-in"})
_DENIED_WORDS = frozenset({"false", "denied", "no", "deny", "0", "opt_out", "opt-out"})


class ConsentOutcome(StrEnum):
    """What the consent filter decided, and why; the value is the summary key when filtered."""

    GRANTED = "granted"
    DEFAULT_ALLOWED = "default_allowed"  # no consent information, --consent_default allow
    DENIED = Outcome.CONSENT_DENIED.value
    MISSING = Outcome.CONSENT_MISSING.value  # no consent information, --consent_default deny

    @property
    def allowed(self) -> bool:
        """True when the event may be delivered."""
        return self in (ConsentOutcome.GRANTED, ConsentOutcome.DEFAULT_ALLOWED)


@dataclass(frozen=True)
class ConsentPolicy:
    """The categories an event must have granted, and what to do when it says nothing."""

    required: tuple[str, ...] = ("analytics",)
    default: str = "deny"  # deny | allow

    def __post_init__(self) -> None:
        if self.default not in ("deny", "allow"):
            raise ValueError(f"consent default must be 'deny' or 'allow', got {self.default!r}")
        object.__setattr__(self, "required", tuple(c.strip().lower() for c in self.required))


@dataclass(frozen=True)
class ConsentDecision:
    """A consent outcome with the shape it was read from, for the debugger and logs."""

    outcome: ConsentOutcome
    shape: str | None  # context.consent.canonical | context.consent.categories | context.consent
    detail: str


def _as_flag(value: Any) -> bool | None:
    """A consent value as granted (True) / denied (False) / unknown (None)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value) if value in (0, 1) else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _GRANTED_WORDS:
            return True
        if word in _DENIED_WORDS:
            return False
    return None


def _flags(mapping: Mapping[str, Any]) -> dict[str, bool]:
    """Category → granted, lower-cased, keeping only values that read as a consent flag."""
    flags: dict[str, bool] = {}
    for key, value in mapping.items():
        flag = _as_flag(value)
        if flag is not None:
            flags[str(key).strip().lower()] = flag
    return flags


def consent_flags(event: Mapping[str, Any], required: tuple[str, ...]) -> tuple[str | None, dict[str, bool]]:
    """Find the consent map in an event: the first consent shape (docs/behaviour.md#consent) that matches wins."""
    context = event.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    if not isinstance(consent, dict):
        return None, {}
    canonical = consent.get("canonical")
    if isinstance(canonical, dict):
        return "context.consent.canonical", _flags(canonical)
    categories = consent.get("categories")
    if isinstance(categories, dict):
        flags = _flags(categories)
        # "when it uses the same names": only if it names one of the categories we gate on.
        if any(name in flags for name in required):
            return "context.consent.categories", flags
    return "context.consent", _flags(consent)


def decide_consent(event: Mapping[str, Any], policy: ConsentPolicy) -> ConsentDecision:
    """Decide whether ``event`` may be sent to Woopra under ``policy``."""
    shape, flags = consent_flags(event, policy.required)
    missing: list[str] = []
    for category in policy.required:
        if category in ALWAYS_GRANTED:
            continue
        flag = flags.get(category)
        if flag is False:
            return ConsentDecision(ConsentOutcome.DENIED, shape, f"'{category}' denied")
        if flag is None:
            missing.append(category)
    if not missing:
        return ConsentDecision(ConsentOutcome.GRANTED, shape, "all required categories granted")
    detail = f"no consent given for {', '.join(repr(c) for c in missing)}"
    if policy.default == "allow":
        return ConsentDecision(ConsentOutcome.DEFAULT_ALLOWED, shape, detail + " (default allow)")
    return ConsentDecision(ConsentOutcome.MISSING, shape, detail + " (default deny)")
