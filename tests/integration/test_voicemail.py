"""Voicemail through the real gateway to the real broker (CONTRACT.md section 12): the
after-dial answer when nobody took the call (the ring group, then the forward), the
``<Record>``'s action /twiml/voicemail/done, and the voicemail's recording callback."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from services.common.events import CallEvent, EventKind
from services.common.settings import Transcription
from services.devtools.call_flows import COMPANY_NUMBER
from services.devtools.simulate import HANG_UP_SHARE, Simulator, plan_inbound_calls
from services.devtools.twilio_player import (
    TwilioSigner,
    dial_action_form,
    new_sid,
    recording_callback_form,
)
from services.gateway.domain.twiml import VOICEMAIL_GREETING_JA, VOICEMAIL_THANKS_JA
from services.gateway.settings import Voicemail
from tests.conftest import ReadEvents
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.conftest import GatewayFactory
from tests.integration.test_inbound import (
    CUSTOMER,
    FORWARD,
    LINE_ID,
    RING,
    line_form,
    number_form,
    path_of,
    post_signed,
    ring_action,
    twiml_of,
)


def _action_form(call_sid: str, status: str, call_status: str = "in-progress") -> dict[str, str]:
    return dial_action_form(
        account_sid=ACCOUNT_SID,
        call_sid=call_sid,
        from_=CUSTOMER,
        to=COMPANY_NUMBER,
        dial_status=status,
        call_status=call_status,
    )


async def _after_dial(
    gateway: TestClient,
    twilio: TwilioSigner,
    action: str,
    status: str,
    call_status: str = "in-progress",
) -> ET.Element:
    form = _action_form(new_sid(), status, call_status)
    return await twiml_of(await post_signed(gateway, twilio, path_of(action), form))


def _record(root: ET.Element) -> ET.Element:
    assert [child.tag for child in root][-1] == "Record", ET.tostring(root)
    record = root.find("Record")
    assert record is not None
    return record


async def test_a_call_nobody_took_leaves_a_voicemail_and_is_thanked(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    gateway = await make_gateway(
        ring_identities=RING,
        voicemail=Voicemail.ON,
        voicemail_max_s=90,
        transcription=Transcription.ON,
        status_callback_overrides="rc=3",
    )
    form = line_form()
    action = await ring_action(gateway, twilio, "/twiml/sip", form)
    root = await _after_dial(gateway, twilio, action, "no-answer")
    # No second <Start><Transcription>: the ring group's answer started the call's, which runs
    # until the call ends and so transcribes the message too.
    assert [child.tag for child in root] == ["Say", "Record"]
    assert root.findtext("Say") == VOICEMAIL_GREETING_JA
    record = _record(root)
    assert record.get("maxLength") == "90"
    assert record.get("playBeep") == "true"
    assert record.get("recordingStatusCallbackEvent") == "completed absent"
    assert record.get("action") == f"{PUBLIC_BASE_URL}/twiml/voicemail/done#rc=3"
    callback = urlsplit(record.get("recordingStatusCallback"))
    assert parse_qs(callback.query) == {
        "direction": ["inbound"],
        "line_user_id": [LINE_ID],
        "source": ["voicemail"],
    }

    # The caller speaks and presses a key (or stops): Twilio asks the action.
    done = _action_form(form["CallSid"], "no-answer") | {"RecordingDuration": "12", "Digits": "#"}
    thanks = await twiml_of(await post_signed(gateway, twilio, path_of(record.get("action")), done))
    assert [child.tag for child in thanks] == ["Say", "Hangup"]
    assert thanks.findtext("Say") == VOICEMAIL_THANKS_JA

    # And the recording's callback, as Twilio posts a <Record>'s, is stored like any other.
    recording = recording_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=form["CallSid"],
        recording_sid=new_sid("RE"),
        duration_s=12,
        source="RecordVerb",
    )
    response = await post_signed(
        gateway, twilio, path_of(record.get("recordingStatusCallback")), recording
    )
    assert response.status == 204
    stored = [e for _, e in await read_events(topic, 2) if e.kind is EventKind.RECORDING]
    [event] = stored
    assert event.call_sid == form["CallSid"]
    assert event.params["RecordingSource"] == "RecordVerb"
    assert event.duration_s == 12
    assert event.context.line_user_id == LINE_ID

    metrics = await (await gateway.get("/metrics")).text()
    assert 'calltrail_inbound_calls_total{kind="line",outcome="voicemail"} 1.0' in metrics


async def test_the_second_after_dial_knows_it_forwarded_and_offers_the_voicemail(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(
        ring_identities=RING, inbound_forward_to=FORWARD, voicemail=Voicemail.ON
    )
    action = await ring_action(gateway, twilio, "/twiml/incoming", number_form())
    root = await _after_dial(gateway, twilio, action, "no-answer")
    dial = root.find("Dial")
    assert dial is not None
    assert dial.findtext("Number") == FORWARD  # the forward comes before the voicemail
    second = dial.get("action") or ""
    assert parse_qs(urlsplit(second).query)["forwarded"] == ["1"]
    root = await _after_dial(gateway, twilio, second, "busy")
    assert [child.tag for child in root] == ["Say", "Record"]  # not transcribed: no Start
    # The forward phone answered: hang up, no voicemail.
    assert [child.tag for child in await _after_dial(gateway, twilio, second, "completed")] == [
        "Hangup"
    ]


@pytest.mark.parametrize("status", ["completed", "answered"])
async def test_a_call_a_browser_answered_never_reaches_voicemail(
    make_gateway: GatewayFactory, twilio: TwilioSigner, status: str
) -> None:
    gateway = await make_gateway(ring_identities=RING, voicemail=Voicemail.ON)
    action = await ring_action(gateway, twilio, "/twiml/incoming", number_form())
    root = await _after_dial(gateway, twilio, action, status, call_status="completed")
    assert [child.tag for child in root] == ["Hangup"]


async def test_a_caller_who_hung_up_while_it_rang_is_offered_nothing(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(ring_identities=RING, voicemail=Voicemail.ON)
    action = await ring_action(gateway, twilio, "/twiml/incoming", number_form())
    root = await _after_dial(gateway, twilio, action, "canceled", call_status="completed")
    assert root.find("Record") is None
    metrics = await (await gateway.get("/metrics")).text()
    assert 'outcome="voicemail"' not in metrics


async def test_with_nobody_to_ring_nor_forward_to_the_call_goes_straight_to_voicemail(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(voicemail=Voicemail.ON, transcription=Transcription.ON)
    root = await twiml_of(await post_signed(gateway, twilio, "/twiml/incoming", number_form()))
    assert [child.tag for child in root] == ["Say", "Start", "Record"]
    metrics = await (await gateway.get("/metrics")).text()
    assert 'calltrail_inbound_calls_total{kind="number",outcome="voicemail"} 1.0' in metrics


async def test_voicemail_off_keeps_the_message(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(ring_identities=RING)
    action = await ring_action(gateway, twilio, "/twiml/incoming", number_form())
    root = await _after_dial(gateway, twilio, action, "no-answer")
    assert [child.tag for child in root] == ["Say", "Hangup"]


async def test_the_done_request_is_signed(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(voicemail=Voicemail.ON)
    headers, body = twilio.request("/twiml/voicemail/done", _action_form(new_sid(), "no-answer"))
    headers["X-Twilio-Signature"] = "forged"
    response = await gateway.post("/twiml/voicemail/done", data=body, headers=headers)
    assert response.status == 403


async def test_a_recording_callback_with_a_source_we_never_wrote_is_400(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(voicemail=Voicemail.ON)
    recording = recording_callback_form(
        account_sid=ACCOUNT_SID, call_sid=new_sid(), recording_sid=new_sid("RE"), duration_s=3
    )
    path = "/twilio/recording?direction=inbound&source=fax"
    response = await post_signed(gateway, twilio, path, recording)
    assert response.status == 400
    assert "source" in await response.text()


# --- calltrail simulate's missed calls, as Twilio plays them ------------------------------------


@pytest.mark.parametrize("forward", [True, False])
async def test_simulated_missed_calls_hang_up_ring_out_and_leave_voicemails(
    make_gateway: GatewayFactory,
    twilio: TwilioSigner,
    topic: str,
    read_events: ReadEvents,
    forward: bool,
) -> None:
    gateway = await make_gateway(
        ring_identities=RING,
        inbound_forward_to=FORWARD if forward else None,
        voicemail=Voicemail.ON,
        transcription=Transcription.ON,
    )
    calls = plan_inbound_calls(40, seed=2020, hang_ups=HANG_UP_SHARE)
    simulator = Simulator(
        str(gateway.make_url("")),
        twilio,
        account_sid=ACCOUNT_SID,
        app_sid=APP_SID,
        caller_id=CALLER_ID,
    )
    summary = await simulator.run([], concurrency=8, progress=False, inbound=calls)
    assert summary.failures == []
    outcomes = Counter(outcome.split()[1] for outcome in summary.inbound.elements())
    assert {"answered", "hung-up", "voicemail", "voicemail-silent"} <= set(outcomes)
    missed = [c for c in calls if not c.answered and not c.hangs_up]
    voicemails = [c for c in missed if not (forward and c.forward_answers)]
    assert outcomes["voicemail"] + outcomes["voicemail-silent"] == len(voicemails)
    assert summary.conversation["voicemails"] == len(voicemails)

    events = [e for _, e in await read_events(topic, summary.callbacks + len(calls), timeout_s=30)]
    by_call: dict[str, list[CallEvent]] = defaultdict(list)
    for event in events:
        by_call[event.root_call_sid].append(event)
    for call in calls:
        mine = by_call[call.parent_sid]
        recordings = [e for e in mine if e.kind is EventKind.RECORDING]
        if call not in voicemails:
            assert not any(e.params.get("RecordingSource") == "RecordVerb" for e in recordings)
            continue
        [recording] = recordings  # nothing records the ring, only the <Record>
        assert recording.params["RecordingSource"] == "RecordVerb"
        status = recording.params["RecordingStatus"]
        assert status == ("completed" if call.leaves_message else "absent")
        said = [
            e
            for e in mine
            if e.kind is EventKind.TRANSCRIPT
            and e.params["TranscriptionEvent"] == "transcription-content"
        ]
        assert bool(said) is call.leaves_message
        assert {e.params["Track"] for e in said} <= {"inbound_track"}  # the caller's

    metrics = await (await gateway.get("/metrics")).text()
    offered = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("calltrail_inbound_calls_total") and 'outcome="voicemail"' in line
    )
    assert offered == len(voicemails)


async def test_a_message_as_long_as_voicemail_max_s_is_cut_there(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    gateway = await make_gateway(ring_identities=RING, voicemail=Voicemail.ON, voicemail_max_s=5)
    calls = [c for c in plan_inbound_calls(24, seed=7) if not c.answered and c.leaves_message]
    assert calls
    assert all(c.message_s > 5 for c in calls)
    simulator = Simulator(
        str(gateway.make_url("")),
        twilio,
        account_sid=ACCOUNT_SID,
        app_sid=APP_SID,
        caller_id=CALLER_ID,
    )
    summary = await simulator.run([], progress=False, inbound=calls)
    assert summary.failures == []
    events = [e for _, e in await read_events(topic, summary.callbacks + len(calls))]
    recordings = [e for e in events if e.kind is EventKind.RECORDING]
    assert len(recordings) == len(calls)
    assert {(e.params["RecordingStatus"], e.duration_s) for e in recordings} == {("completed", 5)}
