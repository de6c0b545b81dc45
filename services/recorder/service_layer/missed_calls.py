"""Someone is told of a missed call (CONTRACT.md section 12): one kintone record comment on each
customer record the call matched, mentioning ``MISSED_CALL_NOTIFY``, exactly once per call and
record. The write-back worker runs it for a missed call's job once the call is on kintone.

A comment cannot be upserted (no key, no revision), and kintone may store one and still answer
500, or the recorder may die between the post and the job's commit. So:

- before the call's first post the job says so in the database (``notified_record_ids`` turns
  from null to empty): until then no comment of this call can be on kintone, and the first
  attempt posts without reading (one request per record);
- every later attempt reads each record's comments, newest first, for the CallSid before
  posting to it (two requests at most per record); records known to carry the comment are kept
  with the job and never read or posted again;
- the client never repeats a comment post on its own except after 429 (kintone refused it
  before doing anything): a 5xx or a lost answer fails the job, whose retry reads first.

A mention kintone refuses (an entity it does not know) costs one more post without it, and a
log line naming it; the worker then leaves it out of its later comments until it restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from services.common.logging import get_logger
from services.recorder.adapters.kintone import (
    MAX_COMMENTS_PER_REQUEST,
    KintoneClient,
    KintoneError,
)
from services.recorder.domain.customer_lookup import LineCaller, identify_caller
from services.recorder.domain.history import CallSummary
from services.recorder.domain.missed import (
    Mention,
    comment_text,
    mentions_call,
    readable_number,
    refused_mentions,
)
from services.recorder.domain.outbox import Job

log = get_logger(__name__)

# kintone's clock and ours differ a little: a comment is looked for back to this long before
# the call started, then the read stops (older comments cannot be this call's).
CLOCK_SKEW = timedelta(minutes=5)


class NotifiedRecords(Protocol):
    async def start_notifying(self, call_sid: str) -> None: ...

    async def add_notified(self, call_sid: str, record_ids: Sequence[int]) -> None: ...


def _created_at(comment: dict[str, object]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(comment.get("createdAt")).replace("Z", "+00:00"))
    except ValueError:
        return None


class MissedCallNotifier:
    def __init__(
        self,
        outbox: NotifiedRecords,
        client: KintoneClient,
        mentions: Sequence[Mention],
        zone: ZoneInfo,
        home_region: str = "JP",
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._mentions = tuple(mentions)
        self._zone = zone
        self._home_region = home_region
        self._refused: set[Mention] = set()  # refused by kintone since this worker started

    async def notify(
        self, job: Job, summary: CallSummary, records: Sequence[int]
    ) -> KintoneError | None:
        """The call's comment on each of ``records`` that does not carry it yet; returns what
        went wrong (the job is then retried), after keeping what went right."""
        told = set(job.notified or ())
        todo = [rid for rid in records if rid not in told]
        if not todo:
            return None
        if job.notified is None:
            await self._outbox.start_notifying(job.call_sid)
        caller = identify_caller(summary.caller, summary.line_user_id, self._home_region)
        text = comment_text(
            call_sid=summary.call_sid,
            caller=readable_number(
                summary.caller,
                caller.user_id if isinstance(caller, LineCaller) else None,
                self._home_region,
            ),
            started_at=summary.started_at,
            zone=self._zone,
            voicemail=summary.voicemail,
        )
        read_first = job.notified is not None
        outcomes = await asyncio.gather(
            *(self._notify_record(job, rid, text, summary, read_first) for rid in todo)
        )
        done = [rid for rid, error in zip(todo, outcomes, strict=True) if error is None]
        if done:
            await self._outbox.add_notified(job.call_sid, done)
        return next((error for error in outcomes if error is not None), None)

    async def _notify_record(
        self, job: Job, record_id: int, text: str, summary: CallSummary, read_first: bool
    ) -> KintoneError | None:
        try:
            if read_first and await self._already_there(job, record_id, summary):
                log.info("kintone_comment_found", call_sid=job.call_sid, record=record_id)
                return None
            await self._post(job, record_id, text)
        except KintoneError as exc:
            return exc
        return None

    async def _already_there(self, job: Job, record_id: int, summary: CallSummary) -> bool:
        """Whether the record's comments hold the CallSid. Newest first: comments posted
        meanwhile push older ones to later pages, so paging never skips one; it stops at the
        first page older than the call."""
        since = summary.started_at - CLOCK_SKEW if summary.started_at else None
        offset = 0
        while True:
            comments, older = await self._client.get_comments(
                job.app_id, record_id, order="desc", offset=offset
            )
            if mentions_call(comments, job.call_sid):
                return True
            oldest = _created_at(comments[-1]) if comments else None
            if not older or not comments or (since and oldest and oldest < since):
                return False
            offset += MAX_COMMENTS_PER_REQUEST

    async def _post(self, job: Job, record_id: int, text: str) -> None:
        mentions = [m for m in self._mentions if m not in self._refused]
        sent = mentions
        try:
            await self._client.add_comment(
                job.app_id, record_id, text, [m.as_kintone() for m in mentions]
            )
        except KintoneError as exc:
            if exc.status != 400 or not mentions:
                raise
            # kintone refuses the whole comment for one entity it does not know: post it
            # without the ones it names (all of them if it names none), once.
            refused = refused_mentions(mentions, exc.errors, exc.message)
            self._refused.update(refused)
            log.warning(
                "kintone_comment_mention_refused",
                call_sid=job.call_sid,
                app=job.app_id,
                record=record_id,
                refused=[str(m) for m in refused],
                error=str(exc),
            )
            sent = [m for m in mentions if m not in refused]
            await self._client.add_comment(
                job.app_id, record_id, text, [m.as_kintone() for m in sent]
            )
        log.info(
            "kintone_comment_posted",
            call_sid=job.call_sid,
            app=job.app_id,
            record=record_id,
            mentions=[str(m) for m in sent],
        )
