"""Webhook signatures against the public URL, the token key compare, rate limits, addresses."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallContext
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    status_callback_form,
    voice_request_form,
)
from services.gateway.domain.security import (
    HmacSha1,
    RateLimiter,
    TwilioSignature,
    client_address,
    keys_match,
    retry_after_header,
)
from services.gateway.domain.twiml import status_callback_url
from tests.factories import ACCOUNT_SID, APP_SID, AUTH_TOKEN, CALLER_ID, PUBLIC_BASE_URL, TOKEN_KEY

PATH_QS = "/twilio/status?app_id=12&record_id=345&identity=u_123"
FRAGMENT = "rc=3&rp=all"


@pytest.fixture
def twilio() -> TwilioSigner:
    return TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)


@pytest.fixture
def checker() -> TwilioSignature:
    return TwilioSignature(AUTH_TOKEN, PUBLIC_BASE_URL)


@pytest.fixture
def form() -> dict[str, str]:
    return status_callback_form(
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


def _sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return TwilioSigner(token, PUBLIC_BASE_URL).signature(url, params)


# --- TwilioSignature ------------------------------------------------------------------------


def test_signed_request_for_the_public_url_is_accepted(
    twilio: TwilioSigner, checker: TwilioSignature, form: dict[str, str]
) -> None:
    headers, _body = twilio.request(PATH_QS, form)
    assert checker.is_valid(PATH_QS, form, headers["X-Twilio-Signature"])


def test_voice_request_is_accepted(twilio: TwilioSigner, checker: TwilioSignature) -> None:
    form = voice_request_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        identity="u_123",
        to="09012345678",
        app_sid=APP_SID,
        AppId="12",
        RecordId="345",
    )
    headers, _body = twilio.request("/twiml/voice", form)
    assert checker.is_valid("/twiml/voice", form, headers["X-Twilio-Signature"])


def test_public_url_joins_base_and_path(checker: TwilioSignature) -> None:
    assert checker.public_url(PATH_QS) == PUBLIC_BASE_URL + PATH_QS
    slashed = TwilioSignature(AUTH_TOKEN, PUBLIC_BASE_URL + "/")
    assert slashed.public_url("/twiml/voice") == f"{PUBLIC_BASE_URL}/twiml/voice"


@pytest.mark.parametrize("signature", [None, ""])
def test_no_signature_is_rejected(
    checker: TwilioSignature, form: dict[str, str], signature: str | None
) -> None:
    assert not checker.is_valid(PATH_QS, form, signature)


def test_oversized_signature_is_rejected(checker: TwilioSignature, form: dict[str, str]) -> None:
    good = _sign(PUBLIC_BASE_URL + PATH_QS, form)
    assert not checker.is_valid(PATH_QS, form, good + "A" * 200)


def test_wrong_auth_token_is_rejected(checker: TwilioSignature, form: dict[str, str]) -> None:
    signature = _sign(PUBLIC_BASE_URL + PATH_QS, form, token="another-auth-token-0123456789ab")
    assert not checker.is_valid(PATH_QS, form, signature)


def test_signed_for_another_host_is_rejected(
    checker: TwilioSignature, form: dict[str, str]
) -> None:
    signature = _sign("https://attacker.example.net" + PATH_QS, form)
    assert not checker.is_valid(PATH_QS, form, signature)


def test_signed_for_the_internal_url_is_rejected(
    checker: TwilioSignature, form: dict[str, str]
) -> None:
    # What the pod sees behind the TLS-terminating proxy is not what Twilio signed.
    signature = _sign("http://10.0.0.7:8080" + PATH_QS, form)
    assert not checker.is_valid(PATH_QS, form, signature)


def test_signed_for_plain_http_is_rejected(checker: TwilioSignature, form: dict[str, str]) -> None:
    host = urlsplit(PUBLIC_BASE_URL).netloc
    signature = _sign(f"http://{host}{PATH_QS}", form)
    assert not checker.is_valid(PATH_QS, form, signature)


def test_explicit_default_port_is_tolerated(checker: TwilioSignature, form: dict[str, str]) -> None:
    # Twilio signs with or without :443 depending on the product; the validator tries both.
    host = urlsplit(PUBLIC_BASE_URL).netloc
    signature = _sign(f"https://{host}:443{PATH_QS}", form)
    assert checker.is_valid(PATH_QS, form, signature)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda form: {**form, "CallDuration": "1"}, id="a changed parameter"),
        pytest.param(lambda form: {**form, "Extra": "1"}, id="an extra parameter"),
        pytest.param(
            lambda form: {k: v for k, v in form.items() if k != "CallDuration"},
            id="a removed parameter",
        ),
    ],
)
def test_a_replay_with_other_parameters_is_rejected(
    twilio: TwilioSigner,
    checker: TwilioSignature,
    form: dict[str, str],
    tamper: Callable[[dict[str, str]], dict[str, str]],
) -> None:
    headers, _body = twilio.request(PATH_QS, form)
    assert not checker.is_valid(PATH_QS, tamper(form), headers["X-Twilio-Signature"])


@pytest.mark.parametrize(
    "other_path_qs",
    [
        "/twilio/status?app_id=13&record_id=345&identity=u_123",
        "/twilio/status?app_id=12&record_id=345&identity=mallory",
        "/twilio/status?app_id=12&record_id=345",
        "/twilio/status",
        "/twiml/voice?app_id=12&record_id=345&identity=u_123",
    ],
)
def test_changed_path_or_query_is_rejected(
    twilio: TwilioSigner, checker: TwilioSignature, form: dict[str, str], other_path_qs: str
) -> None:
    headers, _body = twilio.request(PATH_QS, form)
    assert not checker.is_valid(other_path_qs, form, headers["X-Twilio-Signature"])


def test_fragment_configured_accepts_signatures_with_and_without_it(
    form: dict[str, str],
) -> None:
    checker = TwilioSignature(AUTH_TOKEN, PUBLIC_BASE_URL, FRAGMENT)
    with_fragment = _sign(f"{PUBLIC_BASE_URL}{PATH_QS}#{FRAGMENT}", form)
    without_fragment = _sign(f"{PUBLIC_BASE_URL}{PATH_QS}", form)
    assert checker.is_valid(PATH_QS, form, with_fragment)
    assert checker.is_valid(PATH_QS, form, without_fragment)
    # Another fragment is another URL.
    assert not checker.is_valid(PATH_QS, form, _sign(f"{PUBLIC_BASE_URL}{PATH_QS}#rc=1", form))


def test_fragment_not_configured_rejects_a_signature_over_it(
    checker: TwilioSignature, form: dict[str, str]
) -> None:
    with_fragment = _sign(f"{PUBLIC_BASE_URL}{PATH_QS}#{FRAGMENT}", form)
    assert not checker.is_valid(PATH_QS, form, with_fragment)


def test_the_callback_url_we_hand_out_verifies_when_twilio_calls_it(
    form: dict[str, str],
) -> None:
    """TwiML → Twilio → us: the URL in <Number statusCallback> signs and checks round trip."""
    context = CallContext(app_id="12", record_id="345", identity="u_123")
    url = status_callback_url(PUBLIC_BASE_URL, context, FRAGMENT)
    checker = TwilioSignature(AUTH_TOKEN, PUBLIC_BASE_URL, FRAGMENT)
    parts = urlsplit(url)
    path_qs = f"{parts.path}?{parts.query}"  # what the server sees: no fragment
    assert path_qs == PATH_QS
    assert checker.is_valid(path_qs, form, _sign(url, form))


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=6),
    st.text(max_size=10),
)
def test_any_signed_form_verifies_and_any_change_breaks_it(
    params: dict[str, str], extra: str
) -> None:
    checker = TwilioSignature(AUTH_TOKEN, PUBLIC_BASE_URL)
    signature = _sign(PUBLIC_BASE_URL + PATH_QS, params)
    assert checker.is_valid(PATH_QS, params, signature)
    changed = {**params, "ExtraParameterNotInTheForm": extra}
    assert not checker.is_valid(PATH_QS, changed, signature)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=3000))
def test_hmac_sha1_from_prepared_states_is_hmac_sha1(key: bytes, message: bytes) -> None:
    # Keys shorter than, equal to and longer than SHA-1's 64-byte block (hashed first).
    prepared = HmacSha1(key)
    assert prepared.digest(message) == hmac.digest(key, message, "sha1")
    assert prepared.digest(message) == hmac.digest(key, message, "sha1")  # states not consumed


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128])
def test_hmac_sha1_at_the_block_size_edges(size: int) -> None:
    key = bytes(range(size))
    assert HmacSha1(key).digest(b"abc") == hmac.digest(key, b"abc", "sha1")


# --- keys_match -----------------------------------------------------------------------------


def test_keys_match() -> None:
    assert keys_match(TOKEN_KEY, TOKEN_KEY)
    assert not keys_match(TOKEN_KEY + "x", TOKEN_KEY)
    assert not keys_match(TOKEN_KEY[:-1], TOKEN_KEY)
    assert not keys_match(TOKEN_KEY.upper(), TOKEN_KEY)
    assert not keys_match("", TOKEN_KEY)
    assert not keys_match(None, TOKEN_KEY)


def test_keys_match_non_ascii() -> None:
    assert keys_match("鍵-0123456789abcdef", "鍵-0123456789abcdef")
    assert not keys_match("鍵-0123456789abcdef", "錠-0123456789abcdef")


# --- RateLimiter ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)
    assert [limiter.acquire("u_1") for _ in range(60)] == [0.0] * 60
    assert limiter.acquire("u_1") == pytest.approx(1.0)
    # A refused request does not cost anything more.
    assert limiter.acquire("u_1") == pytest.approx(1.0)


def test_refill_over_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)  # one token every 6 s
    for _ in range(10):
        assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(6.0)
    clock.advance(2.0)
    assert limiter.acquire("a") == pytest.approx(4.0)
    clock.advance(4.0)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(6.0)


def test_refill_is_capped_at_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    assert limiter.acquire("a") == 0.0
    clock.advance(3600.0)
    assert [limiter.acquire("a") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("a") > 0.0


def test_keys_are_independent() -> None:
    limiter = RateLimiter(2, clock=FakeClock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0.0
    assert limiter.acquire("b") == 0.0


def test_key_count_is_bounded_oldest_dropped_first() -> None:
    limiter = RateLimiter(1, max_keys=3, clock=FakeClock())
    for key in ("a", "b", "c"):
        assert limiter.acquire(key) == 0.0
    # "a" is the least recently used; "b" is touched again, so it stays.
    assert limiter.acquire("b") > 0.0
    assert limiter.acquire("d") == 0.0  # evicts "a"
    assert limiter.acquire("a") == 0.0  # a fresh bucket: "a" was forgotten (evicts "c")
    assert limiter.acquire("b") > 0.0  # still remembered
    assert limiter.acquire("d") > 0.0  # still remembered


def test_flood_of_keys_keeps_memory_bounded() -> None:
    limiter = RateLimiter(1, max_keys=100, clock=FakeClock())
    for i in range(5000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) == 100


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=120),
    st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=60),
)
def test_never_more_than_burst_plus_refill(rate: int, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.advance(gap)
        wait = limiter.acquire("k")
        assert wait >= 0.0
        if wait == 0.0:
            allowed += 1
        else:
            assert wait <= 60.0 / rate + 1e-9
    elapsed = clock.now - 1000.0
    assert allowed <= rate + elapsed * rate / 60.0 + 1e-6


@pytest.mark.parametrize(
    ("wait", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (6, "6")]
)
def test_retry_after_header(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header


# --- client_address -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "hops", "expected"),
    [
        # Trust no proxy: X-Forwarded-For is whatever the client says.
        ("10.0.0.9", "1.2.3.4", 0, "10.0.0.9"),
        ("10.0.0.9", None, 0, "10.0.0.9"),
        # One proxy (the ingress): the last entry is the address it saw.
        ("10.0.0.9", "203.0.113.5", 1, "203.0.113.5"),
        ("10.0.0.9", "6.6.6.6, 203.0.113.5", 1, "203.0.113.5"),
        ("10.0.0.9", "6.6.6.6,203.0.113.5", 1, "203.0.113.5"),
        # Two proxies (CDN + ingress).
        ("10.0.0.9", "6.6.6.6, 203.0.113.5, 198.51.100.2", 2, "203.0.113.5"),
        ("10.0.0.9", "203.0.113.5, 198.51.100.2", 2, "203.0.113.5"),
        # Fewer entries than trusted hops: fall back to the peer.
        ("10.0.0.9", "198.51.100.2", 2, "10.0.0.9"),
        ("10.0.0.9", "", 1, "10.0.0.9"),
        ("10.0.0.9", " , ", 1, "10.0.0.9"),
        ("10.0.0.9", None, 1, "10.0.0.9"),
        (None, None, 0, "unknown"),
        (None, "", 1, "unknown"),
    ],
)
def test_client_address(
    peer: str | None, forwarded_for: str | None, hops: int, expected: str
) -> None:
    assert client_address(peer, forwarded_for, hops) == expected
