"""The handlers on a fake publisher (no broker): what is answered when an event is stored,
and when nothing can store it."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from services.common.events import CallEvent, EventKind, decode_event
from services.common.logging import configure_logging
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    recording_callback_form,
    status_callback_form,
    transcription_callback_form,
)
from services.gateway.adapters.publisher import PublishError, Stored
from services.gateway.app import init_app
from services.gateway.bootstrap import bootstrap
from services.gateway.domain.callbacks import BadCallbackError, recording_event
from services.gateway.domain.twiml import RECORDING_NOTICE_JA
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings
from tests.factories import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALLER_ID,
    PUBLIC_BASE_URL,
    TOKEN_KEY,
    gateway_settings_values,
)


class FakePublisher:
    """Stores events in a list, or refuses them all (broker and spool both away)."""

    def __init__(self, metrics: GatewayMetrics, *, broken: bool = False) -> None:
        self.metrics = metrics
        self.broken = broken
        self.events: list[CallEvent] = []
        self.lost: list[CallEvent] = []
        self.started = self.closed = False

    @property
    def broker_ok(self) -> bool:
        return not self.broken

    @property
    def spool_depth(self) -> int:
        return 0

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def ready(self) -> bool:
        return not self.broken

    def publish(self, event: CallEvent) -> asyncio.Future[Stored]:
        answer: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        if self.broken:
            answer.set_exception(PublishError("broker and spool both unavailable"))
        else:
            self.events.append(event)
            answer.set_result(Stored.BROKER)
        return answer

    def publish_soon(self, event: CallEvent) -> None:
        if self.broken:
            self.lost.append(event)  # the real publisher logs event_not_stored
        else:
            self.events.append(event)


GatewayWith = Callable[..., "AsyncIterator[tuple[TestClient, FakePublisher]]"]


@pytest.fixture
async def gateway_with() -> AsyncIterator[Callable[..., object]]:
    clients: list[TestClient] = []

    async def start(
        *, broken: bool = False, **overrides: object
    ) -> tuple[TestClient, FakePublisher]:
        settings = GatewaySettings(**gateway_settings_values(**overrides))
        fakes: list[FakePublisher] = []

        def publisher(metrics: GatewayMetrics) -> FakePublisher:
            fakes.append(FakePublisher(metrics, broken=broken))
            return fakes[0]

        app = init_app(settings, bootstrap(settings, publisher=publisher))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client, fakes[0]

    yield start
    for client in clients:
        await client.close()


def _callback() -> tuple[str, str, dict[str, str]]:
    form = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        parent_call_sid=new_sid(),
        status="completed",
        sequence=3,
        from_=CALLER_ID,
        to="+819012345678",
        direction="outbound-dial",
        duration_s=61,
    )
    path = "/twilio/status?app_id=12&record_id=345&identity=u_123"
    headers, body = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL).request(path, form)
    return path, body, headers


async def test_204_once_the_event_is_stored(gateway_with: Callable[..., object]) -> None:
    client, publisher = await gateway_with()  # type: ignore[misc]
    path, body, headers = _callback()
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 204
    [event] = publisher.events
    assert event.duration_s == 61
    assert publisher.started


async def test_503_when_nothing_can_store_the_event(gateway_with: Callable[..., object]) -> None:
    client, publisher = await gateway_with(broken=True)  # type: ignore[misc]
    path, body, headers = _callback()
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.json() == {"error": "event could not be stored"}
    assert publisher.events == []
    readyz = await client.get("/readyz")
    assert readyz.status == 503


async def test_the_dial_is_answered_even_when_its_event_cannot_be_stored(
    gateway_with: Callable[..., object],
) -> None:
    """The call matters more than the early dial event: its callbacks carry the same context."""
    client, _publisher = await gateway_with(broken=True)  # type: ignore[misc]
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": new_sid(),
        "From": "client:u_1",
        "To": "09012345678",
        "AppId": "12",
        "RecordId": "345",
        "CallStatus": "ringing",
    }
    headers, body = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL).request("/twiml/voice", form)
    response = await client.post("/twiml/voice", data=body, headers=headers)
    assert response.status == 200
    assert "<Number" in await response.text()


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/twiml/incoming", {"From": "+819012345678", "To": CALLER_ID}),
        (
            "/twiml/sip",
            {
                "From": "sip:line@line.example.jp",
                "To": "sip:calltrail@acme-line.sip.twilio.com",
                "SipHeader_X-User-To-User": "U" + "0" * 32,
            },
        ),
    ],
)
async def test_an_inbound_call_rings_even_when_its_event_cannot_be_stored(
    gateway_with: Callable[..., object], path: str, form: dict[str, str]
) -> None:
    """Never a dropped call: the legs' callbacks carry the direction and the LINE user."""
    client, publisher = await gateway_with(broken=True, ring_identities="kintone_1")  # type: ignore[misc]
    form = {"AccountSid": ACCOUNT_SID, "CallSid": new_sid(), "CallStatus": "ringing", **form}
    headers, body = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL).request(path, form)
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 200
    text = await response.text()
    assert "<Identity>kintone_1</Identity>" in text
    assert "direction=inbound" in text
    assert publisher.events == []


