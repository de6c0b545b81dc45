"""The handlers on a fake publisher (no broker): what is answered when an event is stored,
and when nothing can store it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.common.events import CallEvent
from services.devtools.twilio_player import TwilioSigner, new_sid, status_callback_form
from services.gateway.adapters.publisher import PublishError, Stored
from services.gateway.app import init_app
from services.gateway.bootstrap import bootstrap
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings
from tests.factories import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALLER_ID,
    PUBLIC_BASE_URL,
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
