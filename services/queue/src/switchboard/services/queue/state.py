"""The queue service's durable state: snapshots in the compacted topic queue.state.

One queue instance (named by its consumer group id, the `instance`) writes all its
records to one partition of queue.state (the partition its key hashes to):

* snapshots, key "<instance>": the ACD state (core.acd.Acd.to_dict, JSON, zlib)
  with, for every live call, where its call.queued record is (the payload is
  read back from call.queued at start, not copied into every snapshot), the
  input offsets the state reflects, and the outbox: the decisions taken since the previous snapshot. The service
  publishes the outbox only after the snapshot is written, so a decision
  exists once, in the snapshot chain, before anyone sees it; a restarted
  instance publishes the last outbox again (the same events with the same
  event ids: consumers dedupe them) and re-reads only the inputs after the
  snapshot's offsets, whose decisions were never published.
* a snapshot larger than `KafkaSettings.max_record_bytes` (many waiting calls) is split:
  chunks of its encoded bytes first, key "<instance>/chunk/<seq>/<index>", then a head with
  key "<instance>" naming them (partition, offset). A restart joins the chunks the newest head
  names; the chunks of the previous snapshot are tombstoned once the next head is written, so a
  crash in between leaves the previous head's chunks readable (and at worst a few stale chunks
  for compaction to keep).
* sealed segments of finished call ids, key "<instance>/done/<n>", written
  once when `SEGMENT_SIZE` ids have finished: the dedupe memory of
  redelivered call.queued, without re-writing up to 100 000 ids in every
  snapshot. Snapshots name the segments they rely on (partition, offset) and
  carry the ids finished since the last one; segments that fell out of the
  memory are tombstoned.

Everything Kafka-specific about it is here; the decisions are in service.py.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import murmur2

from switchboard.core.acd import Acd
from switchboard.platform import codec
from switchboard.platform.deadletters import write_dead_letter
from switchboard.platform.kafka import ensure_topics, make_consumer
from switchboard.platform.metrics import EVENTS_PUBLISHED
from switchboard.platform.retry import retrying
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import DEAD_LETTER, QUEUE_STATE
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SEGMENT_SIZE = 1000  # finished call ids per sealed segment (~35 KB)
CHUNK_OVERHEAD_BYTES = 1024  # a chunk record's own fields, key and record headers, with room to spare
Ref = tuple[str, int, int]  # (topic, partition, offset) of one record


class StateError(RuntimeError):
    """The stored state cannot be used; the message says which record and how to reset it."""


def encode_acd(acd: Acd) -> bytes:
    """The ACD's live state for a snapshot: payloads as [partition, offset] of call.queued; finished ids excluded (segments)."""
    data = acd.to_dict(done=False, payload=lambda queued: [queued.partition, queued.offset])
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 1)


def decode_acd(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob))


def segment_key(instance: str, number: int) -> str:
    return f"{instance}/done/{number}"


def chunk_key(instance: str, seq: int, index: int) -> str:
    return f"{instance}/chunk/{seq}/{index}"


def split_snapshot(state: pb.QueueState, max_record_bytes: int) -> list[pb.QueueState]:
    """The chunk records of `state` when its encoding is over `max_record_bytes`; [] when it fits in one record."""
    value = codec.encode(state)
    if len(value) <= max_record_bytes:
        return []
    size = max_record_bytes - CHUNK_OVERHEAD_BYTES
    return [
        pb.QueueState(
            event_id=codec.new_id(),
            occurred_at=state.occurred_at,
            instance=state.instance,
            chunk_of=state.seq,
            chunk_index=i,
            chunk=value[start : start + size],
        )
        for i, start in enumerate(range(0, len(value), size))
    ]


def chunked_head(state: pb.QueueState, refs: list[pb.QueueChunkRef]) -> pb.QueueState:
    """The record with the snapshot key for a snapshot written in chunks at `refs`."""
    return pb.QueueState(
        event_id=state.event_id, occurred_at=state.occurred_at, instance=state.instance, seq=state.seq, chunks=refs
    )


