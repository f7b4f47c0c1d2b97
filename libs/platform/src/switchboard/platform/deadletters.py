"""Dead letters: writing them so that a failure to write one keeps nothing stuck forever and loses nothing.

Every consumer that gives up on a record (undecodable, or its handler failed) writes a
`DeadLetter` to the deadletter topic: the record's bytes, where it came from and why. Writing it
can fail too:

* the broker refuses or times out (down, deadletter topic missing, not the leader...): the write
  is retried with backoff (switchboard.platform.retry) and the consumer holds the record
  meanwhile, committing nothing past it; stopped while still failing, it ends without committing
  it (StoppedWhileRetrying), and the next start reads it again;
* the letter is too large (the record was near the size limit; the letter adds its own fields):
  the letter is written without the copied value, which stays readable at its source offset
  until the topic's retention, and `value_omitted_bytes` says how large it was. Letters are
  sized against `KafkaSettings.max_record_bytes`; a broker whose limit is lower still refuses
  the full letter, and then the letter without the value is written.

Every path that dead-letters (platform.kafka.consume via EventBus.dead_letter, the router's
Publisher.dead_letter, the queue's outbox, analytics) writes through `write_dead_letter`.

Reading them back and replaying them: switchboard.platform.replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from switchboard.platform import codec
from switchboard.platform.retry import is_too_large, retrying
from switchboard.platform.settings import KafkaSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

# Bytes a record adds around its key and value (batch and record headers), with room to spare.
RECORD_OVERHEAD_BYTES = 512

# Writes one encoded letter with its record key.
Send = Callable[[bytes, bytes | None], Awaitable[object]]


def record_bytes(letter: pb.DeadLetter) -> int:
    """The size of the letter's record: the letter, and the source key written again as the record key."""
    return letter.ByteSize() + len(letter.key) + RECORD_OVERHEAD_BYTES


def without_value(letter: pb.DeadLetter, limit: int) -> pb.DeadLetter:
    """The letter without the copied value, the reason saying so (the original stays at its source offset)."""
    out = pb.DeadLetter()
    out.CopyFrom(letter)
    out.value = b""
    out.value_omitted_bytes = len(letter.value)
    note = (
        f" [value of {len(letter.value)} bytes not copied: the letter would exceed {limit} bytes; "
        f"read it at {letter.source_topic}/{letter.source_partition}/{letter.source_offset}]"
    )
    out.reason = letter.reason[: 2000 - len(note)] + note
    return out


def fitted(letter: pb.DeadLetter, max_bytes: int) -> pb.DeadLetter:
    """The letter as it can be written under `max_bytes`: as it is, or without the copied value."""
    if record_bytes(letter) <= max_bytes or not letter.value:
        return letter
    return without_value(letter, max_bytes)


async def write_dead_letter(
    send: Send, letter: pb.DeadLetter, kafka: KafkaSettings, stop: asyncio.Event | None = None
) -> pb.DeadLetter:
    """Write `letter` with `send`, retrying transient failures; return the letter as written.

    Raises StoppedWhileRetrying when `stop` is set while the write still fails (the caller must not
    commit the record), or the broker's error when even the letter without its value is refused.
    """
    letter = fitted(letter, kafka.max_record_bytes)
    where = {"topic": letter.source_topic, "partition": letter.source_partition, "offset": letter.source_offset}

    async def attempt(letter: pb.DeadLetter) -> None:
        await retrying(
            lambda: send(codec.encode(letter), letter.key or None),
            "dead_letter",
            stop=stop,
            retry_max_s=kafka.retry_max_s,
            topic=letter.source_topic,
            partition=letter.source_partition,
            offset=letter.source_offset,
        )

    try:
        await attempt(letter)
    except Exception as exc:
        if not (is_too_large(exc) and letter.value):
            raise
        # The broker's limit is below max_record_bytes: the letter without the value is small.
        log.error("dead_letter_too_large", error=f"{type(exc).__name__}: {exc}", bytes=record_bytes(letter), **where)
        letter = without_value(letter, record_bytes(letter) - 1)
        await attempt(letter)
    return letter
