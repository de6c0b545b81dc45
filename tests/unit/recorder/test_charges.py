"""What a leg costs: per started minute, per leg, at the rate in force when it started."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.common.events import CallEvent
from services.common.numbers import DestinationType
from services.devtools.twilio_player import new_sid
from services.recorder.domain.charges import (
    SIP_RATE_KEY,
    Charge,
    billable_minutes,
    billing_month,
    charge_leg,
    leg_started,
    rate_key,
)
from services.recorder.domain.legs import CallLeg, Leg
from services.recorder.domain.tariff import TariffBook, parse_tariffs
from services.recorder.settings import DEFAULT_TARIFF, DatabaseSettings
from tests.unit.recorder.support import (
    IP_PHONE,
    LANDLINE,
    MOBILE,
    QUERY,
    SIP_FROM,
    T0,
    dial,
    fold,
    leg_of,
    status,
)

TOKYO = ZoneInfo(DatabaseSettings.model_fields["billing_tz"].default)
DEFAULT = parse_tariffs(DEFAULT_TARIFF.read_text(encoding="utf-8"))


def _pstn(
    to: str = MOBILE,
    outcome: str = "completed",
    duration_s: int | None = 61,
    at: datetime = T0,
    parent: str | None = None,
) -> list[CallEvent]:
    child, parent = new_sid(), parent or new_sid()
    statuses = ["initiated", "ringing"] + (["in-progress"] if outcome == "completed" else [])
    statuses.append(outcome)
    last = len(statuses) - 1
    return [
        status(
            name,
            call_sid=child,
            parent=parent,
            to=to,
            sequence=seq,
            at=at + timedelta(seconds=seq + ((duration_s or 0) if seq == last else 0)),
            duration_s=duration_s if seq == last else None,
            query=QUERY,
        )
        for seq, name in enumerate(statuses)
    ]


def _browser(parent: str, duration_s: int = 61, at: datetime = T0) -> list[CallEvent]:
    return [
        dial(call_sid=parent, at=at),
        status(
            "completed",
            call_sid=parent,
            from_="client:u_123",
            to="090-1234-5678",
            direction="inbound",
            duration_s=duration_s,
            at=at + timedelta(seconds=duration_s + 2),
        ),
    ]


def _charge(leg: CallLeg, tariffs: TariffBook = DEFAULT, zone: ZoneInfo = TOKYO) -> Charge:
    charge = charge_leg(leg, tariffs, zone)
    assert charge is not None
    return charge


def test_the_billing_zone_defaults_to_tokyo() -> None:
    assert TOKYO.key == "Asia/Tokyo"


# --- started minutes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_s", "minutes"),
    [(None, 0), (0, 0), (-5, 0), (1, 1), (59, 1), (60, 1), (61, 2), (119, 2), (120, 2),
     (3600, 60), (3601, 61)],
)  # fmt: skip
def test_billable_minutes_are_started_minutes(duration_s: int | None, minutes: int) -> None:
    assert billable_minutes(duration_s) == minutes


# --- rate keys ---------------------------------------------------------------------------------


def test_rate_keys() -> None:
    parent = new_sid()
    browser = fold(_browser(parent))[parent]
    assert rate_key(browser) == "client"
    assert rate_key(leg_of(*_pstn(MOBILE))) == "mobile"
    assert rate_key(leg_of(*_pstn(LANDLINE))) == "landline"
    assert rate_key(leg_of(*_pstn(IP_PHONE))) == "ip_phone"
    sip = leg_of(status("completed", call_sid=new_sid(), from_=SIP_FROM, duration_s=5))
    assert sip.leg is Leg.SIP
    assert rate_key(sip) == SIP_RATE_KEY == "sip"


# --- charges -----------------------------------------------------------------------------------


def test_no_charge_while_the_leg_has_not_ended() -> None:
    events = _pstn()
    for n in range(1, len(events)):
        leg = leg_of(*events[:n])
        assert not leg.ended
        assert charge_leg(leg, DEFAULT, TOKYO) is None
    assert charge_leg(leg_of(*events), DEFAULT, TOKYO) is not None


def test_a_browser_call_to_a_mobile_costs_16_45_yen_a_started_minute() -> None:
    parent = new_sid()
    legs = fold(_browser(parent, duration_s=61) + _pstn(MOBILE, duration_s=61, parent=parent))
    assert len(legs) == 2
    browser = _charge(legs[parent])
    pstn = _charge(next(leg for sid, leg in legs.items() if sid != parent))

    assert browser == Charge(2, Decimal("0.50"), "JPY", Decimal("0.25"), date(2020, 1, 1))
    assert pstn == Charge(2, Decimal("32.4"), "JPY", Decimal("16.2"), date(2020, 1, 1))
    assert browser.amount is not None
    assert pstn.amount is not None
    total = browser.amount + pstn.amount
    assert total == 2 * Decimal("16.45") == Decimal("32.90")
    assert str(total) == "32.90"  # exact: no float ever touched it


def test_a_landline_leg() -> None:
    charge = _charge(leg_of(*_pstn(LANDLINE, duration_s=3601)))
    assert charge.billable_minutes == 61
    assert charge.amount == Decimal("5.4") * 61 == Decimal("329.4")


@pytest.mark.parametrize("to", [IP_PHONE, "+81120123456", "+12025550123", "anonymous"])
def test_a_destination_without_rate_is_unrated_never_zero(to: str) -> None:
    leg = leg_of(*_pstn(to, duration_s=61))
    assert leg.destination_type is not DestinationType.MOBILE
    charge = _charge(leg)
    assert charge.amount is None
    assert charge.amount != Decimal(0)
    assert charge.rate is None
    assert charge.billable_minutes == 2  # the minutes are still known
    assert charge.currency == "JPY"
    assert charge.tariff_from == date(2020, 1, 1)


def test_a_sip_leg_is_unrated_in_the_default_tariff() -> None:
    leg = leg_of(
        status("completed", call_sid=new_sid(), from_=SIP_FROM, direction="inbound", duration_s=90)
    )
    charge = _charge(leg)
    assert charge.amount is None
    assert charge.billable_minutes == 2


def test_a_sip_rate_prices_sip_legs() -> None:
    tariffs = parse_tariffs(
        '[[tariff]]\neffective_from = 2020-01-01\ncurrency = "JPY"\n'
        '[tariff.per_minute]\nsip = "0.5"\n'
    )
    leg = leg_of(
        status("completed", call_sid=new_sid(), from_=SIP_FROM, direction="inbound", duration_s=90)
    )
    assert _charge(leg, tariffs).amount == Decimal("1.0")


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "canceled", "failed"])
@pytest.mark.parametrize("duration_s", [0, None])
def test_an_unanswered_leg_costs_nothing_but_is_rated(outcome: str, duration_s: int | None) -> None:
    leg = leg_of(*_pstn(MOBILE, outcome=outcome, duration_s=duration_s))
    assert leg.ended
    charge = _charge(leg)
    assert charge.billable_minutes == 0
    assert charge.amount is not None
    assert charge.amount == 0
    assert charge.rate == Decimal("16.2")


def test_a_leg_before_every_tariff_is_unrated() -> None:
    leg = leg_of(*_pstn(MOBILE, at=datetime(2019, 6, 1, tzinfo=UTC)))
    charge = _charge(leg)
    assert charge == Charge(2, None, None, None, None)


# --- months and tariff changes, in the billing zone -------------------------------------------

BOUNDARY = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)  # 2026-11-01 00:30 in Tokyo


def test_billing_month_is_the_month_in_the_billing_zone() -> None:
    assert billing_month(BOUNDARY, TOKYO) == date(2026, 11, 1)
    assert billing_month(BOUNDARY, ZoneInfo("UTC")) == date(2026, 10, 1)
    assert billing_month(BOUNDARY - timedelta(hours=1), TOKYO) == date(2026, 10, 1)
    assert billing_month(datetime(2026, 12, 31, 15, 0, tzinfo=UTC), TOKYO) == date(2027, 1, 1)


def test_the_call_belongs_to_the_month_it_started_in() -> None:
    leg = leg_of(*_pstn(MOBILE, duration_s=3600, at=BOUNDARY - timedelta(minutes=40)))
    assert leg.ended_at is not None
    assert leg.ended_at.astimezone(TOKYO).month == 11
    started = leg_started(leg)
    assert started is not None
    assert billing_month(started, TOKYO) == date(2026, 10, 1)


def test_leg_started_falls_back_to_the_end() -> None:
    leg = leg_of(status("completed", call_sid=new_sid(), parent=new_sid(), sequence=3))
    assert leg_started(leg) == leg.ended_at == T0


def _changing_book() -> TariffBook:
    return parse_tariffs(
        DEFAULT_TARIFF.read_text(encoding="utf-8")
        + '\n[[tariff]]\neffective_from = 2026-11-15\ncurrency = "JPY"\n'
        '[tariff.per_minute]\nclient = "0.3"\nmobile = "20"\n'
    )


@pytest.mark.parametrize(
    ("start", "rate"),
    [
        (datetime(2026, 11, 14, 14, 59, tzinfo=UTC), Decimal("16.2")),  # 14th, 23:59 Tokyo
        (datetime(2026, 11, 14, 15, 0, tzinfo=UTC), Decimal("20")),  # 15th, 00:00 Tokyo
        (datetime(2026, 11, 1, 3, 0, tzinfo=UTC), Decimal("16.2")),
        (datetime(2026, 11, 30, 3, 0, tzinfo=UTC), Decimal("20")),
    ],
)
def test_a_tariff_change_mid_month_prices_by_the_start_day(start: datetime, rate: Decimal) -> None:
    # Each call lasts an hour: it ends well after the change, yet its start decides.
    leg = leg_of(*_pstn(MOBILE, duration_s=3600, at=start))
    charge = _charge(leg, _changing_book())
    assert charge.rate == rate
    assert charge.amount == rate * 60
    assert charge.tariff_from == (date(2026, 11, 15) if rate == Decimal("20") else date(2020, 1, 1))


def test_the_start_day_is_taken_in_the_billing_zone() -> None:
    start = datetime(2026, 11, 14, 16, 0, tzinfo=UTC)  # the 15th in Tokyo, the 14th in UTC
    leg = leg_of(*_pstn(MOBILE, duration_s=60, at=start))
    assert _charge(leg, _changing_book(), TOKYO).rate == Decimal("20")
    assert _charge(leg, _changing_book(), ZoneInfo("UTC")).rate == Decimal("16.2")


def test_a_rate_left_out_of_a_later_tariff_is_unrated_from_then() -> None:
    leg = leg_of(*_pstn(LANDLINE, duration_s=60, at=datetime(2026, 11, 20, tzinfo=UTC)))
    charge = _charge(leg, _changing_book())
    assert charge.tariff_from == date(2026, 11, 15)
    assert charge.amount is None