async def test_inbound_events_when_they_can_be_stored(
    gateway_with: Callable[..., object],
) -> None:
    client, publisher = await gateway_with(ring_identities="kintone_1")  # type: ignore[misc]
    signer = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
    line_id = "U" + "ab" * 16
    for path, extra in (
        ("/twiml/incoming", {"From": "anonymous", "To": CALLER_ID}),
        ("/twiml/sip", {"From": "sip:a@b", "SipHeader_User-to-User": line_id}),
    ):
        form = {"AccountSid": ACCOUNT_SID, "CallSid": new_sid(), **extra}
        headers, body = signer.request(path, form)
        assert (await client.post(path, data=body, headers=headers)).status == 200
    number, line = publisher.events
    assert (number.kind.value, number.context.direction, number.context.line_user_id) == (
        "inbound",
        "inbound",
        None,
    )
    assert (line.kind.value, line.context.direction, line.context.line_user_id) == (
        "sip-inbound",
        "inbound",
        line_id,
    )


# --- the conversation: /twilio/recording, /twilio/transcription, /twiml/notice, /token -------

SIGNER = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
CONTEXT_QUERY = "?app_id=12&record_id=345&identity=u_123"
WORDS = "見積もりは来週の火曜日にお送りします"
NOT_JSON = "malformed TranscriptionData (not a JSON object)"


def _recording(**overrides: str) -> dict[str, str]:
    form = recording_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        recording_sid=new_sid("RE"),
        duration_s=61,
    )
    return {**form, **overrides}


def _utterance(**overrides: str) -> dict[str, str]:
    form = transcription_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        transcription_sid=new_sid("GT"),
        event="transcription-content",
        sequence=3,
        track="outbound_track",
        transcript=WORDS,
        confidence=0.93,
    )
    return {**form, **overrides}


async def _post(client: TestClient, path: str, form: dict[str, str]) -> int:
    headers, body = SIGNER.request(path, form)
    return (await client.post(path, data=body, headers=headers)).status


async def test_a_recording_callback_is_stored_then_answered(
    gateway_with: Callable[..., object],
) -> None:
    client, publisher = await gateway_with()  # type: ignore[misc]
    form = _recording()
    assert await _post(client, f"/twilio/recording{CONTEXT_QUERY}", form) == 204
    [event] = publisher.events
    assert event.kind is EventKind.RECORDING
    assert event.status is None
    assert event.call_sid == form["CallSid"]
    assert event.key() == form["CallSid"].encode()  # the root: the call that ran the TwiML
    assert event.parent_call_sid is None
    assert event.duration_s == 61
    assert event.sequence is None
    assert (event.context.app_id, event.context.record_id, event.context.identity) == (
        "12",
        "345",
        "u_123",
    )
    assert event.params == form
    assert decode_event(event.encode()).params == form


@pytest.mark.parametrize(
    ("event_name", "sequence", "track"),
    [
        ("transcription-started", 1, None),
        ("transcription-content", 2, "inbound_track"),
        ("transcription-stopped", 9, None),
        ("transcription-error", 4, None),
    ],
)
async def test_a_transcription_callback_is_stored_then_answered(
    gateway_with: Callable[..., object], event_name: str, sequence: int, track: str | None
) -> None:
    client, publisher = await gateway_with()  # type: ignore[misc]
    form = transcription_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        transcription_sid=new_sid("GT"),
        event=event_name,
        sequence=sequence,
        track=track,
        transcript=WORDS,
    )
    assert await _post(client, "/twilio/transcription?direction=inbound", form) == 204
    [event] = publisher.events
    assert event.kind is EventKind.TRANSCRIPT
    assert event.status is None
    assert event.sequence == sequence
    assert event.call_sid == form["CallSid"]
    assert event.context.direction == "inbound"
    assert event.params == form
    decoded = decode_event(event.encode())  # what the recorder reads: the same, to the ms
    assert (decoded.kind, decoded.status, decoded.sequence, decoded.params) == (
        event.kind,
        None,
        sequence,
        form,
    )


