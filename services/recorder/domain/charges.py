"""What a leg costs: Twilio bills each leg (each CallSid) per started minute at its own rate;
and what a call's recording and transcription cost (CONTRACT.md section 11), per started minute
at the tariff's ``recording`` and ``transcription`` rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.recorder.domain.legs import CallLeg, Direction, Leg
from services.recorder.domain.tariff import TariffBook

SIP_RATE_KEY = "sip"  # a SIP leg: a LINE call's own leg into the SIP domain, or one dialled to SIP
INBOUND_RATE_KEY = "inbound"  # a customer's call received on the company number


@dataclass(frozen=True, slots=True)
class Charge:
    billable_minutes: int
    amount: Decimal | None  # None: no rate for this destination ("unrated"), never zero
    currency: str | None
    rate: Decimal | None
    tariff_from: date | None


def billable_minutes(duration_s: int | None) -> int:
    """Started minutes: 1 s is one minute, 60 s is one, 61 s is two."""
    if not duration_s or duration_s <= 0:
        return 0
    return -(-duration_s // 60)


def rate_key(leg: CallLeg) -> str:
    """The tariff key a leg is priced by. The browser legs that ring for an inbound call are
    ``client`` legs like any other; a leg forwarded to a phone is priced by where it goes."""
    if leg.leg is Leg.SIP:
        return SIP_RATE_KEY
    if leg.direction is Direction.INBOUND and leg.parent_call_sid is None:
        return INBOUND_RATE_KEY
    return leg.destination_type.value


def billing_month(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar month a call belongs to: the one it started in, in the billing zone."""
    local = moment.astimezone(zone)
    return date(local.year, local.month, 1)


def leg_started(leg: CallLeg) -> datetime | None:
    return leg.started_at or leg.answered_at or leg.ended_at


def charge_leg(leg: CallLeg, tariffs: TariffBook, zone: ZoneInfo) -> Charge | None:
    """The leg's charge once it has ended; ``None`` while it is still going."""
    started = leg_started(leg)
    if not leg.ended or started is None:
        return None
    return charge_minutes(billable_minutes(leg.duration_s), rate_key(leg), started, tariffs, zone)


RECORDING_RATE_KEY = "recording"  # per started minute of RecordingDuration
TRANSCRIPTION_RATE_KEY = "transcription"  # per started minute of the call, per track


def charge_minutes(
    minutes: int, key: str, day: datetime | None, tariffs: TariffBook, zone: ZoneInfo
) -> Charge:
    """``minutes`` at the rate in force on the day (unrated, never zero, without one)."""
    tariff = tariffs.in_force(day.astimezone(zone).date()) if day is not None else None
    if tariff is None:
        return Charge(minutes, None, None, None, None)
    rate = tariff.rate_for(key)
    amount = None if rate is None else rate * minutes
    return Charge(minutes, amount, tariff.currency, rate, tariff.effective_from)