def join_chunks(head: pb.QueueState, chunks: list[pb.QueueState | None]) -> pb.QueueState:
    """The snapshot of a chunked `head` from its chunk records (in the order of head.chunks); StateError when one is missing."""
    missing = [i for i, c in enumerate(chunks) if c is None or c.chunk_of != head.seq or c.chunk_index != i]
    if missing or len(chunks) != len(head.chunks):
        raise StateError(
            f"{QUEUE_STATE.name}: snapshot {head.seq} of queue instance {head.instance!r} is written in {len(head.chunks)} "
            f"chunks and chunks {missing} are missing or not of it. Fix: publish a tombstone (empty value) with key "
            f"{head.instance!r} to start from an empty state (its waiting calls are forgotten), or run the queue under another "
            "group_id."
        )
    state = pb.QueueState()
    state.ParseFromString(b"".join(c.chunk for c in chunks if c is not None))
    return state


@dataclass
class DoneLog:
    """The finished call ids to persist: sealed segments (written once) and the ids finished since."""

    keep: int  # ids to keep at least (the ACD's dedupe memory)
    segment_size: int = SEGMENT_SIZE
    sealed: list[pb.QueueDoneSegment] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    counted: int = 0  # Acd.finished when last taken

    def take(self, acd: Acd) -> None:
        """Add the ids the ACD finished since the last call."""
        new = acd.finished - self.counted
        if new > 0:
            self.tail.extend(acd.done_ids(last=new))
        self.counted = acd.finished

    def full_segments(self) -> list[list[str]]:
        """Remove and return the tail's full segments, oldest first (the caller writes and seals them)."""
        out = []
        while len(self.tail) >= self.segment_size:
            out.append(self.tail[: self.segment_size])
            self.tail = self.tail[self.segment_size :]
        return out

    def next_number(self) -> int:
        return max((s.number for s in self.sealed), default=0) + 1

    def trim(self) -> list[pb.QueueDoneSegment]:
        """Drop (and return) the oldest sealed segments not needed to keep `keep` ids."""
        dropped = []
        total = sum(s.count for s in self.sealed) + len(self.tail)
        while self.sealed and total - self.sealed[0].count >= self.keep:
            total -= self.sealed[0].count
            dropped.append(self.sealed.pop(0))
        return dropped


