"""Phone numbers: E.164 and destination type, shared by the dial policy and the recorder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from services.common.numbers import (
    MAX_INPUT_LENGTH,
    DestinationType,
    InvalidNumberError,
    PhoneNumber,
    parse_number,
)


@pytest.mark.parametrize(
    ("raw", "e164", "destination"),
    [
        ("09012345678", "+819012345678", DestinationType.MOBILE),
        ("080-1234-5678", "+818012345678", DestinationType.MOBILE),
        ("07012345678", "+817012345678", DestinationType.MOBILE),
        ("0312345678", "+81312345678", DestinationType.LANDLINE),
        ("06-1234-5678", "+81612345678", DestinationType.LANDLINE),
        ("05012345678", "+815012345678", DestinationType.IP_PHONE),
        ("0120123456", "+81120123456", DestinationType.TOLL_FREE),
        ("0120-123-456", "+81120123456", DestinationType.TOLL_FREE),
        ("0800-123-4567", "+818001234567", DestinationType.TOLL_FREE),
    ],
)
def test_domestic_numbers(raw: str, e164: str, destination: DestinationType) -> None:
    number = parse_number(raw)
    assert number.e164 == e164
    assert number.region == "JP"
    assert number.destination_type() is destination
    assert not number.is_premium


@pytest.mark.parametrize(
    "raw",
    [
        "09012345678",
        "090-1234-5678",
        "090 1234 5678",
        "(090)1234-5678",
        "+819012345678",
        "+81 90-1234-5678",
        "  09012345678\t",
        "０９０１２３４５６７８",
    ],
)
def test_spellings_of_one_mobile_number_agree(raw: str) -> None:
    number = parse_number(raw)
    assert number.e164 == "+819012345678"
    assert number.line_type == PhoneNumberType.MOBILE
    assert number.destination_type() is DestinationType.MOBILE


def test_premium_rate_0990() -> None:
    number = parse_number("0990-123-456")
    assert number.e164 == "+81990123456"
    assert number.line_type == PhoneNumberType.PREMIUM_RATE
    assert number.is_premium
    # Not one of the billed destination types: the recorder stores it as unknown.
    assert number.destination_type() is DestinationType.UNKNOWN


@pytest.mark.parametrize("raw", ["+4918012345", "+34901123456", "+33884012345"])
def test_shared_cost_numbers_count_as_premium(raw: str) -> None:
    # Japan has no shared-cost range in libphonenumber; Germany, Spain and France do.
    number = parse_number(raw)
    assert number.line_type == PhoneNumberType.SHARED_COST
    assert number.is_premium


def test_navi_dial_0570_counts_as_premium() -> None:
    # 0570 numbers charge the caller a premium; libphonenumber calls them UAN.
    number = parse_number("0570-123-456")
    assert number.line_type == PhoneNumberType.UAN
    assert number.is_premium


@pytest.mark.parametrize("raw", ["+19002345678", "+449012345678"])
def test_foreign_premium_rate_numbers(raw: str) -> None:
    assert parse_number(raw).is_premium


def test_us_number_is_international_from_japan() -> None:
    number = parse_number("+1 202-555-0123")
    assert number.e164 == "+12025550123"
    assert number.region == "US"
    assert number.destination_type() is DestinationType.INTERNATIONAL
    assert number.destination_type(home_region="US") is not DestinationType.INTERNATIONAL
    assert not number.is_premium


def test_default_region_decides_national_numbers() -> None:
    assert parse_number("2025550123", default_region="US").e164 == "+12025550123"
    # The same digits read as a Japanese national number (a 020 pager number).
    assert parse_number("2025550123", default_region="JP").e164 == "+812025550123"
    # A number in international form ignores the default region.
    assert parse_number("+819012345678", default_region="US").region == "JP"


def test_japanese_number_seen_from_another_home_region_is_international() -> None:
    number = parse_number("09012345678")
    assert number.destination_type(home_region="US") is DestinationType.INTERNATIONAL


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "client:u_123",
        "sip:alice@example.com",
        "123",
        "0000000000",
        "090123",
        "0901234567890123",
        "+999123456789",
        "+",
        "0" * MAX_INPUT_LENGTH,
        "9" * 500,
        "09012345678" + " " * 30 + "x",
        "\x00\x01\x02",
        "📞📞📞",
    ],
)
def test_junk_is_not_a_number(raw: str) -> None:
    with pytest.raises(InvalidNumberError):
        parse_number(raw)


def test_input_longer_than_the_limit_is_refused_before_parsing() -> None:
    padded = "09012345678".ljust(MAX_INPUT_LENGTH + 1, "-")
    with pytest.raises(InvalidNumberError, match="not a phone number"):
        parse_number(padded)
    # Surrounding whitespace does not count against the limit.
    assert parse_number(" " * 100 + "09012345678" + " " * 100).e164 == "+819012345678"


def test_invalid_number_error_is_a_value_error() -> None:
    assert issubclass(InvalidNumberError, ValueError)


def test_phone_number_is_immutable() -> None:
    number = parse_number("09012345678")
    with pytest.raises(AttributeError):
        number.e164 = "+1"  # type: ignore[misc]
    assert number == PhoneNumber("+819012345678", "JP", PhoneNumberType.MOBILE)


_phoneish = st.text(alphabet="0123456789+-() ０１２３４５６７８９#*xX.", max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | _phoneish)
def test_arbitrary_text_parses_or_raises_invalid_number_error(raw: str) -> None:
    try:
        number = parse_number(raw)
    except InvalidNumberError:
        return
    assert number.e164.startswith("+")
    assert number.e164[1:].isdigit()
    assert isinstance(number.destination_type(), DestinationType)
    # E.164 output parses back to itself.
    assert parse_number(number.e164) == number
