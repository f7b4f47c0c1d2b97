"""Reading every partition of some topics up to where they ended at the start, then following them on.

A service that rebuilds state from topics (the ivr from ivr.callers, the queue from its inputs
after a restart) reads every partition itself: assigned, not subscribed, so no consumer group
hands it only a share. It must know when it has read what the log held when it started, "caught
up" (then the ivr may take calls, the queue may expire waiting calls), and it keeps reading what
comes after. `Follower` does that for a started consumer:

    follower = Follower(consumer, kafka, client_id)
    positions = await follower.start(topics, seek)    every partition assigned and positioned
                                                       (seek, default: the beginning); the ends to
                                                       catch up with taken
    await follower.run(handle, stop, on_caught_up=...) handle(record, catching_up) per record until
                                                       `stop`; on_caught_up() once

Caught up: every partition's position reached the end offset it had at `start`. That end is
confirmed by a fetch (platform.kafka.confirmed_end_offsets: Tansu under-reports the end of a
multi-record last batch). A partition already at its end at the start (empty, or positioned at
its end) is not behind; when none is, on_caught_up is called before the first fetch. A record
is read `catching_up` when it was in its partition before that end. The positions are looked at
after each batch the consumer returns, also an empty one. The loop is watched by /livez
(`follow:<client_id>`, platform.ops), readiness waits for it to catch up (`caught_up:<client_id>`),
and it counts switchboard_events_consumed and the lag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from switchboard.platform import ops
from switchboard.platform.kafka import confirmed_end_offsets, track_lag
from switchboard.platform.metrics import EVENTS_CONSUMED, LagTracker
from switchboard.platform.settings import KafkaSettings

RecordHandler = Callable[[ConsumerRecord, bool], Awaitable[None]]  # (record, catching_up)
Seek = Callable[[TopicPartition], Awaitable[None]]


class MissingTopics(RuntimeError):
    """Topics a service reads do not exist: they are created by `switchboard broker` or ensure_topics, not on demand."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        if len(self.names) == 1:
            message = f"topic {self.names[0]} does not exist; create it first (switchboard broker / ensure_topics)"
        else:
            message = f"topics {self.names} do not exist; create them first (switchboard broker / ensure_topics)"
        super().__init__(message)


async def assign_all(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Assign every partition of the topics named `topics` to the started `consumer` (in that order, partitions
    sorted) and return them. Names, not platform Topics: services follow private topics too (the router's view).

    Raises MissingTopics when a topic has no partitions: a topic auto-created on first use would
    get the broker's default partition count, not the one every topic must share.
    """
    names = list(topics)
    await consumer.topics()  # full metadata, so partitions_for_topic knows every topic
    tps = [TopicPartition(name, p) for name in names for p in sorted(consumer.partitions_for_topic(name) or ())]
    missing = [name for name in names if not any(tp.topic == name for tp in tps)]
    if missing:
        raise MissingTopics(missing)
    consumer.assign(tps)
    return tps


class Follower:
    """Reads every partition of some topics with one started consumer: caught up first, then on (module doc).

    The consumer stays its owner's: started and stopped there, and free for other calls (commits).
    """

    def __init__(self, consumer: AIOKafkaConsumer, kafka: KafkaSettings, client_id: str) -> None:
        self.consumer = consumer
        self.kafka = kafka
        self.client_id = client_id  # the end-offset probe is "<client_id>-probe"
        self.behind: dict[TopicPartition, int] = {}  # partitions not caught up yet → their end at the start
        self._announced = False

    @property
    def caught_up(self) -> bool:
        return not self.behind

    async def start(self, topics: Iterable[str], seek: Seek | None = None) -> dict[TopicPartition, int]:
        """Assign every partition of the topics named `topics`, position each (`seek`; default: its beginning), take the
        ends to catch up with; return the position of every partition."""
        tps = await assign_all(self.consumer, topics)
        if seek is None:
            await self.consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                await seek(tp)
        ends = await confirmed_end_offsets(self.consumer, self.kafka, tps, self.client_id)
        positions = {tp: await self.consumer.position(tp) for tp in tps}
        self.behind = {tp: ends[tp] for tp in tps if positions[tp] < ends[tp]}
        return positions

    async def run(
        self,
        handle: RecordHandler,
        stop: asyncio.Event,
        *,
        on_caught_up: Callable[[], None],
        after_batch: Callable[[], Awaitable[None]] | None = None,
        timeout_ms: int = 100,
        max_records: int = 1000,
    ) -> None:
        """Hand every record to `handle` until `stop` is set; call `on_caught_up` once caught up (once per
        Follower) and `after_batch` after each batch (an empty one too)."""
        health = ops.health()
        check = f"caught_up:{self.client_id}"  # readiness: not before what the log held at the start is read
        health.set(check, False, "reading up to where the topics ended at the start")

        def caught_up() -> None:
            health.set(check, True)
            on_caught_up()

        if self.caught_up:
            self._announce(caught_up)
        lag = LagTracker()
        try:
            with health.watching(f"follow:{self.client_id}") as loop:
                while not stop.is_set():
                    loop.beat()
                    batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
                    for tp, records in batches.items():
                        EVENTS_CONSUMED.labels(tp.topic).inc(len(records))
                        for record in records:
                            await handle(record, tp in self.behind and record.offset < self.behind[tp])
                    if self.behind:
                        for tp in list(self.behind):
                            if await self.consumer.position(tp) >= self.behind[tp]:
                                del self.behind[tp]
                        if not self.behind:
                            self._announce(caught_up)
                    if after_batch is not None:
                        await after_batch()
                    await track_lag(self.consumer, lag)
        finally:
            health.clear(check)
            lag.show(())

    def _announce(self, on_caught_up: Callable[[], None]) -> None:
        if not self._announced:
            self._announced = True
            on_caught_up()
