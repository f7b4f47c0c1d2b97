"""Writes that must not fail on a broker hiccup: retried with backoff until they succeed or the service stops.

A consumer that writes something about the record in hand (a dead letter, cti's event) holds that
record while the write fails: it commits nothing past it and does not crash, so there is neither a
crash loop (restart, read the record again, fail again) nor a lost message. Each failed attempt
logs an error with the reason (`write_failed`); attempts back off from 50 ms to
`KafkaSettings.retry_max_s` and go on at that interval. When the service is asked to stop while a
write still fails, `StoppedWhileRetrying` is raised: the consumer ends without committing the
record, and the next start reads it again (stop-and-restart semantics,
docs/DEAD_LETTERS.md).

Errors that no retry can fix (`permanent`, e.g. a record over the broker's size limit) are raised
at once for the caller to handle (dead-letter the input, or shrink the letter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_when_event_set, wait_exponential

log = structlog.get_logger(__name__)

T = TypeVar("T")

FIRST_WAIT_S = 0.05

# Refused for what the record is, not for the broker's state: the same record fails again.
TOO_LARGE: tuple[type[Exception], ...] = (MessageSizeTooLargeError, RecordTooLargeError)


class StoppedWhileRetrying(RuntimeError):
    """The service stopped while a write was still failing: the record it was about must not be committed."""


def _causes(exc: BaseException | None) -> list[BaseException]:
    """`exc` and what it was raised from (Faust wraps aiokafka's errors in its own)."""
    out: list[BaseException] = []
    while exc is not None and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def is_too_large(exc: BaseException) -> bool:
    """The broker or the client refused a record for its size."""
    return any(isinstance(e, TOO_LARGE) for e in _causes(exc))


def is_permanent(exc: BaseException) -> bool:
    """Not worth another attempt: too large, or not a broker or network failure at all (a bug, bad data)."""
    return is_too_large(exc) or not any(isinstance(e, KafkaError | OSError | TimeoutError) for e in _causes(exc))


async def retrying(
    write: Callable[[], Awaitable[T]],
    what: str,
    *,
    stop: asyncio.Event | None,
    retry_max_s: float,
    permanent: Callable[[BaseException], bool] = is_permanent,
    **context: object,
) -> T:
    """`await write()`, retried with backoff until it succeeds; raise StoppedWhileRetrying once `stop` is set.

    `what` and `context` (topic, partition, offset: never a caller number) name the write in the log.
    """
    stop = stop if stop is not None else asyncio.Event()

    async def sleep(seconds: float) -> None:  # a stop ends the wait at once, not after up to retry_max_s
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.error(
            "write_failed",
            what=what,
            attempt=state.attempt_number,
            retry_in_s=round(state.upcoming_sleep, 3),
            error=f"{type(exc).__name__}: {exc}",
            **context,
        )

    attempts = AsyncRetrying(
        sleep=sleep,
        stop=stop_when_event_set(stop),  # type: ignore[arg-type]  # duck-typed: only is_set() is called
        wait=wait_exponential(multiplier=FIRST_WAIT_S, min=FIRST_WAIT_S, max=retry_max_s),
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and not permanent(exc)),
        before_sleep=before_sleep,
        reraise=True,
    )
    tries = 0
    try:
        async for attempt in attempts:
            with attempt:
                tries = attempt.retry_state.attempt_number
                result = await write()
    except Exception as exc:
        if stop.is_set() and not permanent(exc):
            raise StoppedWhileRetrying(f"stopped while {what} still failed: {type(exc).__name__}: {exc}") from exc
        raise
    if tries > 1:
        log.info("write_recovered", what=what, attempts=tries, **context)
    return result
