"""kintone write-back: drains the outbox, so each finished call lands on its customer record
exactly once (CONTRACT.md section 6).

The recorder writes a job into ``kintone_outbox`` in the transaction that records a call's
end; nothing is sent to kintone from inside that transaction. This worker claims due jobs with
a lease (``FOR UPDATE SKIP LOCKED``, so several recorders share the work), writes them, and
marks them done, retries them later, or parks them with the reason.

Exactly once on kintone, whatever crashes where:

- subtable mode reads the record, skips calls whose CallSid is already in the table, appends
  the rest while sending every existing row id (kintone deletes rows left out), and updates
  with the revision it read; on 409 ``GAIA_CO02`` (someone edited the record meanwhile, or our
  own timed-out write was applied after all) it reads again and re-checks;
- app mode upserts one record per call keyed by the unique CallSid field: repeating it is safe.

An inbound call (CONTRACT.md section 9) has no record of its own: one records query in the
customer app finds the caller's records (by phone number or LINE user id), and the call lands
on each of them (subtable mode) or in one call-log record naming the lowest (app mode). What the
lookup found is kept with the job, so a retry writes to the same records without asking again.
In subtable mode the query also returns each record's revision and history table, so a record
costs one update, not a read and an update.

With RECORDING or TRANSCRIPTION on, a call waits until it is settled and carries its transcript
and recording's file (CONTRACT.md section 11; service_layer/conversation_writeback.py).

A missed call (CONTRACT.md section 12) is marked so in its job (``calltrail kintone status``
lists those that matched nothing), and with ``MISSED_CALL_NOTIFY`` set its job is done only once
each matched record also carries the call's comment (service_layer/missed_calls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from prometheus_client import CollectorRegistry

from services.common.logging import get_logger
from services.recorder.adapters.kintone import (
    MAX_RECORDS_PER_REQUEST,
    KintoneClient,
    KintoneConflictError,
    KintoneError,
    KintoneValidationError,
)
from services.recorder.adapters.outbox import NOT_A_NUMBER, KintoneOutbox
from services.recorder.adapters.storage import is_outage
from services.recorder.domain.customer_lookup import (
    MAX_RECORDS,
    identify_caller,
    lookup_fields_wanted,
    lookup_query,
    matching_records,
    record_id,
)
from services.recorder.domain.history import (
    CallSummary,
    WritebackMode,
    call_log_record,
    history_row,
    summarise,
)
from services.recorder.domain.outbox import Job
from services.recorder.metrics import RecorderMetrics
from services.recorder.service_layer.conversation_writeback import (
    AttachError,
    ConversationWriter,
    RecordingMedia,
)
from services.recorder.service_layer.missed_calls import MissedCallNotifier
from services.recorder.settings import KintoneSettings

log = get_logger(__name__)

CONFLICT_REREADS = 5
MAX_RETRY_DELAY_S = 300


def _log_each(
    method: Callable[..., Any], event: str, jobs: Iterable[Job], **fields: object
) -> None:
    """One line per call, each with its call_sid, so one grep tells a call's whole story."""
    for job in jobs:
        method(
            event,
            call_sid=job.call_sid,
            app=job.app_id,
            record=job.record_id,
            attempts=job.attempts,
            **fields,
        )


def _lowest(record_ids: Sequence[int] | None) -> int | None:
    """The record an inbound call's call-log record names: the lowest it matched."""
    return min(record_ids) if record_ids else None


class ParkError(Exception):
    """A job that retrying cannot fix (reason in the message)."""


def _as_read(record: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], int] | None:
    """A record as the lookup returned it, with its revision, if it came with one."""
    cell = record.get("$revision") if record is not None else None
    value = str(cell.get("value", "")) if isinstance(cell, Mapping) else ""
    return (record, int(value)) if record is not None and value.isdigit() else None


