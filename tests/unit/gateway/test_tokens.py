"""Twilio Access Tokens (JWT, HS256, Voice grant) and the identity rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.domain.tokens import IDENTITY_PATTERN, is_valid_identity, issue_access_token
from tests.factories import ACCOUNT_SID, API_KEY, API_SECRET, APP_SID


def _issue(identity: str = "u_123", ttl_s: int = 600, incoming: bool = True) -> str:
    return issue_access_token(
        account_sid=ACCOUNT_SID,
        api_key=API_KEY,
        api_secret=API_SECRET,
        twiml_app_sid=APP_SID,
        identity=identity,
        ttl_s=ttl_s,
        incoming=incoming,
    )


def _decode(token: str) -> dict[str, Any]:
    return jwt.decode(token, API_SECRET, algorithms=["HS256"])


def test_token_is_an_hs256_jwt_signed_with_the_api_secret() -> None:
    token = _issue()
    assert isinstance(token, str)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["typ"] == "JWT"
    assert header["cty"] == "twilio-fpa;v=1"
    _decode(token)  # verifies the signature, exp and nbf


def test_claims() -> None:
    before = int(time.time())
    claims = _decode(_issue("u_123", 600))
    after = int(time.time())
    assert claims["iss"] == API_KEY
    assert claims["sub"] == ACCOUNT_SID
    assert claims["jti"].startswith(f"{API_KEY}-")
    assert before <= claims["nbf"] <= after
    assert claims["exp"] - claims["nbf"] == 600


def test_voice_grant() -> None:
    grants = _decode(_issue("u_123"))["grants"]
    assert grants["identity"] == "u_123"
    assert grants["voice"]["outgoing"]["application_sid"] == APP_SID
    assert grants["voice"]["incoming"] == {"allow": True}


def test_voice_grant_without_incoming_calls() -> None:
    """Outside the ring group: outgoing only, no ``incoming`` in the grant at all."""
    voice = _decode(_issue("u_123", incoming=False))["grants"]["voice"]
    assert voice == {"outgoing": {"application_sid": APP_SID}}


@pytest.mark.parametrize("ttl", [60, 600, 3600, 86_400])
def test_lifetime_is_the_ttl(ttl: int) -> None:
    claims = _decode(_issue(ttl_s=ttl))
    assert claims["exp"] - claims["nbf"] == ttl


def test_lifetime_is_exact_across_a_clock_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that moves on every reading: the token must read it once for nbf and exp.
    readings = iter(1_800_000_000.7 + 0.2 * i for i in range(1000))
    ticking: Callable[[], float] = lambda: next(readings)  # noqa: E731
    monkeypatch.setattr(time, "time", ticking)
    claims = jwt.decode(
        _issue(ttl_s=600),
        API_SECRET,
        algorithms=["HS256"],
        options={
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    assert claims["nbf"] == 1_800_000_000
    assert claims["exp"] - claims["nbf"] == 600


def test_wrong_secret_fails_verification() -> None:
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(_issue(), "another-api-secret-0123456789abcdef", algorithms=["HS256"])


def test_tokens_differ_by_identity() -> None:
    assert _decode(_issue("alice"))["grants"]["identity"] == "alice"
    assert _decode(_issue("bob"))["grants"]["identity"] == "bob"


# --- identity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identity", ["a", "u_123", "ABC_def_789", "_", "0", "a" * 120, "a" * 121, "x" * 60 + "_" * 61]
)
def test_valid_identities(identity: str) -> None:
    assert is_valid_identity(identity)


@pytest.mark.parametrize(
    "identity",
    [
        "",
        "a" * 122,
        "u 123",
        " u_123",
        "u_123 ",
        "u_123\n",
        "u-123",
        "u.123",
        "u@example.com",
        "ユーザー",
        "ｕ_123",  # fullwidth letter
        "é",
        "١٢٣",  # Arabic-Indic digits
        "client:u_123",
        "u\x00",
    ],
)
def test_invalid_identities(identity: str) -> None:
    assert not is_valid_identity(identity)


@pytest.mark.parametrize("identity", [None, 123, b"u_123", ["u_123"], {"identity": "u"}, True])
def test_non_strings_are_invalid(identity: object) -> None:
    assert not is_valid_identity(identity)


_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=130) | st.text(alphabet=sorted(_ASCII_WORD), max_size=130))
def test_identity_rule_is_exactly_the_contract_pattern(identity: str) -> None:
    expected = 1 <= len(identity) <= 121 and set(identity) <= _ASCII_WORD
    assert is_valid_identity(identity) is expected
    assert (IDENTITY_PATTERN.fullmatch(identity) is not None) is expected
