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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.logging import get_logger
from services.recorder.adapters.kintone import (
    MAX_RECORDS_PER_REQUEST,
    KintoneClient,
    KintoneConflictError,
    KintoneError,
    KintoneValidationError,
)
from services.recorder.settings import KintoneSettings, WritebackMode

log = get_logger(__name__)

CONFLICT_REREADS = 5
MAX_RETRY_DELAY_S = 300


def _due(o: str = "") -> str:
    """A pending job whose time has come and whose lease (if any) ran out."""
    return (
        f"{o}state = 'pending' AND {o}available_at <= now()"
        f" AND ({o}leased_until IS NULL OR {o}leased_until < now())"
    )


_LEASE = """
UPDATE kintone_outbox o
SET leased_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
WHERE o.call_sid IN (SELECT call_sid FROM claimed)
RETURNING o.call_sid, o.kintone_app_id, o.kintone_record_id, o.attempts
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
SELECT call_sid, parent_call_sid, leg, status, to_number, started_at, duration_s, charge,
       user_identity
FROM calls WHERE call_sid = ANY($1::text[]) OR parent_call_sid = ANY($1::text[])
"""
MARK_DONE = """
UPDATE kintone_outbox SET state = 'done', done_at = now(), leased_until = NULL, last_error = NULL
WHERE call_sid = ANY($1::text[])
"""
MARK_RETRY = """
UPDATE kintone_outbox
SET available_at = now() + make_interval(secs => least(power(2, attempts), $3)),
    leased_until = NULL, last_error = $2
WHERE call_sid = ANY($1::text[])
"""
MARK_PARKED = """
UPDATE kintone_outbox SET state = 'parked', leased_until = NULL, last_error = $2
WHERE call_sid = ANY($1::text[])
"""


@dataclass(frozen=True, slots=True)
class Job:
    call_sid: str
    app_id: int
    record_id: int
    attempts: int


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


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What lands on kintone for one call."""

    call_sid: str  # the root (browser) leg's: the call as the salesperson made it
    started_at: datetime | None
    number: str | None
    result: str
    seconds: int | None
    charge: Decimal | None  # the sum of its legs' charges; None if none is rated yet
    user: str | None


@dataclass(frozen=True, slots=True)
class Fields:
    datetime: str
    number: str
    result: str
    seconds: str
    charge: str
    user: str
    call_sid: str
    customer_record: str

    @classmethod
    def from_settings(cls, settings: KintoneSettings) -> Fields:
        return cls(
            datetime=settings.kintone_field_datetime,
            number=settings.kintone_field_number,
            result=settings.kintone_field_result,
            seconds=settings.kintone_field_seconds,
            charge=settings.kintone_field_charge,
            user=settings.kintone_field_user,
            call_sid=settings.kintone_field_call_sid,
            customer_record=settings.kintone_field_customer_record,
        )


class ParkError(Exception):
    """A job that retrying cannot fix (reason in the message)."""


def kintone_datetime(moment: datetime | None) -> str:
    """kintone DATETIME values are written in UTC: YYYY-MM-DDTHH:MM:SSZ."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarise(root: str, legs: Iterable[Mapping[str, Any]]) -> CallSummary:
    """A call from its legs: the dialled (child) leg says number, result and duration."""
    legs = list(legs)
    children = sorted(
        (leg for leg in legs if leg["parent_call_sid"] == root), key=lambda leg: leg["call_sid"]
    )
    root_leg = next((leg for leg in legs if leg["call_sid"] == root), None)
    main = children[0] if children else root_leg
    assert main is not None, "a job always has at least one leg"
    charges = [leg["charge"] for leg in legs if leg["charge"] is not None]
    return CallSummary(
        call_sid=root,
        started_at=main["started_at"] or (root_leg["started_at"] if root_leg else None),
        number=main["to_number"],
        result=main["status"],
        seconds=main["duration_s"],
        charge=sum(charges, Decimal(0)) if charges else None,
        user=next((leg["user_identity"] for leg in legs if leg["user_identity"]), None),
    )


def _number(value: int | Decimal | None) -> str:
    return "" if value is None else str(value)  # NUMBER values travel as strings


def history_row(summary: CallSummary, fields: Fields) -> dict[str, Any]:
    return {
        "value": {
            fields.datetime: {"value": kintone_datetime(summary.started_at)},
            fields.number: {"value": summary.number or ""},
            fields.result: {"value": summary.result},
            fields.seconds: {"value": _number(summary.seconds)},
            fields.charge: {"value": _number(summary.charge)},
            fields.user: {"value": summary.user or ""},
            fields.call_sid: {"value": summary.call_sid},
        }
    }


def call_log_record(summary: CallSummary, record_id: int, fields: Fields) -> dict[str, Any]:
    cells = history_row(summary, fields)["value"]
    cells[fields.customer_record] = {"value": str(record_id)}
    return cells


class WritebackWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        client: KintoneClient,
        settings: KintoneSettings,
        *,
        batch_size: int = 500,
        poll_s: float = 1.0,
        lease_s: float = 120.0,
    ) -> None:
        self._engine = engine
        self._client = client
        self._mode = settings.kintone_writeback
        self._table = settings.kintone_history_table
        self._call_log_app = settings.kintone_call_log_app
        self._fields = Fields.from_settings(settings)
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._lease_s = lease_s

    async def run(self, stopping: asyncio.Event) -> None:
        log.info("kintone_writeback_started", mode=self._mode.value)
        while not stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception as exc:  # the database or kintone away: try again shortly
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
        summaries = await self._summaries(jobs)
        orphans = [job for job in jobs if job.call_sid not in summaries]
        if orphans:
            await self._settle(orphans, ParkError("no legs recorded for this call"))
            jobs = [job for job in jobs if job.call_sid in summaries]
        if self._mode is WritebackMode.APP:
            await self._write_call_log(jobs, summaries)
        else:
            groups: dict[tuple[int, int], list[Job]] = defaultdict(list)
            for job in jobs:
                groups[(job.app_id, job.record_id)].append(job)
            await asyncio.gather(
                *(
                    self._write_history(app, record, group, summaries)
                    for (app, record), group in groups.items()
                )
            )
        return len(jobs)

    # --- database ---------------------------------------------------------------------------

    async def _claim(self) -> list[Job]:
        async with self._engine.begin() as conn:
            claim = CLAIM_OLDEST if self._mode is WritebackMode.APP else CLAIM_BY_RECORD
            rows = await conn.exec_driver_sql(claim, (self._batch_size, self._lease_s))
            jobs = []
            parked = []
            for call_sid, app, record, attempts in rows:
                if app.isdigit() and record.isdigit():
                    jobs.append(Job(call_sid, int(app), int(record), attempts))
                else:
                    parked.append(call_sid)
            if parked:
                reason = "app or record id is not a number"
                await conn.exec_driver_sql(MARK_PARKED, (parked, reason))
                for call_sid in parked:
                    log.error("kintone_call_parked", call_sid=call_sid, reason=reason)
        return jobs

    async def _summaries(self, jobs: Sequence[Job]) -> dict[str, CallSummary]:
        roots = [job.call_sid for job in jobs]
        async with self._engine.connect() as conn:
            result = await conn.exec_driver_sql(LEGS, (roots,))
            legs = [dict(row._mapping) for row in result]
        by_root: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for leg in legs:
            by_root[leg["parent_call_sid"] or leg["call_sid"]].append(leg)
        return {root: summarise(root, by_root[root]) for root in roots if by_root[root]}

    async def _mark(self, sql: str, jobs: Sequence[Job], *args: object) -> None:
        if not jobs:
            return
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(sql, ([job.call_sid for job in jobs], *args))

    async def _settle(self, jobs: Sequence[Job], error: BaseException | None) -> None:
        if error is None:
            await self._mark(MARK_DONE, jobs)
            _log_each(log.info, "kintone_call_written", jobs)
        elif isinstance(error, ParkError) or (
            isinstance(error, KintoneError)
            and not error.retryable
            and not isinstance(error, KintoneConflictError)
        ):
            await self._mark(MARK_PARKED, jobs, str(error))
            _log_each(log.error, "kintone_call_parked", jobs, reason=str(error))
        else:
            reason = str(error) or repr(error)
            await self._mark(MARK_RETRY, jobs, reason, MAX_RETRY_DELAY_S)
            _log_each(log.warning, "kintone_call_retry", jobs, reason=reason)

    # --- subtable mode -------------------------------------------------------------------------

    async def _write_history(
        self, app: int, record_id: int, jobs: Sequence[Job], summaries: Mapping[str, CallSummary]
    ) -> None:
        try:
            # The client's own lines (retries, 429s) then say which calls they carry.
            with structlog.contextvars.bound_contextvars(call_sids=[j.call_sid for j in jobs]):
                await self.append_history(app, record_id, [summaries[j.call_sid] for j in jobs])
        except (KintoneError, ParkError) as exc:
            await self._settle(jobs, exc)
        else:
            await self._settle(jobs, None)

    async def append_history(self, app: int, record_id: int, calls: Sequence[CallSummary]) -> int:
        """Append the calls missing from the record's history table; returns rows added."""
        for _ in range(CONFLICT_REREADS):
            record, revision = await self._client.get_record(app, record_id)
            table = record.get(self._table)
            if not isinstance(table, Mapping) or table.get("type", "SUBTABLE") != "SUBTABLE":
                raise ParkError(
                    f"app {app} has no table field {self._table!r} (KINTONE_HISTORY_TABLE)"
                )
            rows = table.get("value") or []
            present = {
                (row.get("value") or {}).get(self._fields.call_sid, {}).get("value") for row in rows
            }
            missing = [call for call in calls if call.call_sid not in present]
            if not missing:
                return 0
            value = [{"id": row["id"]} for row in rows] + [
                history_row(c, self._fields) for c in missing
            ]
            try:
                await self._client.update_record(
                    app, record_id, {self._table: {"value": value}}, revision
                )
            except KintoneConflictError:
                continue  # someone else wrote meanwhile (or our own retry did): read again
            return len(missing)
        raise KintoneConflictError(409, "GAIA_CO02", f"record {record_id} kept changing")

    # --- call-log app mode -----------------------------------------------------------------------

    async def _write_call_log(
        self, jobs: Sequence[Job], summaries: Mapping[str, CallSummary]
    ) -> None:
        ready = list(jobs)
        chunks = [
            ready[i : i + MAX_RECORDS_PER_REQUEST]
            for i in range(0, len(ready), MAX_RECORDS_PER_REQUEST)
        ]
        await asyncio.gather(*(self._upsert_chunk(chunk, summaries) for chunk in chunks))

    async def _upsert_chunk(
        self, jobs: Sequence[Job], summaries: Mapping[str, CallSummary]
    ) -> None:
        assert self._call_log_app is not None
        records = [
            (job.call_sid, call_log_record(summaries[job.call_sid], job.record_id, self._fields))
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
                await self._upsert_chunk([job], summaries)
        except KintoneError as exc:
            await self._settle(jobs, exc)
        else:
            await self._settle(jobs, None)
