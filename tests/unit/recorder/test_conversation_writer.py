"""The settled write-back's rules on fakes (no database, no kintone, no Twilio): who waits, what
a row gets, when a file is given up, and that nothing is deleted from Twilio before kintone
holds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.recorder.adapters.twilio_rest import TwilioError
from services.recorder.domain.conversation import (
    CallConversation,
    RecordingFile,
    RecordingStatus,
    Speaker,
    TranscriptionStatus,
)
from services.recorder.domain.history import CallSummary
from services.recorder.domain.outbox import Job
from services.recorder.service_layer.conversation_writeback import (
    FILE_ATTEMPTS,
    AttachError,
    ConversationWriter,
)
from services.recorder.settings import KintoneSettings

ENDED = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
URL = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1"
COLUMNS = {"通話履歴": {"type": "SUBTABLE", "fields": {"通話内容": {}, "録音": {}}}}
DONE = CallConversation(
    ((Speaker.STAFF, "はい"),), (RecordingStatus.COMPLETED,), (TranscriptionStatus.COMPLETE,)
)


@dataclass
class FakeOutbox:
    conversation: dict[str, CallConversation] = field(default_factory=dict)
    files: dict[str, list[RecordingFile]] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    async def conversations(self, roots: Sequence[str]) -> dict[str, CallConversation]:
        return {r: c for r, c in self.conversation.items() if r in roots}

    async def recording_files(self, roots: Sequence[str]) -> dict[str, list[RecordingFile]]:
        return {r: f for r, f in self.files.items() if r in roots}

    async def defer(self, call_sids: Sequence[str], timeout_s: float, poll_s: float) -> None:
        self.deferred += call_sids

    async def set_file_key(self, recording_sid: str, file_key: str) -> None:
        self.keys[recording_sid] = file_key

    async def set_file_error(self, recording_sid: str, reason: str) -> None:
        self.errors[recording_sid] = reason

    async def set_deleted(self, recording_sid: str) -> None:
        self.deleted.append(recording_sid)


@dataclass
class FakeKintone:
    uploads: list[bytes] = field(default_factory=list)

    async def get_form_fields(self, app: int) -> dict[str, Any]:
        return COLUMNS

    async def upload_file(self, app: int, name: str, content_type: str, data: bytes) -> str:
        self.uploads.append(data)
        return f"key{len(self.uploads)}"


@dataclass
class FakeTwilio:
    failing: bool = False
    deleted: list[str] = field(default_factory=list)

    def recording_media_url(self, media_url: str) -> str | None:
        return media_url + ".mp3" if media_url.startswith("https://api.twilio.com/") else None

    async def recording_media(self, media_url: str) -> bytes:
        if self.failing:
            raise TwilioError(f"The requested resource {media_url}.mp3 was not found", status=404)
        return b"ID3"

    async def delete_recording(self, sid: str) -> None:
        self.deleted.append(sid)


def writer(
    outbox: FakeOutbox, kintone: FakeKintone, twilio: FakeTwilio, **overrides: Any
) -> ConversationWriter:
    settings = KintoneSettings(
        kintone_writeback="subtable",
        kintone_base_url="https://example.cybozu.com",
        kintone_api_token="t",
        recording="dual",
        transcription="on",
        **overrides,
    )
    return ConversationWriter(
        outbox,  # type: ignore[arg-type]
        kintone,  # type: ignore[arg-type]
        settings,
        twilio,
        clock=lambda: ENDED + timedelta(seconds=30),
    )


def job(call_sid: str, attempts: int = 1) -> Job:
    return Job(call_sid, 10, 1, attempts, ended_at=ENDED)


def summary(call_sid: str, result: str = "completed") -> CallSummary:
    return CallSummary(call_sid, ENDED, "+819012345678", result, 61, None, "u_1")


async def test_an_answered_call_waits_for_its_recording_and_transcription() -> None:
    outbox = FakeOutbox({"CA2": DONE})
    w = writer(outbox, FakeKintone(), FakeTwilio())
    jobs = [job("CA1"), job("CA2"), job("CA3")]
    summaries = {"CA1": summary("CA1"), "CA2": summary("CA2"), "CA3": summary("CA3", "busy")}
    ready = await w.settle(jobs, summaries)
    # CA1 was answered and nothing is in yet; CA3 was never answered: nothing to wait for.
    assert [j.call_sid for j in ready] == ["CA2", "CA3"]
    assert outbox.deferred == ["CA1"]
    late = writer(outbox, FakeKintone(), FakeTwilio(), settle_timeout_s=30)
    assert len(await late.settle(jobs, summaries)) == 3  # 30 s after the end: all go


async def test_a_new_row_gets_the_transcript_and_a_fresh_upload_then_the_key_is_kept() -> None:
    outbox = FakeOutbox({"CA1": DONE}, {"CA1": [RecordingFile("RE1", "CA1", URL)]})
    kintone, twilio = FakeKintone(), FakeTwilio()
    w = writer(outbox, kintone, twilio)
    await w.settle([job("CA1")], {"CA1": summary("CA1")})
    cells = await w.cells(10, "CA1")
    assert cells == {
        "通話内容": {"value": "担当者: はい"},
        "録音": {"value": [{"fileKey": "key1"}]},
    }
    assert outbox.keys == {}  # not before kintone confirmed the write
    assert await w.confirm(["CA1"]) == {}
    assert outbox.keys == {"RE1": "key1"}
    assert twilio.deleted == []  # kept on Twilio by default


async def test_a_row_holding_the_file_already_gets_no_upload() -> None:
    outbox = FakeOutbox({"CA1": DONE}, {"CA1": [RecordingFile("RE1", "CA1", URL)]})
    kintone = FakeKintone()
    w = writer(outbox, kintone, FakeTwilio())
    await w.settle([job("CA1")], {"CA1": summary("CA1")})
    row = {"通話内容": {"value": "担当者: はい"}, "録音": {"value": [{"fileKey": "stored"}]}}
    assert await w.cells(10, "CA1", row) == {}
    assert kintone.uploads == []
    await w.confirm(["CA1"])
    assert outbox.keys == {"RE1": "stored"}


async def test_a_failing_download_is_retried_without_the_url_then_given_up() -> None:
    outbox = FakeOutbox({"CA1": DONE}, {"CA1": [RecordingFile("RE1", "CA1", URL)]})
    w = writer(outbox, FakeKintone(), FakeTwilio(failing=True))
    await w.settle([job("CA1")], {"CA1": summary("CA1")})
    with pytest.raises(AttachError) as failed:
        await w.cells(10, "CA1")
    assert "RE1 not downloaded (HTTP 404)" in str(failed.value)
    assert URL not in str(failed.value)
    await w.settle([job("CA1", FILE_ATTEMPTS + 1)], {"CA1": summary("CA1")})
    assert await w.cells(10, "CA1") == {"通話内容": {"value": "担当者: はい"}}
    await w.confirm(["CA1"])
    assert outbox.errors == {"RE1": f"not attached after {FILE_ATTEMPTS} attempts"}


async def test_not_kept_on_twilio_only_what_kintone_holds_is_deleted() -> None:
    files = {
        "CA1": [RecordingFile("RE1", "CA1", URL)],
        "CA2": [RecordingFile("RE2", "CA2", URL, file_error="given up")],
        "CA3": [RecordingFile("RE3", "CA3", URL, file_key="k", deleted=True)],
    }
    outbox = FakeOutbox(dict.fromkeys(files, DONE), files)
    twilio = FakeTwilio()
    w = writer(outbox, FakeKintone(), twilio, recording_keep_on_twilio=False)
    jobs = [job(sid) for sid in files]
    await w.settle(jobs, {sid: summary(sid) for sid in files})
    await w.confirm(["CA1"])  # written, but CA1's file was never uploaded this round
    assert twilio.deleted == []
    await w.cells(10, "CA1")
    await w.confirm(list(files))
    assert twilio.deleted == ["RE1"]
    assert outbox.deleted == ["RE1"]


async def test_a_recording_whose_url_is_not_twilios_is_never_fetched_and_listed() -> None:
    elsewhere = "https://evil.example/2010-04-01/Accounts/AC0/Recordings/RE1"
    outbox = FakeOutbox({"CA1": DONE}, {"CA1": [RecordingFile("RE1", "CA1", elsewhere)]})
    kintone = FakeKintone()
    w = writer(outbox, kintone, FakeTwilio(failing=True))  # any fetch would raise
    await w.settle([job("CA1")], {"CA1": summary("CA1")})
    assert await w.cells(10, "CA1") == {"通話内容": {"value": "担当者: はい"}}
    assert kintone.uploads == []
    await w.confirm(["CA1"])
    assert outbox.errors == {"RE1": "its URL is not on Twilio's API host: never fetched"}
