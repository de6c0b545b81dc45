"""Tariffs are data: the default file, exact decimals, the tariff in force, and clear errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.recorder.domain.tariff import Tariff, TariffBook, TariffError, parse_tariffs
from services.recorder.settings import DEFAULT_TARIFF

ENTRY = """
[[tariff]]
effective_from = {effective}
currency = "JPY"
number_rental_per_month = 108
[tariff.per_minute]
client = 0.25
landline = 5.4
mobile = 16.2
"""


def _one(**fields: str | None) -> str:
    """One [[tariff]] with the given fields (TOML values) in place of valid ones."""
    values = {"effective_from": "2020-01-01", "currency": '"JPY"', "mobile": '"16.2"'}
    values.update(fields)
    lines = ["[[tariff]]"]
    lines += [f"{k} = {v}" for k, v in values.items() if k != "mobile" and v is not None]
    if "per_minute" not in fields:
        lines += ["[tariff.per_minute]", f"mobile = {values['mobile']}"]
    return "\n".join(lines) + "\n"


# --- the default tariff ----------------------------------------------------------------------


def test_the_default_tariff_is_the_published_one() -> None:
    book = parse_tariffs(DEFAULT_TARIFF.read_text(encoding="utf-8"))
    assert len(book.tariffs) == 1
    (tariff,) = book.tariffs
    assert tariff.effective_from == date(2020, 1, 1)
    assert tariff.currency == "JPY"
    assert tariff.rate_for("client") == Decimal("0.25")
    assert tariff.rate_for("landline") == Decimal("5.4")
    assert tariff.rate_for("mobile") == Decimal("16.2")
    assert tariff.number_rental_per_month == Decimal("108")
    # A browser call to a mobile phone: 16.45 yen a minute (CONTRACT §5).
    assert tariff.rate_for("client") + tariff.rate_for("mobile") == Decimal("16.45")


@pytest.mark.parametrize("key", ["ip_phone", "toll_free", "international", "unknown", "sip"])
def test_the_default_tariff_leaves_other_destinations_unrated(key: str) -> None:
    tariff = parse_tariffs(DEFAULT_TARIFF.read_text(encoding="utf-8")).in_force(date(2026, 11, 1))
    assert tariff is not None
    assert tariff.rate_for(key) is None


# --- exact decimals ---------------------------------------------------------------------------


def test_toml_floats_become_the_decimals_written() -> None:
    (tariff,) = parse_tariffs(ENTRY.format(effective="2020-01-01")).tariffs
    rates = tariff.per_minute
    assert all(isinstance(rate, Decimal) for rate in rates.values())
    assert str(rates["landline"]) == "5.4"  # not 5.4000000000000003552713678800500929355621337…
    assert str(rates["mobile"]) == "16.2"
    assert str(rates["client"]) == "0.25"
    assert rates["landline"] * 3 == Decimal("16.2")
    assert tariff.number_rental_per_month == Decimal(108)
    assert isinstance(tariff.number_rental_per_month, Decimal)


@pytest.mark.parametrize(("written", "exact"), [('"16.20"', "16.20"), ("16", "16"), ("0", "0")])
def test_rates_keep_what_the_file_says(written: str, exact: str) -> None:
    (tariff,) = parse_tariffs(_one(mobile=written)).tariffs
    assert str(tariff.rate_for("mobile")) == exact


def test_a_lower_case_currency_is_normalised() -> None:
    (tariff,) = parse_tariffs(_one(currency='"jpy"')).tariffs
    assert tariff.currency == "JPY"


def test_rental_and_rates_are_optional() -> None:
    (tariff,) = parse_tariffs('[[tariff]]\neffective_from = 2020-01-01\ncurrency = "USD"\n').tariffs
    assert tariff.per_minute == {}
    assert tariff.number_rental_per_month is None
    assert tariff.rate_for("mobile") is None


# --- the tariff in force -----------------------------------------------------------------------


def _book() -> TariffBook:
    # Written newest first on purpose: the book sorts them.
    return parse_tariffs(
        ENTRY.format(effective="2026-11-15").replace("16.2", "20")
        + ENTRY.format(effective="2020-01-01")
        + ENTRY.format(effective="2024-04-01").replace("16.2", "18")
    )


def test_the_book_is_sorted_oldest_first() -> None:
    assert [t.effective_from for t in _book().tariffs] == [
        date(2020, 1, 1),
        date(2024, 4, 1),
        date(2026, 11, 15),
    ]


@pytest.mark.parametrize(
    ("day", "mobile"),
    [
        (date(2020, 1, 1), "16.2"),
        (date(2024, 3, 31), "16.2"),
        (date(2024, 4, 1), "18"),
        (date(2026, 11, 14), "18"),
        (date(2026, 11, 15), "20"),
        (date(2099, 1, 1), "20"),
    ],
)
def test_in_force_is_the_latest_tariff_started_on_or_before_the_day(day: date, mobile: str) -> None:
    tariff = _book().in_force(day)
    assert tariff is not None
    assert tariff.rate_for("mobile") == Decimal(mobile)
    assert tariff.effective_from <= day


def test_nothing_is_in_force_before_the_first_tariff() -> None:
    assert _book().in_force(date(2019, 12, 31)) is None


def test_a_book_built_in_code_checks_itself() -> None:
    with pytest.raises(TariffError, match="at least one"):
        TariffBook([])
    same = Tariff(effective_from=date(2020, 1, 1), currency="JPY")
    with pytest.raises(TariffError, match="same day"):
        TariffBook([same, same])


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[tariff]\n", "not valid TOML"),
        ('currency = "JPY"\ncurrency = "USD"\n', "not valid TOML"),
        ("", "[[tariff]]"),
        ('currency = "JPY"\n', "[[tariff]]"),
        ("tariff = 1\n", "[[tariff]]"),
        ('[tariff]\neffective_from = 2020-01-01\ncurrency = "JPY"\n', "[[tariff]]"),
        ("tariff = []\n", "at least one [[tariff]]"),
        ("tariff = [1]\n", "tariff #1: must be a table"),
        (_one(effective_from=None), "tariff #1: effective_from must be a date (YYYY-MM-DD)"),
        (_one(effective_from='"2020-01-01"'), "effective_from must be a date"),
        (_one(effective_from="2020-01-01T00:00:00"), "effective_from must be a date"),
        (_one(effective_from="2020-01-01T00:00:00+09:00"), "effective_from must be a date"),
        (_one(effective_from="09:00:00"), "effective_from must be a date"),
        (_one(effective_from="20200101"), "effective_from must be a date"),
        (_one(currency=None), "tariff #1: currency must be an ISO 4217 code"),
        (_one(currency='"YEN!"'), "currency must be an ISO 4217 code"),
        (_one(currency='"JP"'), "currency must be an ISO 4217 code"),
        (_one(currency='"J1Y"'), "currency must be an ISO 4217 code"),
        (_one(currency='"ＪＰＹ"'), "currency must be an ISO 4217 code"),
        (_one(currency="392"), "currency must be an ISO 4217 code"),
        (_one(mobile="-1"), "tariff #1: per_minute.mobile must be a non-negative number"),
        (_one(mobile='"-0.01"'), "per_minute.mobile must be a non-negative number"),
        (_one(mobile='"abc"'), "tariff #1: per_minute.mobile is not a number"),
        (_one(mobile='""'), "per_minute.mobile is not a number"),
        (_one(mobile='"NaN"'), "per_minute.mobile must be a non-negative number"),
        (_one(mobile="inf"), "per_minute.mobile must be a non-negative number"),
        (_one(mobile="nan"), "per_minute.mobile must be a non-negative number"),
        (_one(mobile="true"), "tariff #1: per_minute.mobile must be a number"),
        (_one(mobile="false"), "per_minute.mobile must be a number"),
        (_one(mobile="[1]"), "per_minute.mobile must be a number"),
        (_one(mobile="{ a = 1 }"), "per_minute.mobile must be a number"),
        (_one(mobile="2020-01-01"), "per_minute.mobile must be a number"),
        (_one(per_minute="5"), "tariff #1: per_minute must be a table"),
        (_one(number_rental_per_month="-108"), "number_rental_per_month must be a non-negative"),
        (_one(number_rental_per_month="true"), "number_rental_per_month must be a number"),
        (_one(number_rental_per_month='"lots"'), "number_rental_per_month is not a number"),
        (_one() + _one(), "two tariffs take effect on the same day"),
        (_one() + _one(effective_from="2021-01-01", mobile='"x"'), "tariff #2: per_minute"),
    ],
)
def test_a_bad_tariff_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse_tariffs(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_tariff_error_is_a_value_error() -> None:
    assert issubclass(TariffError, ValueError)
