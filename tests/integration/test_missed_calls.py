"""Missed calls on kintone (CONTRACT.md section 12), with real PostgreSQL and the kintone stand-in
over HTTP: 不在着信 on every matched record, and one comment per call and record mentioning
MISSED_CALL_NOTIFY, exactly once through lost answers, refused mentions and a dying worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.recorder.adapters.outbox import KintoneOutbox
from tests.conversation_events import recording_event, transcript
from tests.inbound_calls import InboundCall, inbound_call
from tests.integration.writeback_support import AT, CALL_LOG, CUSTOMERS, Harness

CALLER = "+819011112222"
NOTIFY = "sato,GROUP:営業部"
MENTIONS = [{"code": "sato", "type": "USER"}, {"code": "営業部", "type": "GROUP"}]
COMMENT = "/record/comment.json"
COMMENTS = "/record/comments.json"
MakeHarness = Callable[..., Awaitable[Harness]]


async def harness(
    make_harness: MakeHarness, mode: str = "subtable", notify: str | None = NOTIFY
) -> Harness:
    extra = {} if notify is None else {"missed_call_notify": notify}
    h: Harness = await make_harness(mode, kintone_customer_app=CUSTOMERS, **extra)
    h.domain.add_entity("sato")
    h.domain.add_entity("営業部", "GROUP")
    return h


async def record(h: Harness, *calls: InboundCall) -> None:
    await h.record_calls(*(call.events for call in calls))


def comments(h: Harness, record_id: int) -> list[dict[str, Any]]:
    return h.domain.comments(CUSTOMERS, record_id)


def posts(h: Harness) -> int:
    return h.domain.request_count(CUSTOMERS, method="POST", path=COMMENT)


def reads(h: Harness) -> int:
    return h.domain.request_count(CUSTOMERS, method="GET", path=COMMENTS)


async def drain(h: Harness) -> None:
    """Run the worker until the outbox is settled, retries made due at once."""
    for _ in range(20):
        await h.sql("UPDATE kintone_outbox SET available_at = now(), leased_until = NULL")
        await h.worker().run_once()
        if not (await h.outbox()).get("pending"):
            return
    raise AssertionError(await h.outbox())


async def test_a_missed_call_is_written_and_told_once_on_each_matched_record(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness)
    mine = [h.customer("顧客A", 電話番号="090-1111-2222"), h.customer("顧客B", 電話番号=CALLER)]
    other = h.customer("他人", 電話番号="03-1234-5678")
    call = inbound_call(caller=CALLER, outcome="hung-up", at=AT)
    await record(h, call)
    await h.worker().run_once()
    assert await h.outbox() == {"done": 1}
    for record_id in mine:
        [row] = h.history(record_id)
        assert (row["通話結果"], row["担当者"], row["発着信"]) == ("不在着信", "", "着信")
        [comment] = comments(h, record_id)
        assert comment["mentions"] == MENTIONS
        lines = comment["text"].splitlines()
        assert lines[0] == "sato 営業部 "  # kintone puts the mentions first
        assert lines[1:] == [
            "不在着信がありました。",
            "発信者: 090-1111-2222",
            "日時: 2026年11月10日(火) 12:00",  # AT in Tokyo (BILLING_TZ)
            f"CallSid: {call.root}",
        ]
    assert comments(h, other) == []
    # A first attempt posts without reading: one request per record.
    assert (posts(h), reads(h)) == (2, 0)
    await drain(h)  # nothing more to do: no request
    assert (posts(h), reads(h)) == (2, 0)


@pytest.mark.parametrize("outcome", ["answered", "forwarded"])
async def test_a_call_someone_took_is_not_told(make_harness: MakeHarness, outcome: str) -> None:
    h = await harness(make_harness)
    customer = h.customer(電話番号=CALLER)
    await record(h, inbound_call(caller=CALLER, outcome=outcome, forward_to="+81312345678", at=AT))
    await h.worker().run_once()
    [row] = h.history(customer)
    assert row["通話結果"] == "completed"
    assert comments(h, customer) == []
    assert (await KintoneOutbox(h.engine).status()).missed == []


@pytest.mark.parametrize("outcome", ["missed", "forward-unanswered", "hung-up"])
async def test_every_kind_of_missed_call_is_told_in_app_mode_too(
    make_harness: MakeHarness, outcome: str
) -> None:
    h = await harness(make_harness, "app")
    low, high = h.customer(電話番号=CALLER), h.customer(電話番号="090-1111-2222")
    call = inbound_call(caller=CALLER, outcome=outcome, forward_to="+81312345678", at=AT)
    await record(h, call)
    await h.worker().run_once()
    [log] = h.domain.records(CALL_LOG)
    assert (log["通話結果"]["value"], log["顧客レコード番号"]["value"]) == ("不在着信", str(low))
    for record_id in (low, high):  # the call-log names one record; both are told
        [comment] = comments(h, record_id)
        assert call.root in comment["text"]
    assert await h.outbox() == {"done": 1}


async def test_a_line_call_says_line(make_harness: MakeHarness) -> None:
    h = await harness(make_harness)
    line_id = "U" + "0123456789abcdef" * 2
    customer = h.customer(LINEユーザーID=line_id)
    await record(h, inbound_call(line_user_id=line_id, outcome="missed", at=AT))
    await h.worker().run_once()
    [comment] = comments(h, customer)
    assert "発信者: LINE" in comment["text"]


async def test_without_the_setting_nobody_is_told(make_harness: MakeHarness) -> None:
    h = await harness(make_harness, notify=None)
    customer = h.customer(電話番号=CALLER)
    await record(h, inbound_call(caller=CALLER, outcome="missed", at=AT))
    await h.worker().run_once()
    assert h.history(customer)[0]["通話結果"] == "不在着信"
    assert comments(h, customer) == []
    assert posts(h) == 0


async def test_stored_then_500_the_retry_reads_and_never_posts_twice(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness)
    first, second = h.customer(電話番号=CALLER), h.customer(電話番号="090-1111-2222")
    call = inbound_call(caller=CALLER, outcome="missed", at=AT)
    await record(h, call)
    h.domain.fail_next(500, after_apply=True, path=COMMENT)  # one of the two: stored, then 500
    await h.worker().run_once()
    [(state, error, told)] = await h.sql(
        "SELECT state, last_error, notified_record_ids FROM kintone_outbox"
    )
    assert state == "pending"
    assert "500" in str(error)
    assert len(told) == 1  # type: ignore[arg-type]
    assert [len(comments(h, r)) for r in (first, second)] == [1, 1]
    await drain(h)
    assert [len(comments(h, r)) for r in (first, second)] == [1, 1]
    assert await h.outbox() == {"done": 1}
    # The retry read the one record not known to carry it, found the comment, posted nothing.
    assert (posts(h), reads(h)) == (2, 1)
    assert len(h.history(first)) == len(h.history(second)) == 1


async def test_a_worker_dying_between_the_post_and_the_commit_never_doubles_it(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness)
    customer = h.customer(電話番号=CALLER)
    await record(h, inbound_call(caller=CALLER, outcome="missed", at=AT))
    post = h.client.add_comment

    async def post_then_die(*args: Any, **kwargs: Any) -> int:
        await post(*args, **kwargs)
        raise asyncio.CancelledError  # the process is gone: nothing after this line runs

    h.client.add_comment = post_then_die  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await h.worker().run_once()
    h.client.add_comment = post  # type: ignore[method-assign]
    assert len(comments(h, customer)) == 1
    assert await h.outbox() == {"pending": 1}  # leased by the dead worker
    await drain(h)  # its lease ran out
    assert len(comments(h, customer)) == 1
    assert await h.outbox() == {"done": 1}


async def test_a_mention_kintone_refuses_is_left_out_never_the_comment(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness, notify="sato,ghost,GROUP:営業部,ORGANIZATION:幽霊部")
    customer = h.customer(電話番号=CALLER)
    calls = [inbound_call(caller=CALLER, outcome="missed", at=AT) for _ in range(2)]
    await record(h, calls[0])
    worker = h.worker()
    with capture_logs() as logs:
        await worker.run_once()
        await record(h, calls[1])
        await worker.run_once()
    told = comments(h, customer)
    assert [c["mentions"] for c in told] == [MENTIONS, MENTIONS]
    assert [calls[0].root in told[0]["text"], calls[1].root in told[1]["text"]] == [True, True]
    [refused] = [e for e in logs if e["event"] == "kintone_comment_mention_refused"]
    assert refused["refused"] == ["USER:ghost", "ORGANIZATION:幽霊部"]
    # The refused mention costs one more post, once: the worker leaves it out from then on.
    assert posts(h) == 3
    assert await h.outbox() == {"done": 2}


async def test_a_caller_with_forty_records_gets_one_comment_on_each_within_limits(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness)
    records = [h.customer(f"顧客{i}", 電話番号=CALLER) for i in range(40)]
    h.domain.latency_s = 0.01
    await record(h, inbound_call(caller=CALLER, outcome="missed", at=AT))
    await h.worker().run_once()
    assert [len(comments(h, r)) for r in records] == [1] * 40
    assert h.domain.max_in_flight <= 10  # the client's concurrency cap
    # 1 lookup, then per record 1 history update and 1 comment.
    assert h.domain.request_count(CUSTOMERS) == 1 + 40 + 40
    assert (posts(h), reads(h)) == (40, 0)


async def test_status_lists_missed_calls_that_matched_no_record(make_harness: MakeHarness) -> None:
    h = await harness(make_harness)
    h.customer(電話番号=CALLER)
    told = inbound_call(caller=CALLER, outcome="missed", at=AT)
    stranger_missed = inbound_call(caller="+819099998888", outcome="hung-up", at=AT)
    withheld_missed = inbound_call(caller="anonymous", outcome="missed", at=AT)
    stranger_answered = inbound_call(caller="+819077776666", at=AT)
    await record(h, told, stranger_missed, withheld_missed, stranger_answered)
    await h.worker().run_once()
    status = await KintoneOutbox(h.engine).status()
    assert sorted(status.missed) == sorted([stranger_missed.root, withheld_missed.root])
    assert set(status.missed) < set(status.unmatched)
    assert stranger_answered.root in status.unmatched


async def test_the_retry_pages_back_through_colleagues_comments_to_find_its_own(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness)
    customer = h.customer(電話番号=CALLER)
    call = inbound_call(caller=CALLER, outcome="missed", at=AT)
    await record(h, call)
    h.domain.fail_next(500, after_apply=True, path=COMMENT)
    await h.worker().run_once()
    for i in range(25):  # colleagues discuss the customer meanwhile: ours is on page three
        await h.client.add_comment(CUSTOMERS, customer, f"折り返します {i}")
    before = posts(h)
    await drain(h)
    assert [call.root in c["text"] for c in comments(h, customer)] == [True] + [False] * 25
    assert (posts(h) - before, reads(h)) == (0, 3)


# --- the voicemail (留守電) -----------------------------------------------------------------------

MESSAGE = [
    "お世話になっております。",
    "見積の件でお電話しました。",
    "折り返しお願いします。",
    "以上です。",
]


def voicemail_events(root: str, *, status: str = "completed", said: bool = True) -> list[Any]:
    """The voicemail after the ring: its recording (a <Record>'s: RecordingSource RecordVerb),
    and the call's transcription, the caller's words on the inbound track from the beep on."""
    beep = AT + timedelta(seconds=40)
    events: list[Any] = [
        recording_event(
            root,
            at=beep,
            status=status,
            duration_s=14 if status == "completed" else None,
            source="RecordVerb",
            direction="inbound",
        )
    ]
    if said:
        words = [("inbound_track", text) for text in MESSAGE]
        events += transcript(root, words, at=beep, direction="inbound")
    return events


@pytest.mark.parametrize("mode", ["subtable", "app"])
async def test_a_voicemail_is_rusuden_and_its_comment_carries_its_first_lines(
    make_harness: MakeHarness, mode: str
) -> None:
    h = await harness(make_harness, mode)
    customer = h.customer(電話番号=CALLER)
    call = inbound_call(caller=CALLER, outcome="missed", at=AT)
    await h.record_calls(call.events, voicemail_events(call.root))
    await drain(h)
    if mode == "subtable":
        [row] = h.history(customer)
        assert (row["通話結果"], row["通話時間"], row["担当者"]) == ("留守電", "0", "")
    else:
        [log] = h.domain.records(CALL_LOG)
        assert log["通話結果"]["value"] == "留守電"
    [comment] = comments(h, customer)
    assert comment["text"].splitlines()[1:] == [
        "留守電がありました。",
        "発信者: 090-1111-2222",
        "日時: 2026年11月10日(火) 12:00",
        "留守電:",
        *(f"  {line}" for line in MESSAGE[:3]),
        f"CallSid: {call.root}",
    ]
    assert (await KintoneOutbox(h.engine).status()).missed == []


@pytest.mark.parametrize(
    ("status", "said", "result"),
    [
        ("absent", False, "不在着信"),  # a silent caller: no file, a plain missed call
        ("failed", False, "不在着信"),
        ("completed", False, "留守電"),  # a message the transcription did not catch (or off)
    ],
)
async def test_what_a_voicemail_leaves_decides_the_result(
    make_harness: MakeHarness, status: str, said: bool, result: str
) -> None:
    h = await harness(make_harness)
    customer = h.customer(電話番号=CALLER)
    call = inbound_call(caller=CALLER, outcome="forward-unanswered", at=AT)
    await h.record_calls(call.events, voicemail_events(call.root, status=status, said=said))
    await drain(h)
    [row] = h.history(customer)
    assert row["通話結果"] == result
    [comment] = comments(h, customer)
    assert comment["text"].splitlines()[1] == f"{result}がありました。"
    assert "  " not in comment["text"]  # no lines: none were said (or heard)


async def test_a_dial_recording_of_a_forwarded_call_is_no_voicemail(
    make_harness: MakeHarness,
) -> None:
    h = await harness(make_harness)
    customer = h.customer(電話番号=CALLER)
    call = inbound_call(caller=CALLER, outcome="forwarded", forward_to="+81312345678", at=AT)
    dial = recording_event(call.root, at=AT, source="DialVerb", direction="inbound")
    await h.record_calls(call.events, [dial])
    await drain(h)
    assert h.history(customer)[0]["通話結果"] == "completed"
    assert comments(h, customer) == []
