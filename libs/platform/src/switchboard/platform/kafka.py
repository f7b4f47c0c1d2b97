"""Kafka I/O for the plain (non-Faust) services, on aiokafka.

`EventBus` owns one producer; `consume()` runs a handler per decoded event with
at-least-once semantics: offsets are committed after the handler returns, an
undecodable message or a handler error goes to the dead-letter topic with the
reason and the loop goes on (a consumer never dies of bad input). A dead letter
that cannot be written holds the consumer on its record, retried with backoff
(platform.deadletters); stopped meanwhile, the consumer ends without committing
it, so the next start reads it again. Both count the generic metrics
(platform.metrics) and keep the process's health (platform.ops): the consumer loop
beats, its group assignment is the readiness check `assigned:<group>`.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import IllegalStateError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest
from aiokafka.structs import TopicPartition
from google.protobuf.message import Message

from switchboard.platform import codec, ops
from switchboard.platform.deadletters import write_dead_letter
from switchboard.platform.metrics import (
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    EVENTS_PUBLISHED,
    HANDLER_ERRORS,
    PROCESSING_SECONDS,
    LagTracker,
    reason_kind,
)
from switchboard.platform.retry import StoppedWhileRetrying
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import ALL_TOPICS, DEAD_LETTER, CallEvent, Topic

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)
E = TypeVar("E", bound=CallEvent)
TP = TypeVar("TP", bound=tuple[str, int])  # a (topic, partition) key: aiokafka's TopicPartition or Faust's TP


class EventBus:
    """Publishes events keyed by call id. Start it inside the running loop, never at import."""

    def __init__(self, kafka: KafkaSettings, service: str) -> None:
        self.kafka = kafka
        self.service = service
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # acks=all, no idempotence: Tansu rejects InitProducerId; consumers dedupe by id instead.
        self._producer = AIOKafkaProducer(
            **self.kafka.client_kwargs(), acks="all", linger_ms=self.kafka.linger_ms, client_id=self.service
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, topic: Topic[E], event: E, key: str | None = None) -> None:
        assert self._producer is not None, "EventBus.start() first"
        if not isinstance(event, topic.message):
            raise TypeError(f"{topic.name} carries {topic.message.__name__}, not {type(event).__name__}")
        k = key if key is not None else event.call_id
        await self._producer.send_and_wait(topic.name, codec.encode(event), key=k.encode())
        EVENTS_PUBLISHED.labels(topic.name).inc()

    async def publish_state(self, topic: Topic[M], state: M, key: str) -> None:
        """The latest `state` of `key` on a compacted topic (keyed by what the state is about, not a call)."""
        assert self._producer is not None, "EventBus.start() first"
        if not topic.compacted:
            raise ValueError(f"{topic.name} is not compacted: it carries events, use publish()")
        await self._producer.send_and_wait(topic.name, codec.encode(state), key=key.encode())
        EVENTS_PUBLISHED.labels(topic.name).inc()

    async def tombstone(self, topic: Topic[Message], key: str) -> None:
        """A null value for `key` on a compacted topic: the broker drops the key's records at its next compaction."""
        assert self._producer is not None, "EventBus.start() first"
        if not topic.compacted:
            raise ValueError(f"{topic.name} is not compacted: a tombstone there would only be an undecodable record")
        await self._producer.send_and_wait(topic.name, None, key=key.encode())

    async def dead_letter(self, record: ConsumerRecord, reason: str, *, stop: asyncio.Event | None = None) -> None:
        """Write the record's dead letter, retrying until written (platform.deadletters); StoppedWhileRetrying
        when `stop` is set first."""
        producer = self._producer
        assert producer is not None, "EventBus.start() first"

        async def send(value: bytes, key: bytes | None) -> object:
            return await producer.send_and_wait(DEAD_LETTER.name, value, key=key)

        letter = await write_dead_letter(send, codec.dead_letter(self.service, record, reason), self.kafka, stop)
        EVENTS_PUBLISHED.labels(DEAD_LETTER.name).inc()
        DEAD_LETTERS.labels(record.topic, reason_kind(reason)).inc()
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            value_omitted_bytes=letter.value_omitted_bytes,
        )


