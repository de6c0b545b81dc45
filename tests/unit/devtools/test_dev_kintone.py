"""``calltrail dev``'s kintone: the seeded dev domain, and when dev starts it and how it points
the recorder at it."""

from __future__ import annotations

import pytest

from services.devtools.call_flows import DEV_CUSTOMERS
from services.devtools.dev import DEV_PLACEHOLDERS, dev_kintone_env, wants_kintone_standin
from services.devtools.kintone_standin import (
    CALL_HISTORY_FIELDS,
    CONVERSATION_FIELDS,
    DEV_CUSTOMER_APP,
    DEV_CUSTOMER_RECORDS,
    DEV_ENTITIES,
    DEV_TOKEN,
    seed_dev_domain,
)
from services.recorder.domain.history import WritebackMode
from services.recorder.settings import KintoneSettings


def test_the_dev_domain_holds_the_customers_as_written_on_the_records_simulate_calls() -> None:
    domain = seed_dev_domain()
    app = domain.apps[DEV_CUSTOMER_APP]
    # Subtable mode, default codes, the conversation's columns too (通話内容, 録音).
    assert app.fields["通話履歴"].fields == {**CALL_HISTORY_FIELDS, **CONVERSATION_FIELDS}
    token = domain.tokens[DEV_TOKEN]
    assert (token.app, token.view, token.edit) == (DEV_CUSTOMER_APP, True, True)
    records = domain.records(DEV_CUSTOMER_APP)
    assert [int(r["$id"]["value"]) for r in records] == list(range(1, DEV_CUSTOMER_RECORDS + 1))
    for customer, record in zip(DEV_CUSTOMERS, records, strict=False):
        assert record["顧客名"]["value"] == customer.name
        assert record["電話番号"]["value"] == customer.phone  # as typed, not normalised
        assert record["LINEユーザーID"]["value"] == (customer.line_user_id or "")
    assert all(r["電話番号"]["value"] == "" for r in records[len(DEV_CUSTOMERS) :])
    assert domain.entities == {(kind, code) for kind, code in DEV_ENTITIES}


def test_the_recorder_settings_dev_gives_are_valid_and_mention_only_whom_the_domain_knows() -> None:
    env = dev_kintone_env("http://127.0.0.1:40000")
    settings = KintoneSettings(**{name.lower(): value for name, value in env.items()})
    assert settings.kintone_writeback is WritebackMode.SUBTABLE
    assert settings.kintone_customer_app == DEV_CUSTOMER_APP
    assert settings.kintone_tokens == [DEV_TOKEN]
    assert settings.kintone_writeback_delay_s < 10  # a simulated call shows in seconds
    mentioned = {(m.type.value, m.code) for m in settings.missed_call_mentions()}
    assert mentioned
    assert mentioned <= seed_dev_domain().entities


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, True),
        ({"KINTONE_BASE_URL": DEV_PLACEHOLDERS["KINTONE_BASE_URL"]}, True),
        ({"KINTONE_BASE_URL": "https://acme.cybozu.com"}, False),  # a real kintone
        ({"KINTONE_WRITEBACK": "off"}, False),  # write-back set up (or off) by the user
        ({"KINTONE_WRITEBACK": "subtable"}, False),
    ],
)
def test_dev_starts_the_stand_in_unless_kintone_is_set_up(
    environ: dict[str, str], wanted: bool
) -> None:
    assert wants_kintone_standin(environ) is wanted
