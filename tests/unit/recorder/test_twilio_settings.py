"""TwilioAccountSettings: one clear line naming each bad setting, before any request."""

from __future__ import annotations

import pytest

from services.common.settings import SettingsError, load_settings
from services.recorder.settings import TwilioAccountSettings

GOOD = {
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_api_key": "SK" + "1" * 32,
    "twilio_api_secret": "secret-value-never-printed",
    "twilio_caller_id": "+815012345678",
    "public_base_url": "https://calltrail.example.com/",
}


def _load(**overrides: object) -> TwilioAccountSettings:
    return load_settings(TwilioAccountSettings, "twilio status", **{**GOOD, **overrides})


def test_good_settings() -> None:
    settings = _load(
        twilio_sip_domain="Acme.SIP.twilio.com", line_sip_ips="203.0.113.2, 203.0.113.1"
    )
    assert settings.public_base_url == "https://calltrail.example.com"
    assert settings.twilio_sip_domain == "acme.sip.twilio.com"
    assert settings.line_sip_ips == ["203.0.113.1", "203.0.113.2"]
    assert settings.twilio_api_base_url == "https://api.twilio.com"
    assert settings.twilio_twiml_app_sid is None


def test_local_http_is_allowed_for_trials_with_the_standin() -> None:
    assert _load(public_base_url="http://127.0.0.1:8080").public_base_url == "http://127.0.0.1:8080"
    assert _load(twilio_api_base_url="http://localhost:9999").twilio_api_base_url


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"public_base_url": "http://calltrail.example.com"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "calltrail.example.com"}, "PUBLIC_BASE_URL"),
        ({"twilio_api_base_url": "http://api.example.com"}, "TWILIO_API_BASE_URL"),
        ({"twilio_account_sid": "AC123"}, "TWILIO_ACCOUNT_SID"),
        ({"twilio_api_key": "AC" + "0" * 32}, "TWILIO_API_KEY"),
        ({"twilio_twiml_app_sid": "APnothex" + "z" * 26}, "TWILIO_TWIML_APP_SID"),
        ({"twilio_caller_id": "05012345678"}, "TWILIO_CALLER_ID"),
        (
            {"twilio_sip_domain": "acme.example.com", "line_sip_ips": "203.0.113.1"},
            "TWILIO_SIP_DOMAIN",
        ),
        (
            {"twilio_sip_domain": "acme.sip.twilio.com", "line_sip_ips": "2001:db8::1"},
            "LINE_SIP_IPS",
        ),
        (
            {"twilio_sip_domain": "acme.sip.twilio.com", "line_sip_ips": "203.0.113.0/24"},
            "LINE_SIP_IPS",
        ),
        ({"twilio_sip_domain": "acme.sip.twilio.com"}, "LINE_SIP_IPS"),
        ({"line_sip_ips": "203.0.113.1"}, "TWILIO_SIP_DOMAIN"),
    ],
)
def test_bad_settings_name_themselves(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(**overrides)
    message = str(caught.value.code)
    assert named in message
    assert "\n" not in message
    assert "secret-value-never-printed" not in message


def test_missing_key_is_named() -> None:
    values = {k: v for k, v in GOOD.items() if k != "twilio_api_secret"}
    with pytest.raises(SettingsError, match="TWILIO_API_SECRET is required"):
        load_settings(TwilioAccountSettings, "twilio status", **values)
