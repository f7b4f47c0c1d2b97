"""Which ClickHouse insert errors retry the batch (the storage's state) and which bisect it (the rows)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from switchboard.services.analytics.service import transient


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("Error HTTPConnectionPool(host='127.0.0.1', port=8123): connection refused"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        DatabaseError("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"),
        DatabaseError("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)"),
        DatabaseError("Code: 60. DB::Exception: Table switchboard.calls_routed does not exist. (UNKNOWN_TABLE)"),
        DatabaseError("HTTP 502 bad gateway"),  # no ClickHouse code: not a verdict on the rows
    ],
)
def test_storage_errors_retry_the_batch(exc: BaseException):
    assert transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        DatabaseError("Code: 469. DB::Exception: Constraint `price_sane` ... is violated at row 1. (VIOLATED_CONSTRAINT)"),
        DatabaseError("Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)"),
        DatabaseError("Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"),
        DataError("value out of range for Int32"),
        OverflowError("int too big to convert"),
        ValueError("invalid literal"),
    ],
)
def test_data_errors_bisect_the_batch(exc: BaseException):
    assert not transient(exc)