def test_the_recording_s_duration_minus_one_is_no_duration() -> None:
    event = recording_event(
        _recording(RecordingStatus="absent", RecordingDuration="-1"), {}, datetime.now(UTC)
    )
    assert event.duration_s is None


@pytest.mark.parametrize("source", ["dial", "voicemail", None])
def test_the_recording_s_source_in_our_query_is_checked(source: str | None) -> None:
    query = {"direction": "inbound", **({"source": source} if source else {})}
    form = _recording(RecordingSource="RecordVerb" if source == "voicemail" else "DialVerb")
    event = recording_event(form, query, datetime.now(UTC))
    assert event.params["RecordingSource"] == form["RecordingSource"]
    assert event.context.direction == "inbound"


@pytest.mark.parametrize("source", ["", "Voicemail", "record", "voicemail;x"])
def test_a_source_we_never_write_is_refused(source: str) -> None:
    with pytest.raises(BadCallbackError, match="malformed source"):
        recording_event(_recording(), {"source": source}, datetime.now(UTC))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"CallSid": None}, "missing CallSid"),
        ({"CallSid": "CA-1; drop"}, "malformed CallSid"),
        ({"ParentCallSid": "XX1"}, "malformed ParentCallSid"),
        ({"RecordingSid": None}, "missing RecordingSid"),
        ({"RecordingSid": "RE123"}, "malformed RecordingSid"),
        ({"RecordingSid": "RE" + "g" * 32}, "malformed RecordingSid"),
        ({"RecordingSid": "CA" + "0" * 32}, "malformed RecordingSid"),
        ({"RecordingStatus": None}, "missing or unknown RecordingStatus"),
        ({"RecordingStatus": "done"}, "missing or unknown RecordingStatus"),
        ({"RecordingDuration": "a minute"}, "malformed RecordingDuration"),
        ({"RecordingDuration": "-5"}, "malformed RecordingDuration"),
    ],
)
async def test_a_malformed_recording_callback_is_400(
    gateway_with: Callable[..., object], change: dict[str, str | None], reason: str
) -> None:
    client, publisher = await gateway_with()  # type: ignore[misc]
    form = {k: v for k, v in {**_recording(), **change}.items() if v is not None}
    headers, body = SIGNER.request("/twilio/recording", form)
    response = await client.post("/twilio/recording", data=body, headers=headers)
    assert response.status == 400
    assert await response.json() == {"error": reason}
    assert publisher.events == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"CallSid": None}, "missing CallSid"),
        ({"TranscriptionSid": None}, "missing TranscriptionSid"),
        ({"TranscriptionSid": "GT" + "0" * 31}, "malformed TranscriptionSid"),
        ({"TranscriptionEvent": "transcription-paused"}, "missing or unknown TranscriptionEvent"),
        ({"TranscriptionEvent": None}, "missing or unknown TranscriptionEvent"),
        ({"SequenceId": "three"}, "malformed SequenceId"),
        ({"SequenceId": "1.5"}, "malformed SequenceId"),
        ({"SequenceId": None}, "missing SequenceId"),
        ({"Track": "both"}, "malformed Track"),
        ({"Track": None}, "missing Track"),
        ({"TranscriptionData": "見積もり"}, NOT_JSON),
        ({"TranscriptionData": '["a"]'}, NOT_JSON),
        ({"TranscriptionData": '{"transcript": "a"'}, NOT_JSON),
        ({"TranscriptionData": None}, "missing TranscriptionData"),
    ],
)
async def test_a_malformed_transcription_callback_is_400(
    gateway_with: Callable[..., object], change: dict[str, str | None], reason: str
) -> None:
    client, publisher = await gateway_with()  # type: ignore[misc]
    form = {k: v for k, v in {**_utterance(), **change}.items() if v is not None}
    headers, body = SIGNER.request("/twilio/transcription", form)
    response = await client.post("/twilio/transcription", data=body, headers=headers)
    assert response.status == 400
    assert await response.json() == {"error": reason}
    assert publisher.events == []


