"""Dead letters read back and replayed: `switchboard deadletter list` and `switchboard deadletter replay`.

`read_letters` reads the deadletter topic up to its end (no consumer group) and keeps the letters
a `Selection` matches (source topic, text in the reason, service, time, ids). `replay` re-publishes
the original key and value of each letter to its source topic (or another), then records it in
the compacted topic deadletter.replays (keyed by the letter's event id): a letter replayed once
is skipped by the next replay, so running the same replay twice publishes each record once. A
letter written without its value (platform.deadletters: over max_record_bytes) is replayed from
the source offset while the record is still there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from google.protobuf.message import Message

from switchboard.platform import codec
from switchboard.platform.kafka import confirmed_end_offsets, ensure_topics, make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import DEAD_LETTER, DEAD_LETTER_REPLAYS, Topic
from switchboard.v1 import events_pb2 as pb

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class StoredLetter:
    """A dead letter as read back: where it is in the deadletter topic, and its replay if it had one."""

    letter: pb.DeadLetter
    partition: int
    offset: int
    replay: pb.DeadLetterReplay | None = None


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command is about; every given criterion must match."""

    topic: str | None = None  # source topic
    reason: str | None = None  # text in the reason (case-insensitive)
    service: str | None = None
    since: datetime | None = None
    ids: frozenset[str] = frozenset()  # dead letters' event ids

    def matches(self, letter: pb.DeadLetter) -> bool:
        return (
            (self.topic is None or letter.source_topic == self.topic)
            and (self.reason is None or self.reason.lower() in letter.reason.lower())
            and (self.service is None or letter.service == self.service)
            and (self.since is None or codec.ts_to_datetime(letter.occurred_at) >= self.since)
            and (not self.ids or letter.event_id in self.ids)
        )


async def read_topic(kafka: KafkaSettings, topic: Topic[M], client_id: str) -> list[tuple[ConsumerRecord, M | None]]:
    """Every record of `topic` up to its end now, with its decoded message (None when undecodable or a tombstone)."""
    consumer = make_consumer(kafka, None, client_id)
    await consumer.start()
    out: list[tuple[ConsumerRecord, M | None]] = []
    try:
        await consumer.topics()
        tps = [TopicPartition(topic.name, p) for p in sorted(consumer.partitions_for_topic(topic.name) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await confirmed_end_offsets(consumer, kafka, tps, client_id)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=200)).items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    try:
                        msg: M | None = codec.decode(topic, r.value)
                    except codec.UndecodableEvent:
                        msg = None
                    out.append((r, msg))
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return out


async def read_letters(kafka: KafkaSettings, selection: Selection = Selection()) -> list[StoredLetter]:
    """The dead letters matching `selection`, oldest first per partition, each with its replay if any."""
    replays: dict[str, pb.DeadLetterReplay | None] = {}
    for record, replay in await read_topic(kafka, DEAD_LETTER_REPLAYS, "switchboard-deadletter"):
        key = (record.key or b"").decode()
        replays[key] = replay  # the latest per key wins (a tombstone undoes a replay record)
    out = []
    for record, letter in await read_topic(kafka, DEAD_LETTER, "switchboard-deadletter"):
        if letter is not None and selection.matches(letter):
            out.append(StoredLetter(letter, record.partition, record.offset, replays.get(letter.event_id)))
    return out


async def _fetch(kafka: KafkaSettings, topic: str, partition: int, offset: int) -> ConsumerRecord | None:
    """The record at (topic, partition, offset), None when it is gone (retention, compaction)."""
    consumer = make_consumer(kafka, None, "switchboard-deadletter")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        for _ in range(50):
            for r in (await consumer.getmany(tp, timeout_ms=100)).get(tp, []):
                if r.offset == offset:
                    return r
                if r.offset > offset:
                    return None
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) >= highwater:
                return None
        return None
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Replayed:
    """What replay did with one dead letter: `status` replayed | would_replay | already_replayed | skipped."""

    stored: StoredLetter
    status: str
    to_topic: str
    detail: str = ""


async def replay(
    kafka: KafkaSettings, letters: Iterable[StoredLetter], to: str | None = None, *, dry_run: bool = False
) -> list[Replayed]:
    """Re-publish each letter's original key and value to its source topic (or `to`), then record the replay.

    A letter replayed before (deadletter.replays) is skipped, so running the same replay twice
    publishes nothing the second time. The replay is recorded after the record is written: a
    crash in between replays it again next time (consumers dedupe by event id).
    """
    await ensure_topics(kafka, [DEAD_LETTER_REPLAYS])
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", client_id="switchboard-deadletter")
    await producer.start()
    out: list[Replayed] = []
    try:
        for stored in letters:
            letter = stored.letter
            target = to or letter.source_topic
            if stored.replay is not None:
                r = stored.replay
                out.append(
                    Replayed(
                        stored, "already_replayed", r.to_topic, f"at {codec.ts_to_datetime(r.occurred_at):%Y-%m-%d %H:%M:%S}"
                    )
                )
                continue
            if target == DEAD_LETTER.name:
                out.append(Replayed(stored, "skipped", target, "the record was on the deadletter topic itself (use --to)"))
                continue
            value: bytes | None = letter.value
            if letter.value_omitted_bytes:
                original = await _fetch(kafka, letter.source_topic, letter.source_partition, letter.source_offset)
                if original is None:
                    out.append(Replayed(stored, "skipped", target, "value not in the letter and gone from its source offset"))
                    continue
                value = original.value
            if dry_run:
                out.append(Replayed(stored, "would_replay", target, f"{len(value or b'')} bytes"))
                continue
            md = await producer.send_and_wait(target, value, key=letter.key or None)
            mark = pb.DeadLetterReplay(
                event_id=codec.new_id(),
                occurred_at=codec.now_ts(),
                letter_id=letter.event_id,
                to_topic=target,
                to_partition=md.partition,
                to_offset=md.offset,
            )
            await producer.send_and_wait(DEAD_LETTER_REPLAYS.name, codec.encode(mark), key=letter.event_id.encode())
            out.append(Replayed(stored, "replayed", target, f"{md.topic}/{md.partition}/{md.offset}"))
    finally:
        await producer.stop()
    return out
