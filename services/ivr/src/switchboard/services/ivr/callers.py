"""The duplicate-window state of the ivr service, kept in the compacted topic ivr.callers.

Each accepted call of a campaign with a `duplicate_window` publishes a
`CallerSeen` keyed `<campaign>|<caller>` (core.screening.caller_key). Every ivr
instance reads the whole topic from the beginning before it reports ready, then
keeps tailing it, so a restarted or added instance knows every caller the
others accepted: a restart forgets nothing. The broker compacts the topic to
the latest record per key, so it grows with distinct callers, not with calls.

Bounded: a caller's last call older than the longest duplicate_window of the
configuration can never make a duplicate again, so it is forgotten (pruned at
most every second, oldest first); and at most `capacity` callers are kept
(default 4 000 000: a 24 h window at 40 distinct callers a second is 3 456 000),
the oldest forgotten first past it, with a warning, since a caller forgotten
within its window could call again as new. docs/CAPACITY.md has the memory
this takes.

Two instances accepting the same caller within the same few milliseconds can
both let the call in (each publishes before seeing the other's record): the
window is exact per instance and eventually consistent across instances.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord

from switchboard.core.config import RoutingConfig
from switchboard.core.config.routing import duration_seconds
from switchboard.platform import codec
from switchboard.platform.follow import Follower
from switchboard.platform.kafka import EventBus, make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALLERS_SEEN
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)


CAPACITY = 4_000_000  # callers remembered at most (see the module docstring)
PRUNE_EVERY_S = 1.0


def longest_window_s(config: RoutingConfig) -> float:
    """The longest duplicate_window of any campaign, in seconds (0: no campaign checks duplicates)."""
    return float(max((duration_seconds(c.duplicate_window) for c in config.campaigns if c.duplicate_window), default=0))


class CallerMemory:
    """Caller key → when that caller's last accepted call started (UTC), for `retention_s` at most.

    Kept in the order of those times (an update moves the key to the end), so pruning pops from
    the front. `retention_s` None keeps callers until `capacity` forces them out.
    """

    def __init__(
        self, retention_s: float | None = None, capacity: int = CAPACITY, clock: Callable[[], float] = time.time
    ) -> None:
        self.last_seen: OrderedDict[str, datetime] = OrderedDict()
        self.retention_s = retention_s
        self.capacity = capacity
        self.clock = clock  # wall clock: the times are the calls' start times, from any instance
        self.evicted = 0  # callers forgotten within the retention because of `capacity`
        self._pruned_at = float("-inf")

    @classmethod
    def for_config(cls, config: RoutingConfig, capacity: int = CAPACITY) -> CallerMemory:
        """Kept as long as the longest duplicate_window of `config`."""
        return cls(retention_s=longest_window_s(config), capacity=capacity)

    def get(self, key: str) -> datetime | None:
        return self.last_seen.get(key)

    def note(self, key: str, when: datetime) -> None:
        """Remember `when` unless a later call of the same caller is known (records may arrive out of order)."""
        known = self.last_seen.get(key)
        if known is None or when > known:
            self.last_seen[key] = when
            self.last_seen.move_to_end(key)
        now = self.clock()
        if now - self._pruned_at >= PRUNE_EVERY_S or len(self.last_seen) > self.capacity:
            self.prune(now)

    def prune(self, now: float) -> int:
        """Forget callers whose last call is older than the retention, then the oldest past `capacity`; return how many."""
        self._pruned_at = now
        forgotten = 0
        if self.retention_s is not None:
            horizon = now - self.retention_s
            while self.last_seen:
                key, when = next(iter(self.last_seen.items()))
                if when.timestamp() >= horizon:
                    break  # the rest are later (an out-of-order older one behind goes when it reaches the front)
                del self.last_seen[key]
                forgotten += 1
        over = len(self.last_seen) - self.capacity
        if over > 0:
            for _ in range(over):
                self.last_seen.popitem(last=False)
            self.evicted += over
            forgotten += over
            log.warning("caller_memory_full", capacity=self.capacity, forgotten=over, evicted_total=self.evicted)
        return forgotten

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
