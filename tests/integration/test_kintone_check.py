"""``calltrail kintone check`` against the stand-in: the customer app's lookup fields, the
history table's number column (通話番号, or the old 電話番号), in both modes."""

from __future__ import annotations

from services.devtools.kintone_standin import (
    CALL_HISTORY_FIELDS,
    Field,
    KintoneDomain,
    KintoneStandin,
    add_call_log_app,
    add_customer_app,
)
from services.recorder.service_layer.admin import check_kintone_app
from services.recorder.settings import KintoneSettings


def settings(base_url: str, mode: str, **overrides: object) -> KintoneSettings:
    return KintoneSettings(
        kintone_writeback=mode,
        kintone_base_url=base_url,
        kintone_api_token="token-customers,token-call-log",
        kintone_call_log_app=20,
        **overrides,
    )


async def test_both_modes_check_what_inbound_calls_need() -> None:
    domain = KintoneDomain()
    add_customer_app(domain, 10, "token-customers")
    add_call_log_app(domain, 20, "token-call-log")
    async with KintoneStandin(domain) as kintone:
        sub = await check_kintone_app(
            settings(kintone.base_url, "subtable", kintone_customer_app=10), None
        )
        app = await check_kintone_app(
            settings(kintone.base_url, "app", kintone_customer_app=10), None
        )
    assert (sub.app, sub.problems) == (10, 0)
    assert {"電話番号", "LINEユーザーID", "通話番号", "発着信"} <= {f.code for f in sub.findings}
    assert (app.app, app.problems) == (20, 0)
    assert {"電話番号 (app 10)", "LINEユーザーID (app 10)"} <= {f.code for f in app.findings}


async def test_an_app_with_the_old_number_column_is_told_how_to_keep_working() -> None:
    domain = KintoneDomain()
    old = {("電話番号" if c == "通話番号" else c): f for c, f in CALL_HISTORY_FIELDS.items()}
    domain.add_app(10, {"通話履歴": Field("SUBTABLE", fields=old)})
    domain.add_token("token-customers", 10, view=True, edit=True)
    add_call_log_app(domain, 20, "token-call-log")
    async with KintoneStandin(domain) as kintone:
        found = await check_kintone_app(settings(kintone.base_url, "subtable"), 10)
        kept = await check_kintone_app(
            settings(kintone.base_url, "subtable", kintone_field_number="電話番号"), 10
        )
    [problem] = [f for f in found.findings if not f.ok]
    assert "KINTONE_FIELD_NUMBER=電話番号" in problem.message
    assert kept.problems == 0
    assert any("old default" in f.message for f in kept.findings)
