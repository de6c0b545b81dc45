"""Structured JSON logs (structlog) with secrets redacted.

Two layers of protection: fields whose *name* says secret are masked, and the configured secret
*values* are masked wherever they appear (an exception message that quotes a token, say).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(secret|token|password|auth|signature|api[_-]?key)", re.IGNORECASE)
# A few fields whose names match but that are not secret.
_PUBLIC_KEYS = frozenset({"token_ttl_s", "identity"})


class SecretRedactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._field(k, v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub(v) for v in value)
        return value

    def _field(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and key not in _PUBLIC_KEYS and _SECRET_KEY.search(key):
            return REDACTED
        return self.scrub(value)

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self._field(key, value)
        return event_dict


# The call a request is about. Bound with one ContextVar.set per request, and turned into the
# ``call_sid``/``parent_call_sid`` fields only when a line is written: at WARNING, on the hot
# path, almost never. A context variable, so it ends with the request's task.
_CALL: ContextVar[tuple[str, str | None] | None] = ContextVar("calltrail_call", default=None)


def bind_call(call_sid: str, parent_call_sid: str | None = None) -> None:
    """Every later log line of this task (an aiohttp request) names the call."""
    _CALL.set((call_sid, parent_call_sid or None))


def merge_call(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    call = _CALL.get()
    if call is not None:
        event_dict.setdefault("call_sid", call[0])
        if call[1] is not None:
            event_dict.setdefault("parent_call_sid", call[1])
    return event_dict


def configure_logging(
    level: str = "INFO", secrets: Iterable[str] = (), *, kafka_level: int = logging.WARNING
) -> None:
    """JSON lines on stderr; stdlib loggers (aiohttp, aiokafka) go through the same pipeline.

    ``kafka_level``: aiokafka's own lines from this level up. The gateway passes CRITICAL: it
    reports broker outages itself (broker_unavailable, spooling), and aiokafka would add a
    line per failed reconnect; the recorder keeps WARNING, its only word on the broker."""
    redactor = SecretRedactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_call,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(kafka_level)
    # twilio-python logs each request's URL, query and headers at INFO: a recording's URL and
    # the account's resources are nobody's business in a log (CONTRACT.md section 11).
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def debug_enabled() -> bool:
    """For debug lines on hot paths: one cached check, where a filtered-out structlog call
    still costs a proxy lookup and its arguments (configure_logging sets both levels)."""
    return logging.root.isEnabledFor(logging.DEBUG)  # getLogger() is one more Python call


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
