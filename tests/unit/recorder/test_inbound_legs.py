"""Inbound calls' legs: direction on every leg, the LINE user id shared, the pricing keys
(``inbound``, ``sip``) and unrated legs reported, never zero, when the tariff has no such key."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from services.common.numbers import DestinationType
from services.recorder.domain.batch import fold_batch
from services.recorder.domain.charges import INBOUND_RATE_KEY, SIP_RATE_KEY, charge_leg, rate_key
from services.recorder.domain.legs import Direction, Leg
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.settings import DEFAULT_TARIFF
from tests.inbound_calls import inbound_call
from tests.unit.recorder.support import T0, fold

TOKYO = ZoneInfo("Asia/Tokyo")
DEFAULT = parse_tariffs(DEFAULT_TARIFF.read_text(encoding="utf-8"))
WITH_INBOUND = parse_tariffs(
    """
[[tariff]]
effective_from = 2020-01-01
currency = "JPY"
[tariff.per_minute]
client = "0.25"
landline = "5.4"
mobile = "16.2"
inbound = "3"
sip = "1"
"""
)
LINE_ID = "U" + "0123456789abcdef" * 2


def test_every_leg_of_an_answered_call_to_the_number() -> None:
    call = inbound_call(caller="+819011112222", ring=("kintone_5", "kintone_7"), at=T0)
    legs = fold(call.events)
    root = legs[call.root]
    assert (root.leg, root.direction, root.destination_type) == (
        Leg.PSTN,
        Direction.INBOUND,
        DestinationType.MOBILE,
    )
    assert rate_key(root) == INBOUND_RATE_KEY
    for identity in ("kintone_5", "kintone_7"):
        leg = legs[call.legs[identity]]
        assert (leg.leg, leg.direction, leg.user_identity) == (
            Leg.BROWSER,
            Direction.INBOUND,
            identity,
        )
        assert rate_key(leg) == "client"
    assert legs[call.legs["kintone_5"]].answered_at is not None
    assert legs[call.legs["kintone_7"]].answered_at is None


def test_the_default_tariff_leaves_the_inbound_leg_unrated_never_zero() -> None:
    call = inbound_call(caller="+819011112222", talk_s=61, at=T0)
    folded = fold_batch(fold(call.events), {}, DEFAULT, TOKYO, writeback=True)
    by_sid = {p.leg.call_sid: p for p in folded.legs}
    root = by_sid[call.root].charge
    assert root is not None
    assert root.amount is None
    assert [leg.call_sid for leg in folded.unrated] == [call.root]
    answered = by_sid[call.legs["kintone_5"]].charge
    assert answered is not None
    assert answered.amount == Decimal("0.50")  # 2 min × 0.25
    assert folded.writeback_roots == [call.root]


def test_a_tariff_with_inbound_and_sip_keys_prices_them() -> None:
    call = inbound_call(caller="+819011112222", talk_s=61, at=T0)
    legs = fold(call.events)
    charge = charge_leg(legs[call.root], WITH_INBOUND, TOKYO)
    assert charge is not None
    assert charge.amount == Decimal(3) * charge.billable_minutes
    line = inbound_call(line_user_id=LINE_ID, at=T0)
    line_legs = fold(line.events)
    root = line_legs[line.root]
    assert (root.leg, root.direction, rate_key(root)) == (Leg.SIP, Direction.INBOUND, SIP_RATE_KEY)
    priced = charge_leg(root, WITH_INBOUND, TOKYO)
    assert priced is not None
    assert priced.amount == priced.billable_minutes
    assert all(leg.line_user_id == LINE_ID for leg in line_legs.values())


def test_a_forwarded_call_prices_the_forward_by_where_it_goes() -> None:
    call = inbound_call(answered_by=None, forward_to="+81312345678", talk_s=30, at=T0)
    forward = fold(call.events)[call.legs["forward"]]
    assert (forward.leg, forward.direction, rate_key(forward)) == (
        Leg.PSTN,
        Direction.INBOUND,
        "landline",
    )


def test_only_the_root_ending_makes_a_writeback_job() -> None:
    call = inbound_call(at=T0)
    partial = fold(call.events[:-1])  # everything but the root's completion
    assert fold_batch(partial, {}, DEFAULT, TOKYO, writeback=True).writeback_roots == []