class WritebackWorker:
    def __init__(
        self,
        outbox: KintoneOutbox,
        client: KintoneClient,
        settings: KintoneSettings,
        *,
        batch_size: int = 500,
        poll_s: float = 1.0,
        lease_s: float = 120.0,
        home_region: str = "JP",
        zone: ZoneInfo | None = None,
        metrics: RecorderMetrics | None = None,
        media: RecordingMedia | None = None,
    ) -> None:
        """``zone``: the time zone a missed call's comment says its time in (BILLING_TZ).
        ``media``: Twilio's recordings, for their files (RECORDING=dual)."""
        self._outbox = outbox
        self._metrics = metrics or RecorderMetrics(CollectorRegistry())
        self._client = client
        self._mode = settings.kintone_writeback
        self._table = settings.kintone_history_table
        self._call_log_app = settings.kintone_call_log_app
        self._fields = settings.history_fields()
        self._lookup_fields = settings.lookup_fields()
        self._home_region = home_region
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._lease_s = lease_s
        mentions = settings.missed_call_mentions()
        self._notifier = (
            MissedCallNotifier(
                outbox, client, mentions, zone or ZoneInfo("Asia/Tokyo"), home_region
            )
            if mentions
            else None
        )
        self._conversation = (
            ConversationWriter(outbox, client, settings, media)
            if settings.recording_on or settings.transcription_on
            else None
        )

    async def run(self, stopping: asyncio.Event) -> None:
        log.info("kintone_writeback_started", mode=self._mode.value)
        while not stopping.is_set():
            try:
                handled = await self.run_once()
                # One indexed query a round (not a job): what the age alert watches.
                self._metrics.writeback_waiting_since(await self._outbox.oldest_pending())
            except Exception as exc:
                # kintone's own errors settle the jobs they hit (run_once); what reaches here
                # is the database. Away: try again shortly. Anything else is a bug: let it
                # stop the process (non-zero), rather than spin on it quietly.
                if not is_outage(exc):
                    raise
                log.warning("kintone_writeback_failed", error=repr(exc))
                handled = 0
            if not handled:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):
                        await stopping.wait()

    async def run_once(self) -> int:
        """Claim the due jobs and write them; returns how many were claimed."""
        jobs = await self._claim()
        if not jobs:
            return 0
        claimed = len(jobs)
        summaries = await self._summaries(jobs)
        orphans = [job for job in jobs if job.call_sid not in summaries]
        if orphans:
            await self._settle(orphans, ParkError("no legs recorded for this call"))
            jobs = [job for job in jobs if job.call_sid in summaries]
        if self._conversation is not None:
            jobs = await self._conversation.settle(jobs, summaries)
        missed = [job.call_sid for job in jobs if summaries[job.call_sid].missed]
        if missed:
            await self._outbox.mark_missed(missed)
        inbound = [job for job in jobs if job.inbound]
        if self._mode is WritebackMode.APP:
            found = await asyncio.gather(
                *(self._customer_of(job, summaries[job.call_sid]) for job in inbound)
            )
            matched = {
                job.call_sid: ids
                for job, ids in zip(inbound, found, strict=True)
                if ids is not None
            }
            ready = [job for job in jobs if not job.inbound or job.call_sid in matched]
            await self._write_call_log(ready, summaries, matched)
        else:
            await self._write_histories(jobs, summaries)
        return claimed

    async def _write_histories(
        self, jobs: Sequence[Job], summaries: Mapping[str, CallSummary]
    ) -> None:
        """Subtable mode: look the inbound callers up, then one update per record for every
        call landing on it, outbound or inbound (an inbound call may land on several). A
        record the lookup returned is not read again: the update carries its revision."""
        inbound = [job for job in jobs if job.inbound]
        looked = await asyncio.gather(
            *(self._lookup_or_settle(job, summaries[job.call_sid]) for job in inbound)
        )
        groups: dict[tuple[int, int], list[Job]] = defaultdict(list)
        reads: dict[tuple[int, int], tuple[Mapping[str, Any], int]] = {}
        unmatched: list[Job] = []
        matched_of: dict[str, list[int]] = {}
        for job in jobs:
            if job.record_id is not None:
                groups[(job.app_id, job.record_id)].append(job)
        for job, found in zip(inbound, looked, strict=True):
            if found is None:
                continue  # the lookup failed: settled already
            matched, fresh = found
            matched_of[job.call_sid] = matched
            if not matched:
                unmatched.append(job)
            for rid in matched:
                key = (job.app_id, rid)
                groups[key].append(job)
                read = _as_read(fresh.get(rid))
                if read is not None and (key not in reads or read[1] > reads[key][1]):
                    reads[key] = read
        errors = await asyncio.gather(
            *(
                self._write_history(app, record, group, summaries, reads.get((app, record)))
                for (app, record), group in groups.items()
            )
        )
        failed: dict[str, tuple[Job, BaseException]] = {}
        for group, error in zip(groups.values(), errors, strict=True):
            for job in group:
                if error is not None:
                    failed.setdefault(job.call_sid, (job, error))
        for job, reason in failed.values():
            await self._settle([job], reason)
        written = {job.call_sid: job for group in groups.values() for job in group}
        done = [job for sid, job in written.items() if sid not in failed] + unmatched
        for job in unmatched:
            log.warning("kintone_call_unmatched", call_sid=job.call_sid, app=job.app_id)
        await self._finish(done, summaries, matched_of)

    async def _finish(
        self,
        jobs: Sequence[Job],
        summaries: Mapping[str, CallSummary],
        matched: Mapping[str, Sequence[int]],
    ) -> None:
        """Jobs whose call is on kintone: done, once a missed call's records also carry its
        comment (``MISSED_CALL_NOTIFY``); a comment that failed retries the job. The files
        they carry are noted first (and deleted from Twilio if so set)."""
        if self._conversation is not None:
            unfinished = await self._conversation.confirm([job.call_sid for job in jobs])
            for job in jobs:
                if job.call_sid in unfinished:
                    await self._settle([job], unfinished[job.call_sid])
            jobs = [job for job in jobs if job.call_sid not in unfinished]
        notifier = self._notifier
        if notifier is None:
            await self._settle(jobs, None)
            return
        told = [job for job in jobs if summaries[job.call_sid].missed and matched.get(job.call_sid)]
        errors = await asyncio.gather(
            *(notifier.notify(job, summaries[job.call_sid], matched[job.call_sid]) for job in told)
        )
        failed = {job.call_sid: error for job, error in zip(told, errors, strict=True) if error}
        for job in told:
            if job.call_sid in failed:
                await self._settle([job], failed[job.call_sid])
        await self._settle([job for job in jobs if job.call_sid not in failed], None)

    # --- database ---------------------------------------------------------------------------

    async def _claim(self) -> list[Job]:
        jobs, parked = await self._outbox.claim(
            by_record=self._mode is not WritebackMode.APP,
            limit=self._batch_size,
            lease_s=self._lease_s,
        )
        self._metrics.writebacks.labels("parked").inc(len(parked))
        for call_sid in parked:
            log.error("kintone_call_parked", call_sid=call_sid, reason=NOT_A_NUMBER)
        return jobs

    async def _summaries(self, jobs: Sequence[Job]) -> dict[str, CallSummary]:
        roots = [job.call_sid for job in jobs]
        by_root: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for leg in await self._outbox.legs_of(roots):
            by_root[leg["parent_call_sid"] or leg["call_sid"]].append(leg)
        summaries = {root: summarise(root, by_root[root]) for root in roots if by_root[root]}
        # A missed call whose caller left a voicemail is 留守電, its lines in the comment.
        missed = [root for root, summary in summaries.items() if summary.missed]
        if missed:
            for root, lines in (await self._outbox.voicemails(missed)).items():
                summaries[root] = summarise(root, by_root[root], voicemail=lines)
        return summaries

    async def _settle(self, jobs: Sequence[Job], error: BaseException | None) -> None:
        if not jobs:
            return
        call_sids = [job.call_sid for job in jobs]
        if error is None:
            await self._outbox.mark_done(call_sids)
            self._metrics.writebacks.labels("written").inc(len(jobs))
            _log_each(log.info, "kintone_call_written", jobs)
        elif isinstance(error, ParkError) or (
            isinstance(error, KintoneError)
            and not error.retryable
            and not isinstance(error, KintoneConflictError)
        ):
            await self._outbox.mark_parked(call_sids, str(error))
            self._metrics.writebacks.labels("parked").inc(len(jobs))
            _log_each(log.error, "kintone_call_parked", jobs, reason=str(error))
        else:
            reason = str(error) or repr(error)
            await self._outbox.mark_retry(call_sids, reason, MAX_RETRY_DELAY_S)
            self._metrics.writebacks.labels("retried").inc(len(jobs))
            _log_each(log.warning, "kintone_call_retry", jobs, reason=reason)

    # --- subtable mode -------------------------------------------------------------------------

    async def _write_history(
        self,
        app: int,
        record_id: int,
        jobs: Sequence[Job],
        summaries: Mapping[str, CallSummary],
        read: tuple[Mapping[str, Any], int] | None = None,
    ) -> KintoneError | ParkError | AttachError | None:
        """The calls onto one record; returns what went wrong, if anything."""
        try:
            # The client's own lines (retries, 429s) then say which calls they carry.
            with structlog.contextvars.bound_contextvars(call_sids=[j.call_sid for j in jobs]):
                await self.append_history(
                    app, record_id, [summaries[j.call_sid] for j in jobs], read
                )
        except (KintoneError, ParkError, AttachError) as exc:
            return exc
        return None

    async def append_history(
        self,
        app: int,
        record_id: int,
        calls: Sequence[CallSummary],
        read: tuple[Mapping[str, Any], int] | None = None,
    ) -> int:
        """Append the calls missing from the record's history table; returns rows added.
        ``read``: the record and revision already in hand (from the customer lookup)."""
        for _ in range(CONFLICT_REREADS):
            if read is not None:
                record, revision = read
                read = None
            else:
                record, revision = await self._client.get_record(app, record_id)
            table = record.get(self._table)
            if not isinstance(table, Mapping) or table.get("type", "SUBTABLE") != "SUBTABLE":
                raise ParkError(
                    f"app {app} has no table field {self._table!r} (KINTONE_HISTORY_TABLE)"
                )
            rows = table.get("value") or []
            present = {
                (row.get("value") or {}).get(self._fields.call_sid, {}).get("value"): row
                for row in rows
            }
            missing = [call for call in calls if call.call_sid not in present]
            # A call already on the record may have more to say (its conversation, late).
            changed = await self._conversation_changes(app, calls, present)
            if not missing and not changed:
                return 0
            value = [
                {"id": row["id"], "value": changed[row["id"]]}
                if row["id"] in changed
                else {"id": row["id"]}
                for row in rows
            ] + [await self._new_row(app, c) for c in missing]
            try:
                await self._client.update_record(
                    app, record_id, {self._table: {"value": value}}, revision
                )
            except KintoneConflictError:
                continue  # someone else wrote meanwhile (or our own retry did): read again
            return len(missing)
        raise KintoneConflictError(409, "GAIA_CO02", f"record {record_id} kept changing")

    async def _new_row(self, app: int, call: CallSummary) -> dict[str, Any]:
        row = history_row(call, self._fields)
        if self._conversation is not None:
            row["value"] |= await self._conversation.cells(app, call.call_sid)
        return row

    async def _conversation_changes(
        self, app: int, calls: Sequence[CallSummary], present: Mapping[Any, Mapping[str, Any]]
    ) -> dict[Any, dict[str, Any]]:
        """Row id → the cells to rewrite, for the calls already on the record whose
        conversation says more than their row."""
        if self._conversation is None:
            return {}
        changed: dict[Any, dict[str, Any]] = {}
        for call in calls:
            row = present.get(call.call_sid)
            if row is not None:
                cells = await self._conversation.cells(app, call.call_sid, row.get("value") or {})
                if cells:
                    changed[row["id"]] = cells
        return changed

    # --- inbound calls: the customer lookup ---------------------------------------------------

    async def _lookup(
        self, job: Job, summary: CallSummary, extra: Sequence[str]
    ) -> tuple[list[int], dict[int, Mapping[str, Any]]]:
        """The customer records this call matches, by id (oldest first), and, when the query
        ran now, the records as it returned them. One query per call, ever: its answer is
        kept with the job. A caller with no number or LINE id to go by matches nothing."""
        if job.matched is not None:
            return list(job.matched), {}
        caller = identify_caller(summary.caller, summary.line_user_id, self._home_region)
        found: list[Mapping[str, Any]] = []
        if caller is not None:
            records, _ = await self._client.get_records(
                job.app_id,
                lookup_query(caller, self._lookup_fields),
                lookup_fields_wanted(self._lookup_fields, caller, extra),
            )
            found = matching_records(records, caller, self._lookup_fields, self._home_region)
            if len(records) >= MAX_RECORDS:
                # kintone returns at most 500: more records hold the number's groups
                # than one query can return; matches beyond them are missed.
                log.warning("kintone_lookup_truncated", call_sid=job.call_sid, app=job.app_id)
        by_id = {rid: r for r in found if (rid := record_id(r)) is not None}
        await self._outbox.set_matched(job.call_sid, list(by_id))
        log.info(
            "kintone_customer_lookup",
            call_sid=job.call_sid,
            app=job.app_id,
            by="none" if caller is None else type(caller).__name__,
            matched=list(by_id),
        )
        return list(by_id), by_id

    async def _lookup_or_settle(
        self, job: Job, summary: CallSummary
    ) -> tuple[list[int], dict[int, Mapping[str, Any]]] | None:
        """Subtable mode's lookup, asking for each record's revision and history table too;
        None when it failed (the job is settled: retried later, or parked)."""
        try:
            with structlog.contextvars.bound_contextvars(call_sids=[job.call_sid]):
                return await self._lookup(job, summary, ["$revision", self._table])
        except KintoneError as exc:
            await self._settle([job], exc)
            return None

    async def _customer_of(self, job: Job, summary: CallSummary) -> list[int] | None:
        """App mode: the matching records (empty: none), or None when the lookup failed (the
        job is settled: retried later, or parked)."""
        try:
            with structlog.contextvars.bound_contextvars(call_sids=[job.call_sid]):
                matched, _ = await self._lookup(job, summary, [])
        except KintoneError as exc:
            await self._settle([job], exc)
            return None
        return matched

    # --- call-log app mode -----------------------------------------------------------------------

    async def _write_call_log(
        self,
        jobs: Sequence[Job],
        summaries: Mapping[str, CallSummary],
        matched: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """``matched``: an inbound call's customer records (the lowest goes on its record)."""
        ready = list(jobs)
        extra: dict[str, dict[str, Any]] = {}
        if self._conversation is not None:
            ready, extra = await self._call_log_conversations(ready)
        chunks = [
            ready[i : i + MAX_RECORDS_PER_REQUEST]
            for i in range(0, len(ready), MAX_RECORDS_PER_REQUEST)
        ]
        await asyncio.gather(
            *(self._upsert_chunk(chunk, summaries, matched or {}, extra) for chunk in chunks)
        )

    async def _call_log_conversations(
        self, jobs: Sequence[Job]
    ) -> tuple[list[Job], dict[str, dict[str, Any]]]:
        """Each call's conversation cells for its call-log record (uploading its files); a call
        whose file or the app's fields could not be had is retried, the others go ahead."""
        assert self._conversation is not None
        assert self._call_log_app is not None
        conversation, app = self._conversation, self._call_log_app
        found = await asyncio.gather(
            *(conversation.cells(app, job.call_sid) for job in jobs), return_exceptions=True
        )
        ready: list[Job] = []
        cells: dict[str, dict[str, Any]] = {}
        for job, answer in zip(jobs, found, strict=True):
            if isinstance(answer, (KintoneError, AttachError)):
                await self._settle([job], answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                cells[job.call_sid] = answer
                ready.append(job)
        return ready, cells

    async def _upsert_chunk(
        self,
        jobs: Sequence[Job],
        summaries: Mapping[str, CallSummary],
        matched: Mapping[str, Sequence[int]],
        extra: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """``extra``: each call's conversation cells."""
        assert self._call_log_app is not None
        records = [
            (
                job.call_sid,
                call_log_record(
                    summaries[job.call_sid],
                    _lowest(matched.get(job.call_sid)) if job.inbound else job.record_id,
                    self._fields,
                )
                | dict(extra.get(job.call_sid, {})),
            )
            for job in jobs
        ]
        try:
            with structlog.contextvars.bound_contextvars(call_sids=[j.call_sid for j in jobs]):
                await self._client.upsert_records(
                    self._call_log_app, self._fields.call_sid, records
                )
        except KintoneValidationError as exc:
            if len(jobs) == 1:
                await self._settle(jobs, exc)
                return
            # kintone refuses the whole request for one bad record: find it, send the rest.
            for job in jobs:
                await self._upsert_chunk([job], summaries, matched, extra)
        except KintoneError as exc:
            await self._settle(jobs, exc)
        else:
            await self._finish(jobs, summaries, matched)
