"""The deadline timer: signals auctions and posts whose time is up (timer `deadlines`).

Why a topic: a Faust timer runs outside any stream event and cannot write tables (changelog
writes need the source partition of an event). The timer only looks for expired deadlines in the
local `auctions` table and sends a small message keyed by call id to router.deadlines (same
partition count, so it lands on the partition that owns the call); the call side handles it like
any other event (calls.py), so every table write happens in stream context and the events of one
call are processed one at a time.

Late deadlines (docs/ROUTER.md): a deadline found more than late_deadline_ms late waits until the
call side has read bid.received far enough (`BidsRead`, written by the call side's stream loop).

`DeadlineTimer` is a unit of its own: it reads the table (through CallRecords.due) and BidsRead,
and sends; it shares no state with the handlers but those two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from faust.types import TopicT
from faust.types.tuples import Message

from switchboard.platform.kafka import confirmed_end_offsets, make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import BID_RECEIVED
from switchboard.services.router import protocol
from switchboard.services.router.record import CallRecords

log = structlog.get_logger("router")


class BidsRead:
    """bid.received partition → the highest offset the call side has handled on this worker."""

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}

    def saw(self, message: Message) -> None:
        """Called before the record is handled: a bid whose handler failed still counts as read."""
        if message.topic == BID_RECEIVED.name:
            self._offsets[message.partition] = max(message.offset, self._offsets.get(message.partition, -1))

    def get(self, partition: int) -> int | None:
        return self._offsets.get(partition)


@dataclass(frozen=True)
class LateDeadline:
    """A deadline first seen late at `seen_ms`: bid.received of its partition ended at `end` then (None: unknown)."""

    seen_ms: int
    partition: int
    end: int | None
    committed: int | None  # the router group's committed offset of that partition then

    def caught_up(self, read: int) -> bool:
        """Every answer given before the deadline has been handled: here (read) or by the group (committed)."""
        if self.end is None:
            return True  # could not ask the cluster: conclude as before
        return read >= self.end - 1 or (self.committed is not None and self.committed >= self.end)


class DeadlineTimer:
    def __init__(
        self,
        records: CallRecords,
        deadlines: TopicT,
        bids_read: BidsRead,
        kafka: KafkaSettings,
        app_id: str,
        late_deadline_ms: int,
        late_deadline_hold_ms: int,
    ) -> None:
        self.records = records
        self.deadlines = deadlines
        self.bids_read = bids_read
        self.kafka = kafka
        self.app_id = app_id
        self.late_deadline_ms = late_deadline_ms
        self.late_deadline_hold_ms = late_deadline_hold_ms
        # (call_id, signal) already sent; pruned as auctions and posts end.
        self._signalled: set[tuple[str, str]] = set()
        # Per late deadline the bid.received end (and the group's committed offset) when it was first seen.
        self._late: dict[tuple[str, str], LateDeadline] = {}
        self._bid_snapshots: dict[int, LateDeadline] = {}  # bid.received partition → its positions when last asked

    async def signal_expired(self) -> None:
        """Send the deadline of every auction or post whose time is up to router.deadlines (once each).

        A deadline found more than late_deadline_ms late (this worker just took the call over from
        one that stopped, or it fell behind) may have answers that came in time still unread in
        bid.received: another topic, read in Faust's own order. Such a deadline waits until this
        worker has handled bid.received of the call's partition up to where it ended when the
        deadline was first seen late, at most late_deadline_hold_ms; then the auction concludes
        with every answer that was given in time.
        """
        now_ms = int(time.time() * 1000)
        live: set[tuple[str, str]] = set()
        late: list[tuple[tuple[str, str], int]] = []
        for call_id, auction_id, post_attempt, deadline_ms in self.records.due():
            signal = auction_id if post_attempt is None else protocol.post_deadline(auction_id, post_attempt)
            key = (call_id, signal)
            live.add(key)
            if deadline_ms > now_ms or key in self._signalled:
                continue
            if now_ms - deadline_ms > self.late_deadline_ms and post_attempt is None:  # posts are not held
                late.append((key, deadline_ms))
                continue
            self._signalled.add(key)
            await self.deadlines.send(key=call_id.encode(), value=signal.encode())
        if late:
            for key in await self._late_deadlines_ready(late, now_ms):
                self._signalled.add(key)
                await self.deadlines.send(key=key[0].encode(), value=key[1].encode())
        self._signalled &= live
        for key in [k for k in self._late if k not in live]:
            del self._late[key]

    async def _late_deadlines_ready(self, late: list[tuple[tuple[str, str], int]], now_ms: int) -> list[tuple[str, str]]:
        """The late deadlines whose in-time answers this worker has all handled (or that waited long enough)."""
        new = {key: (self._partition_of(key[0]), deadline_ms) for key, deadline_ms in late if key not in self._late}
        if new:
            # A partition's positions taken after a deadline cover every answer given before it: one look at
            # the cluster serves all the late deadlines it came after (an overloaded worker asks at most
            # about once per late_deadline_ms, not on every tick).
            stale = {
                p
                for p, deadline_ms in new.values()
                if p not in self._bid_snapshots or self._bid_snapshots[p].seen_ms <= deadline_ms
            }
            if stale:
                try:
                    ends, committed = await self._bid_positions(stale)
                except Exception as exc:  # noqa: BLE001 — never hold a call for lack of an answer from the cluster
                    log.warning("late_deadline_check_failed", error=f"{type(exc).__name__}: {exc}", calls=len(new))
                    ends, committed = {}, {}
                for p in stale:
                    self._bid_snapshots[p] = LateDeadline(now_ms, p, ends.get(p), committed.get(p))
            for key, (partition, _) in new.items():
                self._late[key] = self._bid_snapshots[partition]
        ready = []
        for key, deadline_ms in late:
            waiting = self._late[key]
            read = self.bids_read.get(waiting.partition)
            if waiting.caught_up(-1 if read is None else read):
                log.info("late_deadline", call_id=key[0], late_ms=now_ms - deadline_ms, waited_ms=now_ms - waiting.seen_ms)
                ready.append(key)
            elif now_ms - waiting.seen_ms >= self.late_deadline_hold_ms:
                log.warning(
                    "late_deadline_concluded_unread",
                    call_id=key[0],
                    partition=waiting.partition,
                    end=waiting.end,
                    read=read,
                    late_ms=now_ms - deadline_ms,
                )
                ready.append(key)
        return ready

    def _partition_of(self, call_id: str) -> int:
        """The partition of the call's events (every producer keys them by call id, default partitioner)."""
        return (murmur2(call_id.encode()) & 0x7FFFFFFF) % self.kafka.partitions

    async def _bid_positions(self, partitions: set[int]) -> tuple[dict[int, int | None], dict[int, int | None]]:
        """bid.received's end offsets (confirmed by a fetch) and the router group's committed offsets now."""
        tps = [TopicPartition(BID_RECEIVED.name, p) for p in sorted(partitions)]
        consumer = make_consumer(self.kafka, self.app_id, f"{self.app_id}-late-deadlines")
        await consumer.start()  # carries the group id but never joins it: only asks for committed offsets
        try:
            ends = await confirmed_end_offsets(consumer, self.kafka, tps, f"{self.app_id}-late-deadlines")
            committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        finally:
            await consumer.stop()
        return {tp.partition: end for tp, end in ends.items()}, committed
