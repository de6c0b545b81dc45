"""The recorder's use case on an in-memory store: a batch in, legs priced, write-back jobs for
the calls that ended; replays change nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.devtools.call_flows import answered_call
from services.recorder.domain.batch import ReceivedEvent, fold_batch, fold_events
from services.recorder.domain.legs import Direction
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.service_layer.recording import CallRecorder, rerate_month
from services.recorder.settings import DEFAULT_TARIFF
from tests.inbound_calls import inbound_call
from tests.unit.recorder.fakes import FakeLegStore

AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
TOKYO = ZoneInfo("Asia/Tokyo")
TARIFFS = parse_tariffs(DEFAULT_TARIFF.read_text())


def received(events: list) -> list[ReceivedEvent]:  # type: ignore[type-arg]
    return [ReceivedEvent(e, e.encode().decode()) for e in events]


async def test_a_call_is_priced_and_gets_one_writeback_job() -> None:
    store = FakeLegStore()
    recorder = CallRecorder(store, TARIFFS, TOKYO, writeback_delay_s=10)
    events = answered_call(to="+819012345678", duration_s=61, at=AT)
    outcome = await recorder.record_events(received(events))
    assert outcome.new_events == len(events)
    assert sorted(leg.leg.value for leg in outcome.ended_legs) == ["browser", "pstn"]
    charges = {p.leg.leg.value: p.charge.amount for p in store.legs.values() if p.charge}
    assert charges == {"browser": Decimal("0.50"), "pstn": Decimal("32.4")}
    root = events[0].root_call_sid
    assert store.jobs == {root: 10}

    again = await recorder.record_events(received(events))
    assert (again.new_events, again.duplicate_events, again.ended_legs) == (0, len(events), [])
    assert store.jobs == {root: 10}


async def test_no_writeback_jobs_when_writeback_is_off() -> None:
    store = FakeLegStore()
    await CallRecorder(store, TARIFFS, TOKYO).record_events(received(answered_call(at=AT)))
    assert store.jobs == {}
    assert len(store.legs) == 2


async def test_unrated_destination_is_reported_then_rerated() -> None:
    store = FakeLegStore()
    recorder = CallRecorder(store, TARIFFS, TOKYO)
    outcome = await recorder.record_events(
        received(answered_call(to="+815098765432", duration_s=30, at=AT))
    )
    assert [leg.destination_type.value for leg in outcome.unrated_legs] == ["ip_phone"]
    fixed = parse_tariffs(
        DEFAULT_TARIFF.read_text().replace('mobile = "16.2"', 'mobile = "16.2"\nip_phone = "10.8"')
    )
    assert await rerate_month(store, fixed, TOKYO, datetime(2026, 11, 1).date()) == (2, 0)


def test_fold_batch_is_pure_and_order_free() -> None:
    events = answered_call(at=AT)
    _unique, forward = fold_events(received(events))
    _unique, backward = fold_events(received(events[::-1]))
    one = fold_batch(forward, {}, TARIFFS, TOKYO, writeback=True)
    two = fold_batch(backward, {}, TARIFFS, TOKYO, writeback=True)
    assert [p.leg for p in one.legs] == [p.leg for p in two.legs]
    assert one.writeback_roots == two.writeback_roots == [events[0].root_call_sid]


async def test_an_inbound_call_gets_its_job_when_the_caller_hangs_up() -> None:
    store = FakeLegStore()
    recorder = CallRecorder(store, TARIFFS, TOKYO, writeback_delay_s=10, customer_app=10)
    call = inbound_call(at=AT)
    outcome = await recorder.record_events(received(call.events[:-1]))
    assert store.jobs == {}  # the browsers stopped ringing; the call goes on
    outcome = await recorder.record_events(received(call.events[-1:]))
    assert store.jobs == {call.root: 10}
    assert [leg.call_sid for leg in outcome.unrated_legs] == [call.root]  # no inbound rate


async def test_a_line_calls_legs_share_its_user_id_whichever_came_first() -> None:
    line_id = "U" + "0123456789abcdef" * 2
    store = FakeLegStore()
    recorder = CallRecorder(store, TARIFFS, TOKYO)
    call = inbound_call(line_user_id=line_id, at=AT)
    for event in call.events[1:]:  # the client legs' callbacks carry no LINE id here
        event.context.line_user_id = None
    await recorder.record_events(received(call.events[1:]))  # children before the root
    await recorder.record_events(received(call.events[:1]))  # the sip-inbound event
    legs = {sid: p.leg for sid, p in store.legs.items()}
    assert {leg.line_user_id for leg in legs.values()} == {line_id}
    assert {leg.direction for leg in legs.values()} == {Direction.INBOUND}
