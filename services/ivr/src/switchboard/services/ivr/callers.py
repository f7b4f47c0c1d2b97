"""The duplicate-window state of the ivr service, kept in the compacted topic ivr.callers.

Each accepted call of a campaign with a `duplicate_window` publishes a
`CallerSeen` keyed `<campaign>|<caller>` (core.screening.caller_key). Every ivr
instance reads the whole topic from the beginning before it reports ready, then
keeps tailing it, so a restarted or added instance knows every caller the
others accepted: a restart forgets nothing. The broker compacts the topic to
the latest record per key, so it grows with distinct callers, not with calls.

Two instances accepting the same caller within the same few milliseconds can
both let the call in (each publishes before seeing the other's record): the
window is exact per instance and eventually consistent across instances.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord

from switchboard.platform import codec
from switchboard.platform.follow import Follower
from switchboard.platform.kafka import EventBus, make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALLERS_SEEN
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)


class CallerMemory:
    """Caller key → when that caller's last accepted call started (UTC)."""

    def __init__(self) -> None:
        self.last_seen: dict[str, datetime] = {}

    def get(self, key: str) -> datetime | None:
        return self.last_seen.get(key)

    def note(self, key: str, when: datetime) -> None:
        """Remember `when` unless a later call of the same caller is known (records may arrive out of order)."""
        known = self.last_seen.get(key)
        if known is None or when > known:
            self.last_seen[key] = when

    async def record(self, bus: EventBus, key: str, seen: pb.CallerSeen) -> None:
        """Remember the call here at once and publish it for the other instances and for restarts."""
        self.note(key, seen.occurred_at.ToDatetime(tzinfo=UTC))
        await bus.publish(CALLERS_SEEN, seen, key=key)

    async def follow(self, kafka: KafkaSettings, stop: asyncio.Event, loaded: asyncio.Event, client_id: str) -> None:
        """Read ivr.callers from the beginning; set `loaded` once caught up with its end; then tail it until `stop`."""
        consumer = make_consumer(kafka, None, client_id, auto_offset_reset="earliest")
        await consumer.start()
        try:
            follower = Follower(consumer, kafka, client_id)
            await follower.start([CALLERS_SEEN.name])
            read = 0

            async def note(record: ConsumerRecord, catching_up: bool) -> None:
                nonlocal read
                try:
                    seen = codec.decode(CALLERS_SEEN, record.value)
                except codec.UndecodableEvent as exc:
                    # Not dead-lettered: every instance reads this topic, N letters for one record help nobody.
                    log.warning("skipped_undecodable", topic=record.topic, offset=record.offset, reason=str(exc))
                    return
                key = record.key.decode() if record.key else ""
                if key:
                    self.note(key, seen.occurred_at.ToDatetime(tzinfo=UTC))
                    read += 1

            def caught_up() -> None:
                log.info("callers_loaded", records=read, callers=len(self.last_seen))
                loaded.set()

            await follower.run(note, stop, on_caught_up=caught_up, max_records=1000)
        finally:
            await consumer.stop()
