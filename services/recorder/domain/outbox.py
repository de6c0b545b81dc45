"""The kintone write-back outbox: one job per call, and the states a job moves through."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class OutboxState(enum.StrEnum):
    """``kintone_outbox.state``: every module that reads or writes a state uses these."""

    PENDING = "pending"  # waiting for its time, or for a retry
    DONE = "done"  # on kintone
    PARKED = "parked"  # retrying cannot fix it; `calltrail kintone retry` after a fix


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed write-back job: the call (its root CallSid) and the record it goes onto.

    An inbound call's job has no record: ``app_id`` is the customer app, and the records are
    found by the customer lookup; ``matched`` holds them once it ran (empty: no customer).
    A missed call's comments (CONTRACT.md section 12): ``notified`` holds the records known to
    carry its comment; None while no comment was ever tried, so nothing can be on kintone."""

    call_sid: str
    app_id: int
    record_id: int | None
    attempts: int
    inbound: bool = False
    matched: tuple[int, ...] | None = None
    notified: tuple[int, ...] | None = None
    ended_at: datetime | None = None  # when the call's end was recorded (the job created)
