"""The conversation on the kintone record (CONTRACT.md section 11, "On the record"): what the
write-back worker (service_layer/writeback.py) adds to a call's row or call-log record when
RECORDING or TRANSCRIPTION is on.

- **Settled.** A call is written once it is settled (domain ``settled``): ended, its recording
  and transcription done, or ``SETTLE_TIMEOUT_S`` after it ended. A job claimed before is put
  back, due again shortly (or at the timeout), without counting an attempt.
- **The transcript** goes into ``KINTONE_FIELD_TRANSCRIPT`` as ``transcript_for_record`` cuts
  it; a row that already says the same is not written again.
- **The file.** Each completed recording not yet on kintone is downloaded from Twilio (as the API
  key, only from the API host) and uploaded (``POST /k/v1/file.json``) right before the write
  that attaches it: a temporary fileKey attaches once, so each write target gets its own upload,
  and a row that already holds the file (our own earlier write, applied before a crash) gets none.
  A download or upload that fails retries the job; after ``FILE_ATTEMPTS`` attempts the call is
  written without the file, and ``calltrail kintone status`` lists the recording.
- **Exactly once.** Only a confirmed write stores the fileKey (``recordings.kintone_file_key``);
  only then, with ``RECORDING_KEEP_ON_TWILIO=false``, is the recording deleted from Twilio.
- **Late.** What arrives after the write puts the call's job back (adapters/repository.py); the
  next round updates the same row (subtable: by its row id) or the same call-log record (the
  upsert by CallSid), never a second one.

A field the app does not have is left out (the write still happens): the app's fields are read
(``GET /k/v1/app/form/fields.json``) once per app every ``FIELDS_TTL_S``.

Never logged: the transcript, the media, its URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common.logging import get_logger
from services.recorder.adapters.kintone import KintoneClient, KintoneError
from services.recorder.adapters.outbox import KintoneOutbox
from services.recorder.adapters.twilio_rest import TwilioError
from services.recorder.domain.conversation import (
    CallConversation,
    RecordingFile,
    settled,
    transcript_for_record,
)
from services.recorder.domain.history import (
    ANSWERED,
    CallSummary,
    HistoryFields,
    WritebackMode,
    conversation_cells,
    file_attached,
)
from services.recorder.domain.missed import VOICEMAIL
from services.recorder.domain.outbox import Job
from services.recorder.settings import KintoneSettings

log = get_logger(__name__)

FILE_ATTEMPTS = 5  # attempts at a call's file before it is written without it
FIELDS_TTL_S = 300.0  # how long an app's field list is trusted
POLL_S = 5.0  # how soon a call not settled yet is looked at again
MEDIA_TYPE = "audio/mpeg"


class RecordingMedia(Protocol):
    """Twilio's recordings, as the write-back fetches and deletes them (adapters/twilio_rest)."""

    def recording_media_url(self, media_url: str) -> str | None: ...

    async def recording_media(self, media_url: str) -> bytes: ...

    async def delete_recording(self, sid: str) -> None: ...


class AttachError(Exception):
    """A recording's file could not be fetched or uploaded this time: the job is retried."""


@dataclass(slots=True)
class _Call:
    """One call's conversation, for this round."""

    transcript: str | None  # None: nothing to write (no transcription)
    files: list[RecordingFile]  # its completed recordings
    give_up: bool  # FILE_ATTEMPTS spent: written without the files still missing
    foreign: frozenset[str] = frozenset()  # recordings whose URL is not Twilio's: never fetched
    attached: dict[str, str] = field(default_factory=dict)  # recording → fileKey, this round


