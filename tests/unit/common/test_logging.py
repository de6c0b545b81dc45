"""JSON logs with secrets redacted, by field name and by value."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

import pytest

from services.common.logging import (
    REDACTED,
    SecretRedactor,
    bind_call,
    configure_logging,
    get_logger,
)
from tests.factories import API_SECRET, AUTH_TOKEN, TOKEN_KEY

SECRETS = (AUTH_TOKEN, API_SECRET, TOKEN_KEY)


@pytest.fixture
def redactor() -> SecretRedactor:
    return SecretRedactor(SECRETS)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- values ---------------------------------------------------------------------------------


def test_secret_value_inside_a_string_is_masked(redactor: SecretRedactor) -> None:
    text = f"twilio said: bad credentials {AUTH_TOKEN} for request"
    assert redactor.scrub(text) == f"twilio said: bad credentials {REDACTED} for request"


def test_every_occurrence_of_every_secret_is_masked(redactor: SecretRedactor) -> None:
    text = f"{AUTH_TOKEN}/{API_SECRET}/{AUTH_TOKEN}?k={TOKEN_KEY}"
    assert redactor.scrub(text) == f"{REDACTED}/{REDACTED}/{REDACTED}?k={REDACTED}"


def test_longer_secret_is_masked_before_its_prefix() -> None:
    redactor = SecretRedactor(["abcd", "abcdefgh"])
    assert redactor.scrub("x abcdefgh y") == f"x {REDACTED} y"


def test_secret_values_in_nested_structures(redactor: SecretRedactor) -> None:
    value = {
        "request": {"headers": {"x-note": f"Basic {API_SECRET}"}, "path": "/token"},
        "attempts": [f"tried {TOKEN_KEY}", 3, None],
        "pair": ("ok", AUTH_TOKEN),
    }
    scrubbed = redactor.scrub(value)
    assert scrubbed == {
        "request": {"headers": {"x-note": f"Basic {REDACTED}"}, "path": "/token"},
        "attempts": [f"tried {REDACTED}", 3, None],
        "pair": ("ok", REDACTED),
    }
    assert isinstance(scrubbed["pair"], tuple)
    # The input is left alone.
    assert value["request"]["headers"]["x-note"] == f"Basic {API_SECRET}"


def test_short_and_empty_secrets_are_ignored() -> None:
    redactor = SecretRedactor(["", "abc", "a"])
    assert redactor.scrub("abc a b c") == "abc a b c"


def test_non_string_values_pass_through(redactor: SecretRedactor) -> None:
    for value in (42, 1.5, None, True, b"bytes"):
        assert redactor.scrub(value) == value


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "auth_token",
        "twilio_auth_token",
        "api_secret",
        "TWILIO_API_SECRET",
        "password",
        "db_password",
        "token",
        "access_token",
        "Authorization",
        "X-Twilio-Signature",
        "api_key",
        "api-key",
        "apikey",
        "calltrail_token_key",
    ],
)
def test_secret_looking_keys_are_masked(redactor: SecretRedactor, key: str) -> None:
    assert redactor.scrub({key: "anything at all"}) == {key: REDACTED}
    assert redactor.scrub({"outer": {key: {"nested": 1}}}) == {"outer": {key: REDACTED}}


@pytest.mark.parametrize(
    "key", ["identity", "token_ttl_s", "call_sid", "status", "path", "event", "duration_s"]
)
def test_public_keys_are_kept(redactor: SecretRedactor, key: str) -> None:
    assert redactor.scrub({key: "u_123"}) == {key: "u_123"}


def test_processor_masks_event_dict_in_place(redactor: SecretRedactor) -> None:
    event_dict: dict[str, Any] = {
        "event": f"login failed with {TOKEN_KEY}",
        "identity": "u_123",
        "token_ttl_s": 600,
        "auth_token": "whatever",
        "detail": {"password": "p", "note": AUTH_TOKEN},
    }
    out = redactor(None, "info", event_dict)
    assert out is event_dict
    assert out == {
        "event": f"login failed with {REDACTED}",
        "identity": "u_123",
        "token_ttl_s": 600,
        "auth_token": REDACTED,
        "detail": {"password": REDACTED, "note": REDACTED},
    }


# --- the configured pipeline ----------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_structlog_call_emits_json_on_stderr_without_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", SECRETS)
    log = get_logger("calltrail.test")
    log.info(
        "token issued",
        identity="u_123",
        token_ttl_s=600,
        api_secret=API_SECRET,
        note=f"signed with {AUTH_TOKEN}",
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = _json_lines(captured.err)
    assert line["event"] == "token issued"
    assert line["level"] == "info"
    assert line["identity"] == "u_123"
    assert line["token_ttl_s"] == 600
    assert line["api_secret"] == REDACTED
    assert line["note"] == f"signed with {REDACTED}"
    assert "timestamp" in line
    for secret in SECRETS:
        assert secret not in captured.err


@pytest.mark.usefixtures("restore_logging")
def test_exceptions_quoting_a_secret_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", SECRETS)
    log = get_logger("calltrail.test")
    try:
        raise RuntimeError(f"upstream rejected {AUTH_TOKEN}")
    except RuntimeError:
        log.exception("publish failed")
    err = capsys.readouterr().err
    [line] = _json_lines(err)
    assert line["level"] == "error"
    assert "RuntimeError" in line["exception"]
    assert REDACTED in line["exception"]
    assert AUTH_TOKEN not in err


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_loggers_go_through_the_same_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", SECRETS)
    logging.getLogger("aiohttp.access").warning("bad key %s from %s", TOKEN_KEY, "10.0.0.1")
    err = capsys.readouterr().err
    [line] = _json_lines(err)
    assert line["event"] == f"bad key {REDACTED} from 10.0.0.1"
    assert line["level"] == "warning"
    assert TOKEN_KEY not in err


@pytest.mark.usefixtures("restore_logging")
def test_level_filters_structlog_and_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", SECRETS)
    log = get_logger("calltrail.test")
    log.info("quiet")
    log.debug("quieter")
    logging.getLogger("aiohttp").info("also quiet")
    log.warning("loud")
    lines = _json_lines(capsys.readouterr().err)
    assert [line["event"] for line in lines] == ["loud"]


@pytest.mark.usefixtures("restore_logging")
def test_aiokafka_reconnect_noise_is_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    """The gateway's setting: its publisher reports broker outages itself."""
    configure_logging("INFO", SECRETS, kafka_level=logging.CRITICAL)
    logging.getLogger("aiokafka.conn").error("Unable to connect to node")
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("restore_logging")
def test_aiokafka_warnings_are_kept_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """The recorder's setting: aiokafka's warnings are its only word on the broker."""
    configure_logging("INFO", SECRETS)
    logging.getLogger("aiokafka.conn").info("connected")
    logging.getLogger("aiokafka.conn").warning("Unable to connect to node")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["Unable to connect to node"]


@pytest.mark.usefixtures("restore_logging")
async def test_a_bound_call_names_the_lines_of_its_task_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", SECRETS)
    log = get_logger("calltrail.test")

    async def request(call_sid: str, parent: str | None) -> None:
        bind_call(call_sid, parent)
        log.info("inside")

    await asyncio.create_task(request("CA1", "CA0"))
    await asyncio.create_task(request("CA2", None))
    log.info("outside")
    inside_child, inside_root, outside = _json_lines(capsys.readouterr().err)
    assert (inside_child["call_sid"], inside_child["parent_call_sid"]) == ("CA1", "CA0")
    assert inside_root["call_sid"] == "CA2"
    assert "parent_call_sid" not in inside_root
    assert "call_sid" not in outside


@pytest.mark.usefixtures("restore_logging")
def test_a_field_given_explicitly_wins_over_the_bound_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", SECRETS)

    def request() -> None:
        bind_call("CA1")
        get_logger("calltrail.test").info("explicit", call_sid="CA9")

    contextvars.copy_context().run(request)  # the binding must not outlive this test
    [line] = _json_lines(capsys.readouterr().err)
    assert line["call_sid"] == "CA9"
