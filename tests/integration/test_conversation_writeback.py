"""The settled write-back (CONTRACT.md section 11, "On the record") on real PostgreSQL, with
the kintone and Twilio REST stand-ins over HTTP: a call waits for its recording and
transcription, then lands once with its transcript in 通話内容 and its recording in 録音; what
comes later updates the same row; faults (a download or upload that fails, an answer lost after
the write) never give a second row or a second file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.devtools.twilio_rest_standin import TwilioStandin
from services.recorder.adapters.outbox import KintoneOutbox
from services.recorder.adapters.twilio_rest import TwilioError, TwilioRest
from services.recorder.service_layer.conversation_writeback import FILE_ATTEMPTS
from services.recorder.service_layer.writeback import WritebackWorker
from tests.conversation_events import CUSTOMER_SAYS, STAFF_SAYS, recording_event, transcript
from tests.factories import ACCOUNT_SID, API_KEY, API_SECRET
from tests.inbound_calls import inbound_call
from tests.integration.twilio_support import FAST_RETRY, serve_standin
from tests.integration.writeback_support import (
    AT,
    CALL_LOG,
    CUSTOMERS,
    Harness,
    make_harness,
    one_call,
)

__all__ = ["make_harness"]  # the fixture, used by name

MP3 = b"ID3\x04\x00\x00\x00" + bytes(range(256)) * 16
IN, OUT = "inbound_track", "outbound_track"
EXPECTED = f"担当者: {STAFF_SAYS}\nお客様: {CUSTOMER_SAYS}"
ON = {"recording": "dual", "transcription": "on"}


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioStandin]:
    async for server in serve_standin():
        yield server


@pytest.fixture
def media(twilio: TwilioStandin) -> TwilioRest:
    return TwilioRest(ACCOUNT_SID, API_KEY, API_SECRET, base_url=twilio.base_url, retry=FAST_RETRY)


def root_of(call: list[Any]) -> str:
    return str(call[0].call_sid)


def conversation(twilio: TwilioStandin, root: str, direction: str = "outbound") -> list[Any]:
    """The call's transcript (the salesperson first) and its recording's callback, the media
    held by the stand-in."""
    event = recording_event(root, at=AT)
    sid = event.params["RecordingSid"]
    twilio.account.add_recording(sid, root, AT, price=None, media=MP3)
    url = f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
    staff, customer = (IN, OUT) if direction == "outbound" else (OUT, IN)
    return [
        *transcript(
            root, [(staff, STAFF_SAYS), (customer, CUSTOMER_SAYS)], at=AT, direction=direction
        ),
        recording_event(root, at=AT, url=url, direction=direction),
    ]


async def recorded(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest, **overrides: object
) -> tuple[Harness, int, str, WritebackWorker]:
    """A harness with the conversation on, and one call recorded with its conversation: the
    harness, the customer record, the call's root CallSid, a worker."""
    h = await make_harness(conversation=True, **ON, **overrides)
    record = h.customer()
    call = one_call(record)
    await h.record_calls(call, conversation(twilio, root_of(call)))
    return h, record, root_of(call), h.worker(media=media)


async def due_now(h: Harness) -> None:
    """Skip the wait a deferred or retried job has before it is claimed again."""
    await h.sql("UPDATE kintone_outbox SET available_at = now() WHERE state = 'pending'")


async def attached(h: Harness, cell: dict[str, Any]) -> list[bytes]:
    """The files a FILE cell holds, downloaded from the kintone stand-in."""
    found = []
    async with aiohttp.ClientSession() as session:
        for file in cell["value"]:
            async with session.get(
                f"{h.settings.kintone_base_url}/k/v1/file.json",
                params={"fileKey": file["fileKey"]},
                headers={"X-Cybozu-API-Token": "token-customers,token-call-log"},
            ) as response:
                assert response.status == 200
                found.append(await response.read())
    return found


def uploads(h: Harness) -> int:
    return sum(1 for r in h.domain.requests if r.method == "POST" and r.path.endswith("/file.json"))


