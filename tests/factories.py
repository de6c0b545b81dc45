"""Test data as plain values: the settings every test starts from and the Twilio-shaped
identifiers they use. Obvious placeholders, never real SIDs or keys."""

from __future__ import annotations

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_BASE_URL = "https://calltrail.example.com"
TOKEN_KEY = "test-token-key-0123456789"
KINTONE_ORIGIN = "https://example.cybozu.com"
ACCOUNT_SID = "AC" + "0" * 32
API_KEY = "SK" + "1" * 32
API_SECRET = "test-api-secret-0123456789abcdef"
APP_SID = "AP" + "2" * 32
CALLER_ID = "+815012345678"


def gateway_settings_values(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "kafka_idempotence": False,
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_key": API_KEY,
        "twilio_api_secret": API_SECRET,
        "twilio_twiml_app_sid": APP_SID,
        "twilio_caller_id": CALLER_ID,
        "calltrail_token_key": TOKEN_KEY,
        "kintone_base_url": KINTONE_ORIGIN,
    }
    values.update(overrides)
    return values
