"""The pure reconciliation: decimals, currencies, unpriced legs, the month's window."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.recorder.domain.reconcile import (
    CLIENT,
    INBOUND,
    NUMBERS,
    OUTBOUND,
    SIP,
    OurLeg,
    OurRecording,
    TwilioCall,
    TwilioRecording,
    add_recordings,
    month_window,
    reconcile,
    stored_prices,
    stored_recording_prices,
    usage_category,
    usage_window,
)


def _call(sid: str, price: str | None, unit: str | None = "JPY") -> TwilioCall:
    return TwilioCall(sid, Decimal(price) if price is not None else None, unit)


def test_amounts_compare_as_decimals_and_report_positive() -> None:
    ours = [OurLeg("CA1", Decimal("16.45"), "JPY"), OurLeg("CA2", Decimal("5.4"), "JPY")]
    twilio = {"CA1": _call("CA1", "-16.4500"), "CA2": _call("CA2", "-5.5")}
    report = reconcile("2026-11", "JPY", ours, twilio)
    assert report.legs_compared == 2
    assert [(d.call_sid, d.ours, d.twilio) for d in report.legs_differing] == [
        ("CA2", Decimal("5.4"), Decimal("5.5"))
    ]
    assert report.total_ours == Decimal("21.85")
    assert report.total_twilio == Decimal("21.95")
    doc = report.as_json()
    assert doc["total_twilio"] == "21.9500"
    assert doc["legs_differing"] == [
        {"call_sid": "CA2", "ours": "5.4", "twilio": "5.5", "unit": "JPY"}
    ]


def test_unpriced_unknown_other_currency_and_unrated() -> None:
    ours = [
        OurLeg("CA1", Decimal("1"), "JPY"),  # Twilio has not priced it
        OurLeg("CA2", Decimal("1"), "JPY"),  # Twilio does not know it
        OurLeg("CA3", Decimal("1"), "JPY"),  # priced in dollars
        OurLeg("CA4", None, "JPY"),  # unrated by us, priced by Twilio
    ]
    twilio = {
        "CA1": _call("CA1", None, None),
        "CA3": _call("CA3", "-0.01", "USD"),
        "CA4": _call("CA4", "-2.0", "jpy"),
        "CA9": _call("CA9", "-100"),  # not ours
    }
    report = reconcile("2026-11", "JPY", ours, twilio)
    assert report.legs_unpriced == 2
    assert report.legs_other_currency == 1
    assert report.legs_compared == 1
    assert report.as_json()["legs_differing"] == [
        {"call_sid": "CA4", "ours": None, "twilio": "2.0", "unit": "jpy"}
    ]
    assert report.total_ours == 0
    assert report.total_twilio == Decimal("2.0")
    stored = {p.call_sid: (p.price, p.unit) for p in stored_prices(ours, twilio)}
    assert stored == {
        "CA1": (None, None),
        "CA2": (None, None),
        "CA3": (Decimal("0.01"), "USD"),
        "CA4": (Decimal("2.0"), "jpy"),
    }


def test_the_window_covers_the_month_in_the_billing_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    assert month_window(date(2026, 11, 1), tokyo) == (date(2026, 10, 31), date(2026, 12, 1))
    assert month_window(date(2026, 12, 1), tokyo) == (date(2026, 11, 30), date(2027, 1, 1))
    utc = ZoneInfo("UTC")
    assert month_window(date(2026, 2, 1), utc) == (date(2026, 2, 1), date(2026, 3, 1))
    assert usage_window(date(2026, 2, 1)) == (date(2026, 2, 1), date(2026, 2, 28))


def test_usage_categories() -> None:
    assert usage_category("browser", "outbound") == CLIENT
    assert usage_category("sip", "inbound") == SIP
    assert usage_category("pstn", "inbound") == INBOUND
    assert usage_category("pstn", "outbound") == OUTBOUND
    assert usage_category("pstn", None) == OUTBOUND
    assert NUMBERS == "phonenumbers-local"


def test_recordings_are_compared_as_legs_are_in_their_own_keys() -> None:
    ours = [
        OurRecording("RE1", "CA1", Decimal("0.75"), "JPY"),
        OurRecording("RE2", "CA1", Decimal("0.75"), "JPY"),  # Twilio billed more
        OurRecording("RE3", "CA2", None, "JPY"),  # unrated by us, priced by Twilio
        OurRecording("RE4", "CA3", Decimal("0.75"), "JPY"),  # not priced yet
        OurRecording("RE5", "CA4", Decimal("0.75"), "JPY"),  # in dollars
    ]
    twilio = {
        "RE1": TwilioRecording("RE1", "CA1", Decimal("-0.750"), "JPY"),
        "RE2": TwilioRecording("RE2", "CA1", Decimal("-1.5"), "JPY"),
        "RE3": TwilioRecording("RE3", "CA2", Decimal("-0.75"), "JPY"),
        "RE4": TwilioRecording("RE4", "CA3", None, None),
        "RE5": TwilioRecording("RE5", "CA4", Decimal("-0.005"), "USD"),
    }
    report = reconcile("2026-11", "JPY", [OurLeg("CA1", Decimal("1"), "JPY")], {})
    add_recordings(report, ours, twilio)
    doc = report.as_json()
    assert (doc["legs_compared"], doc["legs_unpriced"]) == (0, 1)  # the legs untouched
    assert doc["recordings_compared"] == 3
    assert doc["recordings_differing"] == [
        {"recording_sid": "RE2", "call_sid": "CA1", "ours": "0.75", "twilio": "1.5", "unit": "JPY"},
        {"recording_sid": "RE3", "call_sid": "CA2", "ours": None, "twilio": "0.75", "unit": "JPY"},
    ]
    assert (doc["recordings_unpriced"], doc["recordings_other_currency"]) == (1, 1)
    assert (doc["recordings_total_ours"], doc["recordings_total_twilio"]) == ("1.50", "3.000")
    stored = {p.call_sid: (p.price, p.unit) for p in stored_recording_prices(ours, twilio)}
    assert stored["RE2"] == (Decimal("1.5"), "JPY")
    assert stored["RE4"] == (None, None)
