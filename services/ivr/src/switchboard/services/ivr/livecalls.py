"""Following ivr.calls, the compacted topic of the ivr edge's live calls (docs/IVR.md, "Restarts and replicas").

Every ivr instance writes a `LiveCall` record (keyed by call id) on each change of a call it serves
(desk.CallDesk._save), and reads the whole topic: from the beginning before it reports ready (a
restart, even after kill -9, knows every live call again), then on, so that it also knows the calls
of the other instances and can take any call's next request. CallDesk.on_live_call merges each
record (a higher `version` wins; decisions this instance read itself are kept when newer).
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import ConsumerRecord

from switchboard.platform import codec
from switchboard.platform.follow import Follower
from switchboard.platform.kafka import make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import LIVE_CALLS
from switchboard.services.ivr.desk import CallDesk

log = structlog.get_logger(__name__)


async def follow(desk: CallDesk, kafka: KafkaSettings, stop: asyncio.Event, loaded: asyncio.Event, client_id: str) -> None:
    """Read ivr.calls from the beginning into `desk`; set `loaded` once caught up with its end; tail it until `stop`."""
    consumer = make_consumer(kafka, None, client_id, auto_offset_reset="earliest")
    await consumer.start()
    try:
        follower = Follower(consumer, kafka, client_id)
        await follower.start([LIVE_CALLS.name])
        read = 0

        async def take(record: ConsumerRecord, catching_up: bool) -> None:
            nonlocal read
            key = record.key.decode() if record.key else ""
            if not key:
                return
            if record.value is None:
                desk.on_live_call(key, None)
                return
            try:
                rec = codec.decode(LIVE_CALLS, record.value)
            except codec.UndecodableEvent as exc:
                # Not dead-lettered: every instance reads this topic, N letters for one record help nobody.
                log.warning("skipped_undecodable", topic=record.topic, offset=record.offset, reason=str(exc))
                return
            desk.on_live_call(key, rec)
            read += 1

        def caught_up() -> None:
            log.info("live_calls_loaded", records=read, calls=len(desk.calls))
            loaded.set()

        await follower.run(take, stop, on_caught_up=caught_up, max_records=1000)
    finally:
        await consumer.stop()
