"""``DATABASE_URL`` as users write it (``postgresql://user:password@host:port/db``), turned into
what the driver needs. Only the recorder side connects; this is shared so every command that
reads the database (recorder, migrate, costs) accepts the same URLs."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ASYNC_DRIVER = "postgresql+asyncpg"


def check_database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("must look like postgresql://user:password@host:port/db") from None
    if url.get_backend_name() != "postgresql":
        raise ValueError("must be a postgresql:// URL")
    if not url.database:
        raise ValueError("must name a database")
    return value


def async_url(value: str) -> URL:
    """The URL for SQLAlchemy's asyncpg dialect (libpq's ``sslmode`` becomes asyncpg's ``ssl``)."""
    url = make_url(value).set(drivername=ASYNC_DRIVER)
    query = dict(url.query)
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return url.set(query=query)


def asyncpg_dsn(value: str) -> str:
    """A plain DSN for asyncpg itself (benchmarks, tools)."""
    return async_url(value).set(drivername="postgresql").render_as_string(hide_password=False)