def leave_group_on_close(consumer: AIOKafkaConsumer) -> None:
    """Make a started consumer send LeaveGroup on stop even in generation 0.

    Why: Tansu numbers a fresh group's first generation 0 (Kafka starts at 1),
    and aiokafka only leaves groups whose generation is > 0. Without a
    LeaveGroup a restarted worker waits a whole session timeout (~15 s more)
    before the broker drops the old member and the group rebalances.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if not isinstance(coordinator, GroupCoordinator):
        return

    async def _leave(self: GroupCoordinator) -> None:
        if self.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID and self._group_instance_id is None:
            try:
                await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
            except Exception as exc:  # noqa: BLE001 — best effort, as in aiokafka
                log.warning("leave_group_failed", error=str(exc))
        self.reset_generation()

    coordinator._maybe_leave_group = types.MethodType(_leave, coordinator)


async def partition_lags(consumer: AIOKafkaConsumer) -> list[tuple[str, int, int]]:
    """(topic, partition, high-water mark - position) of every assigned partition the client has fetched.

    No request: the high-water mark comes with each fetch answer, a fetched partition's position is
    known. A partition not fetched yet, or repositioned meanwhile, is left out of this round.
    """
    out: list[tuple[str, int, int]] = []
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await asyncio.wait_for(consumer.position(tp), 1.0)
        except (TimeoutError, KafkaError, IllegalStateError):
            continue
        out.append((tp.topic, tp.partition, highwater - position))
    return out


async def track_lag(consumer: AIOKafkaConsumer, lag: LagTracker) -> None:
    """Update switchboard_consumer_lag for `consumer` when `lag` says it is time (at most once a second)."""
    if lag.due():
        lag.show(await partition_lags(consumer))


async def true_end_offsets(
    new_probe: Callable[[], AIOKafkaConsumer], ends: Mapping[TP, int], timeout_s: float = 10.0
) -> dict[TP, int]:
    """End offsets as a fetch sees them, from the `ends` that ListOffsets(latest) answered.

    Why: Tansu answers ListOffsets(latest) with the first offset of a partition's last record
    batch + 1, not the last offset + 1: records of a multi-record batch at the end are not
    counted. A fetch from the offset it answered returns that batch and the true high-water
    mark, so every non-empty partition is fetched once. On Kafka the answer is already right
    and the fetch only confirms it (or sees newer records). `new_probe` makes a consumer without
    a group, started and stopped here (only when a partition is not empty). Keys may be any
    (topic, partition) tuples; partitions not read within `timeout_s` keep their ListOffsets value.
    """
    # The non-empty partitions: the client's TopicPartition → (its key in `ends`, its end offset).
    asked = {TopicPartition(tp[0], tp[1]): (tp, end) for tp, end in ends.items() if end}
    if not asked:
        return dict(ends)
    found: dict[TP, int] = {}
    probe = new_probe()
    try:
        await probe.start()
        probe.assign(list(asked))
        for tp, (_, end) in asked.items():
            probe.seek(tp, end - 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = set(asked)
        while pending and loop.time() < deadline:
            await probe.getmany(*pending, timeout_ms=100)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    found[asked[tp][0]] = highwater
                    pending.discard(tp)
        if pending:
            log.warning("end_offsets_unconfirmed", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in pending))
    finally:
        await probe.stop()
    return {key: max(end, found[key]) if key in found else end for key, end in ends.items()}


async def confirmed_end_offsets(
    consumer: AIOKafkaConsumer, kafka: KafkaSettings, tps: list[TopicPartition], client_id: str
) -> dict[TopicPartition, int]:
    """`consumer.end_offsets(tps)`, confirmed by a fetch of a probe consumer (see true_end_offsets)."""
    return await true_end_offsets(lambda: make_consumer(kafka, None, f"{client_id}-probe"), await consumer.end_offsets(tps))


def make_consumer(
    kafka: KafkaSettings, group_id: str | None, client_id: str, *topics: str, **overrides: object
) -> AIOKafkaConsumer:
    """An aiokafka consumer with the project's settings (short fetch wait, Tansu-friendly group timers).

    Call `leave_group_on_close(consumer)` after `start()` for group consumers.
    """
    kw: dict[str, object] = {
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        "session_timeout_ms": kafka.session_timeout_ms,
        "rebalance_timeout_ms": kafka.rebalance_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
    }
    kw.update(overrides)
    return AIOKafkaConsumer(*topics, **kafka.client_kwargs(), **kw)


async def consume(
    bus: EventBus,
    topics: Iterable[Topic[M]],
    handler: Callable[[Topic[M], M, ConsumerRecord], Awaitable[None]],
    group_id: str | None,
    stop: asyncio.Event,
    *,
    from_beginning: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Consume `topics` until `stop` is set. group_id=None reads every partition (no group)."""
    topics = list(topics)
    consumer = make_consumer(
        bus.kafka, group_id, bus.service, *[t.name for t in topics], auto_offset_reset="earliest" if from_beginning else "latest"
    )
    by_name = {t.name: t for t in topics}
    health = ops.health()
    assigned_check = f"assigned:{group_id}" if group_id is not None else None
    if assigned_check:
        health.set(assigned_check, False, "joining the group")
    lag = LagTracker()
    await consumer.start()
    leave_group_on_close(consumer)
    ready_sent = False
    try:
        with health.watching(f"consume:{group_id or bus.service}") as loop:
            while not stop.is_set():
                loop.beat()
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                if assigned_check:
                    # Empty during a rebalance, and for a member beyond the partition count (docs/OPERATIONS.md).
                    health.set(assigned_check, bool(consumer.assignment()), "" if consumer.assignment() else "no partitions")
                if not ready_sent and (consumer.assignment() or group_id is None):
                    ready_sent = True
                    if on_ready:
                        on_ready()
                for records in batches.values():
                    for record in records:
                        loop.beat()
                        await _handle_one(bus, by_name[record.topic], record, handler, stop)
                if batches and group_id is not None:
                    await consumer.commit()
                await track_lag(consumer, lag)
    except StoppedWhileRetrying as exc:
        # Nothing committed past the record whose dead letter could not be written: read again at the next start.
        log.error("stopped_with_record_unfinished", error=str(exc))
    finally:
        if assigned_check:
            health.clear(assigned_check)
        lag.show(())
        await consumer.stop()


