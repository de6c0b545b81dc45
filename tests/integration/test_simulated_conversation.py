"""`calltrail simulate` against a gateway that records and transcribes (CONTRACT.md section
11): every callback is taken (204), and what lands on the broker reads as the calls went: one
transcription session per call, the script's utterances by their SequenceIds whatever order
they came in, the speakers on the tracks Twilio names, and a recording per answered call."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.common.events import CallEvent, EventKind
from services.devtools.simulate import (
    SCRIPTS,
    TRACKS,
    Simulator,
    plan_calls,
    plan_inbound_calls,
    simulated_media,
)
from services.devtools.twilio_player import TwilioSigner
from services.devtools.twilio_rest_standin import TwilioStandin
from tests.conftest import ReadEvents
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID
from tests.integration.conftest import GatewayFactory
from tests.integration.twilio_support import rest_for, serve_standin, settings_for


async def test_simulated_conversations_reach_the_broker_as_they_were_spoken(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    gateway = await make_gateway(
        recording="dual",
        transcription="on",
        ring_identities=["kintone_1", "kintone_2"],
        inbound_forward_to="+81312345678",
    )
    simulator = Simulator(
        str(gateway.make_url("")),
        twilio,
        account_sid=ACCOUNT_SID,
        app_sid=APP_SID,
        caller_id=CALLER_ID,
    )
    outbound = plan_calls(30, seed=19)
    inbound = plan_inbound_calls(16, seed=20)
    summary = await simulator.run(outbound, progress=False, inbound=inbound)
    assert summary.failures == []
    assert summary.conversation["utterances"] > 0
    answered_out = {c.parent_sid: c for c in outbound if c.outcome == "completed"}

    events = await read_events(topic, summary.callbacks + summary.calls, timeout_s=30)
    assert len(events) == summary.callbacks + summary.calls
    by_call: dict[str, list[CallEvent]] = defaultdict(list)
    for key, event in events:
        by_call[key.decode()].append(event)
        if event.kind in (EventKind.TRANSCRIPT, EventKind.RECORDING):
            assert event.call_sid == key.decode()  # the root: the call that ran the TwiML

    repeated = reordered = recordings = 0
    for call in [*outbound, *inbound]:
        direction = "inbound" if call in inbound else "outbound"
        mine = by_call[call.parent_sid]
        said = [e for e in mine if e.kind is EventKind.TRANSCRIPT]
        kinds = {e.params["TranscriptionEvent"] for e in said}
        assert {"transcription-started", "transcription-stopped"} <= kinds
        content = [e for e in said if e.params["TranscriptionEvent"] == "transcription-content"]
        sequences = [e.sequence for e in content]
        repeated += len(sequences) - len(set(sequences))
        reordered += sequences != sorted(sequences)
        in_order = {e.sequence: e for e in content}
        script = SCRIPTS[direction][: len(in_order)]
        assert [
            (e.params["Track"], json.loads(e.params["TranscriptionData"])["transcript"])
            for _, e in sorted(in_order.items())
        ] == [(TRACKS[direction, speaker], text) for speaker, text in script]
        recorded = [e for e in mine if e.kind is EventKind.RECORDING]
        recordings += len(recorded)
        if direction == "outbound":
            assert bool(content) is (call.parent_sid in answered_out)
            if call.parent_sid in answered_out:
                [recording] = recorded
                assert recording.duration_s == answered_out[call.parent_sid].duration_s
                assert recording.context.record_id == answered_out[call.parent_sid].record_id
            else:
                assert recorded == []
        else:
            assert len(recorded) == (1 if content else 0)
            assert all(e.context.direction == "inbound" for e in [*said, *recorded])
    assert recordings == summary.conversation["recordings"]
    assert repeated > 0, "Twilio repeats some callbacks"
    assert reordered > 0, "and some overtake others"


async def test_a_gateway_that_records_nothing_is_played_nothing_of_it(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(ring_identities=["kintone_1"])
    simulator = Simulator(
        str(gateway.make_url("")),
        twilio,
        account_sid=ACCOUNT_SID,
        app_sid=APP_SID,
        caller_id=CALLER_ID,
    )
    summary = await simulator.run(
        plan_calls(10, seed=1), progress=False, inbound=plan_inbound_calls(4, seed=2)
    )
    assert summary.failures == []
    assert not summary.conversation


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandin]:
    async for server in serve_standin():
        yield server


async def test_given_the_twilio_stand_in_each_recording_is_made_there_before_its_callback(
    make_gateway: GatewayFactory,
    twilio: TwilioSigner,
    topic: str,
    read_events: ReadEvents,
    standin: TwilioStandin,
) -> None:
    gateway = await make_gateway(
        recording="dual", transcription="on", ring_identities=["kintone_1"], voicemail="on"
    )
    simulator = Simulator(
        str(gateway.make_url("")),
        twilio,
        account_sid=ACCOUNT_SID,
        app_sid=APP_SID,
        caller_id=CALLER_ID,
        twilio_api=standin.base_url,
    )
    summary = await simulator.run(
        plan_calls(8, seed=3), progress=False, inbound=plan_inbound_calls(8, seed=4)
    )
    assert summary.failures == []
    events = await read_events(topic, summary.callbacks + summary.calls, timeout_s=30)
    completed = {
        e.params["RecordingSid"]: e.params
        for _, e in events
        if e.kind is EventKind.RECORDING and e.params["RecordingStatus"] == "completed"
    }
    assert summary.conversation["recordings"] > 0
    # The recorder's own adapter takes each URL as this account's on the API host, and fetches
    # (with the API key) the media simulate made; the stand-in lists it as the callback said.
    rest = rest_for(settings_for(standin))
    for sid, form in completed.items():
        assert form["RecordingUrl"].startswith(f"{standin.base_url}/2010-04-01/")
        assert await rest.recording_media(form["RecordingUrl"]) == simulated_media(form)
        held = standin.account.recordings[sid].resource
        assert (held["call_sid"], held["duration"]) == (form["CallSid"], form["RecordingDuration"])
        assert held["source"] == form["RecordingSource"]
        assert held["channels"] == int(form["RecordingChannels"])
    assert set(standin.account.recordings) == set(completed)  # an absent one is never made
    # The dev route is the stand-in's own: no Twilio request was logged for it.
    assert not [r for r in standin.account.requests if "_standin" in r.path]


async def test_the_stand_ins_recording_route_refuses_what_twilio_would_not_hold(
    standin: TwilioStandin,
) -> None:
    sid = "RE" + "1" * 32
    good = {"CallSid": "CA" + "2" * 32, "RecordingDuration": "30", "RecordingChannels": "2"}
    bad = [
        ("RE123", good),
        (sid, {**good, "CallSid": "CA1"}),
        (sid, {**good, "RecordingDuration": "long"}),
        (sid, {**good, "RecordingDuration": "-1"}),
        (sid, {**good, "RecordingChannels": "3"}),
        (sid, {**good, "RecordingSource": "Telepathy"}),
        (sid, {**good, "RecordingStartTime": "yesterday"}),
    ]
    async with aiohttp.ClientSession() as session:
        for recording_sid, query in bad:
            url = f"{standin.base_url}/_standin/recordings/{recording_sid}"
            async with session.put(url, params=query, data=b"x") as response:
                assert response.status == 400, (recording_sid, query)
                assert (await response.json())["code"] == 20001
        assert standin.account.recordings == {}
        url = f"{standin.base_url}/_standin/recordings/{sid}"
        for expected in (201, 200):  # a repeat replaces it
            async with session.put(url, params=good, data=b"ID3 media") as response:
                assert response.status == expected
                assert (await response.json())["sid"] == sid
        # Not a Twilio path: Twilio's own paths still want the API key.
        media = f"{standin.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}.mp3"
        async with session.get(media) as response:
            assert response.status == 401
    assert standin.account.recordings[sid].media == b"ID3 media"
    assert standin.account.recordings[sid].resource["price"] is None
