"""The gateway's own settings: defaults, formats, normalisation (CONTRACT.md section 7)."""

from __future__ import annotations

import pytest

from services.common.settings import load_settings
from services.gateway.domain.twiml import (
    RECORDING_NOTICE_JA,
    VOICEMAIL_GREETING_JA,
    Conversation,
)
from services.gateway.settings import GatewaySettings
from tests.factories import ACCOUNT_SID, CALLER_ID, KINTONE_ORIGIN, PUBLIC_BASE_URL
from tests.unit.conftest import SECRETS, SettingsErrorOf


def _load() -> GatewaySettings:
    return load_settings(GatewaySettings, "gateway")


@pytest.mark.usefixtures("gateway_env")
def test_defaults() -> None:
    settings = _load()
    assert settings.public_base_url == PUBLIC_BASE_URL
    assert settings.twilio_account_sid == ACCOUNT_SID
    assert settings.twilio_caller_id == CALLER_ID
    assert settings.token_ttl_s == 600
    assert settings.dial_allowed_countries == ["JP"]
    assert settings.kafka_topic == "calltrail.call-events"
    assert settings.gateway_host == "0.0.0.0"  # noqa: S104
    assert settings.gateway_port == 8080
    assert settings.sip_forward_to is None
    assert settings.sip_ring_identities == []
    assert settings.ring_identities == []
    assert settings.ring_group == ()
    assert settings.ring_timeout_s == 20
    assert settings.inbound_forward_to is None
    assert settings.status_callback_overrides == ""
    assert settings.trusted_proxy_hops == 0
    assert settings.recording == "off"
    assert settings.transcription == "off"
    assert settings.transcription_language == "ja-JP"
    assert settings.transcription_engine is None
    assert settings.transcription_model is None
    assert settings.recording_notice == RECORDING_NOTICE_JA
    assert settings.conversation == Conversation()  # nothing recorded, nothing said
    assert settings.conversation.notice_to_say == ""
    assert settings.voicemail == "off"
    assert settings.voicemail_answer() is None  # nobody is offered a voicemail
    assert settings.voicemail_greeting == VOICEMAIL_GREETING_JA
    assert settings.voicemail_max_s == 120


@pytest.mark.usefixtures("gateway_env")
def test_secret_values_and_their_hiding() -> None:
    settings = _load()
    assert sorted(settings.secret_values()) == sorted(SECRETS)
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKEN_TTL_S", "100000"),
        ("TOKEN_TTL_S", "86401"),
        ("TOKEN_TTL_S", "59"),
        ("TOKEN_TTL_S", "ten minutes"),
        ("DIAL_ALLOWED_COUNTRIES", "XX"),
        ("DIAL_ALLOWED_COUNTRIES", "JP,ZZ"),
        ("DIAL_ALLOWED_COUNTRIES", "Japan"),
        ("DIAL_ALLOWED_COUNTRIES", ",,"),
        ("TWILIO_CALLER_ID", "abc"),
        ("TWILIO_CALLER_ID", "+81000"),
        ("SIP_FORWARD_TO", "not-a-number"),
        ("INBOUND_FORWARD_TO", "090-1234-5678"),
        ("INBOUND_FORWARD_TO", "+81000"),
        ("RING_TIMEOUT_S", "4"),
        ("RING_TIMEOUT_S", "601"),
        ("RING_TIMEOUT_S", "twenty"),
        ("RING_IDENTITIES", "kintone_1,kintone 2"),
        ("RING_IDENTITIES", "kintone-1"),
        ("RING_IDENTITIES", "client:kintone_1"),
        ("RING_IDENTITIES", ",".join(f"kintone_{i}" for i in range(11))),
        ("SIP_RING_IDENTITIES", "u_1,ユーザー"),
        ("PUBLIC_BASE_URL", "not-a-url"),
        ("PUBLIC_BASE_URL", "ftp://calltrail.example.com"),
        ("PUBLIC_BASE_URL", "https://"),
        ("PUBLIC_BASE_URL", "https://calltrail.example.com/?x=1"),
        ("PUBLIC_BASE_URL", "https://calltrail.example.com/#frag"),
        ("KINTONE_BASE_URL", "example.cybozu.com"),
        ("TWILIO_ACCOUNT_SID", "AC123"),
        ("TWILIO_API_KEY", "AC" + "1" * 32),
        ("TWILIO_TWIML_APP_SID", "AP" + "2" * 31 + "!"),
        ("CALLTRAIL_TOKEN_KEY", "short-key"),
        ("GATEWAY_PORT", "70000"),
        ("STATUS_CALLBACK_OVERRIDES", "rc=3&rp=all&evil=<x>"),
        ("TRUSTED_PROXY_HOPS", "-1"),
        ("PUBLISH_TIMEOUT_S", "15"),
        ("RECORDING", "on"),
        ("RECORDING", "mono"),
        ("RECORDING", "true"),
        ("TRANSCRIPTION", "yes"),
        ("TRANSCRIPTION", "dual"),
        ("TRANSCRIPTION_LANGUAGE", "日本語"),
        ("TRANSCRIPTION_LANGUAGE", "ja_JP"),
        ("TRANSCRIPTION_LANGUAGE", "j"),
        ("TRANSCRIPTION_LANGUAGE", 'ja-JP" track="x'),
        ("TRANSCRIPTION_ENGINE", "whisper"),
        ("TRANSCRIPTION_MODEL", "nova-3"),  # Deepgram's, with Twilio's default engine (Google)
        ("TRANSCRIPTION_MODEL", "telephony "),
        ("RECORDING_NOTICE", "録音" * 251),
        ("VOICEMAIL", "yes"),
        ("VOICEMAIL", "true"),
        ("VOICEMAIL", "record"),
        ("VOICEMAIL_GREETING", "   "),
        ("VOICEMAIL_GREETING", "留守" * 251),
        ("VOICEMAIL_MAX_S", "4"),
        ("VOICEMAIL_MAX_S", "1"),
        ("VOICEMAIL_MAX_S", "14401"),
        ("VOICEMAIL_MAX_S", "two minutes"),
    ],
)
def test_malformed_setting_is_named(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf, name: str, value: str
) -> None:
    gateway_env.setenv(name, value)
    message = settings_error()
    assert message.startswith(f"calltrail gateway: {name} is malformed (")
    assert message.count("malformed") == 1


