"""The inbound settings (CONTRACT.md section 9): defaults, and field codes that go into a
records query refused at start, naming the setting, never echoing the value."""

from __future__ import annotations

import pytest

from services.common.settings import SettingsError, load_settings
from services.recorder.settings import KintoneSettings

BASE = {
    "kintone_writeback": "subtable",
    "kintone_base_url": "https://example.cybozu.com",
    "kintone_api_token": "t1,t2",
}


def test_defaults() -> None:
    settings = KintoneSettings(**BASE)  # type: ignore[arg-type]
    assert settings.kintone_field_number == "通話番号"
    assert settings.kintone_field_direction == "発着信"
    assert settings.kintone_customer_app is None
    fields = settings.lookup_fields()
    assert (fields.phone, fields.line_user_id) == ("電話番号", "LINEユーザーID")
    assert settings.history_fields().direction == "発着信"


@pytest.mark.parametrize("bad", ['電話番号 = "x" or 顧客名', "電話 番号", 'a"b', "(x)", ""])
def test_a_lookup_field_code_with_query_syntax_stops_the_start(bad: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(KintoneSettings, "recorder", **BASE, kintone_field_phone=bad)
    assert "KINTONE_FIELD_PHONE is malformed" in str(refused.value)
    if bad:
        assert bad not in str(refused.value)


def test_the_customer_app_is_an_app_id() -> None:
    with pytest.raises(SettingsError, match="KINTONE_CUSTOMER_APP"):
        load_settings(KintoneSettings, "recorder", **BASE, kintone_customer_app=0)
