"""POST /twilio/status against the real broker: what Twilio sends ends up on Kafka."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from services.common.events import CallStatus, EventKind
from services.devtools.twilio_player import TwilioSigner, new_sid, status_callback_form
from tests.conftest import ReadEvents
from tests.factories import ACCOUNT_SID, AUTH_TOKEN, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.test_broker_outage import conversation_callbacks


async def test_signed_callback_is_published_keyed_by_root_call(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    parent, child = new_sid(), new_sid()
    form = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=child,
        parent_call_sid=parent,
        status="completed",
        sequence=3,
        from_=CALLER_ID,
        to="+819012345678",
        direction="outbound-dial",
        duration_s=61,
    )
    path = "/twilio/status?app_id=12&record_id=345&identity=u_123"
    headers, body = twilio.request(path, form)
    response = await gateway.post(path, data=body, headers=headers)
    assert response.status == 204, await response.text()

    [(key, event)] = await read_events(topic, 1)
    assert key == parent.encode()
    assert event.kind is EventKind.STATUS
    assert event.call_sid == child
    assert event.parent_call_sid == parent
    assert event.status is CallStatus.COMPLETED
    assert event.sequence == 3
    assert event.duration_s == 61
    assert event.context.app_id == "12"
    assert event.context.record_id == "345"
    assert event.context.identity == "u_123"
    assert event.params == form


def ringing_form(**overrides: str) -> dict[str, str]:
    form = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        status="ringing",
        sequence=1,
        from_="client:u_1",
        to="+819012345678",
        direction="inbound",
    )
    form.update(overrides)
    return form


async def test_unsigned_callback_is_refused_and_not_published(
    gateway: TestClient, topic: str, read_events: ReadEvents
) -> None:
    response = await gateway.post("/twilio/status", data=ringing_form())
    assert response.status == 403
    assert await read_events(topic, 0) == []


async def test_bad_requests_get_their_4xx_and_nothing_is_published(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    path = "/twilio/status?app_id=12&record_id=345"
    form = ringing_form()
    headers, body = twilio.request(path, form)

    async def post(path: str, data: bytes | str, headers: dict[str, str]) -> int:
        return (await gateway.post(path, data=data, headers=headers)).status

    other_token = TwilioSigner("another-accounts-auth-token", PUBLIC_BASE_URL)
    other_host = TwilioSigner(AUTH_TOKEN, "https://attacker.example.net")
    plain_http = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL.replace("https", "http"))
    local_url = TwilioSigner(AUTH_TOKEN, str(gateway.make_url("")).rstrip("/"))
    cases: list[tuple[str, int, str, bytes | str, dict[str, str]]] = [
        ("wrong token", 403, path, *other_token.request(path, form)[::-1]),
        ("other host", 403, path, *other_host.request(path, form)[::-1]),
        ("http not https", 403, path, *plain_http.request(path, form)[::-1]),
        ("the URL the process sees", 403, path, *local_url.request(path, form)[::-1]),
        ("no signature", 403, path, body, {"Content-Type": headers["Content-Type"]}),
        ("garbage signature", 403, path, body, {**headers, "X-Twilio-Signature": "x" * 500}),
        ("changed parameter", 403, path, body.replace("ringing", "completed"), headers),
        ("added parameter", 403, path, body + "&CallDuration=9999", headers),
        ("changed query", 403, path.replace("345", "346"), body, headers),
        ("dropped query", 403, "/twilio/status", body, headers),
        (
            "no CallSid",
            400,
            "/twilio/status",
            *twilio.request("/twilio/status", {k: v for k, v in form.items() if k != "CallSid"})[
                ::-1
            ],
        ),
        (
            "bad CallSid",
            400,
            "/twilio/status",
            *twilio.request("/twilio/status", {**form, "CallSid": "CA-1; drop"})[::-1],
        ),
        (
            "unknown status",
            400,
            "/twilio/status",
            *twilio.request("/twilio/status", {**form, "CallStatus": "exploded"})[::-1],
        ),
        (
            "bad sequence",
            400,
            "/twilio/status",
            *twilio.request("/twilio/status", {**form, "SequenceNumber": "-1"})[::-1],
        ),
        (
            "tampered context",
            400,
            "/twilio/status?record_id=1%20OR%201",
            *twilio.request("/twilio/status?record_id=1%20OR%201", form)[::-1],
        ),
        ("invalid UTF-8", 400, "/twilio/status", b"CallSid=CA\xff\xfe&CallStatus=ringing", headers),
        ("invalid percent-encoded UTF-8", 400, "/twilio/status", b"CallSid=CA%ff%fe", headers),
        ("1 MiB body", 413, "/twilio/status", b"A=" + b"x" * (1 << 20), headers),
        ("just over 64 KiB", 413, "/twilio/status", b"A=" + b"x" * (64 * 1024), headers),
        (
            "JSON body",
            415,
            "/twilio/status",
            b'{"CallSid": "CA1"}',
            {**headers, "Content-Type": "application/json"},
        ),
    ]
    for name, expected, case_path, data, case_headers in cases:
        assert await post(case_path, data, case_headers) == expected, name

    async def chunked_mebibyte():  # type: ignore[no-untyped-def]
        for _ in range(16):
            yield b"x" * 65536

    response = await gateway.post("/twilio/status", data=chunked_mebibyte(), headers=headers)
    assert response.status == 413

    assert await read_events(topic, 0) == []
    assert (await gateway.get("/healthz")).status == 200
    # And the very same request, untouched, is still accepted.
    assert await post(path, body, headers) == 204


async def test_repeated_callbacks_are_all_kept(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    """Twilio repeats callbacks; the gateway forwards each (the recorder deduplicates)."""
    headers, body = twilio.request("/twilio/status", ringing_form())
    for _ in range(3):
        assert (await gateway.post("/twilio/status", data=body, headers=headers)).status == 204
    events = await read_events(topic, 3)
    assert len({event.call_sid for _, event in events}) == 1
    assert len(events) == 3


async def test_recording_and_transcription_callbacks_are_published_keyed_by_the_root(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    """What Twilio posts ends up on Kafka, every parameter of it, only once stored (204)."""
    call_sid = new_sid()
    posted = conversation_callbacks(call_sid)
    path_query = "?direction=inbound"
    for path, form in posted:
        headers, body = twilio.request(path + path_query, form)
        response = await gateway.post(path + path_query, data=body, headers=headers)
        assert response.status == 204, await response.text()
    events = await read_events(topic, len(posted))
    assert [key for key, _ in events] == [call_sid.encode()] * len(posted)
    kinds = [event.kind for _, event in events]
    assert kinds == [EventKind.TRANSCRIPT] * 3 + [EventKind.RECORDING]
    assert [event.params for _, event in events] == [form for _, form in posted]
    assert [event.sequence for _, event in events] == [1, 2, 3, None]
    assert all(event.status is None for _, event in events)
    assert all(event.context.direction == "inbound" for _, event in events)
