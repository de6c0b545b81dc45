"""Inbound calls through the real gateway to the real broker: /twiml/incoming (the company
number), /twiml/sip (LINE), the ring group's after-dial action, and whole flows as Twilio plays
them (CONTRACT.md section 9)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from services.common.events import CallEvent, EventKind
from services.devtools.call_flows import COMPANY_NUMBER, LINE_SIP_DOMAIN, LINE_SIP_FROM, LINE_SIP_TO
from services.devtools.simulate import PlannedInbound, Simulator, plan_inbound_calls
from services.devtools.twilio_player import (
    TwilioSigner,
    dial_action_form,
    incoming_voice_form,
    new_sid,
    sip_voice_form,
)
from tests.conftest import ReadEvents
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.conftest import GatewayFactory

RING = ["kintone_1", "kintone_2", "kintone_3"]
LINE_ID = "U" + "5a" * 16
CUSTOMER = "+819012345678"
FORWARD = "+81312345678"
SIP_FORWARD = "+81612345678"


async def post_signed(
    client: TestClient, twilio: TwilioSigner, path: str, form: dict[str, str]
) -> ClientResponse:
    headers, body = twilio.request(path, form)
    return await client.post(path, data=body, headers=headers)


async def twiml_of(response: ClientResponse) -> ET.Element:
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    return ET.fromstring(await response.text())


def number_form(caller: str = CUSTOMER) -> dict[str, str]:
    return incoming_voice_form(
        account_sid=ACCOUNT_SID, call_sid=new_sid(), from_=caller, to=COMPANY_NUMBER
    )


def line_form(
    uui: str | None = LINE_ID, header: str = "SipHeader_X-User-To-User"
) -> dict[str, str]:
    return sip_voice_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        from_=LINE_SIP_FROM,
        to=LINE_SIP_TO,
        sip_domain=LINE_SIP_DOMAIN,
        uui=uui,
        uui_header=header,
    )


def parameters(client: ET.Element) -> dict[str | None, str | None]:
    return {p.get("name"): p.get("value") for p in client.findall("Parameter")}


def path_of(url: str | None) -> str:
    return (url or "").split("#")[0].removeprefix(PUBLIC_BASE_URL)


# --- POST /twiml/incoming -----------------------------------------------------------------------


async def test_a_call_to_the_number_rings_the_group_and_is_published(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    gateway = await make_gateway(ring_identities=RING, ring_timeout_s=25)
    form = number_form()
    root = await twiml_of(await post_signed(gateway, twilio, "/twiml/incoming", form))
    [dial] = list(root)
    assert dial.tag == "Dial"
    assert dial.get("timeout") == "25"
    assert dial.get("answerOnBridge") == "true"
    assert urlsplit(dial.get("action")).path == "/twiml/incoming/after-dial"
    clients = dial.findall("Client")
    assert [c.findtext("Identity") for c in clients] == RING
    for client in clients:
        assert parameters(client) == {"caller": CUSTOMER, "kind": "number"}
        callback = urlsplit(client.get("statusCallback"))
        assert callback.path == "/twilio/status"
        assert parse_qs(callback.query) == {"direction": ["inbound"]}
        assert client.get("statusCallbackEvent") == "initiated ringing answered completed"

    [(key, event)] = await read_events(topic, 1)
    assert key == form["CallSid"].encode()
    assert event.kind is EventKind.INBOUND
    assert event.from_ == CUSTOMER
    assert event.to == COMPANY_NUMBER
    assert event.context.direction == "inbound"
    assert event.context.line_user_id is None
    assert event.params == form


@pytest.mark.parametrize(
    "caller", ["anonymous", "+266696687", "+86282452253", "sip:someone@example.com", "", "+81"]
)
async def test_an_anonymous_or_unreadable_caller_still_rings(
    make_gateway: GatewayFactory, twilio: TwilioSigner, caller: str
) -> None:
    gateway = await make_gateway(ring_identities=RING)
    root = await twiml_of(
        await post_signed(gateway, twilio, "/twiml/incoming", number_form(caller))
    )
    clients = root.findall("Dial/Client")
    assert len(clients) == 3
    assert all(parameters(c)["caller"] == "anonymous" for c in clients)


async def test_with_nobody_to_ring_the_call_goes_straight_on(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(inbound_forward_to=FORWARD)
    root = await twiml_of(await post_signed(gateway, twilio, "/twiml/incoming", number_form()))
    number = root.find("Dial/Number")
    assert number is not None
    assert number.text == FORWARD
    gateway = await make_gateway()
    root = await twiml_of(await post_signed(gateway, twilio, "/twiml/incoming", number_form()))
    assert [child.tag for child in root] == ["Say", "Hangup"]


async def test_the_old_name_of_the_ring_group_still_rings(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(sip_ring_identities=["kintone_9"])
    for path, form in (("/twiml/incoming", number_form()), ("/twiml/sip", line_form())):
        root = await twiml_of(await post_signed(gateway, twilio, path, form))
        assert [c.findtext("Identity") for c in root.findall("Dial/Client")] == ["kintone_9"]


async def test_unsigned_or_malformed_requests_are_refused(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    gateway = await make_gateway(ring_identities=RING)
    for path in ("/twiml/incoming", "/twiml/sip", "/twiml/incoming/after-dial?kind=number"):
        response = await gateway.post(path, data=number_form())
        assert response.status == 403, path
    form = number_form() | {"CallSid": "not-a-sid"}
    response = await post_signed(gateway, twilio, "/twiml/incoming", form)
    assert response.status == 400
    assert await read_events(topic, 0) == []


# --- POST /twiml/sip (LINE) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "uui", "expected"),
    [
        ("SipHeader_X-User-To-User", LINE_ID, LINE_ID),
        ("SipHeader_User-to-User", f"{LINE_ID.encode().hex()};encoding=hex", LINE_ID),
        ("SipHeader_X-User-To-User", quote(f"{LINE_ID};purpose=isdn-uui", safe=""), LINE_ID),
        ("SipHeader_X-User-To-User", f"{LINE_ID}' OR '1'='1", None),
        ("SipHeader_X-User-To-User", "U4af4980629", None),
        ("SipHeader_X-User-To-User", "", None),
        ("SipHeader_X-User-To-User", None, None),
        ("SipHeader_X-User-To-User", "%FF%FE;encoding=hex", None),
        ("SipHeader_X-User-To-User", '"><Hangup/><Parameter name="x', None),
    ],
)
async def test_a_line_call_rings_the_browsers_with_whatever_line_user_id_is_readable(
    make_gateway: GatewayFactory,
    twilio: TwilioSigner,
    topic: str,
    read_events: ReadEvents,
    header: str,
    uui: str | None,
    expected: str | None,
) -> None:
    gateway = await make_gateway(ring_identities=RING, sip_forward_to=SIP_FORWARD)
    form = line_form(uui, header)
    root = await twiml_of(await post_signed(gateway, twilio, "/twiml/sip", form))
    # Browsers first, even with SIP_FORWARD_TO set: that is where a missed call goes.
    dial = root.find("Dial")
    assert dial is not None
    assert dial.find("Number") is None
    clients = dial.findall("Client")
    assert [c.findtext("Identity") for c in clients] == RING
    wanted = {"caller": "LINE", "kind": "line"} | ({"line_user_id": expected} if expected else {})
    callback_query = {"direction": ["inbound"]} | ({"line_user_id": [expected]} if expected else {})
    for client in clients:
        assert parameters(client) == wanted
        assert parse_qs(urlsplit(client.get("statusCallback")).query) == callback_query
    action = parse_qs(urlsplit(dial.get("action")).query)
    assert action == {"kind": ["line"]} | ({"line_user_id": [expected]} if expected else {})

    [(key, event)] = await read_events(topic, 1)
    assert key == form["CallSid"].encode()
    assert event.kind is EventKind.SIP_INBOUND
    assert event.context.line_user_id == expected
    assert event.context.direction == "inbound"


# --- POST /twiml/incoming/after-dial ------------------------------------------------------------


async def after_dial(
    gateway: TestClient, twilio: TwilioSigner, action: str | None, status: str
) -> ET.Element:
    form = dial_action_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        from_=CUSTOMER,
        to=COMPANY_NUMBER,
        dial_status=status,
        dial_call_sid=new_sid(),
    )
    return await twiml_of(await post_signed(gateway, twilio, path_of(action), form))


async def ring_action(
    gateway: TestClient, twilio: TwilioSigner, path: str, form: dict[str, str]
) -> str:
    root = await twiml_of(await post_signed(gateway, twilio, path, form))
    dial = root.find("Dial")
    assert dial is not None
    return dial.get("action") or ""


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
async def test_a_missed_call_is_forwarded_with_its_leg_reported(
    make_gateway: GatewayFactory, twilio: TwilioSigner, status: str
) -> None:
    gateway = await make_gateway(
        ring_identities=RING,
        inbound_forward_to=FORWARD,
        sip_forward_to=SIP_FORWARD,
        status_callback_overrides="rc=3&rp=all",
    )
    for path, form, target, query in (
        ("/twiml/incoming", number_form(), FORWARD, {"direction": ["inbound"]}),
        (
            "/twiml/sip",
            line_form(),
            SIP_FORWARD,
            {"direction": ["inbound"], "line_user_id": [LINE_ID]},
        ),
    ):
        action = await ring_action(gateway, twilio, path, form)
        assert action.endswith("#rc=3&rp=all")
        root = await after_dial(gateway, twilio, action, status)
        dial = root.find("Dial")
        assert dial is not None
        assert dial.get("callerId") == CALLER_ID
        number = dial.find("Number")
        assert number is not None
        assert number.text == target
        assert parse_qs(urlsplit(number.get("statusCallback")).query) == query
        # And when the forward phone does not answer either: the message, no second forward.
        root = await after_dial(gateway, twilio, dial.get("action"), "no-answer")
        assert [child.tag for child in root] == ["Say", "Hangup"]


async def test_a_line_call_goes_to_the_inbound_forward_number_without_sip_forward_to(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(ring_identities=RING, inbound_forward_to=FORWARD)
    action = await ring_action(gateway, twilio, "/twiml/sip", line_form())
    number = (await after_dial(gateway, twilio, action, "no-answer")).find("Dial/Number")
    assert number is not None
    assert number.text == FORWARD


@pytest.mark.parametrize("status", ["completed", "answered", "", "surprise"])
async def test_a_call_a_browser_answered_is_never_forwarded(
    make_gateway: GatewayFactory, twilio: TwilioSigner, status: str
) -> None:
    gateway = await make_gateway(ring_identities=RING, inbound_forward_to=FORWARD)
    action = await ring_action(gateway, twilio, "/twiml/incoming", number_form())
    root = await after_dial(gateway, twilio, action, status)
    assert [child.tag for child in root] == ["Hangup"]


async def test_a_missed_call_with_nowhere_to_go_hears_a_message(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    gateway = await make_gateway(ring_identities=RING, sip_forward_to=SIP_FORWARD)
    action = await ring_action(gateway, twilio, "/twiml/incoming", number_form())
    root = await after_dial(gateway, twilio, action, "no-answer")
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None
    assert say.get("language") == "ja-JP"


async def test_the_after_dial_query_is_signed(
    make_gateway: GatewayFactory, twilio: TwilioSigner
) -> None:
    """Changing the action URL (a forged ``forwarded`` or ``kind``) breaks the signature."""
    gateway = await make_gateway(ring_identities=RING, inbound_forward_to=FORWARD)
    form = dial_action_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        from_=CUSTOMER,
        to=COMPANY_NUMBER,
        dial_status="no-answer",
    )
    headers, body = twilio.request("/twiml/incoming/after-dial?kind=number", form)
    response = await gateway.post(
        "/twiml/incoming/after-dial?kind=line", data=body, headers=headers
    )
    assert response.status == 403


# --- whole flows, as Twilio plays them ----------------------------------------------------------


def _flows() -> list[PlannedInbound]:
    """Every kind of flow at least once: to the number and through LINE, answered and missed,
    the forward phone answering or not."""
    chosen: dict[tuple[object, ...], list[PlannedInbound]] = defaultdict(list)
    for call in plan_inbound_calls(400, seed=1130):
        shape = (call.kind, call.answered, call.forward_answers, call.line_user_id is None)
        if len(chosen[shape]) < 2:
            chosen[shape].append(call)
    assert len(chosen) == 8 + 4  # a number call never has a LINE id
    return [call for calls in chosen.values() for call in calls]


@pytest.mark.parametrize("forward", [True, False])
async def test_simulated_inbound_flows_reach_the_broker_keyed_by_the_root_call(
    make_gateway: GatewayFactory,
    twilio: TwilioSigner,
    topic: str,
    read_events: ReadEvents,
    forward: bool,
) -> None:
    gateway = await make_gateway(
        ring_identities=RING, inbound_forward_to=FORWARD if forward else None
    )
    calls = _flows()
    simulator = Simulator(
        str(gateway.make_url("")),
        twilio,
        account_sid=ACCOUNT_SID,
        app_sid=APP_SID,
        caller_id=CALLER_ID,
    )
    summary = await simulator.run([], concurrency=8, progress=False, inbound=calls)
    assert summary.failures == []
    assert summary.calls == len(calls)
    outcomes = {outcome.split()[1] for outcome in summary.inbound}
    assert outcomes == ({"answered", "forwarded", "missed"} if forward else {"answered", "missed"})

    metrics = await (await gateway.get("/metrics")).text()
    for kind in ("number", "line"):
        rung = sum(c.kind == kind for c in calls)
        answered = sum(c.kind == kind and c.answered for c in calls)
        assert f'calltrail_inbound_calls_total{{kind="{kind}",outcome="rung"}} {rung}.0' in metrics
        assert (
            f'calltrail_inbound_calls_total{{kind="{kind}",outcome="answered"}} {answered}.0'
            in metrics
        )

    events = await read_events(topic, summary.callbacks + len(calls), timeout_s=30)
    assert len(events) == summary.callbacks + len(calls)
    by_call: dict[bytes, list[CallEvent]] = defaultdict(list)
    for key, event in events:
        by_call[key].append(event)
    assert set(by_call) == {c.parent_sid.encode() for c in calls}
    for call in calls:
        check_flow(call, by_call[call.parent_sid.encode()], forward)


def check_flow(call: PlannedInbound, events: list[CallEvent], forward: bool) -> None:
    parent = call.parent_sid
    [first] = [e for e in events if e.kind is not EventKind.STATUS]
    assert first.kind is (EventKind.SIP_INBOUND if call.kind == "line" else EventKind.INBOUND)
    assert events[0] is first  # the voice request comes before any callback
    assert first.call_sid == parent
    assert first.context.direction == "inbound"
    assert first.context.line_user_id == call.line_user_id
    legs = [e for e in events if e.kind is EventKind.STATUS and e.call_sid != parent]
    for leg in legs:
        assert leg.parent_call_sid == parent
        assert leg.context.direction == "inbound"
        assert leg.context.line_user_id == call.line_user_id
    client_legs = {e.call_sid for e in legs if (e.to or "").startswith("client:")}
    forward_legs = {e.call_sid for e in legs if e.to == FORWARD}
    assert len(client_legs) == len(RING)
    answered = {e.call_sid for e in legs if e.status.value == "in-progress"}
    if call.answered:
        [answered_leg] = answered & client_legs
        [identity] = {e.context.identity for e in legs if e.call_sid == answered_leg}
        assert identity == RING[call.answerer % len(RING)]
        assert not forward_legs  # a call a browser answered is never forwarded
    else:
        assert not answered & client_legs
        assert len(forward_legs) == (1 if forward else 0)
    for leg in legs:
        if leg.call_sid in client_legs:
            assert leg.context.identity == (leg.to or "").removeprefix("client:")
        else:
            assert leg.context.identity is None
    ends = [e for e in events if e.call_sid == parent and e.kind is EventKind.STATUS]
    assert ends
    assert {e.status.value for e in ends} == {"completed"}
    assert all(e.context.direction is None for e in ends)  # the number's callback: no query