class StateStore:
    """queue.state I/O of one queue instance, and reading records back by offset (payloads, segments)."""

    def __init__(self, kafka: KafkaSettings, instance: str, client_id: str) -> None:
        self.kafka = kafka
        self.instance = instance
        self.client_id = client_id
        self.partition = 0
        self._producer: AIOKafkaProducer | None = None
        self.live_chunks: list[str] = []  # keys of the chunks the newest head names (tombstoned after the next head)
        self.chunked = 0  # snapshots written in chunks

    async def start(self) -> None:
        await ensure_topics(self.kafka, [QUEUE_STATE])
        # acks=all, no idempotence (Tansu has no InitProducerId): the snapshot chain makes repeats harmless.
        self._producer = AIOKafkaProducer(
            **self.kafka.client_kwargs(), acks="all", linger_ms=self.kafka.linger_ms, client_id=self.client_id
        )
        await self._producer.start()
        partitions = sorted(await self._producer.partitions_for(QUEUE_STATE.name))
        # The partition the snapshot key hashes to, as Kafka's default partitioner would pick; segments go there too.
        self.partition = partitions[(murmur2(self.instance.encode()) & 0x7FFFFFFF) % len(partitions)]

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "StateStore.start() first"
        return self._producer

    # -- writing -----------------------------------------------------------------------------------
    async def write_snapshot(self, state: pb.QueueState) -> int:
        """Write a snapshot, in chunks when it is over max_record_bytes; return its size in bytes."""
        value = codec.encode(state)
        chunks = split_snapshot(state, self.kafka.max_record_bytes)
        keys = [chunk_key(self.instance, c.chunk_of, c.chunk_index) for c in chunks]
        refs = []
        for chunk, key in zip(chunks, keys, strict=True):
            md = await self.producer.send_and_wait(
                QUEUE_STATE.name, codec.encode(chunk), key=key.encode(), partition=self.partition
            )
            refs.append(pb.QueueChunkRef(partition=md.partition, offset=md.offset, size=len(chunk.chunk)))
        head = codec.encode(chunked_head(state, refs)) if chunks else value
        await self.producer.send_and_wait(QUEUE_STATE.name, head, key=self.instance.encode(), partition=self.partition)
        # The previous head's chunks are no longer needed once this head is written.
        for key in self.live_chunks:
            await self.producer.send_and_wait(QUEUE_STATE.name, None, key=key.encode(), partition=self.partition)
        self.live_chunks = keys
        self.chunked += bool(chunks)
        EVENTS_PUBLISHED.labels(QUEUE_STATE.name).inc()
        return len(value)

    async def write_segment(self, number: int, call_ids: list[str]) -> pb.QueueDoneSegment:
        record = pb.QueueState(
            event_id=codec.new_id(),
            occurred_at=codec.now_ts(),
            instance=self.instance,
            segment=number,
            finished_call_ids=call_ids,
        )
        md = await self.producer.send_and_wait(
            QUEUE_STATE.name, codec.encode(record), key=segment_key(self.instance, number).encode(), partition=self.partition
        )
        return pb.QueueDoneSegment(number=number, partition=md.partition, offset=md.offset, count=len(call_ids))

    async def drop_segment(self, segment: pb.QueueDoneSegment) -> None:
        """Tombstone a segment no snapshot relies on any more (compaction removes it)."""
        await self.producer.send_and_wait(
            QUEUE_STATE.name, None, key=segment_key(self.instance, segment.number).encode(), partition=self.partition
        )

    async def publish(self, outbox: Iterable[pb.QueueOutboxRecord], stop: asyncio.Event | None = None) -> None:
        """Publish decisions in order (one at a time: a re-offer must not overtake the offer before it).

        A failing send is retried with backoff (platform.retry), dead letters as platform.deadletters
        writes them; StoppedWhileRetrying when `stop` is set first: the snapshot holds the outbox, and
        the next start publishes it again.
        """
        producer = self.producer

        async def send_letter(value: bytes, key: bytes | None) -> object:
            return await producer.send_and_wait(DEAD_LETTER.name, value, key=key)

        for record in outbox:
            if record.topic == DEAD_LETTER.name:
                await write_dead_letter(send_letter, codec.decode(DEAD_LETTER, record.value), self.kafka, stop)
                continue
            await retrying(
                partial(producer.send_and_wait, record.topic, record.value, key=record.key or None),
                "queue_decision",
                stop=stop,
                retry_max_s=self.kafka.retry_max_s,
                topic=record.topic,
            )
            EVENTS_PUBLISHED.labels(record.topic).inc()

    # -- reading -----------------------------------------------------------------------------------
    async def latest(self) -> pb.QueueState | None:
        """The instance's newest snapshot, None when it has none (or it was reset with a tombstone).

        Looked for in the partition its key hashes to, then (should the partition count have
        changed since it was written) in the others.
        """
        consumer = make_consumer(self.kafka, None, self.client_id)
        await consumer.start()
        try:
            await consumer.topics()
            partitions = sorted(consumer.partitions_for_topic(QUEUE_STATE.name) or ())
            for p in sorted(partitions, key=lambda p: p != self.partition):
                found = await self._latest_in(consumer, TopicPartition(QUEUE_STATE.name, p))
                if found is not None and found.value is None:
                    log.info("queue_state_reset", partition=found.partition, offset=found.offset)  # a tombstone: start empty
                    return None
                if found is not None:
                    snapshot = _decode_snapshot(found, self.instance)
                    if snapshot.chunks:
                        snapshot = await self._join(snapshot)
                    return snapshot
            return None
        finally:
            await consumer.stop()

    async def _join(self, head: pb.QueueState) -> pb.QueueState:
        refs = [(QUEUE_STATE.name, c.partition, c.offset) for c in head.chunks]
        records = await self.read_records(refs)
        chunks: list[pb.QueueState | None] = []
        for ref in refs:
            record = records.get(ref)
            try:
                chunks.append(codec.decode(QUEUE_STATE, record.value) if record is not None else None)
            except codec.UndecodableEvent:
                chunks.append(None)
        state = join_chunks(head, chunks)
        self.live_chunks = [chunk_key(self.instance, head.seq, i) for i in range(len(head.chunks))]
        log.info("queue_state_chunks_joined", seq=head.seq, chunks=len(head.chunks), bytes=state.ByteSize())
        return state

    async def _latest_in(self, consumer: Any, tp: TopicPartition) -> ConsumerRecord | None:
        """The newest record with the snapshot key in `tp` (a tombstone too), None when there is none.

        The last records are read first, then ever longer stretches before them: the newest
        snapshot is normally among the last few records (only segment records and their
        tombstones follow it).
        """
        consumer.assign([tp])
        key = self.instance.encode()
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        upto: int | None = None  # read to the end of the log first
        start, window = end, 16
        while start > begin:
            lo = max(begin, start - window)
            found: ConsumerRecord | None = None
            for record in await _read_range(consumer, tp, lo, upto):
                if record.key == key:
                    found = record
            if found is not None:
                return found
            upto, start, window = lo, lo, window * 4
        return None

    async def read_records(self, refs: Iterable[Ref], timeout_s: float = 30.0) -> dict[Ref, ConsumerRecord]:
        """The records at `refs`; records that no longer exist (retention, compaction) are left out."""
        wanted: dict[TopicPartition, set[int]] = defaultdict(set)
        for topic, partition, offset in refs:
            if partition >= 0 and offset >= 0:
                wanted[TopicPartition(topic, partition)].add(offset)
        if not wanted:
            return {}
        out: dict[Ref, ConsumerRecord] = {}
        consumer = make_consumer(self.kafka, None, self.client_id)
        await consumer.start()
        try:
            consumer.assign(list(wanted))
            for tp, offsets in wanted.items():
                for record in await _read_offsets(consumer, tp, sorted(offsets), timeout_s):
                    out[(tp.topic, tp.partition, record.offset)] = record
        finally:
            await consumer.stop()
        return out