class ConversationWriter:
    def __init__(
        self,
        outbox: KintoneOutbox,
        client: KintoneClient,
        settings: KintoneSettings,
        media: RecordingMedia | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._media = media
        self._fields: HistoryFields = settings.history_fields()
        self._mode = settings.kintone_writeback
        self._table = settings.kintone_history_table
        self._recording = settings.recording_on
        self._transcription = settings.transcription_on
        self._timeout_s = settings.settle_timeout_s
        self._max_chars = settings.transcript_max_chars
        self._keep_on_twilio = settings.recording_keep_on_twilio
        self._clock = clock
        self._present: dict[int, tuple[float, frozenset[str]]] = {}
        self._fields_lock = asyncio.Lock()
        self._calls: dict[str, _Call] = {}

    async def settle(self, jobs: Sequence[Job], summaries: Mapping[str, CallSummary]) -> list[Job]:
        """The jobs whose call is settled (their conversation kept for this round); the others
        are put back until it is, or until the settle timeout."""
        roots = [job.call_sid for job in jobs]
        conversations = await self._outbox.conversations(roots)
        files = await self._outbox.recording_files(roots) if self._recording else {}
        now = self._clock()
        ready: list[Job] = []
        waiting: list[Job] = []
        self._calls = {}
        for job in jobs:
            conversation = conversations.get(job.call_sid, CallConversation())
            talked = summaries[job.call_sid].result in (ANSWERED, VOICEMAIL)
            if not settled(
                conversation,
                ended_at=job.ended_at,
                now=now,
                timeout_s=self._timeout_s,
                expect_recording=self._recording and talked,
                expect_transcription=self._transcription and talked,
            ):
                waiting.append(job)
                continue
            ready.append(job)
            said = conversation.utterances or conversation.transcriptions
            self._calls[job.call_sid] = _Call(
                transcript_for_record(conversation.utterances, self._max_chars)
                if self._transcription and said
                else None,
                files.get(job.call_sid, []),
                give_up=job.attempts > FILE_ATTEMPTS,
                foreign=self._foreign(files.get(job.call_sid, [])),
            )
        if waiting:
            await self._outbox.defer([job.call_sid for job in waiting], self._timeout_s, POLL_S)
            for job in waiting:
                log.info("kintone_call_not_settled", call_sid=job.call_sid, app=job.app_id)
        return ready

    async def cells(
        self, app: int, call_sid: str, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The conversation's cells for the call's row or record on ``app``; ``current``: the
        row as kintone returned it (subtable mode), None for a new row or the upsert. Uploads
        the files this write attaches. Raises AttachError, or the client's KintoneError."""
        call = self._calls.get(call_sid)
        if call is None:
            return {}
        present = await self._present_fields(app)
        keys: list[str] = []
        wanted = [
            f
            for f in call.files
            if f.to_attach and not call.give_up and f.recording_sid not in call.foreign
        ]
        code = self._fields.recording
        if wanted and code is not None and code in present and self._media is not None:
            if current is not None and file_attached(self._fields, current):
                # Our own write, applied before a crash or a lost answer: keep it, no upload.
                held = (current.get(code) or {}).get("value") or [{}]
                for file in wanted:
                    call.attached[file.recording_sid] = str(held[0].get("fileKey", ""))
            else:
                for file in wanted:
                    key = await self._upload(app, file)
                    call.attached[file.recording_sid] = key
                    keys.append(key)
        return conversation_cells(self._fields, present, call.transcript, keys, current)

    async def confirm(self, call_sids: Sequence[str]) -> dict[str, BaseException]:
        """These calls are on kintone: keep their files' keys, note the files given up, and
        delete what kintone now holds from Twilio (RECORDING_KEEP_ON_TWILIO=false). Returns
        what failed, by call (its job is retried)."""
        failed: dict[str, BaseException] = {}
        for call_sid in call_sids:
            call = self._calls.get(call_sid)
            if call is None:
                continue
            for file in call.files:
                key = call.attached.get(file.recording_sid)
                if key is not None:
                    await self._outbox.set_file_key(file.recording_sid, key)
                elif file.to_attach and (call.give_up or file.recording_sid in call.foreign):
                    reason = (
                        "its URL is not on Twilio's API host: never fetched"
                        if file.recording_sid in call.foreign
                        else f"not attached after {FILE_ATTEMPTS} attempts"
                    )
                    await self._outbox.set_file_error(file.recording_sid, reason)
                    log.error(
                        "kintone_recording_not_attached",
                        call_sid=call_sid,
                        recording_sid=file.recording_sid,
                        reason=reason,
                    )
                on_kintone = key is not None or file.file_key is not None
                if on_kintone and not file.deleted and not self._keep_on_twilio:
                    try:
                        await self._delete(file)
                    except TwilioError as exc:
                        failed.setdefault(call_sid, AttachError(f"not deleted from Twilio: {exc}"))
        return failed

    def _foreign(self, files: Sequence[RecordingFile]) -> frozenset[str]:
        """The recordings whose URL a callback named somewhere else than Twilio's API host."""
        media = self._media
        return frozenset(
            f.recording_sid
            for f in files
            if media is not None
            and f.to_attach
            and f.media_url is not None
            and media.recording_media_url(f.media_url) is None
        )

    async def _upload(self, app: int, file: RecordingFile) -> str:
        assert self._media is not None
        assert file.media_url is not None
        try:
            data = await self._media.recording_media(file.media_url)
        except TwilioError as exc:
            status = "no answer" if exc.status is None else f"HTTP {exc.status}"
            raise AttachError(f"recording {file.recording_sid} not downloaded ({status})") from None
        try:
            return await self._client.upload_file(
                app, f"{file.recording_sid}.mp3", MEDIA_TYPE, data
            )
        except KintoneError as exc:
            raise AttachError(f"recording {file.recording_sid} not uploaded: {exc}") from None

    async def _delete(self, file: RecordingFile) -> None:
        assert self._media is not None
        await self._media.delete_recording(file.recording_sid)
        await self._outbox.set_deleted(file.recording_sid)
        log.info(
            "twilio_recording_deleted", call_sid=file.call_sid, recording_sid=file.recording_sid
        )

    async def _present_fields(self, app: int) -> frozenset[str]:
        """The field codes the call's row (subtable mode: the history table's columns) or
        call-log record has, read at most every FIELDS_TTL_S."""
        async with self._fields_lock:  # a round's calls ask at once: one request answers all
            cached = self._present.get(app)
            if cached is not None and time.monotonic() - cached[0] < FIELDS_TTL_S:
                return cached[1]
            properties = await self._client.get_form_fields(app)
            if self._mode is WritebackMode.SUBTABLE:
                table = properties.get(self._table)
                properties = table.get("fields") or {} if isinstance(table, Mapping) else {}
            present = frozenset(properties)
            self._present[app] = (time.monotonic(), present)
            return present
