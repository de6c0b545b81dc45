"""The operator's use cases behind ``calltrail migrate | rerate | kintone status|retry|check``:
each takes its settings, opens what it needs, and returns a result for the CLI to print."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.recorder.adapters import migrations
from services.recorder.adapters.kintone import KintoneClient, KintoneError
from services.recorder.adapters.outbox import KintoneOutbox, OutboxStatus
from services.recorder.adapters.repository import CallRepository, make_engine
from services.recorder.domain.history import WritebackMode
from services.recorder.domain.kintone_fields import Finding, check_fields, check_lookup_fields
from services.recorder.domain.tariff import TariffBook
from services.recorder.service_layer.recording import rerate_conversation_month, rerate_month
from services.recorder.settings import DatabaseSettings, KintoneSettings


def migrate(settings: DatabaseSettings) -> None:
    """``alembic upgrade head``; runs its own event loop (call it from sync code)."""
    migrations.upgrade(settings.database_url)


@dataclass(frozen=True, slots=True)
class Rerated:
    legs: int
    unrated_legs: int
    conversation: int  # recordings and transcriptions priced again
    unrated_conversation: int


async def rerate(settings: DatabaseSettings, tariffs: TariffBook, month: date) -> Rerated:
    """Store the tariff file and price the month's legs, recordings and transcriptions again
    (how many, and how many are still unrated)."""
    engine = make_engine(settings.database_url)
    try:
        repository = CallRepository(engine)
        await repository.store_tariffs(tariffs)
        legs, unrated_legs = await rerate_month(repository, tariffs, settings.zone, month)
        items, unrated_items = await rerate_conversation_month(
            repository, tariffs, settings.zone, month
        )
        return Rerated(legs, unrated_legs, items, unrated_items)
    finally:
        await engine.dispose()


async def kintone_status(settings: DatabaseSettings) -> OutboxStatus:
    engine = make_engine(settings.database_url)
    try:
        return await KintoneOutbox(engine).status()
    finally:
        await engine.dispose()


async def retry_parked(settings: DatabaseSettings, call_sids: Sequence[str] = ()) -> int:
    engine = make_engine(settings.database_url)
    try:
        return await KintoneOutbox(engine).requeue_parked(call_sids)
    finally:
        await engine.dispose()


class CheckRefusedError(ValueError):
    """``kintone check`` cannot run with these settings (the message says why)."""


class CheckFailedError(RuntimeError):
    """kintone did not answer the form fields request (the message says which app and why)."""


@dataclass(frozen=True, slots=True)
class AppCheck:
    app: int
    mode: WritebackMode
    findings: list[Finding]

    @property
    def problems(self) -> int:
        return sum(1 for finding in self.findings if not finding.ok)


async def check_kintone_app(settings: KintoneSettings, app: int | None) -> AppCheck:
    """The app's fields against what the write-back needs. Raises :class:`CheckRefusedError`, or
    the kintone client's errors."""
    mode = settings.kintone_writeback
    if mode is WritebackMode.OFF:
        raise CheckRefusedError("KINTONE_WRITEBACK is off; nothing to check")
    customer_app = app or settings.kintone_customer_app
    target = settings.kintone_call_log_app if mode is WritebackMode.APP else customer_app
    if target is None:
        raise CheckRefusedError(
            "subtable mode needs --app or KINTONE_CUSTOMER_APP (the customer app's id)"
        )
    assert settings.kintone_base_url is not None  # required by KintoneSettings when not off
    async with KintoneClient(
        settings.kintone_base_url,
        settings.kintone_tokens,
        guest_space_id=settings.kintone_guest_space,
    ) as client:
        try:
            properties = await client.get_form_fields(target)
        except KintoneError as exc:
            raise CheckFailedError(f"app {target}: {exc}") from None
        customers: dict[str, Any] | None = None
        if mode is WritebackMode.APP and settings.kintone_customer_app is not None:
            # App mode writes to the call log, but inbound calls are matched in the customer app.
            try:
                customers = await client.get_form_fields(settings.kintone_customer_app)
            except KintoneError as exc:
                raise CheckFailedError(f"app {settings.kintone_customer_app}: {exc}") from None
    # The customer app is also where inbound calls are matched (KINTONE_CUSTOMER_APP).
    matched_here = settings.kintone_customer_app is not None and (
        target == settings.kintone_customer_app
    )
    findings = check_fields(
        properties,
        mode,
        settings.kintone_history_table,
        settings.history_fields(),
        settings.lookup_fields() if matched_here else None,
    )
    if customers is not None:
        app_id = settings.kintone_customer_app
        findings += [
            Finding(f"{f.code} (app {app_id})", f.ok, f.message)
            for f in check_lookup_fields(customers, settings.lookup_fields())
        ]
    return AppCheck(target, mode, findings)
