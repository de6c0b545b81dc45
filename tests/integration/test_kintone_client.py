"""The kintone client against the local stand-in over real HTTP on 127.0.0.1.

No broker or database: the stand-in plays kintone (services/devtools/kintone_standin.py). Backoff
sleeps are recorded instead of waited for, so the retry tests are instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from services.devtools.broker import free_port
from services.devtools.kintone_standin import Field, KintoneDomain, KintoneStandin
from services.recorder.adapters.kintone import (
    KintoneAuthError,
    KintoneBatchTooLargeError,
    KintoneClient,
    KintoneConflictError,
    KintoneError,
    KintoneNotFoundError,
    KintonePermissionError,
    KintoneRateLimitError,
    KintoneUnavailableError,
    KintoneValidationError,
    Outcome,
    error_from_response,
)
from services.recorder.domain.customer_lookup import quote

CUSTOMERS = 10
CALL_LOG = 20
GUEST_APP = 30
GUEST_SPACE = 7
TOKEN_CUSTOMERS = "CustomersTokenA1b2C3d4E5f6G7h8I9j0KlMn"
TOKEN_CALL_LOG = "CallLogTokenZ9y8X7w6V5u4T3s2R1q0PoNm"
TOKEN_GUEST = "GuestTokenQ1w2E3r4T5y6U7i8O9p0AsDfGh"
TOKEN_VIEW_ONLY = "ViewOnlyTokenM1n2B3v4C5x6Z7l8K9j0HgFd"
ALL_TOKENS = (TOKEN_CUSTOMERS, TOKEN_CALL_LOG, TOKEN_GUEST, TOKEN_VIEW_ONLY)

HISTORY = Field(
    "SUBTABLE",
    fields={
        "when": Field("DATETIME"),
        "number": Field("SINGLE_LINE_TEXT"),
        "seconds": Field("NUMBER"),
        "CallSid": Field("SINGLE_LINE_TEXT"),
    },
)

ClientFactory = Callable[..., KintoneClient]


class Sleeps(list[float]):
    """Backoff delays, recorded instead of slept."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def domain() -> KintoneDomain:
    kintone = KintoneDomain()
    kintone.add_app(
        CUSTOMERS,
        {
            "name": Field("SINGLE_LINE_TEXT", required=True),
            "count": Field("NUMBER"),
            "last_call": Field("DATETIME"),
            "history": HISTORY,
        },
    )
    kintone.add_app(
        CALL_LOG,
        {
            "CallSid": Field("SINGLE_LINE_TEXT", unique=True, required=True),
            "customer": Field("NUMBER"),
            "seconds": Field("NUMBER"),
            "ticket": Field("SINGLE_LINE_TEXT", unique=True),
        },
    )
    kintone.add_app(GUEST_APP, {"name": Field("SINGLE_LINE_TEXT")}, guest_space_id=GUEST_SPACE)
    kintone.add_token(TOKEN_CUSTOMERS, CUSTOMERS, view=True, edit=True)
    kintone.add_token(TOKEN_CALL_LOG, CALL_LOG, view=True, add=True, edit=True)
    kintone.add_token(TOKEN_GUEST, GUEST_APP, view=True, edit=True)
    return kintone


@pytest.fixture
async def standin(domain: KintoneDomain) -> AsyncIterator[KintoneStandin]:
    async with KintoneStandin(domain) as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make_client(standin: KintoneStandin, sleeps: Sleeps) -> AsyncIterator[ClientFactory]:
    async with AsyncExitStack() as stack:

        def make(tokens: tuple[str, ...] = (TOKEN_CUSTOMERS,), **options: Any) -> KintoneClient:
            options.setdefault("sleep", sleeps)
            options.setdefault("backoff_base_s", 0.01)
            options.setdefault("timeout_s", 5)
            client = KintoneClient(options.pop("base_url", standin.base_url), tokens, **options)
            stack.push_async_callback(client.close)
            return client

        yield make


@pytest.fixture
def customer(domain: KintoneDomain) -> int:
    return domain.add_record(
        CUSTOMERS,
        {
            "name": {"value": "Yamada Trading"},
            "history": {
                "value": [
                    {"value": {"CallSid": {"value": "CA01"}, "seconds": {"value": "30"}}},
                    {"value": {"CallSid": {"value": "CA02"}, "seconds": {"value": "45"}}},
                ]
            },
        },
    )