@pytest.mark.parametrize("path", ["/twilio/recording", "/twilio/transcription", "/twiml/notice"])
async def test_unsigned_conversation_requests_are_403(
    gateway_with: Callable[..., object], path: str
) -> None:
    client, publisher = await gateway_with(recording="dual")  # type: ignore[misc]
    form = _recording() if path == "/twilio/recording" else _utterance()
    headers, body = TwilioSigner("another-accounts-token", PUBLIC_BASE_URL).request(path, form)
    assert (await client.post(path, data=body, headers=headers)).status == 403
    assert publisher.events == []


@pytest.mark.parametrize(
    ("path", "form"),
    [("/twilio/recording", _recording), ("/twilio/transcription", _utterance)],
)
async def test_503_when_nothing_can_store_a_conversation_event(
    gateway_with: Callable[..., object], path: str, form: Callable[[], dict[str, str]]
) -> None:
    client, _publisher = await gateway_with(broken=True)  # type: ignore[misc]
    headers, body = SIGNER.request(path, form())
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"


async def test_conversation_callbacks_are_counted(gateway_with: Callable[..., object]) -> None:
    client, _publisher = await gateway_with()  # type: ignore[misc]
    assert await _post(client, "/twilio/recording", _recording(RecordingStatus="absent")) == 204
    for _ in range(2):
        assert await _post(client, "/twilio/transcription", _utterance()) == 204
    text = await (await client.get("/metrics")).text()
    assert 'calltrail_conversation_callbacks_total{event="absent",kind="recording"} 1.0' in text
    assert (
        'calltrail_conversation_callbacks_total{event="transcription-content",kind="transcript"}'
        " 2.0" in text
    )


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"recording": "dual"}, RECORDING_NOTICE_JA),
        ({"transcription": "on", "recording_notice": "録音します & <記録>"}, "録音します & <記録>"),
        ({"recording": "dual", "recording_notice": ""}, None),
        ({}, None),  # nothing recorded: nothing to say (Twilio never asks then)
    ],
)
async def test_the_notice_twiml(
    gateway_with: Callable[..., object], settings: dict[str, str], said: str | None
) -> None:
    client, publisher = await gateway_with(**settings)  # type: ignore[misc]
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": new_sid(),
        "ParentCallSid": new_sid(),
        "CallStatus": "in-progress",
        "To": "+819012345678",
    }
    headers, body = SIGNER.request("/twiml/notice", form)
    response = await client.post("/twiml/notice", data=body, headers=headers)
    assert response.status == 200
    assert response.content_type == "text/xml"
    root = ET.fromstring(await response.text())
    if said is None:
        assert list(root) == []
    else:
        [say] = list(root)
        assert (say.tag, say.attrib, say.text) == ("Say", {"language": "ja-JP"}, said)
    assert publisher.events == []


@pytest.mark.parametrize(
    ("settings", "recording"),
    [
        ({}, False),
        ({"recording": "dual"}, True),
        ({"transcription": "on"}, True),
        ({"recording": "dual", "transcription": "on", "recording_notice": ""}, True),
    ],
)
async def test_the_token_says_whether_calls_are_recorded(
    gateway_with: Callable[..., object], settings: dict[str, str], recording: bool
) -> None:
    client, _publisher = await gateway_with(**settings)  # type: ignore[misc]
    response = await client.post(
        "/token", data={"identity": "kintone_7"}, headers={"X-Calltrail-Key": TOKEN_KEY}
    )
    assert response.status == 200
    assert (await response.json())["recording"] is recording


