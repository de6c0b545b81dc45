"""POST /twiml/voice and /twiml/sip: what Twilio is told to dial, and the events published.
(The inbound flows, /twiml/sip's included, are in test_inbound.py.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp.test_utils import TestClient

from services.common.events import EventKind
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    recording_callback_form,
    status_callback_form,
    transcription_callback_form,
    voice_request_form,
)
from tests.conftest import ReadEvents
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.conftest import GatewayFactory


def voice_form(to: str, **custom: str) -> dict[str, str]:
    return voice_request_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        identity="u_123",
        to=to,
        app_sid=APP_SID,
        **custom,
    )


async def post_signed(client: TestClient, twilio: TwilioSigner, path: str, form: dict[str, str]):  # type: ignore[no-untyped-def]
    headers, body = twilio.request(path, form)
    return await client.post(path, data=body, headers=headers)


async def test_voice_dials_e164_with_caller_id_and_signed_callback(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    form = voice_form("090-1234-5678", AppId="12", RecordId="345")
    response = await post_signed(gateway, twilio, "/twiml/voice", form)
    assert response.status == 200
    assert response.content_type == "text/xml"
    root = ET.fromstring(await response.text())
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == CALLER_ID
    assert dial.get("answerOnBridge") == "true"
    number = dial.find("Number")
    assert number is not None
    assert number.text == "+819012345678"
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"
    callback = number.get("statusCallback") or ""
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_BASE_URL
    assert parts.path == "/twilio/status"
    assert parse_qs(parts.query) == {"app_id": ["12"], "record_id": ["345"], "identity": ["u_123"]}

    [(key, event)] = await read_events(topic, 1)
    assert event.kind is EventKind.DIAL
    assert key == form["CallSid"].encode()
    assert event.to == "+819012345678"
    assert event.context.app_id == "12"
    assert event.context.record_id == "345"
    assert event.context.identity == "u_123"
    assert event.context.direction == "outbound"
    assert "direction" not in callback  # the outbound callback URL is as it was

    # Twilio then posts the PSTN leg's callbacks to exactly that URL, signed for it.
    child = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        parent_call_sid=form["CallSid"],
        status="initiated",
        sequence=0,
        from_=CALLER_ID,
        to="+819012345678",
        direction="outbound-dial",
    )
    response = await post_signed(gateway, twilio, callback.removeprefix(PUBLIC_BASE_URL), child)
    assert response.status == 204
    events = await read_events(topic, 2)
    assert events[1][0] == form["CallSid"].encode()
    assert events[1][1].context.record_id == "345"


async def test_refused_numbers_get_a_spoken_refusal_and_nothing_is_dialled(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    refused = [
        "09901234567",  # not a valid number
        "0990123456",  # premium rate (ダイヤルQ2)
        "0570123456",  # Navi Dial: the caller pays a premium
        "+12025550123",  # a US number, DIAL_ALLOWED_COUNTRIES=JP
        "12345",
        "not a number",
        "",
        "0" * 200,
        "+81" + "9" * 40,
    ]
    for to in refused:
        response = await post_signed(gateway, twilio, "/twiml/voice", voice_form(to))
        assert response.status == 200, to
        root = ET.fromstring(await response.text())
        assert root.find("Dial") is None, to
        say = root.find("Say")
        assert say is not None
        assert say.get("language") == "ja-JP"
        assert root.find("Hangup") is not None
    assert await read_events(topic, 0) == []


async def test_allowed_countries_are_configurable(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(dial_allowed_countries=["JP", "US"])
    response = await post_signed(gateway, twilio, "/twiml/voice", voice_form("+12025550123"))
    number = ET.fromstring(await response.text()).find("Dial/Number")
    assert number is not None
    assert number.text == "+12025550123"


async def test_the_browser_cannot_make_an_outbound_call_inbound(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    form = voice_form("09012345678", AppId="12", direction="inbound", line_user_id="U" + "0" * 32)
    response = await post_signed(gateway, twilio, "/twiml/voice", form)
    number = ET.fromstring(await response.text()).find("Dial/Number")
    assert number is not None
    query = parse_qs(urlsplit(number.get("statusCallback")).query)
    assert query == {"app_id": ["12"], "identity": ["u_123"]}
    [(_, event)] = await read_events(topic, 1)
    assert event.context.direction == "outbound"
    assert event.context.line_user_id is None


async def test_voice_bad_requests(gateway: TestClient, twilio: TwilioSigner) -> None:
    form = voice_form("09012345678")
    response = await gateway.post("/twiml/voice", data=form)  # unsigned
    assert response.status == 403
    response = await post_signed(
        gateway, twilio, "/twiml/voice", voice_form("0312345678", AppId="1 OR 1=1")
    )
    assert response.status == 400
    response = await post_signed(
        gateway, twilio, "/twiml/voice", voice_form("0312345678", RecordId="x")
    )
    assert response.status == 400


async def test_sip_inbound_rings_browsers_and_keeps_the_line_user(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    gateway = await make_gateway(sip_ring_identities=["u_1", "u_2"])
    call_sid = new_sid()
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "sip:line-user@line.example.com",
        "To": "sip:calltrail@example.sip.twilio.com",
        "SipHeader_X-User-To-User": "U4af4980629abcdef0123456789abcdef",
    }
    response = await post_signed(gateway, twilio, "/twiml/sip", form)
    assert response.status == 200
    dial = ET.fromstring(await response.text()).find("Dial")
    assert dial is not None
    assert dial.get("callerId") is None  # the browsers see the caller's own From
    clients = dial.findall("Client")
    assert [c.findtext("Identity") for c in clients] == ["u_1", "u_2"]
    assert all(
        "line_user_id=U4af4980629abcdef0123456789abcdef" in (c.get("statusCallback") or "")
        for c in clients
    )
    [(key, event)] = await read_events(topic, 1)
    assert key == call_sid.encode()
    assert event.kind is EventKind.SIP_INBOUND
    assert event.context.line_user_id == "U4af4980629abcdef0123456789abcdef"
    assert event.context.direction == "inbound"


async def test_sip_inbound_with_nobody_to_ring_forwards_to_a_phone(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(sip_forward_to="+81312345678")
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": new_sid(),
        "CallStatus": "ringing",
        "From": "sip:someone@line.example.com",
        "To": "sip:calltrail@example.sip.twilio.com",
    }
    response = await post_signed(gateway, twilio, "/twiml/sip", form)
    number = ET.fromstring(await response.text()).find("Dial/Number")
    assert number is not None
    assert number.text == "+81312345678"


async def test_a_recorded_and_transcribed_dial_and_its_callbacks_round_trip(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    """The URLs the TwiML hands Twilio (with connection overrides) take the callbacks Twilio
    signs for them: recording, transcription, notice."""
    gateway = await make_gateway(
        recording="dual", transcription="on", status_callback_overrides="rc=3&rp=all"
    )
    form = voice_form("090-1234-5678", AppId="12", RecordId="345")
    response = await post_signed(gateway, twilio, "/twiml/voice", form)
    root = ET.fromstring(await response.text())
    assert [child.tag for child in root] == ["Start", "Dial"]
    transcription = root.find("Start/Transcription")
    dial, number = root.find("Dial"), root.find("Dial/Number")
    assert transcription is not None
    assert dial is not None
    assert number is not None
    assert transcription.get("languageCode") == "ja-JP"
    assert dial.get("record") == "record-from-answer-dual"
    assert number.get("url") == f"{PUBLIC_BASE_URL}/twiml/notice#rc=3&rp=all"
    context = {"app_id": ["12"], "record_id": ["345"], "identity": ["u_123"]}
    urls = {
        "recording": dial.get("recordingStatusCallback") or "",
        "transcription": transcription.get("statusCallbackUrl") or "",
    }
    for name, url in urls.items():
        parts = urlsplit(url)
        assert parts.path == f"/twilio/{name}"
        assert parse_qs(parts.query) == context
        assert parts.fragment == "rc=3&rp=all"

    root_sid = form["CallSid"]
    recording = recording_callback_form(
        account_sid=ACCOUNT_SID, call_sid=root_sid, recording_sid=new_sid("RE"), duration_s=42
    )
    utterance = transcription_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=root_sid,
        transcription_sid=new_sid("GT"),
        event="transcription-content",
        sequence=2,
        track="outbound_track",
        transcript="お世話になっております",
    )
    for url, callback in ((urls["recording"], recording), (urls["transcription"], utterance)):
        # Twilio signs the URL as handed to it, overrides included; the path it requests has none.
        path_qs = url.removeprefix(PUBLIC_BASE_URL)
        headers = {
            "X-Twilio-Signature": twilio.signature(url, callback),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        response = await gateway.post(
            path_qs.partition("#")[0], data=urlencode(callback), headers=headers
        )
        assert response.status == 204, await response.text()
    notice = await post_signed(gateway, twilio, "/twiml/notice", {"CallSid": new_sid()})
    assert "この通話は、品質向上のため録音させていただきます。" in await notice.text()

    _dial, (key_r, rec), (key_t, text) = await read_events(topic, 3)
    assert key_r == key_t == root_sid.encode()
    assert (rec.kind, rec.duration_s, rec.context.record_id) == (EventKind.RECORDING, 42, "345")
    assert (text.kind, text.sequence, text.context.identity) == (EventKind.TRANSCRIPT, 2, "u_123")
    assert text.params["TranscriptionData"] == utterance["TranscriptionData"]