async def test_a_call_waits_until_settled_then_lands_once_with_its_conversation(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h = await make_harness(conversation=True, **ON)
    record = h.customer()
    call = one_call(record)
    root = root_of(call)
    worker = h.worker(media=media)
    await h.record_calls(call)
    await worker.run_once()
    # Ended, but its recording and transcription are not in: nothing written, no attempt spent.
    assert h.history(record) == []
    assert await h.sql("SELECT state, attempts FROM kintone_outbox") == [("pending", 0)]
    await h.record_calls(conversation(twilio, root))
    await due_now(h)
    await worker.run_once()
    [row] = h.domain.record(CUSTOMERS, record)["通話履歴"]["value"]
    assert row["value"]["CallSid"]["value"] == root
    assert row["value"]["通話内容"]["value"] == EXPECTED
    assert await attached(h, row["value"]["録音"]) == [MP3]
    assert uploads(h) == 1
    [(file_key, deleted)] = await h.sql(
        "SELECT kintone_file_key, deleted_from_twilio_at FROM recordings"
    )
    assert file_key
    assert deleted is None  # RECORDING_KEEP_ON_TWILIO defaults to true
    assert await h.outbox() == {"done": 1}
    # Run again: nothing more is written or uploaded.
    await due_now(h)
    await worker.run_once()
    assert len(h.domain.record(CUSTOMERS, record)["通話履歴"]["value"]) == 1
    assert uploads(h) == 1


async def test_app_mode_upserts_the_conversation_into_the_call_log_record(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h = await make_harness("app", conversation=True, **ON)
    calls = [one_call(h.customer()) for _ in range(5)]
    await h.record_calls(*calls, *(conversation(twilio, root_of(c)) for c in calls))
    await h.worker(media=media).run_once()
    # The file costs one request a call (its upload); the calls share one upsert, and the
    # app's fields are read once.
    assert uploads(h) == len(calls)
    assert h.domain.request_count(CALL_LOG, method="PUT") == 1
    assert h.domain.request_count(CALL_LOG, method="GET") == 1
    records = h.domain.records(CALL_LOG)
    assert len(records) == len(calls)
    for record in records:
        assert record["通話内容"]["value"] == EXPECTED
        assert await attached(h, record["録音"]) == [MP3]
    assert await h.outbox() == {"done": len(calls)}


async def test_an_inbound_call_lands_on_each_record_with_a_file_of_its_own(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h = await make_harness(conversation=True, kintone_customer_app=CUSTOMERS, **ON)
    mine = [h.customer(f"顧客{i}", 電話番号=form) for i, form in enumerate(["090-1111-2222"] * 2)]
    call = inbound_call(caller="+819011112222", answered_by="kintone_7", at=AT)
    await h.record_calls(call.events, conversation(twilio, call.root, "inbound"))
    await h.worker(media=media).run_once()
    for record in mine:
        [row] = h.domain.record(CUSTOMERS, record)["通話履歴"]["value"]
        assert row["value"]["通話内容"]["value"] == EXPECTED  # the staff is the outbound track
        assert await attached(h, row["value"]["録音"]) == [MP3]
    assert uploads(h) == len(mine)  # a temporary fileKey attaches once: one upload a record
    assert await h.outbox() == {"done": 1}


async def test_what_arrives_after_the_write_updates_the_same_row(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h = await make_harness(conversation=True, settle_timeout_s=0, **ON)
    record = h.customer()
    call = one_call(record)
    root = root_of(call)
    worker = h.worker(media=media)
    await h.record_calls(call)
    await worker.run_once()  # the timeout is 0: written at once, with nothing to say
    [row] = h.history(record)
    assert row["通話内容"] == ""
    assert not row["録音"]  # no file
    await h.record_calls(conversation(twilio, root))
    assert await h.outbox() == {"pending": 1}  # put back by the late news
    await worker.run_once()
    [row] = h.domain.record(CUSTOMERS, record)["通話履歴"]["value"]
    assert row["value"]["通話内容"]["value"] == EXPECTED
    assert await attached(h, row["value"]["録音"]) == [MP3]
    assert await h.outbox() == {"done": 1}


async def test_an_answer_lost_after_the_write_gives_no_second_row_nor_file(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h, record, _root, worker = await recorded(make_harness, twilio, media)
    # kintone applies the update, then the answer is lost (500), every retry too.
    h.domain.fail_next(500, 500, 500, 500, 500, 500, after_apply=True, path="/record.json")
    await worker.run_once()
    assert await h.outbox() == {"pending": 1}
    await due_now(h)
    await worker.run_once()
    [row] = h.domain.record(CUSTOMERS, record)["通話履歴"]["value"]
    assert await attached(h, row["value"]["録音"]) == [MP3]
    assert uploads(h) == 1  # the row held the file already: not uploaded again
    assert await h.outbox() == {"done": 1}


async def test_a_download_that_keeps_failing_is_retried_then_the_row_goes_without_it(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h, record, root, worker = await recorded(make_harness, twilio, media)
    twilio.account.fail_next(503, times=100, path=".mp3")
    await worker.run_once()
    assert h.history(record) == []  # retried, not written without it yet
    [(state, error)] = await h.sql("SELECT state, last_error FROM kintone_outbox")
    assert state == "pending"
    assert "not downloaded" in str(error)
    assert "http" not in str(error).lower().replace("http 503", "")  # never the URL
    await h.sql(f"UPDATE kintone_outbox SET attempts = {FILE_ATTEMPTS:d}")  # noqa: S608 - an int
    await due_now(h)
    await worker.run_once()
    [row] = h.history(record)
    assert row["通話内容"] == EXPECTED
    assert not row["録音"]  # no file
    status = await KintoneOutbox(h.engine).status()
    [(call_sid, _recording, reason)] = status.unattached
    assert call_sid == root
    assert "not attached" in reason
    assert await h.outbox() == {"done": 1}


async def test_an_upload_that_fails_is_retried(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h, record, _root, worker = await recorded(make_harness, twilio, media)
    h.domain.fail_next(500, 500, 500, 500, 500, 500, path="/file.json")
    await worker.run_once()
    assert h.history(record) == []
    await due_now(h)
    await worker.run_once()
    [row] = h.domain.record(CUSTOMERS, record)["通話履歴"]["value"]
    assert await attached(h, row["value"]["録音"]) == [MP3]
    assert await h.outbox() == {"done": 1}


async def test_not_kept_on_twilio_the_recording_is_deleted_once_kintone_holds_it(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h, record, _root, worker = await recorded(
        make_harness, twilio, media, recording_keep_on_twilio=False
    )
    # The write fails first: nothing may be deleted before kintone holds the file.
    h.domain.fail_next(500, 500, 500, 500, 500, 500, path="/record.json")
    twilio.account.fail_next(503, times=10, method="DELETE")
    await worker.run_once()
    assert not any(r.method == "DELETE" for r in twilio.account.requests)
    await due_now(h)
    await worker.run_once()  # written; the delete fails: the job is retried
    assert await h.outbox() == {"pending": 1}
    twilio.account.faults.clear()
    await due_now(h)
    await worker.run_once()
    assert await h.outbox() == {"done": 1}
    [(deleted,)] = await h.sql("SELECT deleted_from_twilio_at FROM recordings")
    assert deleted is not None
    assert all(stored.deleted for stored in twilio.account.recordings.values())
    assert len(h.history(record)) == 1


async def test_a_field_the_app_lacks_is_left_out_and_the_call_still_written(
    make_harness: Any, twilio: TwilioStandin, media: TwilioRest
) -> None:
    h = await make_harness(**ON)  # the table has neither 通話内容 nor 録音
    record = h.customer()
    call = one_call(record)
    await h.record_calls(call, conversation(twilio, root_of(call)))
    await h.worker(media=media).run_once()
    [row] = h.history(record)
    assert row["CallSid"] == root_of(call)
    assert "通話内容" not in row
    assert uploads(h) == 0  # nothing uploaded for a field that is not there
    assert not any(r.path.endswith(".mp3") for r in twilio.account.requests)


async def test_the_twilio_standin_serves_media_behind_the_api_key_and_deletes(
    twilio: TwilioStandin, media: TwilioRest
) -> None:
    sid = "RE" + "b" * 32
    twilio.account.add_recording(sid, "CA" + "c" * 32, AT, price=None, media=MP3)
    url = f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
    async with aiohttp.ClientSession() as session, session.get(url + ".mp3") as response:
        assert response.status == 401
    assert await media.recording_media(url) == MP3
    await media.delete_recording(sid)
    await media.delete_recording(sid)  # gone already: deleted all the same
    with pytest.raises(TwilioError) as gone:
        await media.recording_media(url)
    assert gone.value.not_found
    assert url not in str(gone.value)
