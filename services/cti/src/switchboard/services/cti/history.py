"""cti's caller history: one CallerHistory per caller number in memory, written to cti.history (compacted).

core.history folds the events into a history; this keeps the histories, finds a call's caller,
writes every changed history to cti.history (keyed by the number: the topic keeps the latest
per caller) and reads them all back at start, before cti consumes anything, so a restart (even
kill -9) keeps every caller's past. One cti instance owns the histories (deploy: replicas 1):
two would each write the calls they read, and a caller's record would hold only one's share.

Memory: about 300 bytes per call kept (a few IVR answers), so 1 million callers with 5 calls each
take ~1.5 GB; `history_retention_days` and `history_max_calls` bound it (docs/CTI.md).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord

from switchboard.core import history as core
from switchboard.platform import codec
from switchboard.platform.follow import Follower
from switchboard.platform.kafka import EventBus, make_consumer
from switchboard.platform.retry import retrying
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CTI_HISTORY
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)


class CallerHistories:
    def __init__(self, policy: core.HistoryPolicy) -> None:
        self.policy = policy
        self.by_caller: dict[str, pb.CallerHistory] = {}
        self.caller_of: dict[str, str] = {}  # call id → caller number, for the events without the caller

    def of(self, number: str) -> pb.CallerHistory:
        return self.by_caller.setdefault(number, pb.CallerHistory())

    def caller(self, call_id: str) -> str | None:
        return self.caller_of.get(call_id)

    def note_call(self, call_id: str, number: str) -> None:
        self.caller_of[call_id] = number

    def keep(self, number: str, now: datetime) -> pb.CallerHistory | None:
        """Prune the caller's history; the history to write, or None when nothing is left (a tombstone)."""
        history = self.by_caller.get(number)
        if history is None:
            return None
        if not core.prune(history, now, self.policy):
            self._forget(number)
            return None
        self._index(number, history)
        return history

    def expired(self, now: datetime) -> tuple[list[str], list[str]]:
        """Prune every history: (callers with nothing left, callers whose history lost calls)."""
        gone: list[str] = []
        shrunk: list[str] = []
        for number, history in list(self.by_caller.items()):
            before = len(history.calls)
            if not core.prune(history, now, self.policy):
                self._forget(number)
                gone.append(number)
            elif len(history.calls) < before:
                self._index(number, history)
                shrunk.append(number)
        return gone, shrunk

    def load(self, number: str, history: pb.CallerHistory | None) -> None:
        self._forget(number)
        if history is not None:
            self.by_caller[number] = history
            self._index(number, history)

    def _index(self, number: str, history: pb.CallerHistory) -> None:
        for c in history.calls:
            self.caller_of[c.call_id] = number

    def _forget(self, number: str) -> None:
        old = self.by_caller.pop(number, None)
        if old is not None:
            for c in old.calls:
                if self.caller_of.get(c.call_id) == number:
                    del self.caller_of[c.call_id]

    def forget_dropped(self) -> None:
        """Drop call ids whose entry left its history (max_calls): the index stays as large as the histories."""
        live = {c.call_id for h in self.by_caller.values() for c in h.calls}
        for call_id in [k for k in self.caller_of if k not in live]:
            del self.caller_of[call_id]


async def write(bus: EventBus, number: str, history: pb.CallerHistory | None, stop: asyncio.Event | None) -> None:
    """The caller's history to cti.history (a tombstone for None), retried while the broker is away."""
    if history is None:
        await retrying(lambda: bus.tombstone(CTI_HISTORY, number), "cti_history", stop=stop, retry_max_s=bus.kafka.retry_max_s)
        return
    history.event_id = codec.new_id()
    history.updated_at.CopyFrom(codec.now_ts())
    await retrying(
        lambda: bus.publish_state(CTI_HISTORY, history, key=number), "cti_history", stop=stop, retry_max_s=bus.kafka.retry_max_s
    )


async def load(kafka: KafkaSettings, histories: CallerHistories, client_id: str) -> int:
    """Read cti.history from its beginning up to its end at the start; the number of records read."""
    consumer = make_consumer(kafka, None, client_id, auto_offset_reset="earliest")
    await consumer.start()
    done = asyncio.Event()
    read = 0
    try:
        follower = Follower(consumer, kafka, client_id)
        await follower.start([CTI_HISTORY.name])

        async def note(record: ConsumerRecord, catching_up: bool) -> None:
            nonlocal read
            number = record.key.decode() if record.key else ""
            if not number:
                return
            read += 1
            if record.value is None:
                histories.load(number, None)  # a tombstone: the caller's calls expired
                return
            try:
                histories.load(number, codec.decode(CTI_HISTORY, record.value))
            except codec.UndecodableEvent as exc:
                # Not fatal: that caller's history starts again. Its own later write replaces the record.
                log.warning("skipped_undecodable", topic=record.topic, offset=record.offset, reason=str(exc))

        await follower.run(note, done, on_caught_up=done.set)
    finally:
        await consumer.stop()
    log.info("caller_histories_loaded", records=read, callers=len(histories.by_caller))
    return read


def now_utc() -> datetime:
    return datetime.now(UTC)
