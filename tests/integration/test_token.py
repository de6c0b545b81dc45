"""POST /token: an Access Token only for the kintone page that knows the key."""

from __future__ import annotations

import jwt
from aiohttp.test_utils import TestClient

from tests.factories import API_KEY, API_SECRET, APP_SID, KINTONE_ORIGIN, TOKEN_KEY
from tests.integration.conftest import GatewayFactory

KEY = {"X-Calltrail-Key": TOKEN_KEY}


async def test_token_for_a_valid_identity(gateway: TestClient) -> None:
    response = await gateway.post("/token", data={"identity": "u_123"}, headers=KEY)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["identity"] == "u_123"
    assert body["ttl"] == 600
    assert body["edge"] == "tokyo"
    claims = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"])
    assert claims["iss"] == API_KEY
    assert claims["grants"]["identity"] == "u_123"
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == APP_SID
    assert claims["exp"] - claims["nbf"] == 600
    assert body["incoming"] is False  # no ring group: outgoing calls only
    assert "incoming" not in claims["grants"]["voice"]


async def test_only_the_ring_group_may_receive_calls(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(ring_identities=["kintone_1", "kintone_2"])
    for identity, incoming in (("kintone_1", True), ("kintone_2", True), ("kintone_3", False)):
        response = await gateway.post("/token", json={"identity": identity}, headers=KEY)
        assert response.status == 200
        body = await response.json()
        assert body["incoming"] is incoming, identity
        voice = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"])["grants"]["voice"]
        assert voice["outgoing"] == {"application_sid": APP_SID}
        assert voice.get("incoming") == ({"allow": True} if incoming else None), identity


async def test_json_body_and_configured_ttl(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(token_ttl_s=3600)
    response = await gateway.post("/token", json={"identity": "sales_01"}, headers=KEY)
    assert response.status == 200
    body = await response.json()
    claims = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"])
    assert body["ttl"] == 3600
    assert claims["exp"] - claims["nbf"] == 3600


async def test_missing_or_wrong_key_is_401(gateway: TestClient) -> None:
    for headers in ({}, {"X-Calltrail-Key": "wrong"}, {"X-Calltrail-Key": TOKEN_KEY + "x"}):
        response = await gateway.post("/token", data={"identity": "u_1"}, headers=headers)
        assert response.status == 401
        text = await response.text()
        assert "token" not in (await response.json())
        assert TOKEN_KEY not in text


async def test_bad_identities_are_400(gateway: TestClient) -> None:
    bad_forms = [
        {"identity": "has space"},
        {"identity": "x" * 122},
        {"identity": "x" * 500},
        {"identity": ""},
        {"identity": "ユーザー"},
        {"identity": "u_1;drop"},
        {},
    ]
    for form in bad_forms:
        response = await gateway.post("/token", data=form, headers=KEY)
        assert response.status == 400, form
    for body in (b"{not json", b"[1, 2]", b'{"identity": 5}', b'{"identity": null}'):
        response = await gateway.post(
            "/token", data=body, headers={**KEY, "Content-Type": "application/json"}
        )
        assert response.status == 400, body
    response = await gateway.post("/token", data={"identity": "x" * 121}, headers=KEY)
    assert response.status == 200


async def test_cors_only_for_the_kintone_origin(gateway: TestClient) -> None:
    preflight = {
        "Origin": KINTONE_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-calltrail-key, content-type",
    }
    response = await gateway.options("/token", headers=preflight)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == KINTONE_ORIGIN
    assert "X-Calltrail-Key" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Access-Control-Allow-Methods"] == "POST"

    evil = {**preflight, "Origin": "https://evil.example.com"}
    response = await gateway.options("/token", headers=evil)
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers

    response = await gateway.post(
        "/token", data={"identity": "u_1"}, headers={**KEY, "Origin": KINTONE_ORIGIN}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == KINTONE_ORIGIN

    response = await gateway.post(
        "/token", data={"identity": "u_1"}, headers={**KEY, "Origin": "https://evil.example.com"}
    )
    assert response.status == 403


async def test_rate_limited_per_identity(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(token_rate_per_identity=2)
    statuses = [
        (await gateway.post("/token", data={"identity": "u_9"}, headers=KEY)).status
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    response = await gateway.post("/token", data={"identity": "u_9"}, headers=KEY)
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    # Another identity is not affected.
    response = await gateway.post("/token", data={"identity": "u_10"}, headers=KEY)
    assert response.status == 200


async def test_rate_limited_per_address_without_key(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(token_rate_per_address=3)
    statuses = [
        (await gateway.post("/token", data={"identity": f"u_{i}"}, headers={})).status
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    response = await gateway.post("/token", data={"identity": "u_1"}, headers={})
    assert response.status == 429
    assert "Retry-After" in response.headers
    # The address limit counts only requests without the right key (issue 9): kintone's
    # proxy sends a whole company from a few addresses, so the right key still gets through.
    response = await gateway.post("/token", data={"identity": "u_1"}, headers=KEY)
    assert response.status == 200


async def test_a_company_behind_one_proxy_address_each_gets_a_token(
    make_gateway: GatewayFactory,
) -> None:
    """150 users through kintone's plugin proxy (one client address) each get their token;
    the per-identity limit still holds for each of them."""
    gateway = await make_gateway()  # default limits: 60/min per address, 10 per identity
    statuses = [
        (await gateway.post("/token", json={"identity": f"kintone_{i}"}, headers=KEY)).status
        for i in range(1, 151)
    ]
    assert statuses == [200] * 150
    again = [
        (await gateway.post("/token", json={"identity": "kintone_1"}, headers=KEY)).status
        for _ in range(10)
    ]
    assert again[-1] == 429  # kintone_1 had one already: the 11th in a minute is refused
