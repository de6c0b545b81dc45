"""The kintone outbox in PostgreSQL: claim due jobs with a lease, read their calls' legs,
settle them; and the counts ``calltrail kintone status`` shows.

Jobs are written in the recorder's batch transaction (adapters/repository.py); this module
is everything the write-back worker and the admin commands do with them afterwards. Claims use
``FOR UPDATE SKIP LOCKED`` and a lease, so several recorders share the work and a job whose
worker died is claimed again once its lease runs out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.recorder.domain.conversation import (
    CallConversation,
    RecordingFile,
    RecordingStatus,
    Speaker,
    TranscriptionStatus,
)
from services.recorder.domain.missed import (
    CallerSaid,
    VoicemailRecording,
    voicemail_left,
    voicemail_lines,
)
from services.recorder.domain.outbox import Job, OutboxState

# The f-strings below only join constants of this module and OutboxState's values: nothing
# from outside reaches them.


def _due(o: str = "") -> str:
    """A pending job whose time has come and whose lease (if any) ran out."""
    return (
        f"{o}state = '{OutboxState.PENDING}' AND {o}available_at <= now()"
        f" AND ({o}leased_until IS NULL OR {o}leased_until < now())"
    )


_LEASE = """
UPDATE kintone_outbox o
SET leased_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
WHERE o.call_sid IN (SELECT call_sid FROM claimed)
RETURNING o.call_sid, o.kintone_app_id, o.kintone_record_id, o.attempts, o.direction,
          o.matched_record_ids, o.notified_record_ids, o.created_at
