"""The router alone (no bidder): auction deadlines, and an auction in flight survives a restart.

Nobody answers the pings here, so every auction ends at its deadline. The
router's state lives in changelog-backed tables: a router stopped mid-auction
and started again (same app id) recovers the auction and still gives the call
exactly one terminal event.

The last two tests pin the two broker-level corrections the router's transport
makes when it starts or rebalances (services/router/transport.py, docs/ROUTER.md
"Crash and restart"), on the real broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from google.protobuf.message import Message

from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import ensure_topics, make_consumer, true_end_offsets
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import (
    BID_RECEIVED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    IVR_COMPLETED,
    PING_REQUESTED,
    Topic,
)
from switchboard.services.router.transport import rewind_uncommitted
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    Results,
    ServiceProcess,
    by_target,
    event_bus,
    ivr,
    service_env,
    wait_records,
)

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 15.00}
buyers:
  - {id: silent, destination: "+18005550100", bid: {type: static, price: 40.00}}
  # No bidder runs here: the test answers its pings itself.
  - {id: late-rtb, destination: "+18005550101", bid: {type: rtb, url: "http://127.0.0.1:9/never", timeout_ms: 1000}}
campaigns:
  - id: slow
    numbers: ["+18885550011"]
    publisher: pub
    routing: {timeout_ms: 300, tiers: [{strategy: price, buyers: [silent]}, {strategy: queue, queue: sales}]}
  - id: long
    numbers: ["+18885550012"]
    publisher: pub
    routing: {timeout_ms: 2500, tiers: [{strategy: price, buyers: [silent]}]}
  - id: takeover
    numbers: ["+18885550013"]
    publisher: pub
    routing: {timeout_ms: 1500, tiers: [{strategy: price, buyers: [late-rtb]}]}
queues:
  - {id: sales}
"""


class RouterProcess:
    """The router as a process that a test can stop and start again (same app id, so same state)."""

    def __init__(self, broker: EmbeddedBroker, tmp: Path) -> None:
        config = tmp / "routing.yaml"
        config.write_text(CONFIG)
        self.tmp = tmp
        self.env = service_env(broker.kafka_settings(), config, SWITCHBOARD_ROUTER_APP_ID=f"router-rec-{uuid.uuid4().hex[:8]}")
        self.service: ServiceProcess | None = None
        self.runs = 0

    def start(self, timeout_s: float = 60.0) -> None:
        self.runs += 1
        self.service = ServiceProcess("router", self.env, ready_dir=self.tmp, log=self.tmp / f"router-{self.runs}.log")
        self.service.wait_ready(timeout_s)

    def stop(self) -> int:
        service, self.service = self.service, None
        return service.stop() if service is not None else 0


