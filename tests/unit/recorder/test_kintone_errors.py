"""kintone's error bodies → typed errors: by code first, then by HTTP status."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from services.common.logging import REDACTED
from services.recorder.adapters.kintone import (
    KintoneAuthError,
    KintoneBatchTooLargeError,
    KintoneConflictError,
    KintoneError,
    KintoneNotFoundError,
    KintonePermissionError,
    KintoneRateLimitError,
    KintoneUnavailableError,
    KintoneValidationError,
    error_from_response,
    parse_retry_after,
)


def body(code: str, message: str = "m", **extra: object) -> bytes:
    return orjson.dumps({"code": code, "id": "AbCdEf0123456789WxYz", "message": message, **extra})


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (409, "GAIA_CO02", KintoneConflictError),
        (404, "GAIA_RE01", KintoneNotFoundError),
        (404, "GAIA_AP01", KintoneNotFoundError),
        (404, "GAIA_RE20", KintoneNotFoundError),
        (403, "CB_NO02", KintonePermissionError),
        (403, "GAIA_NO01", KintonePermissionError),
        (400, "CB_VA01", KintoneValidationError),
        (400, "CB_IJ01", KintoneValidationError),
        (400, "GAIA_IA02", KintoneAuthError),
        (400, "GAIA_DA03", KintoneAuthError),
        (403, "GAIA_AP15", KintoneAuthError),
        (401, "CB_WA01", KintoneAuthError),
        (401, "CB_AU01", KintoneAuthError),
        # kintone answered 520 for errors before it used 4xx; the code still decides.
        (520, "GAIA_CO02", KintoneUnavailableError),
    ],
)
def test_code_decides_the_class(status: int, code: str, cls: type[KintoneError]) -> None:
    error = error_from_response(status, body(code))
    assert type(error) is cls
    assert (error.status, error.code, error.request_id) == (status, code, "AbCdEf0123456789WxYz")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("GAIA_CO02", KintoneConflictError),
        ("GAIA_RE01", KintoneNotFoundError),
        ("CB_NO02", KintonePermissionError),
        ("CB_VA01", KintoneValidationError),
        ("GAIA_IA02", KintoneAuthError),
    ],
)
def test_client_errors_are_not_retryable(code: str, cls: type[KintoneError]) -> None:
    error = error_from_response(400, body(code))
    assert isinstance(error, cls)
    assert error.retryable is False


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (429, KintoneRateLimitError),
        (500, KintoneUnavailableError),
        (502, KintoneUnavailableError),
        (503, KintoneUnavailableError),
        (504, KintoneUnavailableError),
    ],
)
def test_429_and_5xx_are_retryable_whatever_the_body(status: int, cls: type[KintoneError]) -> None:
    for raw in (b"", b"<html>Service Unavailable</html>", body("GAIA_XX99")):
        error = error_from_response(status, raw)
        assert type(error) is cls
        assert error.retryable is True


def test_database_lock_codes_are_retryable() -> None:
    for code in ("GAIA_DA02", "GAIA_RE18"):
        error = error_from_response(409, body(code))
        assert isinstance(error, KintoneUnavailableError)
        assert error.retryable


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, KintoneAuthError),
        (403, KintonePermissionError),
        (404, KintoneNotFoundError),
        (409, KintoneConflictError),
    ],
)
def test_unknown_code_falls_back_to_status(status: int, cls: type[KintoneError]) -> None:
    assert type(error_from_response(status, body("GAIA_NEW9"))) is cls


def test_unknown_400_stays_a_plain_kintone_error() -> None:
    message = 'You need to send a request to the URL: "/k/guest/<Space ID>/v1/..."'
    error = error_from_response(400, body("GAIA_IL23", message))
    assert type(error) is KintoneError
    assert not error.retryable
    assert error.message == message


def test_validation_errors_keep_kintone_keys() -> None:
    errors = {
        "record[count].value": {"messages": ["Only numbers are allowed."]},
        "record.when.value": {"messages": ["Required.", "Bad format."]},
    }
    error = error_from_response(400, body("CB_VA01", "Missing or invalid input.", errors=errors))
    assert isinstance(error, KintoneValidationError)
    assert error.field_errors() == {
        "record[count].value": ["Only numbers are allowed."],
        "record.when.value": ["Required.", "Bad format."],
    }


def test_str_is_the_js_client_shape_and_repr_names_the_class() -> None:
    error = error_from_response(409, body("GAIA_CO02", "The revision is not the latest."))
    assert str(error) == "[409] [GAIA_CO02] The revision is not the latest. (AbCdEf0123456789WxYz)"
    assert repr(error).startswith("KintoneConflictError(status=409, code='GAIA_CO02'")


def test_non_json_body_gives_a_short_one_line_message() -> None:
    error = error_from_response(503, b"<html>\n  <body>Service   Unavailable</body>\n</html>")
    assert error.code == ""
    assert error.message == "<html> <body>Service Unavailable</body> </html>"
    assert error_from_response(502, b"").message == "HTTP 502"
    assert len(error_from_response(500, b"x" * 5000).message) == 200


def test_bulk_request_results_use_the_first_error() -> None:
    raw = orjson.dumps({"results": [{}, {"code": "GAIA_CO02", "id": "x", "message": "stale"}]})
    error = error_from_response(409, raw)
    assert isinstance(error, KintoneConflictError)
    assert error.message == "stale"


def test_secrets_are_masked_in_message_and_errors() -> None:
    token = "tokenABCDEF0123456789"
    raw = body(
        "GAIA_IA02",
        f"token {token} is bad",
        errors={"header": {"messages": [f"got {token}"]}},
    )
    error = error_from_response(400, raw, redact=[token])
    assert token not in str(error)
    assert token not in repr(error)
    assert token not in str(error.errors)
    assert REDACTED in error.message


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("0.5", now) == 0.5
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:10 GMT", now) == 10.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    error = error_from_response(429, b"Too Many Requests", "2")
    assert error.retry_after_s == 2.0


def test_batch_too_large_says_what_to_do() -> None:
    error = KintoneBatchTooLargeError(101)
    assert isinstance(error, ValueError)
    assert "101" in str(error)
    assert "100" in str(error)