@pytest.mark.parametrize(("value", "limit"), [("100000", "86400"), ("30", "60")])
def test_token_ttl_message_says_the_limit(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf, value: str, limit: str
) -> None:
    gateway_env.setenv("TOKEN_TTL_S", value)
    assert limit in settings_error()


@pytest.mark.parametrize("value", ["60", "86400"])
def test_token_ttl_bounds_are_inclusive(gateway_env: pytest.MonkeyPatch, value: str) -> None:
    gateway_env.setenv("TOKEN_TTL_S", value)
    assert _load().token_ttl_s == int(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("JP,US", ["JP", "US"]), ("jp, us", ["JP", "US"]), (" JP ,, US ,", ["JP", "US"])],
)
def test_allowed_countries_are_a_comma_separated_list(
    gateway_env: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    gateway_env.setenv("DIAL_ALLOWED_COUNTRIES", value)
    assert _load().dial_allowed_countries == expected


@pytest.mark.parametrize("name", ["RING_IDENTITIES", "SIP_RING_IDENTITIES"])
def test_ring_identities_are_a_comma_separated_list(
    gateway_env: pytest.MonkeyPatch, name: str
) -> None:
    gateway_env.setenv(name, "kintone_1, kintone_2,,kintone_1")
    assert _load().ring_group == ("kintone_1", "kintone_2")


def test_ten_browsers_at_most_as_twilio_rings(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("RING_IDENTITIES", ",".join(f"kintone_{i}" for i in range(10)))
    assert len(_load().ring_group) == 10


def test_the_old_name_may_repeat_the_new_one(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("RING_IDENTITIES", "kintone_1,kintone_2")
    gateway_env.setenv("SIP_RING_IDENTITIES", "kintone_1, kintone_2")
    assert _load().ring_group == ("kintone_1", "kintone_2")


def test_two_different_ring_groups_are_refused(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    gateway_env.setenv("RING_IDENTITIES", "kintone_1")
    gateway_env.setenv("SIP_RING_IDENTITIES", "kintone_2")
    message = settings_error()
    assert message == (
        "calltrail gateway: RING_IDENTITIES and SIP_RING_IDENTITIES (its old name) are both set"
        " and differ: keep RING_IDENTITIES only"
    )
    assert "kintone_" not in message


@pytest.mark.parametrize("value", ["5", "600"])
def test_ring_timeout_bounds_are_inclusive(gateway_env: pytest.MonkeyPatch, value: str) -> None:
    gateway_env.setenv("RING_TIMEOUT_S", value)
    assert _load().ring_timeout_s == int(value)


def test_inbound_forward_to_is_normalised_to_e164(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("INBOUND_FORWARD_TO", "+81 3 1234 5678")
    assert _load().inbound_forward_to == "+81312345678"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://calltrail.example.com/", "https://calltrail.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://calltrail.example.com/base/", "https://calltrail.example.com/base"),
    ],
)
def test_public_base_url_is_normalised(
    gateway_env: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    gateway_env.setenv("PUBLIC_BASE_URL", value)
    assert _load().public_base_url == expected


@pytest.mark.parametrize("value", ["+81 50-1234-5678", "+815012345678"])
def test_caller_id_is_normalised_to_e164(gateway_env: pytest.MonkeyPatch, value: str) -> None:
    gateway_env.setenv("TWILIO_CALLER_ID", value)
    assert _load().twilio_caller_id == "+815012345678"


def test_sip_forward_to_is_normalised_to_e164(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("SIP_FORWARD_TO", "+81 90 1234 5678")
    assert _load().sip_forward_to == "+819012345678"


@pytest.mark.parametrize("value", ["rc=3&rp=all", "#rc=3&rp=all"])
def test_callback_overrides_lose_a_leading_hash(
    gateway_env: pytest.MonkeyPatch, value: str
) -> None:
    gateway_env.setenv("STATUS_CALLBACK_OVERRIDES", value)
    assert _load().status_callback_overrides == "rc=3&rp=all"


def test_kintone_origin_drops_the_path(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("KINTONE_BASE_URL", "https://example.cybozu.com/k/12/")
    settings = _load()
    assert settings.kintone_base_url == "https://example.cybozu.com/k/12"
    assert settings.kintone_origin == KINTONE_ORIGIN


# --- the conversation (CONTRACT.md section 11) -------------------------------------------------


def test_recording_and_transcription_each_on_its_own(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("RECORDING", "dual")
    assert _load().conversation == Conversation(recording=True)
    gateway_env.setenv("RECORDING", "off")
    gateway_env.setenv("TRANSCRIPTION", "on")
    assert _load().conversation == Conversation(transcription=True)
    gateway_env.setenv("RECORDING", " DUAL ")
    gateway_env.setenv("TRANSCRIPTION", "On")
    conversation = _load().conversation
    assert conversation.recording
    assert conversation.transcription
    assert conversation.notice_to_say == RECORDING_NOTICE_JA


@pytest.mark.parametrize(
    ("engine", "model"),
    [
        (None, "telephony"),  # Twilio's default engine, Google
        ("google", "long"),
        ("GOOGLE", "chirp_2"),
        ("deepgram", "nova-3"),
        ("deepgram", "nova-2-phonecall"),
        ("deepgram", None),
    ],
)
def test_engines_and_their_models(
    gateway_env: pytest.MonkeyPatch, engine: str | None, model: str | None
) -> None:
    gateway_env.setenv("TRANSCRIPTION", "on")
    if engine is not None:
        gateway_env.setenv("TRANSCRIPTION_ENGINE", engine)
    if model is not None:
        gateway_env.setenv("TRANSCRIPTION_MODEL", model)
    conversation = _load().conversation
    assert conversation.engine == (engine.lower() if engine else None)
    assert conversation.model == model


def test_a_model_of_the_other_engine_names_both_settings(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    gateway_env.setenv("TRANSCRIPTION_ENGINE", "deepgram")
    gateway_env.setenv("TRANSCRIPTION_MODEL", "telephony")
    message = settings_error()
    assert message.startswith("calltrail gateway: TRANSCRIPTION_MODEL is malformed (")
    assert "TRANSCRIPTION_ENGINE" in message
    assert "deepgram" in message


@pytest.mark.parametrize("language", ["ja-JP", "en-US", "cmn-Hans-CN", "multi"])
def test_transcription_languages(gateway_env: pytest.MonkeyPatch, language: str) -> None:
    gateway_env.setenv("TRANSCRIPTION_LANGUAGE", language)
    assert _load().conversation.language == language


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_notice_is_no_notice(gateway_env: pytest.MonkeyPatch, empty: str) -> None:
    gateway_env.setenv("RECORDING", "dual")
    gateway_env.setenv("RECORDING_NOTICE", empty)
    settings = _load()
    assert settings.recording_notice == ""
    assert settings.conversation.notice_to_say == ""
    # Every other setting set empty is still unset, as before.
    gateway_env.setenv("TRANSCRIPTION_LANGUAGE", "")
    assert _load().transcription_language == "ja-JP"


def test_a_notice_of_one_s_own(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.setenv("TRANSCRIPTION", "on")
    gateway_env.setenv("RECORDING_NOTICE", " 通話を録音します。 ")
    assert _load().conversation.notice_to_say == "通話を録音します。"


@pytest.mark.parametrize("value", ["on", "ON", " On "])
def test_voicemail_on_prepares_its_twiml(gateway_env: pytest.MonkeyPatch, value: str) -> None:
    gateway_env.setenv("VOICEMAIL", value)
    gateway_env.setenv("VOICEMAIL_GREETING", " 本日の営業は終了しました。 ")
    gateway_env.setenv("VOICEMAIL_MAX_S", "60")
    gateway_env.setenv("TRANSCRIPTION", "on")
    settings = _load()
    assert settings.voicemail == "on"
    answer = settings.voicemail_answer()
    assert answer is not None
    assert answer.conversation == settings.conversation
    assert ">本日の営業は終了しました。</Say>" in answer.template
    assert 'maxLength="60"' in answer.template
    assert "<Start><Transcription" in answer.template


@pytest.mark.parametrize("value", ["5", "14400"])
def test_voicemail_max_bounds_are_inclusive(gateway_env: pytest.MonkeyPatch, value: str) -> None:
    gateway_env.setenv("VOICEMAIL_MAX_S", value)
    assert _load().voicemail_max_s == int(value)
