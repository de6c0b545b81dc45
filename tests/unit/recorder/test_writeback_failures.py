"""The write-back worker keeps going while the database is away and stops on a bug (on a
fake outbox: no database, no kintone)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from services.recorder.adapters.kintone import KintoneClient
from services.recorder.domain.outbox import Job
from services.recorder.service_layer.writeback import WritebackWorker
from services.recorder.settings import KintoneSettings


class FakeOutbox:
    def __init__(self, *claims: BaseException | list[Job]) -> None:
        self.claims = list(claims)
        self.calls = 0
        self.claimed_five_times = asyncio.Event()

    async def claim(
        self, *, by_record: bool, limit: int, lease_s: float
    ) -> tuple[list[Job], list[str]]:
        self.calls += 1
        if self.calls == 5:
            self.claimed_five_times.set()
        outcome = self.claims.pop(0) if self.claims else []
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome, []

    async def legs_of(self, roots: Sequence[str]) -> list[dict[str, Any]]:
        return []

    async def mark_parked(self, call_sids: Sequence[str], reason: str) -> None:
        return None

    async def oldest_pending(self) -> None:
        return None


def worker_on(outbox: FakeOutbox) -> WritebackWorker:
    settings = KintoneSettings(
        kintone_writeback="subtable",
        kintone_base_url="https://example.cybozu.com",
        kintone_api_token="t",
    )
    client = KintoneClient(settings.kintone_base_url or "", settings.kintone_tokens)
    return WritebackWorker(outbox, client, settings, poll_s=0.001)  # type: ignore[arg-type]


async def test_database_away_is_retried_until_stopped() -> None:
    outbox = FakeOutbox(ConnectionRefusedError(), TimeoutError(), ConnectionResetError())
    stopping = asyncio.Event()
    worker = worker_on(outbox)
    task = asyncio.create_task(worker.run(stopping))
    async with asyncio.timeout(2):
        await outbox.claimed_five_times.wait()  # three outages, then on as usual
    stopping.set()
    async with asyncio.timeout(2):
        await task  # ended cleanly: the outage never escaped


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), AttributeError("summary")])
async def test_a_bug_stops_the_worker(bug: Exception) -> None:
    with pytest.raises(type(bug)):
        async with asyncio.timeout(2):
            await worker_on(FakeOutbox(bug)).run(asyncio.Event())
