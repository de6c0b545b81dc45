"""Loading settings from the environment: one clear line naming a bad setting, never its value."""

from __future__ import annotations

import pytest
from pydantic import Field

from services.common.settings import (
    CsvList,
    KafkaSettings,
    ServiceSettings,
    SettingsError,
    load_settings,
)
from services.gateway.settings import GatewaySettings
from tests.factories import AUTH_TOKEN, PUBLIC_BASE_URL
from tests.unit.conftest import SettingsErrorOf


@pytest.mark.usefixtures("gateway_env")
def test_valid_environment_loads() -> None:
    settings = load_settings(GatewaySettings, "gateway")
    assert settings.public_base_url == PUBLIC_BASE_URL
    assert settings.twilio_auth_token.get_secret_value() == AUTH_TOKEN
    assert settings.kafka_idempotence is False


def test_environment_names_are_case_insensitive(gateway_env: pytest.MonkeyPatch) -> None:
    gateway_env.delenv("TOKEN_TTL_S", raising=False)
    gateway_env.setenv("token_ttl_s", "900")
    assert load_settings(GatewaySettings, "gateway").token_ttl_s == 900


@pytest.mark.usefixtures("gateway_env")
def test_overrides_win_over_the_environment() -> None:
    assert load_settings(GatewaySettings, "gateway", token_ttl_s=120).token_ttl_s == 120


@pytest.mark.parametrize(
    "name",
    [
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_SECRET",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_CALLER_ID",
        "PUBLIC_BASE_URL",
        "KAFKA_BOOTSTRAP",
        "CALLTRAIL_TOKEN_KEY",
        "KINTONE_BASE_URL",
    ],
)
def test_missing_required_setting_is_named(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf, name: str
) -> None:
    gateway_env.delenv(name)
    assert settings_error() == f"calltrail gateway: {name} is required but not set"


def test_empty_value_counts_as_missing(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    gateway_env.setenv("TWILIO_AUTH_TOKEN", "")
    assert settings_error() == "calltrail gateway: TWILIO_AUTH_TOKEN is required but not set"


def test_several_problems_are_all_named_on_one_line(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    gateway_env.delenv("TWILIO_AUTH_TOKEN")
    gateway_env.delenv("TWILIO_API_SECRET")
    gateway_env.setenv("TOKEN_TTL_S", "100000")
    message = settings_error()
    assert "TWILIO_AUTH_TOKEN is required but not set" in message
    assert "TWILIO_API_SECRET is required but not set" in message
    assert "TOKEN_TTL_S is malformed" in message
    assert message.count("; ") == 2


def test_malformed_secret_is_named_not_quoted(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    gateway_env.setenv("CALLTRAIL_TOKEN_KEY", "tiny-secret")
    message = settings_error()
    assert message.startswith("calltrail gateway: CALLTRAIL_TOKEN_KEY is malformed (")
    assert "tiny-secret" not in message


def test_malformed_values_are_not_quoted(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    gateway_env.setenv("TWILIO_ACCOUNT_SID", "ACsecretish-value")
    gateway_env.setenv("PUBLIC_BASE_URL", "sftp://user:hunter22@host")
    gateway_env.setenv("TOKEN_TTL_S", "31337000")
    message = settings_error()
    assert "TWILIO_ACCOUNT_SID" in message
    assert "PUBLIC_BASE_URL" in message
    assert "secretish" not in message
    assert "hunter22" not in message
    assert "31337000" not in message


def test_a_value_with_a_line_break_still_gives_one_line(
    gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf
) -> None:
    # The region validator quotes the (non-secret) region code it refuses.
    gateway_env.setenv("DIAL_ALLOWED_COUNTRIES", "JP,X\nY\rZ")
    assert "DIAL_ALLOWED_COUNTRIES is malformed" in settings_error()


@pytest.mark.usefixtures("gateway_env")
def test_settings_are_frozen() -> None:
    settings = load_settings(GatewaySettings, "gateway")
    with pytest.raises(ValueError, match="frozen"):
        settings.token_ttl_s = 10  # type: ignore[misc]


def test_kafka_settings(gateway_env: pytest.MonkeyPatch, settings_error: SettingsErrorOf) -> None:
    gateway_env.setenv("KAFKA_TOPIC", "calls")
    settings = load_settings(KafkaSettings, "recorder")
    assert settings.kafka_bootstrap == "127.0.0.1:1"
    assert settings.kafka_idempotence is False
    assert settings.kafka_dlq_topic == "calls.dlq"
    gateway_env.delenv("KAFKA_TOPIC")
    gateway_env.delenv("KAFKA_IDEMPOTENCE")
    settings = load_settings(KafkaSettings, "recorder")
    assert settings.kafka_topic == "calltrail.call-events"
    assert settings.kafka_dlq_topic == "calltrail.call-events.dlq"
    assert settings.kafka_idempotence is True
    gateway_env.setenv("KAFKA_IDEMPOTENCE", "perhaps")
    assert settings_error(KafkaSettings, "recorder").startswith(
        "calltrail recorder: KAFKA_IDEMPOTENCE is malformed ("
    )
    gateway_env.delenv("KAFKA_BOOTSTRAP")
    gateway_env.delenv("KAFKA_IDEMPOTENCE")
    assert settings_error(KafkaSettings, "recorder") == (
        "calltrail recorder: KAFKA_BOOTSTRAP is required but not set"
    )


def test_settings_error_stops_the_process() -> None:
    assert issubclass(SettingsError, SystemExit)


class _ListSettings(ServiceSettings):
    items: CsvList = Field(default_factory=list)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a,b,c", ["a", "b", "c"]), (" a , b ,,", ["a", "b"]), ('["a","b"]', ['["a"', '"b"]'])],
)
def test_csv_list_is_comma_separated_not_json(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("ITEMS", value)
    assert load_settings(_ListSettings, "test").items == expected


def test_csv_list_accepts_a_list_from_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITEMS", raising=False)
    assert load_settings(_ListSettings, "test").items == []
    assert load_settings(_ListSettings, "test", items=["x", "y"]).items == ["x", "y"]
