"""A failure while dead-lettering keeps nothing stuck for good and loses nothing (platform.deadletters).

Real broker. Failures are real where the broker or client can be made to refuse (a record over
the producer's size limit); the broker not answering is injected at the wiring point, the
producer of the consumer's EventBus (FlakyProducer: a real producer whose sends to one topic
raise KafkaTimeoutError while `failing` is set). Each test reads its own fresh input topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, consume, ensure_topics
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CTI_EVENTS, DEAD_LETTER, Topic
from switchboard.services.cti.service import CtiService
from switchboard.services.cti.settings import CtiSettings
from switchboard.v1 import events_pb2 as pb
from tests.support import new_call_id, publish_raw, read_all, until

pytestmark = pytest.mark.integration


class FlakyProducer(AIOKafkaProducer):
    """A real producer whose sends to `topic` time out while `failing` is set."""

    def __init__(self, *args: Any, topic: str, failing: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topic, self.failing, self.refused = topic, failing, 0

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        if topic == self.topic and self.failing.is_set():
            self.refused += 1
            raise KafkaTimeoutError("injected: the broker did not answer")
        return await super().send_and_wait(topic, value, key=key, **kwargs)


class WiredBus(EventBus):
    """EventBus whose producer is made by `factory` (the wiring point of the consume loop)."""

    def __init__(self, kafka: KafkaSettings, factory: Any) -> None:
        super().__init__(kafka, "test-robust")
        self.factory = factory

    async def start(self) -> None:
        self._producer = self.factory(**self.kafka.client_kwargs(), acks="all", client_id=self.service)
        await self._producer.start()


async def fresh_topic(kafka: KafkaSettings) -> Topic[pb.CallRouted]:
    topic = Topic(f"robust.{uuid.uuid4().hex[:8]}", pb.CallRouted, "input of one test")
    await ensure_topics(kafka, [topic])
    return topic


def routed(call_id: str) -> pb.CallRouted:
    return pb.CallRouted(event_id=codec.new_id(), call_id=call_id, occurred_at=codec.now_ts(), kind=pb.TARGET_KIND_BUYER)


async def committed(kafka: KafkaSettings, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


async def letters_of(kafka: KafkaSettings, topic: Topic[pb.CallRouted]) -> list[pb.DeadLetter]:
    return await read_all(kafka, DEAD_LETTER, lambda e: e.source_topic == topic.name)


@asynccontextmanager
async def consuming(bus: EventBus, topic: Topic[pb.CallRouted], group: str, handled: list[str]) -> AsyncIterator[Any]:
    """Run consume() on `topic` in a task; yield (task, stop); stop it on exit."""

    async def handler(_t: Topic[pb.CallRouted], event: pb.CallRouted, _r: ConsumerRecord) -> None:
        handled.append(event.call_id)

    stop = asyncio.Event()
    task = asyncio.create_task(consume(bus, [topic], handler, group, stop))
    try:
        yield task, stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_failing_dead_letter_holds_its_record_until_written(kafka: KafkaSettings):
    topic, group, failing = await fresh_topic(kafka), f"robust-{uuid.uuid4().hex}", asyncio.Event()
    failing.set()
    cid = new_call_id()
    # Same key: one partition, the garbage first.
    last = await publish_raw(
        kafka, [(topic.name, cid.encode(), b"\xffnot an event"), (topic.name, cid.encode(), codec.encode(routed(cid)))]
    )
    [(tp, good_offset)] = last.items()
    bus = WiredBus(kafka, lambda **kw: FlakyProducer(topic=DEAD_LETTER.name, failing=failing, **kw))
    await bus.start()
    handled: list[str] = []
    try:
        async with consuming(bus, topic, group, handled) as (task, _stop):
            producer = bus._producer
            assert isinstance(producer, FlakyProducer)
            await until("dead letter retried", lambda: producer.refused >= 4)
            assert not task.done(), "the consumer must not crash"
            assert handled == [], "nothing after the record whose letter is not written yet"
            assert await committed(kafka, group, tp) is None, "nothing committed past it"
            failing.clear()  # the broker answers again
            await until("the next record handled", lambda: handled == [cid])
            await until("committed past both", lambda: _is(committed(kafka, group, tp), good_offset + 1))
        [letter] = await letters_of(kafka, topic)
        assert (letter.source_offset, letter.value, letter.value_omitted_bytes) == (good_offset - 1, b"\xffnot an event", 0)
        assert letter.reason.startswith("undecodable:") and letter.service == "test-robust"
    finally:
        await bus.stop()


async def _is(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def test_stopped_while_the_letter_fails_ends_cleanly_and_the_next_start_writes_it(kafka: KafkaSettings):
    topic, group, failing = await fresh_topic(kafka), f"robust-{uuid.uuid4().hex}", asyncio.Event()
    failing.set()
    cid = new_call_id()
    last = await publish_raw(
        kafka, [(topic.name, cid.encode(), b"\xffgarbage"), (topic.name, cid.encode(), codec.encode(routed(cid)))]
    )
    [(tp, good_offset)] = last.items()
    flaky = WiredBus(kafka, lambda **kw: FlakyProducer(topic=DEAD_LETTER.name, failing=failing, **kw))
    await flaky.start()
    handled: list[str] = []
    try:
        async with consuming(flaky, topic, group, handled) as (task, stop):
            producer = flaky._producer
            assert isinstance(producer, FlakyProducer)
            await until("dead letter retried", lambda: producer.refused >= 2)
            stop.set()
            await asyncio.wait_for(task, 30)  # returns: no exception out of consume()
        assert handled == [] and await committed(kafka, group, tp) is None
        assert await letters_of(kafka, topic) == []
    finally:
        await flaky.stop()
    # The restart (a working broker) reads the record again: it is dead-lettered once, then the next handled.
    bus = EventBus(kafka, "test-robust")
    await bus.start()
    try:
        async with consuming(bus, topic, group, handled):
            await until("the next record handled", lambda: handled == [cid])
            await until("committed past both", lambda: _is(committed(kafka, group, tp), good_offset + 1))
        assert [lt.source_offset for lt in await letters_of(kafka, topic)] == [good_offset - 1]
    finally:
        await bus.stop()


async def test_a_letter_over_max_record_bytes_leaves_the_value_out(kafka: KafkaSettings):
    small = kafka.model_copy(update={"max_record_bytes": 10_000})
    topic, group = await fresh_topic(small), f"robust-{uuid.uuid4().hex}"
    cid = new_call_id()
    big = b"\xff" + b"x" * 20_000
    last = await publish_raw(kafka, [(topic.name, cid.encode(), big), (topic.name, cid.encode(), codec.encode(routed(cid)))])
    [(tp, good_offset)] = last.items()
    bus = EventBus(small, "test-robust")
    await bus.start()
    handled: list[str] = []
    try:
        async with consuming(bus, topic, group, handled):
            await until("the next record handled", lambda: handled == [cid])
    finally:
        await bus.stop()
    [letter] = await letters_of(kafka, topic)
    assert (letter.value, letter.value_omitted_bytes, letter.source_offset) == (b"", len(big), good_offset - 1)
    assert letter.reason.startswith("undecodable:")
    assert f"value of {len(big)} bytes not copied" in letter.reason
    assert f"read it at {topic.name}/{tp.partition}/{good_offset - 1}" in letter.reason


async def test_a_letter_the_producer_refuses_for_its_size_is_written_without_the_value(kafka: KafkaSettings):
    """The client's (or broker's) limit below max_record_bytes: MessageSizeTooLargeError, then the small letter."""
    topic, group = await fresh_topic(kafka), f"robust-{uuid.uuid4().hex}"
    cid = new_call_id()
    value = b"\xff" + b"y" * 7_000
    await publish_raw(kafka, [(topic.name, cid.encode(), value), (topic.name, cid.encode(), codec.encode(routed(cid)))])
    bus = WiredBus(
        kafka.model_copy(update={"max_record_bytes": 10_000}), lambda **kw: AIOKafkaProducer(max_request_size=6_000, **kw)
    )
    await bus.start()
    handled: list[str] = []
    try:
        async with consuming(bus, topic, group, handled):
            await until("the next record handled", lambda: handled == [cid])
    finally:
        await bus.stop()
    [letter] = await letters_of(kafka, topic)
    assert (letter.value, letter.value_omitted_bytes) == (b"", len(value))


async def test_cti_retries_a_failing_publish_instead_of_dead_lettering(kafka: KafkaSettings):
    topic, group, failing = await fresh_topic(kafka), f"robust-{uuid.uuid4().hex}", asyncio.Event()
    failing.set()
    bus = WiredBus(kafka, lambda **kw: FlakyProducer(topic=CTI_EVENTS.name, failing=failing, **kw))
    await bus.start()
    stop = asyncio.Event()
    service = CtiService(CtiSettings(kafka=kafka), bus, stop)
    task = asyncio.create_task(consume(bus, [topic], service.handle, group, stop))
    cid = new_call_id()
    try:
        await bus.publish(topic, routed(cid))
        producer = bus._producer
        assert isinstance(producer, FlakyProducer)
        await until("publish retried", lambda: producer.refused >= 4)
        assert not task.done()
        failing.clear()
        await until("screen pop published", lambda: read_all(kafka, CTI_EVENTS, lambda e: e.call_id == cid))
        stop.set()
        await asyncio.wait_for(task, 30)
        assert await letters_of(kafka, topic) == [], "a broker hiccup is not bad input"
        assert len(await read_all(kafka, CTI_EVENTS, lambda e: e.call_id == cid)) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await bus.stop()
