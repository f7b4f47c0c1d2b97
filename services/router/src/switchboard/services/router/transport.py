"""The router's Faust aiokafka transport: Faust's own driver with four corrections.

1. Fetch wait. faust-streaming hard-codes `fetch_max_wait_ms=1500` in
   `AIOKafkaConsumerThread._create_worker_consumer`. A fetch then waits up to
   1.5 s for data on an idle partition, and on Tansu each routed call would pay
   that wait on every hop (ivr.completed → ping.requested → bid.received). With a
   few milliseconds a hop costs ~10 ms. We only change the value on the (not yet
   started) aiokafka consumer, which reads it when `start()` builds its fetcher.

2. LeaveGroup on stop (platform.kafka.leave_group_on_close): Tansu's first
   generation is 0, in which aiokafka never leaves.

3. No record is dropped for good at a start or rebalance (DESIGN rule 4). Faust
   hands the aiokafka fetch its *live* set of active partitions, which the app
   loop changes (pause/resume around table recovery and rebalances) while the
   consumer thread waits for records; aiokafka reads an *empty* set as "every
   partition". Records that come back for a partition that is not active (any
   more) are dropped by Faust, though aiokafka has already moved past them.
   Faust relies on the seek to the committed offsets that follows every
   recovery to fetch them again — but aiokafka's `seek_to_committed()` leaves
   alone a partition whose committed offset is missing or 0, so records dropped
   there were lost: after a crash, calls on partitions that had not committed
   yet (e.g. the first ivr.completed / call.ended of a partition, committed
   every 2.8 s) got no outcome. Here the fetch gets a snapshot of the active
   partitions (never an empty set), and the seek also rewinds the input
   partitions without a committed offset to where a new member would start
   (their beginning with auto_offset_reset "earliest"). At-least-once: what
   was not committed is read again, and the router ignores what it has seen.

4. Changelog high-waters (platform.kafka.true_end_offsets): Tansu's
   ListOffsets(latest) answers the last *batch's* first offset + 1, so table
   recovery would stop inside a changelog's last batch and leave its tail
   unapplied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from switchboard.platform.kafka import leave_group_on_close, true_end_offsets


class FastFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 5

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor argument here and uses it in start() (aiokafka 0.11-0.14).
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()  # creates and starts the aiokafka consumer (and its coordinator)
        if self._consumer is not None:
            leave_group_on_close(self._consumer)

    async def getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:  # noqa: ASYNC109 — Faust's signature
        # Runs in the app loop: copy the live set here, before the consumer thread waits on it.
        if active_partitions is None:  # client-only apps read everything
            return await super().getmany(None, timeout)
        snapshot = set(active_partitions)  # a set of our own: nobody changes it
        if not snapshot:
            return {}  # all paused (aiokafka would read an empty set as "every partition")
        return await super().getmany(snapshot, timeout)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        # Changelogs are never committed: table recovery seeks them itself.
        inputs = {tp: offset for tp, offset in committed.items() if not self.consumer._is_changelog_tp(tp)}
        await rewind_uncommitted(consumer, inputs, self.app.conf.consumer_auto_offset_reset)
        return committed

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        ends = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return ends

        def new_probe() -> aiokafka.AIOKafkaConsumer:
            # Typed TransportT on the thread; it is always the aiokafka Transport (Faust casts it so too).
            return self._create_client_consumer(cast(faust_aiokafka.Transport, self.transport))

        # Each key of `ends` comes back with an int where it had one (None only where it had None: never here).
        return cast(Mapping[TP, int], await true_end_offsets(new_probe, ends))


async def rewind_uncommitted(
    consumer: aiokafka.AIOKafkaConsumer, committed: Mapping[Any, int | None], auto_offset_reset: str
) -> list[Any]:
    """Seek the partitions that aiokafka's `seek_to_committed()` skipped; return them.

    Committed offset 0 → offset 0. None (never committed) → the beginning with "earliest", the
    position a new member would start from. With "latest" they stay where they are: the end
    such a member started from is not known any more (the router uses "earliest").
    """
    assigned = consumer.assignment()
    at_zero = [tp for tp, offset in committed.items() if offset == 0 and tp in assigned]
    for tp in at_zero:
        consumer.seek(tp, 0)
    never = [tp for tp, offset in committed.items() if offset is None and tp in assigned]
    if never and auto_offset_reset == "earliest":
        await consumer.seek_to_beginning(*never)
        return at_zero + never
    return at_zero


class FastFetchConsumer(faust_aiokafka.Consumer):
    fetch_max_wait_ms: int = 5

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        thread = FastFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)
        thread.fetch_max_wait_ms = self.fetch_max_wait_ms
        return thread


def transport_class(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    """A Transport class whose consumers fetch with `fetch_max_wait_ms` (one class per app)."""
    consumer_cls = type("FastFetchConsumer", (FastFetchConsumer,), {"fetch_max_wait_ms": fetch_max_wait_ms})
    return type("FastFetchTransport", (faust_aiokafka.Transport,), {"Consumer": consumer_cls})
