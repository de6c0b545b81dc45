"""Each leg's computed charge against what Twilio billed for it (CONTRACT.md section 10), and
each recording's (section 11). Pure.

Twilio's ``price`` is a negative decimal string (a debit) or null until Twilio has priced the
call; calltrail keeps and reports it as a positive amount. Amounts are compared as decimals
(``16.45`` equals ``16.4500``) and only in one currency: a leg Twilio priced in another unit is
counted, never converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

# Twilio's Usage Records categories that calltrail's legs and rental fall into, in the order
# the report shows them (Usage Records, "Usage Categories").
CLIENT = "calls-client"
OUTBOUND = "calls-outbound"
INBOUND = "calls-inbound"
SIP = "calls-sip"
NUMBERS = "phonenumbers-local"
USAGE_CATEGORIES = (CLIENT, OUTBOUND, INBOUND, SIP, NUMBERS)


@dataclass(frozen=True, slots=True)
class TwilioCall:
    """A call as Twilio's Calls list gives it: ``price`` as Twilio sends it (negative)."""

    sid: str
    price: Decimal | None
    price_unit: str | None
    start_time: datetime | None = None

    @property
    def billed(self) -> Decimal | None:
        return None if self.price is None else abs(self.price)


@dataclass(frozen=True, slots=True)
class TwilioRecording:
    """A recording as Twilio's Recordings list gives it: ``price`` negative, or None until
    Twilio has priced it (Recording resource, ``price``/``price_unit``)."""

    sid: str
    call_sid: str | None
    price: Decimal | None
    price_unit: str | None

    @property
    def billed(self) -> Decimal | None:
        return None if self.price is None else abs(self.price)


