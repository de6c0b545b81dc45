"""The write-back harness: a kintone stand-in with the customer and call-log apps, the
recorder on real PostgreSQL writing outbox jobs, and a worker to drain them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.events import CallEvent
from services.devtools.call_flows import answered_call
from services.devtools.kintone_standin import (
    KintoneDomain,
    KintoneStandin,
    add_call_log_app,
    add_customer_app,
)
from services.recorder.adapters.kintone import KintoneClient
from services.recorder.adapters.outbox import KintoneOutbox
from services.recorder.adapters.repository import CallRepository, make_engine
from services.recorder.domain.batch import ReceivedEvent
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.metrics import RecorderMetrics
from services.recorder.service_layer.conversation_writeback import RecordingMedia
from services.recorder.service_layer.recording import CallRecorder
from services.recorder.service_layer.writeback import WritebackWorker
from services.recorder.settings import DEFAULT_TARIFF, KintoneSettings

CUSTOMERS = 10
CALL_LOG = 20
AT = datetime(2026, 11, 10, 3, 0, 5, tzinfo=UTC)


def kintone_domain(*, conversation: bool = False) -> KintoneDomain:
    """``conversation``: the apps also have the transcript and recording fields."""
    domain = KintoneDomain()
    add_customer_app(domain, CUSTOMERS, "token-customers", conversation=conversation)
    add_call_log_app(domain, CALL_LOG, "token-call-log", conversation=conversation)
    return domain


@dataclass
class Harness:
    domain: KintoneDomain
    engine: AsyncEngine
    recorder: CallRecorder
    client: KintoneClient
    settings: KintoneSettings

    def worker(
        self, metrics: RecorderMetrics | None = None, media: RecordingMedia | None = None
    ) -> WritebackWorker:
        """``media``: Twilio's recordings (RECORDING=dual)."""
        return WritebackWorker(
            KintoneOutbox(self.engine), self.client, self.settings, metrics=metrics, media=media
        )

    async def record_calls(self, *calls: list[CallEvent]) -> None:
        events = [e for call in calls for e in call]
        await self.recorder.record_events([ReceivedEvent(e, e.encode().decode()) for e in events])

    def customer(self, name: str = "株式会社サンプル", **fields: str) -> int:
        values = {"顧客名": {"value": name}} | {code: {"value": v} for code, v in fields.items()}
        return self.domain.add_record(CUSTOMERS, values)

    def history(self, record_id: int) -> list[dict[str, str]]:
        rows = self.domain.record(CUSTOMERS, record_id)["通話履歴"]["value"]
        return [{code: cell["value"] for code, cell in row["value"].items()} for row in rows]

    async def sql(self, statement: str) -> list[tuple[object, ...]]:
        async with self.engine.begin() as conn:
            result = await conn.exec_driver_sql(statement)
            return [tuple(row) for row in result] if result.returns_rows else []

    async def outbox(self) -> dict[str, int]:
        rows = await self.sql("SELECT state, count(*) FROM kintone_outbox GROUP BY state")
        return dict(rows)  # type: ignore[arg-type]


@pytest.fixture
async def make_harness(database_url: str) -> AsyncIterator:  # type: ignore[type-arg]
    engines: list[AsyncEngine] = []
    standins: list[KintoneStandin] = []
    clients: list[KintoneClient] = []

    async def make(
        mode: str = "subtable", *, conversation: bool = False, **overrides: object
    ) -> Harness:
        domain = kintone_domain(conversation=conversation)
        standin = await KintoneStandin(domain).start()
        standins.append(standin)
        settings = KintoneSettings(
            kintone_writeback=mode,
            kintone_base_url=standin.base_url,
            kintone_api_token="token-customers,token-call-log",
            kintone_call_log_app=CALL_LOG,
            **overrides,
        )
        engine = make_engine(database_url)
        engines.append(engine)
        client = KintoneClient(
            standin.base_url, settings.kintone_tokens, backoff_base_s=0.01, backoff_max_s=0.05
        )
        clients.append(client)
        recorder = CallRecorder(
            CallRepository(engine),
            parse_tariffs(DEFAULT_TARIFF.read_text()),
            ZoneInfo("Asia/Tokyo"),
            writeback_delay_s=0,
            customer_app=settings.kintone_customer_app,
            conversation_writeback=settings.recording_on or settings.transcription_on,
        )
        return Harness(domain, engine, recorder, client, settings)

    yield make
    for client in clients:
        await client.close()
    for standin in standins:
        await standin.stop()
    for engine in engines:
        await engine.dispose()


def one_call(record_id: int, **kwargs: object) -> list[CallEvent]:
    return answered_call(app_id=str(CUSTOMERS), record_id=str(record_id), at=AT, **kwargs)  # type: ignore[arg-type]
