"""``calltrail kintone check``: what the write-back needs of a kintone app, field by field."""

from __future__ import annotations

from typing import Any

from services.recorder.domain import kintone_fields
from services.recorder.domain.kintone_fields import Finding
from services.recorder.settings import KintoneSettings

INNER = {
    "通話日時": {"type": "DATETIME"},
    "通話番号": {"type": "SINGLE_LINE_TEXT"},
    "発着信": {"type": "DROP_DOWN"},
    "通話結果": {"type": "DROP_DOWN"},
    "通話時間": {"type": "NUMBER"},
    "通話料金": {"type": "NUMBER"},
    "担当者": {"type": "SINGLE_LINE_TEXT"},
    "CallSid": {"type": "SINGLE_LINE_TEXT"},
}


def check_fields(properties: dict[str, Any], settings: KintoneSettings) -> list[Finding]:
    return kintone_fields.check_fields(
        properties,
        settings.kintone_writeback,
        settings.kintone_history_table,
        settings.history_fields(),
    )


def settings(mode: str, **overrides: Any) -> KintoneSettings:
    return KintoneSettings(
        kintone_writeback=mode,
        kintone_base_url="https://example.cybozu.com",
        kintone_api_token="t",
        kintone_call_log_app=20,
        **overrides,
    )


def problems(findings: list[Any]) -> dict[str, str]:
    return {f.code: f.message for f in findings if not f.ok}


def test_a_correct_subtable_setup_passes() -> None:
    properties = {"通話履歴": {"type": "SUBTABLE", "fields": INNER}, "顧客名": {"type": "X"}}
    findings = check_fields(properties, settings("subtable"))
    assert problems(findings) == {}
    assert len(findings) == 9


def test_an_app_set_up_with_the_old_number_column_is_named() -> None:
    inner = {("電話番号" if k == "通話番号" else k): v for k, v in INNER.items()}
    properties = {"通話履歴": {"type": "SUBTABLE", "fields": inner}}
    found = problems(check_fields(properties, settings("subtable")))
    assert list(found) == ["通話番号"]
    assert "KINTONE_FIELD_NUMBER=電話番号" in found["通話番号"]
    findings = check_fields(properties, settings("subtable", kintone_field_number="電話番号"))
    assert problems(findings) == {}
    (number,) = [f for f in findings if f.code == "電話番号"]
    assert "old default" in number.message


def test_the_customer_app_needs_the_fields_inbound_calls_are_matched_by() -> None:
    values = settings("subtable", kintone_customer_app=10)
    table = {"通話履歴": {"type": "SUBTABLE", "fields": INNER}}
    lookup = values.lookup_fields()
    found = problems(
        kintone_fields.check_fields(
            table, values.kintone_writeback, "通話履歴", values.history_fields(), lookup
        )
    )
    assert set(found) == {"電話番号", "LINEユーザーID"}
    properties = {
        **table,
        "電話番号": {"type": "SINGLE_LINE_TEXT"},
        "LINEユーザーID": {"type": "SINGLE_LINE_TEXT"},
    }
    assert (
        problems(
            kintone_fields.check_fields(
                properties, values.kintone_writeback, "通話履歴", values.history_fields(), lookup
            )
        )
        == {}
    )


def test_subtable_problems_are_named_field_by_field() -> None:
    inner = dict(INNER)
    del inner["通話料金"]
    inner["通話時間"] = {"type": "SINGLE_LINE_TEXT"}
    found = problems(
        check_fields({"通話履歴": {"type": "SUBTABLE", "fields": inner}}, settings("subtable"))
    )
    assert set(found) == {"通話料金", "通話時間"}
    assert "missing" in found["通話料金"]
    assert "NUMBER" in found["通話料金"]
    assert "is a SINGLE_LINE_TEXT, should be NUMBER" in found["通話時間"]


def test_a_missing_or_wrong_table_is_reported() -> None:
    assert "missing" in problems(check_fields({}, settings("subtable")))["通話履歴"]
    found = problems(check_fields({"通話履歴": {"type": "SINGLE_LINE_TEXT"}}, settings("subtable")))
    assert "SUBTABLE" in found["通話履歴"]


def test_configured_codes_are_checked() -> None:
    properties = {
        "History": {"type": "SUBTABLE", "fields": {**INNER, "Sid": {"type": "SINGLE_LINE_TEXT"}}}
    }
    found = problems(
        check_fields(
            properties,
            settings("subtable", kintone_history_table="History", kintone_field_call_sid="Sid"),
        )
    )
    assert found == {}


def test_app_mode_needs_a_unique_call_sid_and_the_customer_record() -> None:
    properties = {**INNER, "顧客レコード番号": {"type": "NUMBER"}}
    found = problems(check_fields(properties, settings("app")))
    assert "duplicate" in found["CallSid"]
    properties["CallSid"] = {"type": "SINGLE_LINE_TEXT", "unique": True}
    assert problems(check_fields(properties, settings("app"))) == {}
    del properties["顧客レコード番号"]
    assert "顧客レコード番号" in problems(check_fields(properties, settings("app")))