def _decode_snapshot(record: ConsumerRecord, instance: str) -> pb.QueueState:
    try:
        return codec.decode(QUEUE_STATE, record.value)
    except codec.UndecodableEvent as exc:
        raise StateError(
            f"{QUEUE_STATE.name} partition {record.partition} offset {record.offset}: the snapshot of queue instance "
            f"{instance!r} is unreadable ({exc}). Fix: publish a tombstone (empty value) with key {instance!r} to start "
            f"from an empty state (its waiting calls are forgotten), or run the queue under another group_id."
        ) from exc


async def _read_range(
    consumer: Any, tp: TopicPartition, lo: int, hi: int | None, timeout_s: float = 30.0
) -> list[ConsumerRecord]:
    """The records of `tp` from offset `lo` up to `hi` (exclusive; None: the end of the log as a fetch sees it)."""
    consumer.seek(tp, lo)
    out: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        batch = (await consumer.getmany(tp, timeout_ms=100)).get(tp, [])
        out.extend(r for r in batch if hi is None or r.offset < hi)
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)  # known after the first fetch answer: the true end of the log
        if (hi is not None and position >= hi) or (highwater is not None and position >= highwater):
            return out
    raise StateError(f"{tp.topic} partition {tp.partition}: could not read offsets {lo}..{hi} within {timeout_s}s")


async def _read_offsets(consumer: Any, tp: TopicPartition, offsets: list[int], timeout_s: float) -> list[ConsumerRecord]:
    """The records at `offsets` (sorted) of `tp`, reading forward and seeking over long gaps."""
    out: list[ConsumerRecord] = []
    pending = list(offsets)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    consumer.seek(tp, pending[0])
    while pending and loop.time() < deadline:
        batch = (await consumer.getmany(tp, timeout_ms=100)).get(tp, [])
        for r in batch:
            while pending and pending[0] < r.offset:
                pending.pop(0)  # gone (compacted or deleted)
            if pending and pending[0] == r.offset:
                out.append(r)
                pending.pop(0)
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)
        if highwater is not None and position >= highwater:
            break  # the rest is beyond the end of the log
        if pending and pending[0] - position > 20:
            consumer.seek(tp, pending[0])  # a gap (e.g. snapshots between two segments): jump over it
    return out