def rows_as_sent(record: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """A table's rows from GET, in the shape PUT takes: ids kept, types dropped."""
    return [
        {"id": row["id"], "value": {k: {"value": c["value"]} for k, c in row["value"].items()}}
        for row in record[table]["value"]
    ]


def call_sids(record: dict[str, Any]) -> list[str]:
    return [row["value"]["CallSid"]["value"] for row in record["history"]["value"]]


# --- authentication -------------------------------------------------------------------------


async def test_tokens_go_comma_joined_in_one_header(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client((TOKEN_CUSTOMERS, TOKEN_CALL_LOG))
    record, revision = await client.get_record(CUSTOMERS, customer)
    results = await client.upsert_records(CALL_LOG, "CallSid", [("CA9", {})])
    assert record["name"]["value"] == "Yamada Trading"
    assert revision == 1
    assert results[0].operation == "INSERT"
    assert [r.api_tokens for r in domain.requests] == [(TOKEN_CUSTOMERS, TOKEN_CALL_LOG)] * 2


async def test_an_unknown_token_is_an_auth_error_and_not_retried(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client((TOKEN_CUSTOMERS, "NotAKintoneTokenAtAll0123456789"))
    with pytest.raises(KintoneAuthError) as caught:
        await client.get_record(CUSTOMERS, customer)
    assert (caught.value.status, caught.value.code) == (400, "GAIA_IA02")
    assert not caught.value.retryable
    assert domain.request_count() == 1


async def test_a_token_for_another_app_is_an_auth_error(
    make_client: ClientFactory, customer: int
) -> None:
    with pytest.raises(KintoneAuthError) as caught:
        await make_client((TOKEN_CALL_LOG,)).get_record(CUSTOMERS, customer)
    assert (caught.value.status, caught.value.code) == (403, "GAIA_AP15")


async def test_a_token_without_the_permission_is_a_permission_error(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.add_token(TOKEN_VIEW_ONLY, CUSTOMERS, view=True)
    client = make_client((TOKEN_VIEW_ONLY,))
    await client.get_record(CUSTOMERS, customer)
    with pytest.raises(KintonePermissionError) as caught:
        await client.update_record(CUSTOMERS, customer, {"count": {"value": "1"}})
    assert (caught.value.status, caught.value.code) == (403, "GAIA_NO01")
    assert not caught.value.retryable


# --- guest spaces ---------------------------------------------------------------------------


async def test_guest_space_apps_need_the_guest_path(
    make_client: ClientFactory, domain: KintoneDomain
) -> None:
    record_id = domain.add_record(GUEST_APP, {"name": {"value": "partner"}})

    guest = make_client((TOKEN_GUEST,), guest_space_id=GUEST_SPACE)
    record, _ = await guest.get_record(GUEST_APP, record_id)
    assert record["name"]["value"] == "partner"
    assert domain.requests[-1].path == f"/k/guest/{GUEST_SPACE}/v1/record.json"

    with pytest.raises(KintoneError) as plain:
        await make_client((TOKEN_GUEST,)).get_record(GUEST_APP, record_id)
    assert (plain.value.status, plain.value.code) == (400, "GAIA_IL23")
    assert not plain.value.retryable

    with pytest.raises(KintonePermissionError) as other_space:
        await make_client((TOKEN_GUEST,), guest_space_id=GUEST_SPACE + 1).get_record(
            GUEST_APP, record_id
        )
    assert other_space.value.code == "CB_NO02"


# --- revisions ------------------------------------------------------------------------------


async def test_update_with_revision_and_a_conflict_after_another_writer(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client()
    _, revision = await client.get_record(CUSTOMERS, customer)
    revision = await client.update_record(CUSTOMERS, customer, {"count": {"value": "1"}}, revision)
    assert revision == 2

    assert domain.edit_record(CUSTOMERS, customer, {"name": {"value": "Yamada & Co."}}) == 3
    before = domain.request_count()
    with pytest.raises(KintoneConflictError) as caught:
        await client.update_record(CUSTOMERS, customer, {"count": {"value": "2"}}, revision)
    assert (caught.value.status, caught.value.code) == (409, "GAIA_CO02")
    assert not caught.value.retryable
    assert domain.request_count() == before + 1  # refused, not retried
    assert domain.record(CUSTOMERS, customer)["count"]["value"] == "1"

    # Read again, write again: that is the caller's loop.
    _, revision = await client.get_record(CUSTOMERS, customer)
    assert await client.update_record(CUSTOMERS, customer, {"count": {"value": "2"}}, revision) == 4
    # Without a revision kintone does not check at all.
    assert await client.update_record(CUSTOMERS, customer, {"count": {"value": "3"}}) == 5


async def test_a_lost_answer_turns_the_retry_into_a_conflict(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    """kintone saved the write but the answer never came: the retry finds a newer revision."""
    client = make_client()
    domain.fail_next(500, after_apply=True)
    with pytest.raises(KintoneConflictError):
        await client.update_record(CUSTOMERS, customer, {"count": {"value": "7"}}, revision=1)
    assert domain.revision(CUSTOMERS, customer) == 2
    assert domain.record(CUSTOMERS, customer)["count"]["value"] == "7"


# --- subtables ------------------------------------------------------------------------------


async def test_subtable_rows_left_out_are_deleted(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    """The trap: sending only the new row replaces the table, the history is gone."""
    client = make_client()
    _, revision = await client.get_record(CUSTOMERS, customer)
    new_row = {"value": {"CallSid": {"value": "CA03"}, "seconds": {"value": "12"}}}
    await client.update_record(CUSTOMERS, customer, {"history": {"value": [new_row]}}, revision)
    assert call_sids(domain.record(CUSTOMERS, customer)) == ["CA03"]


async def test_subtable_rows_sent_with_their_ids_are_kept(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client()
    record, revision = await client.get_record(CUSTOMERS, customer)
    kept_ids = [row["id"] for row in record["history"]["value"]]
    rows = [
        *rows_as_sent(record, "history"),
        {
            "value": {
                "CallSid": {"value": "CA03"},
                "seconds": {"value": "12"},
                "when": {"value": "2025-06-01T01:02:03Z"},
                "number": {"value": "+815012345678"},
            }
        },
    ]
    await client.update_record(CUSTOMERS, customer, {"history": {"value": rows}}, revision)

    after = domain.record(CUSTOMERS, customer)
    assert call_sids(after) == ["CA01", "CA02", "CA03"]
    ids = [row["id"] for row in after["history"]["value"]]
    assert ids[:2] == kept_ids
    assert ids[2] not in kept_ids
    assert after["history"]["value"][0]["value"]["seconds"]["value"] == "30"
    assert after["history"]["value"][2]["value"]["when"]["value"] == "2025-06-01T01:02:03Z"


# --- upserts --------------------------------------------------------------------------------


async def test_upsert_inserts_then_updates_by_the_unique_key(
    make_client: ClientFactory, domain: KintoneDomain
) -> None:
    client = make_client((TOKEN_CALL_LOG,))
    first = await client.upsert_records(
        CALL_LOG,
        "CallSid",
        [(f"CA{i}", {"customer": {"value": "1"}, "seconds": {"value": "10"}}) for i in range(3)],
    )
    assert [r.operation for r in first] == ["INSERT"] * 3
    assert all(r.revision == 1 for r in first)

    second = await client.upsert_records(
        CALL_LOG,
        "CallSid",
        [
            ("CA1", {"seconds": {"value": "61"}}),
            ("CA2", {"seconds": {"value": 62}}),
            ("CA3", {"seconds": {"value": "63"}}),
        ],
    )
    assert [r.operation for r in second] == ["UPDATE", "UPDATE", "INSERT"]
    assert [r.id for r in second[:2]] == [first[1].id, first[2].id]
    assert second[0].revision == 2
    by_sid = {r["CallSid"]["value"]: r for r in domain.records(CALL_LOG)}
    assert sorted(by_sid) == ["CA0", "CA1", "CA2", "CA3"]
    assert by_sid["CA1"]["seconds"]["value"] == "61"
    assert by_sid["CA1"]["customer"]["value"] == "1"  # fields not sent are left alone
    assert by_sid["CA2"]["seconds"]["value"] == "62"
    assert domain.request_count(CALL_LOG) == 2


async def test_upsert_of_100_is_one_request_and_101_is_refused_before_sending(
    make_client: ClientFactory, domain: KintoneDomain
) -> None:
    client = make_client((TOKEN_CALL_LOG,))
    batch = [(f"CA{i:03}", {"seconds": {"value": str(i)}}) for i in range(101)]
    with pytest.raises(KintoneBatchTooLargeError):
        await client.upsert_records(CALL_LOG, "CallSid", batch)
    assert domain.request_count() == 0

    results = await client.upsert_records(CALL_LOG, "CallSid", batch[:100])
    assert len(results) == 100
    assert domain.request_count() == 1
    assert await client.upsert_records(CALL_LOG, "CallSid", []) == []
    assert domain.request_count() == 1


async def test_standin_refuses_101_records_as_kintone_does(
    standin: KintoneStandin, domain: KintoneDomain
) -> None:
    body = {
        "app": CALL_LOG,
        "upsert": True,
        "records": [
            {"updateKey": {"field": "CallSid", "value": f"CA{i}"}, "record": {}} for i in range(101)
        ],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{standin.base_url}/k/v1/records.json",
            json=body,
            headers={"X-Cybozu-API-Token": TOKEN_CALL_LOG},
        ) as response,
    ):
        raw = await response.read()
        assert response.status == 400
    error = error_from_response(400, raw)
    assert isinstance(error, KintoneValidationError)
    assert error.field_errors() == {
        "records": ["A maximum of 100 records can be updated at one time."]
    }
    assert domain.records(CALL_LOG) == []


async def test_a_duplicate_in_another_unique_field_refuses_the_whole_batch(
    make_client: ClientFactory, domain: KintoneDomain
) -> None:
    client = make_client((TOKEN_CALL_LOG,))
    await client.upsert_records(CALL_LOG, "CallSid", [("CA1", {"ticket": {"value": "T-1"}})])
    with pytest.raises(KintoneValidationError) as caught:
        await client.upsert_records(
            CALL_LOG,
            "CallSid",
            [("CA2", {"ticket": {"value": "T-2"}}), ("CA3", {"ticket": {"value": "T-1"}})],
        )
    assert caught.value.code == "CB_VA01"
    assert caught.value.field_errors() == {
        "records[1].ticket.value": ["This value already exists in another record."]
    }
    assert [r["CallSid"]["value"] for r in domain.records(CALL_LOG)] == ["CA1"]  # all or nothing


async def test_update_key_must_be_a_unique_field(make_client: ClientFactory) -> None:
    with pytest.raises(KintoneValidationError) as caught:
        await make_client((TOKEN_CALL_LOG,)).upsert_records(CALL_LOG, "seconds", [("1", {})])
    assert "records[0].updateKey.field" in caught.value.field_errors()


# --- validation, not found ------------------------------------------------------------------


async def test_bad_values_are_validation_errors_in_kintone_shape(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client()
    with pytest.raises(KintoneValidationError) as caught:
        await client.update_record(
            CUSTOMERS,
            customer,
            {
                "count": {"value": "twelve"},
                "last_call": {"value": "2025-06-01 10:00"},
                "name": {"value": ""},
            },
        )
    error = caught.value
    assert (error.status, error.code, error.retryable) == (400, "CB_VA01", False)
    assert set(error.field_errors()) == {
        "record[count].value",
        "record.last_call.value",
        "record.name.value",
    }
    assert error.field_errors()["record[count].value"] == ["Only numbers are allowed."]
    assert domain.revision(CUSTOMERS, customer) == 1

    # Accepted: numbers as kintone normalises them, date-times in UTC.
    await client.update_record(
        CUSTOMERS,
        customer,
        {"count": {"value": "1.50"}, "last_call": {"value": "2025-06-01T19:00:00+09:00"}},
    )
    record = domain.record(CUSTOMERS, customer)
    assert record["count"]["value"] == "1.5"
    assert record["last_call"]["value"] == "2025-06-01T10:00:00Z"


async def test_kintone_traps_unknown_codes_and_numbers_inside_tables(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    """Neither is refused: a misspelt code is ignored, a bad number in a row becomes ""."""
    client = make_client()
    record, revision = await client.get_record(CUSTOMERS, customer)
    rows = rows_as_sent(record, "history")
    rows[0]["value"]["seconds"] = {"value": "about a minute"}
    await client.update_record(
        CUSTOMERS,
        customer,
        {"coutn": {"value": "9"}, "history": {"value": rows}},
        revision,
    )
    after = domain.record(CUSTOMERS, customer)
    assert "coutn" not in after
    assert after["count"]["value"] == ""
    assert after["history"]["value"][0]["value"]["seconds"]["value"] == ""
    assert after["$revision"]["value"] == "2"


async def test_missing_record_and_missing_app_are_not_found(
    make_client: ClientFactory, customer: int
) -> None:
    client = make_client()
    with pytest.raises(KintoneNotFoundError) as record:
        await client.get_record(CUSTOMERS, customer + 100)
    assert (record.value.status, record.value.code) == (404, "GAIA_RE01")
    with pytest.raises(KintoneNotFoundError) as app:
        await client.update_record(999, 1, {})
    assert (app.value.status, app.value.code) == (404, "GAIA_AP01")
    assert not record.value.retryable
    assert not app.value.retryable


async def test_form_fields_in_kintone_shape(make_client: ClientFactory) -> None:
    properties = await make_client((TOKEN_CALL_LOG, TOKEN_CUSTOMERS)).get_form_fields(CUSTOMERS)
    assert properties["count"]["type"] == "NUMBER"
    assert properties["name"]["required"] is True
    assert properties["history"]["type"] == "SUBTABLE"
    assert properties["history"]["fields"]["when"] == {
        "type": "DATETIME",
        "code": "when",
        "label": "when",
        "noLabel": False,
        "required": False,
        "unique": False,
        "defaultValue": "",
    }
    log = await make_client((TOKEN_CALL_LOG,)).get_form_fields(CALL_LOG)
    assert log["CallSid"]["unique"] is True


# --- retries --------------------------------------------------------------------------------


async def test_429_500_503_are_retried_with_backoff_then_succeed(
    make_client: ClientFactory, domain: KintoneDomain, sleeps: Sleeps, customer: int
) -> None:
    domain.fail_next(429, 500, 503)
    record, _ = await make_client(backoff_base_s=0.1).get_record(CUSTOMERS, customer)
    assert record["$id"]["value"] == str(customer)
    assert [r.status for r in domain.requests] == [429, 500, 503, 200]
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= 0.1 * 2**attempt  # full jitter under the exponential ceiling


async def test_random_failures_are_absorbed_by_retries(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.set_failure_rate(0.3, seed=7)
    client = make_client(max_retries=8)
    await asyncio.gather(*(client.get_record(CUSTOMERS, customer) for _ in range(30)))
    statuses = [r.status for r in domain.requests]
    assert statuses.count(200) == 30
    assert set(statuses) - {200} <= {429, 500, 503}
    assert len(statuses) > 30


async def test_retry_after_is_respected(
    make_client: ClientFactory, domain: KintoneDomain, sleeps: Sleeps, customer: int
) -> None:
    domain.fail_next(429, retry_after=1.5)
    await make_client().get_record(CUSTOMERS, customer)
    assert sleeps == [1.5]


async def test_backoff_really_waits_without_a_fake_sleep(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.fail_next(503, 503)
    client = make_client(sleep=asyncio.sleep, backoff_base_s=0.02)
    await client.get_record(CUSTOMERS, customer)
    assert domain.request_count() == 3


async def test_gives_up_after_max_retries_with_the_retryable_error(
    make_client: ClientFactory, domain: KintoneDomain, sleeps: Sleeps, customer: int
) -> None:
    domain.fail_next(503, 503, 503, 503)
    with pytest.raises(KintoneUnavailableError) as caught:
        await make_client(max_retries=2).get_record(CUSTOMERS, customer)
    assert caught.value.status == 503
    assert caught.value.retryable
    assert domain.request_count() == 3
    assert len(sleeps) == 2


async def test_timeouts_and_refused_connections_are_retryable_unavailability(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.latency_s = 0.5
    client = make_client(timeout_s=0.05, max_retries=1)
    with pytest.raises(KintoneUnavailableError) as timeout:
        await client.get_record(CUSTOMERS, customer)
    assert (timeout.value.status, timeout.value.code) == (0, "TIMEOUT")
    assert timeout.value.retryable
    assert client.requests_today(CUSTOMERS) == 2

    closed = make_client(base_url=f"http://127.0.0.1:{free_port()}", max_retries=1)
    with pytest.raises(KintoneUnavailableError) as refused:
        await closed.get_record(CUSTOMERS, customer)
    assert (refused.value.status, refused.value.code) == (0, "CONNECTION")


async def test_the_client_caps_itself_below_kintones_concurrency_limit(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.concurrency_limit = 3
    domain.latency_s = 0.05

    capped = make_client(max_concurrency=3, max_retries=0)
    results = await asyncio.gather(*(capped.get_record(CUSTOMERS, customer) for _ in range(12)))
    assert len(results) == 12
    assert {r.status for r in domain.requests} == {200}
    assert domain.max_in_flight == 3

    # The same burst without the cap: kintone answers 429 beyond its limit.
    eager = make_client(max_concurrency=12, max_retries=0)
    outcomes = await asyncio.gather(
        *(eager.get_record(CUSTOMERS, customer) for _ in range(12)), return_exceptions=True
    )
    assert any(isinstance(o, KintoneRateLimitError) for o in outcomes)


# --- counting, hooks, secrets ---------------------------------------------------------------


async def test_daily_count_per_app_and_a_single_warning(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    now = [datetime(2025, 6, 1, 23, 59, tzinfo=UTC)]
    with capture_logs() as logs:
        client = make_client(
            (TOKEN_CUSTOMERS, TOKEN_CALL_LOG), daily_warning_at=3, clock=lambda: now[0]
        )
        for _ in range(5):
            await client.get_record(CUSTOMERS, customer)
        await client.get_form_fields(CALL_LOG)
        assert client.requests_today(CUSTOMERS) == 5
        assert client.requests_today(CALL_LOG) == 1
        warnings = [e for e in logs if e["event"] == "kintone_daily_requests_high"]
        assert len(warnings) == 1
        assert warnings[0]["app"] == CUSTOMERS
        assert warnings[0]["requests_today"] == 3
        assert warnings[0]["log_level"] == "warning"

        now[0] += timedelta(minutes=2)  # 00:01 UTC, 09:01 JST: kintone's count starts over
        assert client.requests_today(CUSTOMERS) == 0
        for _ in range(3):
            await client.get_record(CUSTOMERS, customer)
        warnings = [e for e in logs if e["event"] == "kintone_daily_requests_high"]
        assert len(warnings) == 2


async def test_retries_count_as_requests(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.fail_next(429, 429)
    client = make_client()
    await client.get_record(CUSTOMERS, customer)
    assert client.requests_today(CUSTOMERS) == 3 == domain.request_count(CUSTOMERS)


async def test_on_request_hook_sees_every_attempt(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    seen: list[tuple[int, Outcome]] = []
    client = make_client(on_request=lambda app, outcome: seen.append((app, outcome)))
    domain.fail_next(429, 503)
    await client.get_record(CUSTOMERS, customer)
    with pytest.raises(KintoneConflictError):
        await client.update_record(CUSTOMERS, customer, {}, revision=99)
    assert seen == [
        (CUSTOMERS, "rate_limited"),
        (CUSTOMERS, "unavailable"),
        (CUSTOMERS, "ok"),
        (CUSTOMERS, "conflict"),
    ]

    def broken(_app: int, _outcome: Outcome) -> None:
        raise RuntimeError("metrics down")

    await make_client(on_request=broken).get_record(CUSTOMERS, customer)


async def test_tokens_never_appear_in_errors_reprs_or_logs(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    raised: list[BaseException] = []
    with capture_logs() as logs:
        client = make_client((TOKEN_CUSTOMERS, TOKEN_CALL_LOG), max_retries=2, daily_warning_at=1)
        domain.fail_next(429, 503)
        await client.get_record(CUSTOMERS, customer)
        for call in (
            make_client((TOKEN_CUSTOMERS, "WrongTokenP0o9I8u7Y6t5R4e3W2q1")).get_record(
                CUSTOMERS, customer
            ),
            client.update_record(CUSTOMERS, customer, {"count": {"value": "x"}}),
            client.update_record(CUSTOMERS, customer, {}, revision=42),
            make_client((TOKEN_CALL_LOG,)).get_record(CUSTOMERS, customer),
            make_client(
                (TOKEN_CUSTOMERS,), base_url=f"http://127.0.0.1:{free_port()}", max_retries=0
            ).get_record(CUSTOMERS, customer),
        ):
            with pytest.raises(KintoneError) as caught:
                await call
            raised.append(caught.value)
    assert len(raised) == 5
    assert logs, "retries and the daily warning were logged"
    texts = [str(e) for e in raised] + [repr(e) for e in raised] + [repr(logs), repr(client)]
    for secret in (*ALL_TOKENS, "WrongTokenP0o9I8u7Y6t5R4e3W2q1"):
        for text in texts:
            assert secret not in text


def test_malformed_tokens_are_refused_without_quoting_them() -> None:
    with pytest.raises(ValueError, match="token #2") as caught:
        KintoneClient("https://example.cybozu.com", [TOKEN_CUSTOMERS, "two,tokens"])
    assert TOKEN_CUSTOMERS not in str(caught.value)
    assert "two,tokens" not in str(caught.value)
    with pytest.raises(ValueError, match="at least one"):
        KintoneClient("https://example.cybozu.com", [])
    with pytest.raises(ValueError, match="http"):
        KintoneClient("example.cybozu.com", [TOKEN_CUSTOMERS])


# --- the records query (GET records.json) ---------------------------------------------------


@pytest.fixture
def named(domain: KintoneDomain) -> list[int]:
    names = ["Yamada Trading", "Sato & Sons", 'Quote "Co"', "back\\slash", "Yamada Shoten"]
    return [domain.add_record(CUSTOMERS, {"name": {"value": n}}) for n in names]


async def test_get_records_selects_orders_and_counts(
    make_client: ClientFactory, domain: KintoneDomain, named: list[int]
) -> None:
    client = make_client()
    records, total = await client.get_records(
        CUSTOMERS,
        'name like "yamada" order by $id desc limit 1',
        ["$id", "name"],
        total_count=True,
    )
    assert total == 2
    assert [(r["$id"]["value"], r["name"]["value"]) for r in records] == [
        (str(named[4]), "Yamada Shoten")
    ]
    assert set(records[0]) == {"$id", "name"}  # only the fields asked for
    records, total = await client.get_records(CUSTOMERS)
    assert total is None
    assert [int(r["$id"]["value"]) for r in records] == sorted(named, reverse=True)
    assert "$revision" in records[0]
    assert "history" in records[0]


async def test_quoted_values_are_found_and_never_widen_the_query(
    make_client: ClientFactory, named: list[int]
) -> None:
    client = make_client()
    for name, record_id in (('Quote "Co"', named[2]), ("back\\slash", named[3])):
        records, _ = await client.get_records(CUSTOMERS, f"name = {quote(name)}", ["$id"])
        assert [int(r["$id"]["value"]) for r in records] == [record_id]
    for attack in ('" or name != "', '\\" or name != \\"', 'x") or (name like "yamada'):
        records, _ = await client.get_records(CUSTOMERS, f"name = {quote(attack)}", ["$id"])
        assert records == []


@pytest.mark.parametrize(
    ("query", "code", "error"),
    [
        ("name ===", "CB_VA01", KintoneValidationError),
        ("limit 501", "GAIA_QU01", KintoneError),
        ("offset 10001", "GAIA_QU02", KintoneError),
        ('nosuchfield = "a"', "GAIA_IQ11", KintoneError),
        ('number = "1"', "GAIA_IQ07", KintoneError),  # a column of the history table
    ],
)
async def test_a_malformed_query_is_refused_and_not_retried(
    make_client: ClientFactory,
    domain: KintoneDomain,
    query: str,
    code: str,
    error: type[KintoneError],
) -> None:
    with pytest.raises(error) as caught:
        await make_client().get_records(CUSTOMERS, query)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert not caught.value.retryable
    assert domain.request_count() == 1


async def test_a_lookup_needs_the_view_permission_of_that_app(
    make_client: ClientFactory, domain: KintoneDomain
) -> None:
    domain.add_token(TOKEN_VIEW_ONLY, GUEST_APP + 1, view=False)
    domain.add_app(GUEST_APP + 1, {"name": Field("SINGLE_LINE_TEXT")})
    with pytest.raises(KintonePermissionError):
        await make_client((TOKEN_VIEW_ONLY,)).get_records(GUEST_APP + 1)
    with pytest.raises(KintoneAuthError):
        await make_client((TOKEN_CALL_LOG,)).get_records(CUSTOMERS)


async def test_a_busy_kintone_is_retried_for_lookups_too(
    make_client: ClientFactory, domain: KintoneDomain, named: list[int], sleeps: Sleeps
) -> None:
    domain.fail_next(429, 503)
    records, _ = await make_client().get_records(CUSTOMERS, 'name = "Yamada Trading"')
    assert len(records) == 1
    assert len(sleeps) == 2
    assert make_client().requests_today(CUSTOMERS) == 0  # a new client counts its own


# --- record comments (cybozu.dev: add-comment, get-comments) ----------------------------------

COMMENT = "/k/v1/record/comment.json"


async def test_comments_post_and_read_in_kintones_shape(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.add_entity("sato")
    domain.add_entity("営業部", "GROUP")
    client = make_client()
    mentions = [{"code": "sato", "type": "USER"}, {"code": "営業部", "type": "GROUP"}]
    first = await client.add_comment(CUSTOMERS, customer, "不在着信がありました。", mentions)
    second = await client.add_comment(CUSTOMERS, customer, "二件目")
    assert (first, second) == (1, 2)
    comments, older = await client.get_comments(CUSTOMERS, customer)
    assert [c["id"] for c in comments] == ["2", "1"]  # newest first unless asked
    assert not older
    # kintone puts the mentions before the text (without the "@" when read back).
    assert comments[1]["text"] == "sato 営業部 \n不在着信がありました。"
    assert comments[1]["mentions"] == mentions
    assert set(comments[1]) == {"id", "text", "createdAt", "creator", "mentions"}
    assert comments[1]["createdAt"].endswith("Z")


async def test_comments_page_ten_at_most_with_older_and_newer(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client()
    for i in range(23):
        await client.add_comment(CUSTOMERS, customer, f"c{i}")
    ids: list[str] = []
    offset, older = 0, True
    while older:
        page, older = await client.get_comments(CUSTOMERS, customer, offset=offset)
        ids += [c["id"] for c in page]
        offset += 10
    assert ids == [str(i) for i in range(23, 0, -1)]
    answer = await _raw_get(
        client,
        f"record/comments.json?app={CUSTOMERS}&record={customer}&order=asc&offset=10&limit=5",
    )
    assert [c["id"] for c in answer["comments"]] == ["11", "12", "13", "14", "15"]
    assert (answer["older"], answer["newer"]) == (True, True)
    with pytest.raises(ValueError, match="at most 10"):
        await client.get_comments(CUSTOMERS, customer, limit=11)
    with pytest.raises(KintoneValidationError) as too_many:
        await _raw_get(client, f"record/comments.json?app={CUSTOMERS}&record={customer}&limit=11")
    assert too_many.value.code == "CB_VA01"


async def _raw_get(client: KintoneClient, path: str) -> dict[str, Any]:
    """A GET with parameters the client's methods never send, and kintone's whole answer."""
    api, _, query = path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    return await client._request("GET", api.removesuffix(".json"), CUSTOMERS, params=params)


async def test_comment_limits_and_unknown_mentions_are_refused(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.add_entity("sato")
    client = make_client()
    with pytest.raises(KintoneValidationError) as too_long:
        await client.add_comment(CUSTOMERS, customer, "あ" * 65_536)
    assert "comment.text" in too_long.value.errors
    await client.add_comment(CUSTOMERS, customer, "あ" * 65_535)  # the limit itself is fine
    eleven = [{"code": "sato", "type": "USER"}] * 11
    with pytest.raises(KintoneValidationError) as crowded:
        await client.add_comment(CUSTOMERS, customer, "x", eleven)
    assert "comment.mentions" in crowded.value.errors
    with pytest.raises(KintoneValidationError) as unknown:
        await client.add_comment(
            CUSTOMERS,
            customer,
            "x",
            [
                {"code": "sato", "type": "USER"},
                {"code": "ghost", "type": "USER"},
                {"code": "幽霊部", "type": "GROUP"},
            ],
        )
    assert (unknown.value.status, unknown.value.code) == (400, "CB_VA01")
    # Every bad entry is named, as kintone lists all of a request's input errors.
    assert list(unknown.value.errors) == ["comment.mentions[1].code", "comment.mentions[2].code"]
    with pytest.raises(KintoneValidationError):  # sato is a user, not a group
        await client.add_comment(CUSTOMERS, customer, "x", [{"code": "sato", "type": "GROUP"}])
    with pytest.raises(KintoneNotFoundError):
        await client.add_comment(CUSTOMERS, customer + 100, "x")
    assert len(domain.comments(CUSTOMERS, customer)) == 1  # only the one that was accepted


async def test_comments_need_only_the_view_permission_of_that_app(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    domain.add_token(TOKEN_VIEW_ONLY, CUSTOMERS, view=True)
    assert await make_client((TOKEN_VIEW_ONLY,)).add_comment(CUSTOMERS, customer, "x") == 1
    with pytest.raises(KintoneAuthError):
        await make_client((TOKEN_CALL_LOG,)).add_comment(CUSTOMERS, customer, "x")


async def test_a_comment_post_is_retried_on_429_only_never_after_a_5xx(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client()
    domain.fail_next(429, path=COMMENT)  # refused before anything was done: safe to repeat
    await client.add_comment(CUSTOMERS, customer, "one")
    domain.fail_next(500, after_apply=True, path=COMMENT)  # stored, then the answer is lost
    with pytest.raises(KintoneUnavailableError):
        await client.add_comment(CUSTOMERS, customer, "two")
    assert [c["text"] for c in domain.comments(CUSTOMERS, customer)] == ["one", "two"]
    assert domain.request_count(CUSTOMERS, method="POST", path="/record/comment.json") == 3
    # Reads are retried as any read is.
    domain.fail_next(503, path="/record/comments.json")
    comments, _ = await client.get_comments(CUSTOMERS, customer)
    assert len(comments) == 2


async def test_a_fault_aimed_at_one_api_lets_the_others_pass(
    make_client: ClientFactory, domain: KintoneDomain, customer: int
) -> None:
    client = make_client()
    domain.fail_next(500, after_apply=True, path=COMMENT)
    await client.get_record(CUSTOMERS, customer)  # not a comment: untouched
    with pytest.raises(KintoneUnavailableError):
        await client.add_comment(CUSTOMERS, customer, "stored anyway")
    assert len(domain.comments(CUSTOMERS, customer)) == 1