async def _handle_one(
    bus: EventBus,
    topic: Topic[M],
    record: ConsumerRecord,
    handler: Callable[[Topic[M], M, ConsumerRecord], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Decode and handle one record (consume's loop body): counted, timed, dead-lettered on failure."""
    EVENTS_CONSUMED.labels(record.topic).inc()
    started = time.perf_counter()
    try:
        event = codec.decode(topic, record.value)
    except codec.UndecodableEvent as exc:
        HANDLER_ERRORS.labels(record.topic).inc()
        await bus.dead_letter(record, f"undecodable: {exc}", stop=stop)
        return
    try:
        await handler(topic, event, record)
    except (asyncio.CancelledError, StoppedWhileRetrying):
        raise
    except Exception as exc:  # bad input never kills a consumer: dead-letter and go on
        HANDLER_ERRORS.labels(record.topic).inc()
        log.exception("handler_failed", topic=record.topic, offset=record.offset, call_id=getattr(event, "call_id", ""))
        await bus.dead_letter(record, f"handler error: {type(exc).__name__}: {exc}", stop=stop)
    finally:
        PROCESSING_SECONDS.labels(record.topic).observe(time.perf_counter() - started)


async def ensure_topics(
    kafka: KafkaSettings, topics: Iterable[Topic[Message]] = ALL_TOPICS, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet, with the configured partitions and replication and each
    topic's configs (cleanup policy, retention: Topic.configs); return the names created."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs(), request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t.name, kafka.partitions, kafka.replication_factor, topic_configs=t.configs) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
            await _until_described(admin, [t.name for t in missing], kafka.partitions, timeout_s)
        return [t.name for t in missing]
    finally:
        await admin.close()


class PartitionMismatch(Exception):
    """Topics a service joins by partition do not have the configured partition count."""


async def check_partition_counts(kafka: KafkaSettings, names: Iterable[str]) -> None:
    """Raise PartitionMismatch unless every topic of `names` that exists has kafka.partitions partitions.

    Why: the router keeps a call's state on the partition its events arrive on, across its input,
    internal and changelog topics; with other counts a call's bids would land where its auction
    is not (and Faust would not say so).
    """
    names = list(names)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([n for n in names if n in existing])
    finally:
        await admin.close()
    counts = {d["topic"]: len(d.get("partitions") or ()) for d in described if not d.get("error_code")}
    wrong = {name: n for name, n in sorted(counts.items()) if n != kafka.partitions}
    if wrong:
        found = ", ".join(f"{name} has {n}" for name, n in wrong.items())
        raise PartitionMismatch(
            f"topic partitions: {found}, but SWITCHBOARD_KAFKA_PARTITIONS is {kafka.partitions}: every topic must have the "
            f"same count; set SWITCHBOARD_KAFKA_PARTITIONS to the count of the existing topics (or recreate them)"
        )


async def _until_described(admin: AIOKafkaAdminClient, names: list[str], partitions: int, timeout_s: float) -> None:
    """Wait until metadata shows every new topic with all its partitions.

    Why: right after CreateTopics a metadata answer can still show a new topic with fewer
    partitions (seen on Tansu under load); a service that starts then and reads
    partitions_for_topic would never consume the missing ones.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        short = sorted(d["topic"] for d in described if d.get("error_code") or len(d.get("partitions") or ()) < partitions)
        short += sorted(set(names) - {d["topic"] for d in described})
        if not short:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"topics {short} not visible with {partitions} partitions after {timeout_s:.0f} s")
        await asyncio.sleep(0.05)


async def wait_for_broker(kafka: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Wait until the cluster answers a metadata request, or raise TimeoutError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Exception | None = None
    # Wait for the port to accept first: aiokafka logs an ERROR for every refused connection.
    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.close()
            await writer.wait_closed()
            break
        except OSError as exc:
            last = exc
            await asyncio.sleep(0.02)
    while loop.time() < deadline:
        admin = AIOKafkaAdminClient(**kafka.client_kwargs(), request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # noqa: BLE001 — not up yet: retry until the deadline
            last = exc
            await asyncio.sleep(0.05)
        finally:
            await admin.close()
    raise TimeoutError(f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout_s}s: {last}")


async def consumer_lag(kafka: KafkaSettings, group_id: str, topics: Iterable[Topic[Message]] = ALL_TOPICS) -> int:
    """Messages in `topics` that consumer group `group_id` has not committed yet."""
    names = [t.name for t in topics]
    # The admin client's OffsetFetch is not understood by Tansu; a consumer that carries the
    # group id but never subscribes asks the coordinator the same question without joining.
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(n, p) for n in names for p in (consumer.partitions_for_topic(n) or ())]
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            done = await consumer.committed(tp)
            lag += max(0, end - (done or 0))
        return lag
    finally:
        await consumer.stop()


async def wait_until_drained(
    kafka: KafkaSettings, group_id: str, timeout_s: float = 30.0, topics: Iterable[Topic[Message]] = ALL_TOPICS
) -> int:
    """Wait until `group_id` has committed everything in `topics`; return the lag left (0 when drained)."""
    topics = list(topics)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    lag = await consumer_lag(kafka, group_id, topics)
    while lag and loop.time() < deadline:
        await asyncio.sleep(0.1)
        lag = await consumer_lag(kafka, group_id, topics)
    return lag


async def read_all(kafka: KafkaSettings, topics: Iterable[Topic[M]]) -> list[tuple[Topic[M], M]]:
    """Everything currently in `topics`, decoded (undecodable messages skipped); no consumer group."""
    topics = list(topics)
    by_name = {t.name: t for t in topics}
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False, fetch_max_wait_ms=kafka.fetch_max_wait_ms)
    await consumer.start()
    out: list[tuple[Topic[M], M]] = []
    try:
        partitions = [TopicPartition(t.name, p) for t in topics for p in (consumer.partitions_for_topic(t.name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=200)
            for records in batches.values():
                for r in records:
                    try:
                        out.append((by_name[r.topic], codec.decode(by_name[r.topic], r.value)))
                    except codec.UndecodableEvent:
                        pass
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()
