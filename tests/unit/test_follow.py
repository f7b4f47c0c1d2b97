"""platform.follow: every partition read up to its end at the start ("caught up"), then on; without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from switchboard.platform import follow
from switchboard.platform.follow import Follower, MissingTopics, assign_all
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ENDED, CALL_QUEUED, CALLERS_SEEN

P0, P1 = TopicPartition(CALL_QUEUED.name, 0), TopicPartition(CALL_QUEUED.name, 1)


def record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())


class FakeConsumer:
    """The consumer calls a Follower makes: partitions per topic, a log per partition, batches as scripted."""

    def __init__(self, partitions: dict[str, int], logs: dict[TopicPartition, int], batches: list[list[TopicPartition]]):
        self.partitions = partitions
        self.ends = dict(logs)  # records per partition (offsets 0..n-1)
        self.batches = batches  # each batch: one record of each listed partition, at its position
        self.pos: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []
        self.fetches = 0

    async def topics(self) -> set[str]:
        return set(self.partitions)

    def partitions_for_topic(self, name: str) -> set[int] | None:
        n = self.partitions.get(name, 0)
        return set(range(n)) if n else None

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int:  # the lag metric's input (platform.kafka.partition_lags)
        return self.ends.get(tp, 0)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.pos[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends.get(tp, 0) for tp in tps}

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.fetches += 1
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp in self.batches.pop(0) if self.batches else []:
            offset = self.pos[tp]
            self.ends[tp] = max(self.ends.get(tp, 0), offset + 1)  # a record beyond the start's end is a new one
            out.setdefault(tp, []).append(record(tp, offset))
            self.pos[tp] = offset + 1
        return out


@pytest.fixture(autouse=True)
def no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    async def listed(consumer: Any, kafka: KafkaSettings, tps: list[TopicPartition], client_id: str) -> dict:
        return await consumer.end_offsets(tps)  # the fake's ends are the true ones: nothing to confirm by a fetch

    monkeypatch.setattr(follow, "confirmed_end_offsets", listed)


def run_follower(consumer: FakeConsumer, *, seek: Any = None, fetches: int) -> tuple[dict, list, list[int]]:
    """Start and run a Follower of call.queued for `fetches` fetches; (positions, handled, fetch count at each caught-up)."""
    handled: list[tuple[int, int, bool]] = []
    caught_up_at: list[int] = []
    batches_seen: list[int] = []

    async def main() -> dict:
        follower = Follower(consumer, KafkaSettings(), "test")  # type: ignore[arg-type]
        positions = await follower.start([CALL_QUEUED.name], seek)
        stop = asyncio.Event()

        async def handle(r: ConsumerRecord, catching_up: bool) -> None:
            handled.append((r.partition, r.offset, catching_up))

        async def after_batch() -> None:
            batches_seen.append(consumer.fetches)
            if consumer.fetches >= fetches:
                stop.set()

        await follower.run(handle, stop, on_caught_up=lambda: caught_up_at.append(consumer.fetches), after_batch=after_batch)
        assert batches_seen == list(range(1, fetches + 1))  # after every batch, empty ones too
        return positions

    positions = asyncio.run(main())
    return positions, handled, caught_up_at


def test_caught_up_once_every_partition_reached_its_end_at_the_start() -> None:
    consumer = FakeConsumer({CALL_QUEUED.name: 2}, {P0: 2, P1: 1}, [[P0], [P0, P1], [], [P0, P1]])
    positions, handled, caught_up_at = run_follower(consumer, fetches=4)
    assert consumer.assigned == [P0, P1] and positions == {P0: 0, P1: 0}
    assert handled == [(0, 0, True), (0, 1, True), (1, 0, True), (0, 2, False), (1, 1, False)]
    assert caught_up_at == [2]  # after the batch that read the last old record, and never again


def test_nothing_to_catch_up_with_is_caught_up_before_the_first_fetch() -> None:
    consumer = FakeConsumer({CALL_QUEUED.name: 2}, {}, [[P1]])
    _, handled, caught_up_at = run_follower(consumer, fetches=2)
    assert caught_up_at == [0] and handled == [(1, 0, False)]


def test_positions_chosen_by_seek_set_what_is_behind() -> None:
    consumer = FakeConsumer({CALL_QUEUED.name: 2}, {P0: 5, P1: 3}, [[P1]])

    async def seek(tp: TopicPartition) -> None:
        consumer.seek(tp, {P0: 5, P1: 2}[tp])  # P0 already at its end: not behind

    positions, handled, caught_up_at = run_follower(consumer, seek=seek, fetches=2)
    assert positions == {P0: 5, P1: 2}
    assert handled == [(1, 2, True)] and caught_up_at == [1]


def test_missing_topics_are_named() -> None:
    consumer = FakeConsumer({CALL_QUEUED.name: 2}, {}, [])
    with pytest.raises(MissingTopics, match=r"^topic call\.ended does not exist; create it first") as one:
        asyncio.run(assign_all(consumer, [CALL_QUEUED.name, CALL_ENDED.name]))  # type: ignore[arg-type]
    assert one.value.names == [CALL_ENDED.name] and consumer.assigned == []
    with pytest.raises(MissingTopics, match=r"^topics \['call\.ended', 'ivr\.callers'\] do not exist; create them first"):
        asyncio.run(assign_all(consumer, [CALL_ENDED.name, CALLERS_SEEN.name]))  # type: ignore[arg-type]
    assert isinstance(MissingTopics(["x"]), RuntimeError)