@pytest.fixture(scope="module")
def router(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    r = RouterProcess(broker, tmp_path_factory.mktemp("router_recovery"))
    try:
        r.start()
        yield r
    finally:
        r.stop()


async def test_deadline_without_answers_falls_through_to_queue(router: RouterProcess, kafka: KafkaSettings) -> None:
    event = ivr("slow")
    async with Results(kafka) as results, event_bus(kafka) as bus:
        await bus.publish(IVR_COMPLETED, event)
        topic, queued = await results.wait_terminal(event.call_id)
    assert topic == CALL_QUEUED.name
    e = by_target(queued)["silent"]
    assert e.eligible and e.bid_reason == "timeout"
    # The deadline was honoured: the hand-off came no earlier than timeout_ms after routing started.
    assert codec.ts_ms(queued.occurred_at) - codec.ts_ms(queued.routing_started_at) >= 300


async def test_auction_in_flight_survives_a_restart(router: RouterProcess, kafka: KafkaSettings) -> None:
    event = ivr("long")
    async with Results(kafka) as results:
        async with event_bus(kafka) as bus:
            await bus.publish(IVR_COMPLETED, event)
            # Stop the router mid-auction (deadline 2.5 s away), once it has written the auction.
            await _wait_for_ping(kafka, event.call_id)
            assert router.stop() == 0, "SIGTERM must stop the router cleanly"
            assert results.terminal(event.call_id) == []
            await asyncio.to_thread(router.start)
            topic, rejected = await results.wait_terminal(event.call_id, timeout_s=30)
            assert topic == CALL_REJECTED.name and rejected.reason == "no_bid"
            # The finished table was recovered too: a redelivery after the restart is ignored.
            await bus.publish(IVR_COMPLETED, event)
            follow = ivr("slow")
            await bus.publish(IVR_COMPLETED, follow)
            await results.wait_terminal(follow.call_id, timeout_s=30)
        assert len(results.terminal(event.call_id)) == 1


async def test_a_bid_given_in_time_counts_when_the_deadline_is_handled_late(router: RouterProcess, kafka: KafkaSettings) -> None:
    """A worker taking calls over (here: the same router back after a stop) finds an auction whose deadline
    passed while it was down, and the bid that came in time still unread behind a backlog of bid.received.
    The late deadline waits until bid.received is read up to where it ended: the call is sold, not no_bid."""
    event = ivr("takeover")
    async with Results(kafka) as results:
        async with event_bus(kafka) as bus:
            await bus.publish(IVR_COMPLETED, event)
            [(_, ping)] = await _wait_for_ping(kafka, event.call_id)
            assert router.stop() == 0
            # Answers of other auctions (stale for this call) ahead of the one that counts, on the same partition.
            backlog = [
                pb.BidReceived(
                    event_id=codec.new_id(),
                    call_id=event.call_id,
                    occurred_at=codec.now_ts(),
                    auction_id=f"stale-{n}",
                    buyer_id="late-rtb",
                    outcome=pb.BID_OUTCOME_DECLINE,
                    reason="stale",
                )
                for n in range(BACKLOG)
            ]
            await asyncio.gather(*(bus.publish(BID_RECEIVED, b) for b in backlog))
            # Stamped as the bidder stamps an answer it got before the deadline: on a loaded machine the stop
            # and the backlog above can take longer than the auction had left, and "now" would be late.
            answered_at = codec.now_ts()
            answered_at.FromMilliseconds(min(answered_at.ToMilliseconds(), codec.ts_ms(ping.deadline) - 100))
            in_time = pb.BidReceived(
                event_id=codec.new_id(),
                call_id=event.call_id,
                occurred_at=answered_at,
                auction_id=ping.auction_id,
                buyer_id="late-rtb",
                outcome=pb.BID_OUTCOME_BID,
                amount="55.00",
                latency_ms=120,
            )
            assert codec.ts_ms(in_time.occurred_at) < codec.ts_ms(ping.deadline)
            await bus.publish(BID_RECEIVED, in_time)
            # Down until the deadline is more than late_deadline_ms (1 s) past: the restart finds it late.
            await asyncio.sleep(max(0.0, (codec.ts_ms(ping.deadline) + 1500) / 1000 - time.time()))
            await asyncio.to_thread(router.start)
            topic, decided = await results.wait_terminal(event.call_id, timeout_s=60)
        assert topic == CALL_ROUTED.name, decided
        assert (decided.buyer_id, decided.price) == ("late-rtb", "55.00")
        assert len(results.terminal(event.call_id)) == 1


BACKLOG = 3000  # a few seconds of work for a router that just started


async def _wait_for_ping(kafka: KafkaSettings, call_id: str, timeout_s: float = 20.0) -> list:
    return await wait_records(kafka, PING_REQUESTED, lambda r, _ev: (r.key or b"").decode() == call_id, timeout_s)


async def _topic_of_its_own(kafka: KafkaSettings) -> str:
    name = f"test-recovery-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [Topic(name, Message, "test records")])
    return name


async def test_end_offsets_count_every_record_of_a_last_batch(kafka: KafkaSettings) -> None:
    """Table recovery reads changelogs up to these ends: a whole last batch must count."""
    topic = await _topic_of_its_own(kafka)
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=100)
    await producer.start()
    try:
        sent = [await producer.send(topic, f"r{i}".encode(), partition=0) for i in range(3)]  # one batch
        offsets = [(await f).offset for f in sent]
        await producer.send_and_wait(topic, b"alone", partition=1)
    finally:
        await producer.stop()
    assert offsets == [0, 1, 2]
    tps = [TopicPartition(topic, p) for p in range(kafka.partitions)]
    reader = AIOKafkaConsumer(**kafka.client_kwargs())
    await reader.start()
    try:
        listed = await reader.end_offsets(tps)  # Tansu: 1 for partition 0 (its last batch starts at 0)
    finally:
        await reader.stop()
    ends = await true_end_offsets(lambda: AIOKafkaConsumer(**kafka.client_kwargs()), listed)
    assert ends == {tps[0]: 3, tps[1]: 1, tps[2]: 0, tps[3]: 0}


async def test_uncommitted_partitions_are_rewound_after_the_seek_to_committed(kafka: KafkaSettings) -> None:
    """Records read past but never committed are read again, as Faust expects after a rebalance."""
    topic = await _topic_of_its_own(kafka)
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:
        for partition, count in ((0, 3), (1, 2)):
            for _ in range(count):
                await producer.send_and_wait(topic, b"v", partition=partition)
    finally:
        await producer.stop()
    tps = [TopicPartition(topic, p) for p in range(kafka.partitions)]
    consumer = make_consumer(kafka, f"test-rewind-{uuid.uuid4().hex[:8]}", "test")
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit({tps[1]: 0})  # committed, but at 0; partition 0 never committed

        async def read() -> dict[int, list[int]]:
            got: dict[int, list[int]] = {}
            while sum(map(len, got.values())) < 5:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    got.setdefault(tp.partition, []).extend(r.offset for r in records)
            return got

        assert await asyncio.wait_for(read(), 20) == {0: [0, 1, 2], 1: [0, 1]}
        committed = await consumer.seek_to_committed()  # aiokafka leaves offsets None and 0 alone
        rewound = await rewind_uncommitted(consumer, committed, "earliest")
        assert set(rewound) == set(tps)
        assert [await consumer.position(tp) for tp in tps] == [0, 0, 0, 0]
        assert await asyncio.wait_for(read(), 20) == {0: [0, 1, 2], 1: [0, 1]}
    finally:
        await consumer.stop()


def test_a_router_configured_for_another_partition_count_refuses_to_start(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The session's topics have 4 partitions: a router told 3 would put a call's bids where its auction is not."""
    import os
    import subprocess
    import sys

    config = tmp_path / "routing.yaml"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        **service_env(broker.kafka_settings(), config, SWITCHBOARD_ROUTER_APP_ID=f"router-parts-{uuid.uuid4().hex[:8]}"),
        "SWITCHBOARD_KAFKA_PARTITIONS": "3",
        "SWITCHBOARD_READY_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.services.router"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "ivr.completed has 4" in done.stderr and "SWITCHBOARD_KAFKA_PARTITIONS is 3" in done.stderr, done.stderr
