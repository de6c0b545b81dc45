"""A durable local spool for events the broker could not take right now.

SQLite in WAL mode with ``synchronous=FULL``: a row is on disk (fsync'd) before ``append``
returns, so the gateway may answer 204 and the event survives a crash. Drained oldest first.
All SQLite calls run in a worker thread; one lock serialises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SpoolError(OSError):
    """The spool could not be opened or written."""


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    id: int
    topic: str
    key: bytes
    value: bytes


class Spool:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.depth = 0

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS spool ("
                    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL)"
                )
                self.depth = db.execute("SELECT count(*) FROM spool").fetchone()[0]
            except (sqlite3.Error, OSError) as exc:
                raise SpoolError(f"spool {self._path} unavailable: {exc}") from None
            self._db = db
        return self._db

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._connect())
            except sqlite3.Error as exc:
                raise SpoolError(f"spool {self._path}: {exc}") from None

    # Synchronous core, called through the async wrappers below.

    def _append(self, topic: str, key: bytes, value: bytes) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO spool(topic, key, value) VALUES (?, ?, ?)", (topic, key, value))
            self.depth += 1

        self._run(write)

    def _append_many(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        """All of them in one transaction: one fsync, and all or nothing."""

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO spool(topic, key, value) VALUES (?, ?, ?)",
                    [(topic, key, value) for key, value in records],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            self.depth += len(records)

        self._run(write)

    def _oldest(self, limit: int) -> list[SpooledEvent]:
        def read(db: sqlite3.Connection) -> list[SpooledEvent]:
            rows = db.execute(
                "SELECT id, topic, key, value FROM spool ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            return [SpooledEvent(*row) for row in rows]

        return self._run(read)

    def _remove(self, ids: list[int]) -> None:
        def delete(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
            self.depth = db.execute("SELECT count(*) FROM spool").fetchone()[0]

        self._run(delete)

    def _probe(self) -> bool:
        try:
            self._run(lambda db: db.execute("BEGIN IMMEDIATE").execute("ROLLBACK"))
        except SpoolError:
            return False
        return True

    async def open(self) -> None:
        """Open now if possible (counting what a previous run left); failure is not fatal."""
        with contextlib.suppress(SpoolError):
            await asyncio.to_thread(self._run, lambda db: None)

    async def append(self, topic: str, key: bytes, value: bytes) -> None:
        await asyncio.to_thread(self._append, topic, key, value)

    async def append_many(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        await asyncio.to_thread(self._append_many, topic, records)

    async def oldest(self, limit: int) -> list[SpooledEvent]:
        return await asyncio.to_thread(self._oldest, limit)

    async def remove(self, ids: list[int]) -> None:
        await asyncio.to_thread(self._remove, ids)

    async def writable(self) -> bool:
        return await asyncio.to_thread(self._probe)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