"""
# The f-strings below only join constants of this module: nothing from outside reaches them.
# Call-log app mode: the oldest due jobs (500, a multiple of 100: full upserts).
CLAIM_OLDEST = f"""
WITH claimed AS (
    SELECT call_sid FROM kintone_outbox WHERE {_due()}
    ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
{_LEASE}"""  # noqa: S608
# Subtable mode: the oldest due jobs, plus every other due job for the same kintone records,
# so that calls ending on one record go out in one update (time order still decides which
# records go first, so none starves).
CLAIM_BY_RECORD = f"""
WITH oldest AS (
    SELECT call_sid, kintone_app_id, kintone_record_id FROM kintone_outbox WHERE {_due()}
    ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED
), same_record AS (
    SELECT o.call_sid FROM kintone_outbox o
    JOIN (SELECT DISTINCT kintone_app_id, kintone_record_id FROM oldest) r
      USING (kintone_app_id, kintone_record_id)
    WHERE {_due("o.")}
    LIMIT $1 * 4 FOR UPDATE OF o SKIP LOCKED
), claimed AS (
    SELECT call_sid FROM oldest UNION SELECT call_sid FROM same_record
)
{_LEASE}"""  # noqa: S608
LEGS = """
SELECT call_sid, parent_call_sid, leg, status, direction, from_number, to_number, started_at,
       answered_at, duration_s, charge, user_identity, line_user_id
FROM calls WHERE call_sid = ANY($1::text[]) OR parent_call_sid = ANY($1::text[])
"""
# A call's conversation for the settled write-back (CONTRACT.md section 11): its utterances in
# spoken order (as the call_transcripts view orders them), its recordings' and transcriptions'
# statuses.
UTTERANCES = """
SELECT s.call_sid, s.speaker, s.text
FROM transcript_segments s JOIN transcriptions t USING (transcription_sid)
WHERE s.call_sid = ANY($1::text[])
ORDER BY s.call_sid, t.started_at NULLS LAST, s.transcription_sid, s.sequence_id
"""
CONVERSATION_STATES = """
SELECT 'recording', call_sid, status FROM recordings WHERE call_sid = ANY($1::text[])
UNION ALL
SELECT 'transcription', call_sid, status FROM transcriptions WHERE call_sid = ANY($1::text[])
"""
# Its completed recordings, for the file on its row.
RECORDING_FILES = """
SELECT recording_sid, call_sid, media_url, kintone_file_key, kintone_file_error,
       deleted_from_twilio_at IS NOT NULL
FROM recordings WHERE call_sid = ANY($1::text[]) AND status = 'completed'
ORDER BY call_sid, started_at NULLS LAST, recording_sid
"""
SET_FILE_KEY = """
UPDATE recordings SET kintone_file_key = $2, kintone_file_error = NULL, updated_at = now()
WHERE recording_sid = $1
"""
SET_FILE_ERROR = """
UPDATE recordings SET kintone_file_error = $2, updated_at = now() WHERE recording_sid = $1
"""
SET_DELETED = """
UPDATE recordings SET deleted_from_twilio_at = now(), updated_at = now()
WHERE recording_sid = $1 AND deleted_from_twilio_at IS NULL
"""
# Recordings written without their file after the retries (``calltrail kintone status``).
UNATTACHED = """
SELECT call_sid, recording_sid, kintone_file_error FROM recordings
WHERE kintone_file_error IS NOT NULL ORDER BY call_sid, recording_sid
"""
# A call not settled yet (CONTRACT.md section 11): looked at again shortly, or when its settle
# timeout runs out, whichever is first; waiting is not an attempt. created_at is when the
# call's end was recorded.
DEFER = """
UPDATE kintone_outbox
SET available_at = least(created_at + make_interval(secs => $2), now() + make_interval(secs => $3)),
    attempts = greatest(attempts - 1, 0), leased_until = NULL
WHERE call_sid = ANY($1::text[])
"""
SET_MATCHED = """
UPDATE kintone_outbox SET matched_record_ids = $2::bigint[] WHERE call_sid = $1
"""
# Inbound calls that matched no customer record (subtable mode: written nowhere).
_UNMATCHED = f"""direction = 'inbound' AND state = '{OutboxState.DONE}'
  AND matched_record_ids = '{{}}'"""
UNMATCHED = f"""
SELECT call_sid FROM kintone_outbox WHERE {_UNMATCHED} ORDER BY created_at, call_sid
"""  # noqa: S608
# Of those, the missed calls (CONTRACT.md section 12): nobody was told on a record.
MISSED_UNMATCHED = f"""
SELECT call_sid FROM kintone_outbox WHERE missed AND {_UNMATCHED} ORDER BY created_at, call_sid
"""  # noqa: S608
MARK_MISSED = "UPDATE kintone_outbox SET missed = true WHERE call_sid = ANY($1::text[])"
# Before a call's first comment: from now on a comment may be on kintone, so every later
# attempt reads a record's comments before posting to it.
START_NOTIFYING = """
UPDATE kintone_outbox SET notified_record_ids = '{}'
WHERE call_sid = $1 AND notified_record_ids IS NULL
"""
ADD_NOTIFIED = """
UPDATE kintone_outbox
SET notified_record_ids = ARRAY(
    SELECT DISTINCT unnest(coalesce(notified_record_ids, '{}') || $2::bigint[]) ORDER BY 1)
WHERE call_sid = $1
"""
MARK_DONE = f"""
UPDATE kintone_outbox
SET state = '{OutboxState.DONE}', done_at = now(), leased_until = NULL, last_error = NULL
WHERE call_sid = ANY($1::text[])
"""  # noqa: S608
MARK_RETRY = """
UPDATE kintone_outbox
SET available_at = now() + make_interval(secs => least(power(2, attempts), $3)),
    leased_until = NULL, last_error = $2
WHERE call_sid = ANY($1::text[])
"""
MARK_PARKED = f"""
UPDATE kintone_outbox SET state = '{OutboxState.PARKED}', leased_until = NULL, last_error = $2
WHERE call_sid = ANY($1::text[])
"""  # noqa: S608
STATE_COUNTS = "SELECT state, count(*) FROM kintone_outbox GROUP BY state"
PARKED_REASONS = f"""
SELECT last_error, count(*) FROM kintone_outbox WHERE state = '{OutboxState.PARKED}'
GROUP BY last_error ORDER BY count(*) DESC
"""  # noqa: S608
OLDEST_PENDING = f"SELECT min(created_at) FROM kintone_outbox WHERE state = '{OutboxState.PENDING}'"  # noqa: S608
# An inbound call looks its customers up again after the fix (the CallSid check in each
# record's table keeps the rows already written from being written twice).
REQUEUE_PARKED = f"""
UPDATE kintone_outbox SET state = '{OutboxState.PENDING}', available_at = now(), attempts = 0,
    leased_until = NULL, last_error = NULL, matched_record_ids = NULL
WHERE state = '{OutboxState.PARKED}' AND ($1::text[] IS NULL OR call_sid = ANY($1::text[]))
"""  # noqa: S608
NOT_A_NUMBER = "app or record id is not a number"
# Missed calls' voicemails (CONTRACT.md section 12): each voicemail recording, and what the
# caller said on the call (domain/missed.py picks the voicemail's lines).
VOICEMAIL_RECORDINGS = """
SELECT call_sid, status, duration_s, started_at FROM recordings
WHERE call_sid = ANY($1::text[]) AND source = 'voicemail'
"""
CALLER_SAID = """
SELECT s.call_sid, s.transcription_sid, t.started_at, s.sequence_id, s.spoken_at, s.text
FROM transcript_segments s JOIN transcriptions t USING (transcription_sid)
WHERE s.call_sid = ANY($1::text[]) AND s.speaker = 'customer'
"""


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    counts: dict[OutboxState, int]
    parked_reasons: list[tuple[str, int]] = field(default_factory=list)
    oldest_pending: datetime | None = None
    unmatched: list[str] = field(default_factory=list)  # inbound calls, no customer matched
    missed: list[str] = field(default_factory=list)  # of those, missed: nobody was told
    # Recordings written without their file after the retries: (call, recording, why).
    unattached: list[tuple[str, str, str]] = field(default_factory=list)


class KintoneOutbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(
        self, *, by_record: bool, limit: int, lease_s: float
    ) -> tuple[list[Job], list[str]]:
        """Lease the due jobs: the oldest ``limit`` (and, ``by_record``, every other due job of
        the same records). Returns the jobs, and the CallSids parked because their ids are not
        kintone ids."""
        claim = CLAIM_BY_RECORD if by_record else CLAIM_OLDEST
        async with self._engine.begin() as conn:
            rows = await conn.exec_driver_sql(claim, (limit, lease_s))
            jobs: list[Job] = []
            parked: list[str] = []
            for row in map(tuple, rows):
                call_sid, app, record, attempts, direction, matched, notified, created = row
                if direction == "inbound" and app.isdigit():
                    found = None if matched is None else tuple(int(m) for m in matched)
                    told = None if notified is None else tuple(int(n) for n in notified)
                    jobs.append(Job(call_sid, int(app), None, attempts, True, found, told, created))
                elif app.isdigit() and record is not None and record.isdigit():
                    jobs.append(Job(call_sid, int(app), int(record), attempts, ended_at=created))
                else:
                    parked.append(call_sid)
            if parked:
                await conn.exec_driver_sql(MARK_PARKED, (parked, NOT_A_NUMBER))
        return jobs, parked

    async def legs_of(self, roots: Sequence[str]) -> list[dict[str, Any]]:
        """Every leg of these calls (root CallSids), as mappings of column → value."""
        async with self._engine.connect() as conn:
            result = await conn.exec_driver_sql(LEGS, (list(roots),))
            return [dict(row._mapping) for row in result]

    async def conversations(self, roots: Sequence[str]) -> dict[str, CallConversation]:
        """The conversation of each of these calls (root CallSids) that has one."""
        said: dict[str, list[tuple[Speaker | None, str]]] = defaultdict(list)
        recordings: dict[str, list[RecordingStatus]] = defaultdict(list)
        transcriptions: dict[str, list[TranscriptionStatus]] = defaultdict(list)
        async with self._engine.connect() as conn:
            for call_sid, speaker, text in map(
                tuple, await conn.exec_driver_sql(UTTERANCES, (list(roots),))
            ):
                said[call_sid].append((Speaker(speaker) if speaker else None, text))
            states = await conn.exec_driver_sql(CONVERSATION_STATES, (list(roots),))
            for kind, call_sid, status in map(tuple, states):
                if kind == "recording":
                    recordings[call_sid].append(RecordingStatus(status))
                else:
                    transcriptions[call_sid].append(TranscriptionStatus(status))
        return {
            root: CallConversation(
                tuple(said[root]), tuple(recordings[root]), tuple(transcriptions[root])
            )
            for root in roots
            if root in said or root in recordings or root in transcriptions
        }

    async def recording_files(self, roots: Sequence[str]) -> dict[str, list[RecordingFile]]:
        """The completed recordings of each of these calls (root CallSids) that has one."""
        files: dict[str, list[RecordingFile]] = defaultdict(list)
        async with self._engine.connect() as conn:
            rows = await conn.exec_driver_sql(RECORDING_FILES, (list(roots),))
            for sid, call_sid, url, file_key, error, deleted in map(tuple, rows):
                files[call_sid].append(RecordingFile(sid, call_sid, url, file_key, error, deleted))
        return dict(files)

    async def set_file_key(self, recording_sid: str, file_key: str) -> None:
        """kintone confirmed a write carrying this recording's file."""
        await self._execute(SET_FILE_KEY, recording_sid, file_key)

    async def set_file_error(self, recording_sid: str, reason: str) -> None:
        """The recording's row was written without its file, for this reason."""
        await self._execute(SET_FILE_ERROR, recording_sid, reason)

    async def set_deleted(self, recording_sid: str) -> None:
        """The recording was deleted from Twilio."""
        await self._execute(SET_DELETED, recording_sid)

    async def defer(self, call_sids: Sequence[str], timeout_s: float, poll_s: float) -> None:
        """Not settled yet: due again in ``poll_s``, or ``timeout_s`` after the call's end
        (if sooner); the claim's attempt is given back."""
        await self._execute(DEFER, list(call_sids), timeout_s, poll_s)

    async def set_matched(self, call_sid: str, record_ids: Sequence[int]) -> None:
        """Keep what an inbound call's lookup found, so a retry writes to the same records
        without looking again."""
        await self._execute(SET_MATCHED, call_sid, list(record_ids))

    async def mark_missed(self, call_sids: Sequence[str]) -> None:
        """These calls are missed calls (for ``calltrail kintone status``)."""
        await self._execute(MARK_MISSED, list(call_sids))

    async def start_notifying(self, call_sid: str) -> None:
        """Say, before the call's first comment is posted, that one may be on kintone."""
        await self._execute(START_NOTIFYING, call_sid)

    async def add_notified(self, call_sid: str, record_ids: Sequence[int]) -> None:
        """These records are known to carry the call's comment: never posted to again."""
        await self._execute(ADD_NOTIFIED, call_sid, list(record_ids))

    async def mark_done(self, call_sids: Sequence[str]) -> None:
        await self._execute(MARK_DONE, list(call_sids))

    async def mark_retry(self, call_sids: Sequence[str], reason: str, max_delay_s: int) -> None:
        await self._execute(MARK_RETRY, list(call_sids), reason, max_delay_s)

    async def mark_parked(self, call_sids: Sequence[str], reason: str) -> None:
        await self._execute(MARK_PARKED, list(call_sids), reason)

    async def _execute(self, sql: str, *args: object) -> None:
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(sql, tuple(args))

    async def oldest_pending(self) -> datetime | None:
        """When the oldest job still pending was created (its call's end), or None."""
        async with self._engine.connect() as conn:
            oldest: datetime | None = (await conn.exec_driver_sql(OLDEST_PENDING)).scalar()
            return oldest

    async def status(self) -> OutboxStatus:
        async with self._engine.connect() as conn:
            rows = await conn.exec_driver_sql(STATE_COUNTS)
            counts = {OutboxState(state): count for state, count in map(tuple, rows)}
            rows = await conn.exec_driver_sql(PARKED_REASONS)
            reasons = [(reason, count) for reason, count in map(tuple, rows)]
            oldest = (await conn.exec_driver_sql(OLDEST_PENDING)).scalar()
            unmatched = [row[0] for row in await conn.exec_driver_sql(UNMATCHED)]
            missed = [row[0] for row in await conn.exec_driver_sql(MISSED_UNMATCHED)]
            unattached = [tuple(row) for row in await conn.exec_driver_sql(UNATTACHED)]
        return OutboxStatus(
            counts={state: counts.get(state, 0) for state in OutboxState},
            parked_reasons=reasons,
            oldest_pending=oldest,
            unmatched=unmatched,
            missed=missed,
            unattached=[(str(c), str(r), str(e)) for c, r, e in unattached],
        )

    async def requeue_parked(self, call_sids: Sequence[str] = ()) -> int:
        """Put parked jobs back in the queue (all, or the ones named)."""
        async with self._engine.begin() as conn:
            result = await conn.exec_driver_sql(REQUEUE_PARKED, (list(call_sids) or None,))
            return int(result.rowcount)

    async def voicemails(self, roots: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Of these (missed) calls, the ones whose caller left a voicemail, with its lines (the
        transcript of the message as far as it is in)."""
        recordings: dict[str, list[VoicemailRecording]] = defaultdict(list)
        said: dict[str, list[CallerSaid]] = defaultdict(list)
        async with self._engine.connect() as conn:
            for call_sid, status, duration_s, started_at in map(
                tuple, await conn.exec_driver_sql(VOICEMAIL_RECORDINGS, (list(roots),))
            ):
                recordings[call_sid].append(VoicemailRecording(status, duration_s, started_at))
            left = [root for root, found in recordings.items() if voicemail_left(found)]
            if not left:
                return {}
            for call_sid, *utterance in map(
                tuple, await conn.exec_driver_sql(CALLER_SAID, (left,))
            ):
                said[call_sid].append(CallerSaid(*utterance))
        return {
            root: voicemail_lines(said[root], _earliest_start(recordings[root])) for root in left
        }


def _earliest_start(recordings: Sequence[VoicemailRecording]) -> datetime | None:
    starts = [r.started_at for r in recordings if r.started_at is not None]
    return min(starts) if starts else None
