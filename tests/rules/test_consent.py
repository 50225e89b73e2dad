"""Unit tests for transforms/rules/consent.py: the consent filter rules of docs/behaviour.md#input-events."""

from __future__ import annotations

import pytest

from transforms.rules.consent import ConsentOutcome, ConsentPolicy, consent_flags, decide_consent

DENY = ConsentPolicy()  # analytics, default deny
ALLOW = ConsentPolicy(default="allow")


def event_with(consent):
    context = {"ip": "203.0.113.50"}
    if consent is not ...:
        context["consent"] = consent
    return {"type": "track", "event": "Order Completed", "anonymousId": "a", "context": context}


# ----- the three shapes ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "consent, shape",
    [
        ({"canonical": {"analytics": True}}, "context.consent.canonical"),
        ({"categories": {"analytics": True}}, "context.consent.categories"),
        ({"analytics": True, "marketing": False}, "context.consent"),
    ],
)
def test_each_consent_shape_grants_analytics(consent, shape):
    decision = decide_consent(event_with(consent), DENY)
    assert decision.outcome is ConsentOutcome.GRANTED
    assert decision.outcome.allowed
    assert decision.shape == shape


@pytest.mark.parametrize(
    "consent, expected",
    [
        # canonical wins over both other shapes, whatever they say
        ({"canonical": {"analytics": True}, "categories": {"analytics": False}, "analytics": False},
         ConsentOutcome.GRANTED),
        ({"canonical": {"analytics": False}, "categories": {"analytics": True}, "analytics": True},
         ConsentOutcome.DENIED),
        # categories wins over the flat map
        ({"categories": {"analytics": False}, "analytics": True}, ConsentOutcome.DENIED),
        ({"categories": {"analytics": True}, "analytics": False}, ConsentOutcome.GRANTED),
        # first match wins even when it says nothing about the category: no fall-through
        ({"canonical": {"marketing": True}, "analytics": True}, ConsentOutcome.MISSING),
    ],
)
def test_first_matching_shape_wins(consent, expected):
    assert decide_consent(event_with(consent), DENY).outcome is expected


def test_categories_with_other_names_falls_back_to_flat_map():
    consent = {"categories": {"C0001": True, "C0002": False}, "analytics": True}
    shape, flags = consent_flags(event_with(consent), ("analytics",))
    assert shape == "context.consent"
    assert flags["analytics"] is True
    assert decide_consent(event_with(consent), DENY).outcome is ConsentOutcome.GRANTED


# ----- names and values ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "consent",
    [
        {"Analytics": True},
        {"ANALYTICS": True},
        {" analytics ": True},
        {"canonical": {"AnAlYtIcS": True}},
        {"categories": {"Analytics": True}},
    ],
)
def test_event_category_names_compare_case_insensitively(consent):
    assert decide_consent(event_with(consent), DENY).outcome is ConsentOutcome.GRANTED


def test_policy_category_names_compare_case_insensitively():
    policy = ConsentPolicy(required=("Analytics", " MARKETING "))
    assert policy.required == ("analytics", "marketing")
    decision = decide_consent(event_with({"analytics": True, "marketing": True}), policy)
    assert decision.outcome is ConsentOutcome.GRANTED


@pytest.mark.parametrize("value", [True, "true", "granted", "YES", "allow", 1, "1", "opt-in"])
def test_granted_spellings(value):
    assert decide_consent(event_with({"analytics": value}), DENY).outcome is ConsentOutcome.GRANTED


@pytest.mark.parametrize("value", [False, "false", "denied", "No", "deny", 0, "0", "opt_out"])
def test_denied_spellings(value):
    assert decide_consent(event_with({"analytics": value}), ALLOW).outcome is ConsentOutcome.DENIED


@pytest.mark.parametrize("value", [None, "maybe", 2, [], {}])
def test_unreadable_consent_value_counts_as_missing(value):
    assert decide_consent(event_with({"analytics": value}), DENY).outcome is ConsentOutcome.MISSING
    assert decide_consent(event_with({"analytics": value}), ALLOW).outcome is ConsentOutcome.DEFAULT_ALLOWED


# ----- essential, denied, missing -----------------------------------------------------------

def test_essential_is_always_granted_even_without_consent_info():
    policy = ConsentPolicy(required=("essential",))
    assert decide_consent(event_with(...), policy).outcome is ConsentOutcome.GRANTED


def test_essential_is_granted_even_when_event_denies_it():
    policy = ConsentPolicy(required=("Essential", "analytics"))
    decision = decide_consent(event_with({"essential": False, "analytics": True}), policy)
    assert decision.outcome is ConsentOutcome.GRANTED


@pytest.mark.parametrize("policy", [DENY, ALLOW], ids=["default-deny", "default-allow"])
def test_explicit_deny_is_consent_denied_whatever_the_default(policy):
    decision = decide_consent(event_with({"analytics": False, "marketing": True}), policy)
    assert decision.outcome is ConsentOutcome.DENIED
    assert not decision.outcome.allowed
    assert decision.outcome.value == "consent_denied"


@pytest.mark.parametrize(
    "consent",
    [..., None, "yes", {}, {"marketing": True}, {"canonical": {}}, {"categories": {}}],
    ids=["no-consent-key", "null", "string", "empty", "other-category", "empty-canonical", "empty-categories"],
)
def test_missing_consent_default_deny_is_consent_missing(consent):
    decision = decide_consent(event_with(consent), DENY)
    assert decision.outcome is ConsentOutcome.MISSING
    assert not decision.outcome.allowed
    assert decision.outcome.value == "consent_missing"


@pytest.mark.parametrize("consent", [..., {}, {"marketing": True}])
def test_missing_consent_default_allow_is_delivered(consent):
    decision = decide_consent(event_with(consent), ALLOW)
    assert decision.outcome is ConsentOutcome.DEFAULT_ALLOWED
    assert decision.outcome.allowed


def test_event_without_context_is_missing():
    event = {"type": "page", "anonymousId": "a"}
    assert decide_consent(event, DENY).outcome is ConsentOutcome.MISSING
    assert decide_consent(event, ALLOW).outcome is ConsentOutcome.DEFAULT_ALLOWED
    assert consent_flags(event, ("analytics",)) == (None, {})


# ----- several required categories ----------------------------------------------------------

@pytest.mark.parametrize(
    "consent, expected",
    [
        ({"analytics": True, "marketing": True}, ConsentOutcome.GRANTED),
        ({"analytics": True, "marketing": False}, ConsentOutcome.DENIED),
        ({"analytics": False, "marketing": True}, ConsentOutcome.DENIED),
        ({"analytics": True}, ConsentOutcome.MISSING),
        ({"marketing": True}, ConsentOutcome.MISSING),
        # a denial beats a missing category, whichever comes first
        ({"marketing": False}, ConsentOutcome.DENIED),
        ({"analytics": False}, ConsentOutcome.DENIED),
    ],
)
def test_every_required_category_must_be_granted(consent, expected):
    policy = ConsentPolicy(required=("analytics", "marketing"))
    assert decide_consent(event_with(consent), policy).outcome is expected


def test_policy_rejects_unknown_default():
    with pytest.raises(ValueError, match="maybe"):
        ConsentPolicy(default="maybe")


def test_consent_flags_lowercases_and_keeps_only_readable_values():
    shape, flags = consent_flags(event_with({"Analytics": "granted", "Ads": "no", "x": "huh"}), ("analytics",))
    assert shape == "context.consent"
    assert flags == {"analytics": True, "ads": False}