async def test_what_was_said_and_where_it_is_never_reach_the_log(
    gateway_with: Callable[..., object],
    restore_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At DEBUG, through accepted, refused and unstorable callbacks alike."""
    configure_logging("DEBUG")
    # The handlers' module logger must not keep this test's stderr once it is closed.
    structlog.configure(cache_logger_on_first_use=False)
    client, publisher = await gateway_with()  # type: ignore[misc]
    recording = _recording()
    accepted = [
        ("/twilio/transcription", _utterance()),
        ("/twilio/transcription", _utterance(Track="inbound_track", Final="false")),
        ("/twilio/recording", recording),
    ]
    refused = [
        ("/twilio/transcription", _utterance(Track="sideways")),
        ("/twilio/transcription", _utterance(SequenceId=WORDS)),
        ("/twilio/transcription", _utterance(TranscriptionData=WORDS)),
        ("/twilio/recording", {**recording, "RecordingStatus": recording["RecordingUrl"]}),
    ]
    for path, form in accepted:
        assert await _post(client, f"{path}{CONTEXT_QUERY}", form) == 204
    for path, form in refused:
        assert await _post(client, path, form) == 400
    publisher.broken = True
    assert await _post(client, "/twilio/transcription", _utterance()) == 503
    err = capsys.readouterr().err
    assert '"transcription_callback"' in err  # DEBUG was on: the lines were written
    assert '"recording_callback"' in err
    assert '"callback_rejected"' in err
    for secret in (WORDS, "見積もり", recording["RecordingUrl"], recording["RecordingSid"]):
        assert secret not in err
    assert "api.twilio.com" not in err


async def test_inbound_calls_are_noticed_transcribed_and_recorded_through_the_forward(
    gateway_with: Callable[..., object],
) -> None:
    client, _publisher = await gateway_with(  # type: ignore[misc]
        ring_identities="kintone_1",
        inbound_forward_to="+81312345678",
        recording="dual",
        transcription="on",
    )
    call_sid = new_sid()
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "From": "+819012345678"}
    headers, body = SIGNER.request("/twiml/incoming", form)
    root = ET.fromstring(
        await (await client.post("/twiml/incoming", data=body, headers=headers)).text()
    )
    assert [child.tag for child in root] == ["Start", "Say", "Dial"]
    assert root.findtext("Say") == RECORDING_NOTICE_JA
    dial = root.find("Dial")
    assert dial is not None
    assert (
        dial.get("recordingStatusCallback")
        == f"{PUBLIC_BASE_URL}/twilio/recording?direction=inbound"
    )
    action = (dial.get("action") or "").removeprefix(PUBLIC_BASE_URL)
    missed = {**form, "DialCallStatus": "no-answer", "CallStatus": "in-progress"}
    headers, body = SIGNER.request(action, missed)
    response = await client.post(action, data=body, headers=headers)
    assert response.status == 200, await response.text()
    root = ET.fromstring(await response.text())
    assert [child.tag for child in root] == ["Dial"]  # no second transcription, no second notice
    assert root.find("Dial").get("record") == "record-from-answer-dual"  # type: ignore[union-attr]


async def _twiml_post(client: TestClient, path: str, form: dict[str, str]) -> ET.Element:
    headers, body = SIGNER.request(path, form)
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 200, await response.text()
    return ET.fromstring(await response.text())


async def test_a_missed_forward_leaves_a_voicemail_then_hears_thanks(
    gateway_with: Callable[..., object],
) -> None:
    client, publisher = await gateway_with(  # type: ignore[misc]
        ring_identities="kintone_1",
        inbound_forward_to="+81312345678",
        voicemail="on",
        voicemail_max_s="45",
    )
    form = {"AccountSid": ACCOUNT_SID, "CallSid": new_sid(), "From": "+819012345678"}
    ring = await _twiml_post(client, "/twiml/incoming", form)
    action = (ring.find("Dial").get("action") or "").removeprefix(PUBLIC_BASE_URL)  # type: ignore[union-attr]
    missed = {**form, "DialCallStatus": "no-answer", "CallStatus": "in-progress"}
    forward = await _twiml_post(client, action, missed)
    second = (forward.find("Dial").get("action") or "").removeprefix(PUBLIC_BASE_URL)  # type: ignore[union-attr]
    voicemail = await _twiml_post(client, second, missed)
    assert [child.tag for child in voicemail] == ["Say", "Record"]
    record = voicemail.find("Record")
    assert record is not None
    assert record.get("maxLength") == "45"
    done = (record.get("action") or "").removeprefix(PUBLIC_BASE_URL)
    assert done == "/twiml/voicemail/done"
    thanks = await _twiml_post(client, done, {**form, "RecordingDuration": "9"})
    assert [child.tag for child in thanks] == ["Say", "Hangup"]
    # TwiML requests publish only the call's own event: the recording comes by its callback.
    assert [e.kind for e in publisher.events] == [EventKind.INBOUND]
    metrics = await (await client.get("/metrics")).text()
    for outcome in ("rung", "forwarded", "voicemail"):
        assert f'calltrail_inbound_calls_total{{kind="number",outcome="{outcome}"}} 1.0' in metrics
