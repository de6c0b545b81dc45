"""The dial policy (the toll-fraud gate)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.numbers import parse_number
from services.gateway.domain import dial_policy
from services.gateway.domain.dial_policy import DialDecision, decide_dial

# --- decide_dial ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("09012345678", "+819012345678"),
        ("090-1234-5678", "+819012345678"),
        ("+819012345678", "+819012345678"),
        ("0312345678", "+81312345678"),
        ("05012345678", "+815012345678"),
        ("0120-123-456", "+81120123456"),
    ],
)
def test_domestic_numbers_are_allowed(raw: str, e164: str) -> None:
    decision = decide_dial(raw, ["JP"])
    assert decision.allowed
    assert decision.refusal is None
    assert decision.number is not None
    assert decision.number.e164 == e164


@pytest.mark.parametrize("raw", [None, ""])
def test_no_number(raw: str | None) -> None:
    decision = decide_dial(raw, ["JP"])
    assert not decision.allowed
    assert decision.number is None
    assert decision.refusal == "no number given"


@pytest.mark.parametrize("raw", ["abc", "123", "client:u_123", "0000000000", "9" * 500, "   "])
def test_invalid_numbers_are_refused(raw: str) -> None:
    decision = decide_dial(raw, ["JP"])
    assert not decision.allowed
    assert decision.refusal is not None
    assert "phone number" in decision.refusal


def test_premium_rate_is_refused() -> None:
    decision = decide_dial("0990-123-456", ["JP"])
    assert not decision.allowed
    assert decision.refusal == "premium-rate or shared-cost number"


@pytest.mark.parametrize(("raw", "region"), [("+4918012345", "DE"), ("+34901123456", "ES")])
def test_shared_cost_is_refused_even_in_an_allowed_country(raw: str, region: str) -> None:
    # Japan has no shared-cost range in libphonenumber; use countries that do.
    decision = decide_dial(raw, ["JP", region])
    assert not decision.allowed
    assert decision.refusal == "premium-rate or shared-cost number"


def test_foreign_premium_rate_is_refused_even_when_allowed() -> None:
    decision = decide_dial("+19002345678", ["JP", "US"])
    assert not decision.allowed
    assert decision.refusal == "premium-rate or shared-cost number"


def test_other_country_is_refused_when_only_japan_is_allowed() -> None:
    decision = decide_dial("+12025550123", ["JP"])
    assert not decision.allowed
    assert decision.refusal == "country US not allowed"


def test_other_country_is_allowed_when_listed() -> None:
    decision = decide_dial("+12025550123", ["JP", "US"])
    assert decision.allowed
    assert decision.number is not None
    assert decision.number.e164 == "+12025550123"
    assert decision.number.region == "US"


def test_national_numbers_are_read_in_the_first_allowed_country() -> None:
    us_first = decide_dial("2025550123", ["US", "JP"])
    assert us_first.number is not None
    assert us_first.number.e164 == "+12025550123"
    assert decide_dial("09012345678", ["JP", "US"]).allowed


def test_non_geographic_numbers_are_refused() -> None:
    # +800 (international freephone) belongs to no country ("001").
    decision = decide_dial("+80012345678", ["JP"])
    assert not decision.allowed
    assert decision.refusal is not None


def test_dial_decision_allowed_follows_the_number() -> None:
    assert not DialDecision(None, "x").allowed
    assert DialDecision(parse_number("09012345678")).allowed


_regions = st.lists(st.sampled_from(["JP", "US", "DE", "ES", "GB", "FR"]), min_size=1, max_size=3)
_phoneish = st.text(alphabet="0123456789+-() ０１２３４５６７８９", max_size=20)
_known = st.sampled_from(
    [
        "0990123456",
        "+81990123456",
        "+4918012345",
        "+34901123456",
        "+19002345678",
        "+449012345678",
        "09012345678",
        "+12025550123",
        "0570123456",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.none() | st.text(max_size=40) | _phoneish | _known, _regions)
def test_decide_dial_never_raises_and_never_allows_premium(
    raw: str | None, regions: list[str]
) -> None:
    decision = decide_dial(raw, regions)
    assert isinstance(decision, DialDecision)
    if decision.allowed:
        assert decision.refusal is None
        assert decision.number is not None
        assert not decision.number.is_premium
        assert decision.number.region in regions
    else:
        assert decision.refusal


@settings(max_examples=200, deadline=None)
@given((st.text(max_size=40) | _phoneish | _known).filter(bool), _regions)
def test_remembered_decisions_are_the_parser_s(raw: str, regions: list[str]) -> None:
    first, again = decide_dial(raw, regions), decide_dial(raw, regions)
    assert first == again == dial_policy._decide(raw, tuple(regions))


def test_only_number_sized_input_is_remembered() -> None:
    dial_policy._decide_cached.cache_clear()
    decide_dial("090-1234-5678", ["JP"])
    decide_dial("090-1234-5678", ["JP"])
    assert dial_policy._decide_cached.cache_info().hits == 1
    assert not decide_dial("0" * 200, ["JP"]).allowed
    assert dial_policy._decide_cached.cache_info().currsize == 1
    assert dial_policy._decide_cached.cache_info().maxsize == dial_policy.DECISIONS_CACHED