class Billed(Protocol):
    """What Twilio billed for one thing of ours (a call leg, a recording)."""

    @property
    def billed(self) -> Decimal | None: ...

    @property
    def price_unit(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class UsageRecord:
    category: str
    description: str
    count: Decimal | None
    count_unit: str
    usage: Decimal | None
    usage_unit: str
    price: Decimal | None
    price_unit: str | None


@dataclass(frozen=True, slots=True)
class OurLeg:
    call_sid: str
    charge: Decimal | None  # None: unrated
    currency: str | None


@dataclass(frozen=True, slots=True)
class LegDifference:
    call_sid: str
    ours: Decimal | None
    twilio: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class OurRecording:
    recording_sid: str
    call_sid: str
    charge: Decimal | None  # None: unrated, or not done yet
    currency: str | None


@dataclass(frozen=True, slots=True)
class RecordingDifference:
    recording_sid: str
    call_sid: str
    ours: Decimal | None
    twilio: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class StoredPrice:
    """What goes into ``calls.twilio_price`` / ``twilio_price_unit`` for a leg."""

    call_sid: str
    price: Decimal | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class OurUsage:
    """Our legs of one Usage Records category (or the month's number rental)."""

    category: str
    legs: int
    minutes: int
    charge: Decimal | None


@dataclass(frozen=True, slots=True)
class UsageLine:
    category: str
    ours: OurUsage | None
    twilio: UsageRecord | None


@dataclass(slots=True)
class Reconciliation:
    month: str
    currency: str | None
    legs_compared: int = 0
    legs_differing: list[LegDifference] = field(default_factory=list)
    legs_unpriced: int = 0
    legs_other_currency: int = 0
    total_ours: Decimal = Decimal(0)
    total_twilio: Decimal = Decimal(0)
    usage: list[UsageLine] = field(default_factory=list)
    # The recordings of the month's calls, compared the same way (CONTRACT.md section 11).
    recordings_compared: int = 0
    recordings_differing: list[RecordingDifference] = field(default_factory=list)
    recordings_unpriced: int = 0
    recordings_other_currency: int = 0
    recordings_total_ours: Decimal = Decimal(0)
    recordings_total_twilio: Decimal = Decimal(0)

    def as_json(self) -> dict[str, object]:
        """The report's JSON document: CONTRACT.md section 10's keys, amounts as strings."""
        return {
            "month": self.month,
            "currency": self.currency,
            "legs_compared": self.legs_compared,
            "legs_differing": [
                {
                    "call_sid": d.call_sid,
                    "ours": _text(d.ours),
                    "twilio": str(d.twilio),
                    "unit": d.unit,
                }
                for d in self.legs_differing
            ],
            "legs_unpriced": self.legs_unpriced,
            "legs_other_currency": self.legs_other_currency,
            "total_ours": str(self.total_ours),
            "total_twilio": str(self.total_twilio),
            "usage": [
                {
                    "category": line.category,
                    "ours_legs": line.ours.legs if line.ours else None,
                    "ours_minutes": line.ours.minutes if line.ours else None,
                    "ours_charge": _text(line.ours.charge) if line.ours else None,
                    "twilio_count": _text(line.twilio.count) if line.twilio else None,
                    "twilio_usage": _text(line.twilio.usage) if line.twilio else None,
                    "twilio_usage_unit": line.twilio.usage_unit if line.twilio else None,
                    "twilio_price": _text(_positive(line.twilio.price)) if line.twilio else None,
                    "twilio_price_unit": line.twilio.price_unit if line.twilio else None,
                }
                for line in self.usage
            ],
            "recordings_compared": self.recordings_compared,
            "recordings_differing": [
                {
                    "recording_sid": d.recording_sid,
                    "call_sid": d.call_sid,
                    "ours": _text(d.ours),
                    "twilio": str(d.twilio),
                    "unit": d.unit,
                }
                for d in self.recordings_differing
            ],
            "recordings_unpriced": self.recordings_unpriced,
            "recordings_other_currency": self.recordings_other_currency,
            "recordings_total_ours": str(self.recordings_total_ours),
            "recordings_total_twilio": str(self.recordings_total_twilio),
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _positive(value: Decimal | None) -> Decimal | None:
    return None if value is None else abs(value)


def _same_unit(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().upper() == b.strip().upper()


@dataclass(slots=True)
class Comparison:
    """Our charges against Twilio's prices, for one kind of thing (legs, recordings)."""

    compared: int = 0
    differing: list[tuple[str, Decimal | None, Decimal, str]] = field(default_factory=list)
    unpriced: int = 0
    other_currency: int = 0
    total_ours: Decimal = Decimal(0)
    total_twilio: Decimal = Decimal(0)


def compare(
    ours: Iterable[tuple[str, Decimal | None]],
    twilio: Mapping[str, Billed],
    currency: str | None,
) -> Comparison:
    """Each (SID, our charge) against what Twilio billed for that SID: compared when Twilio
    priced it in ``currency``; differing (SID, ours, Twilio's, unit) when the two amounts are
    not equal as decimals (an unrated one of ours that Twilio priced, too)."""
    result = Comparison()
    for sid, charge in ours:
        item = twilio.get(sid)
        billed = item.billed if item is not None else None
        if item is None or billed is None:
            result.unpriced += 1
            continue
        if not _same_unit(item.price_unit, currency):
            result.other_currency += 1
            continue
        result.compared += 1
        result.total_twilio += billed
        if charge is not None:
            result.total_ours += charge
        if charge is None or charge != billed:
            result.differing.append((sid, charge, billed, item.price_unit or ""))
    return result


def reconcile(
    month: str,
    currency: str | None,
    ours: Iterable[OurLeg],
    twilio: Mapping[str, TwilioCall],
) -> Reconciliation:
    """Compare our legs with Twilio's calls, by CallSid. ``currency`` is the month's (our
    tariff's); a Twilio call that is not one of our legs is not looked at."""
    legs = compare(((leg.call_sid, leg.charge) for leg in ours), twilio, currency)
    return Reconciliation(
        month=month,
        currency=currency,
        legs_compared=legs.compared,
        legs_differing=[LegDifference(*difference) for difference in legs.differing],
        legs_unpriced=legs.unpriced,
        legs_other_currency=legs.other_currency,
        total_ours=legs.total_ours,
        total_twilio=legs.total_twilio,
    )


def add_recordings(
    report: Reconciliation,
    ours: Sequence[OurRecording],
    twilio: Mapping[str, TwilioRecording],
) -> None:
    """Compare our recordings with Twilio's Recordings, by RecordingSid, into ``report``."""
    calls = {r.recording_sid: r.call_sid for r in ours}
    result = compare(((r.recording_sid, r.charge) for r in ours), twilio, report.currency)
    report.recordings_compared = result.compared
    report.recordings_differing = [
        RecordingDifference(sid, calls[sid], charge, billed, unit)
        for sid, charge, billed, unit in result.differing
    ]
    report.recordings_unpriced = result.unpriced
    report.recordings_other_currency = result.other_currency
    report.recordings_total_ours = result.total_ours
    report.recordings_total_twilio = result.total_twilio


def stored_prices(ours: Iterable[OurLeg], twilio: Mapping[str, TwilioCall]) -> list[StoredPrice]:
    """For each of our legs, what Twilio billed (positive) in its own unit, or nothing yet."""
    return [_stored_price(leg.call_sid, twilio) for leg in ours]


def stored_recording_prices(
    ours: Iterable[OurRecording], twilio: Mapping[str, TwilioRecording]
) -> list[StoredPrice]:
    """For each of our recordings (``call_sid``: its RecordingSid here), as stored_prices."""
    return [_stored_price(r.recording_sid, twilio) for r in ours]


def _stored_price(sid: str, twilio: Mapping[str, Billed]) -> StoredPrice:
    item = twilio.get(sid)
    billed = item.billed if item is not None else None
    unit = item.price_unit if item is not None and billed is not None else None
    return StoredPrice(sid, billed, unit)


def usage_category(leg: str, direction: str | None) -> str:
    """The Usage Records category a leg of ours is billed under."""
    if leg == "browser":
        return CLIENT
    if leg == "sip":
        return SIP
    return INBOUND if direction == "inbound" else OUTBOUND


def side_by_side(ours: Sequence[OurUsage], twilio: Sequence[UsageRecord]) -> list[UsageLine]:
    """calltrail's usage next to Twilio's Usage Records, one line per category."""
    by_ours = {u.category: u for u in ours}
    by_twilio = {r.category: r for r in twilio}
    return [UsageLine(c, by_ours.get(c), by_twilio.get(c)) for c in USAGE_CATEGORIES]


def month_window(month: date, zone: ZoneInfo) -> tuple[date, date]:
    """The UTC days to ask Twilio's Calls list for, so that every call that started in
    ``month`` (in ``zone``) is included: on or after the first, before the second. Twilio
    filters ``StartTime`` by UTC date (Call resource, "Read multiple Call resources")."""
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    end = datetime(following.year, following.month, 1, tzinfo=zone)
    first = start.astimezone(ZoneInfo("UTC")).date()
    last = (end - timedelta(microseconds=1)).astimezone(ZoneInfo("UTC")).date()
    return first, last + timedelta(days=1)


def usage_window(month: date) -> tuple[date, date]:
    """The month's first and last day, for Usage Records' StartDate/EndDate (which Twilio
    counts in GMT days: they can differ from BILLING_TZ's month by the zone's offset)."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return month, following - timedelta(days=1)
