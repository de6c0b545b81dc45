"""What a PostgreSQL error means for the caller: the database is away (retry later), the data
cannot be stored (dead-letter it), or neither, which is a bug and must stop the process.

Retrying everything as "database away" would turn a bug (a ``TypeError`` in a merge, a
mistyped column) into a partition that stalls quietly; so only these count as an outage.
"""

from __future__ import annotations

from sqlalchemy import exc as sa

# SQLSTATE classes (PostgreSQL, Appendix A "Error Codes"):
# "this data cannot be stored" — 22 data exception, 23 integrity constraint violation;
DATA_ERROR_CLASSES = frozenset({"22", "23"})
# "the database is away or busy, try again" — 08 connection exception, 40 transaction
# rollback (serialization failure, deadlock), 53 insufficient resources, 57 operator
# intervention (admin shutdown, cannot connect now), 58 system error.
OUTAGE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def _sqlstate(exc: sa.DBAPIError) -> str:
    orig = exc.orig
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def is_data_error(exc: BaseException) -> bool:
    """PostgreSQL refused the data itself (a value out of range, a constraint)."""
    if not isinstance(exc, sa.DBAPIError) or exc.connection_invalidated:
        return False
    return _sqlstate(exc)[:2] in DATA_ERROR_CLASSES


def is_outage(exc: BaseException) -> bool:
    """The database or the connection to it is away: the same work may succeed later."""
    if isinstance(exc, OSError | TimeoutError | sa.TimeoutError):
        return True  # refused, reset, unreachable; a pool or statement timeout
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        state = _sqlstate(exc)
        if state:
            return state[:2] in OUTAGE_CLASSES
        # No SQLSTATE: the driver lost the connection (asyncpg's ConnectionDoesNotExistError
        # and friends arrive as InterfaceError / OperationalError).
        return isinstance(exc, sa.InterfaceError | sa.OperationalError)
    return False
