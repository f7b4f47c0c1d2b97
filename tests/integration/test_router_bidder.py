"""Router (Faust) + bidder as real subprocesses on the session broker: calls in, terminal events out.

The broker is shared by the whole test session, so every test uses fresh call
ids and reads the result topics filtered by them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiokafka.partitioner import DefaultPartitioner

from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_OVERFLOWED, CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, IVR_COMPLETED, QUEUE_SUMMARY
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    RESULT_TOPICS,
    Results,
    ServiceProcess,
    by_target,
    event_bus,
    ivr,
    publish_raw,
    service_env,
    stop_services,
)

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 15.00, blocked_buyers: [blocked]}
buyers:
  - {id: top,     destination: "+18005550100", bid: {type: static, price: 40.00}, filters: {states: [CA]}}
  - {id: mid,     destination: "+18005550101", bid: {type: static, price: 30.00}}
  - {id: blocked, destination: "+18005550102", bid: {type: static, price: 99.00}}
  - {id: cheap,   destination: "+18005550103", bid: {type: static, price: 10.00}}
  - {id: texan,   destination: "+18005550104", bid: {type: static, price: 50.00}, filters: {states: [TX]}}
  - {id: rtb,     destination: "+18005550105", bid: {type: rtb, url: "http://127.0.0.1:9/ping", timeout_ms: 300}}
campaigns:
  - id: price
    numbers: ["+18885550001"]
    publisher: pub
    routing:
      timeout_ms: 2000
      tiers: [{strategy: price, buyers: [top, mid, blocked, cheap, texan]}]
  - id: nobody
    numbers: ["+18885550002"]
    publisher: pub
    routing: {tiers: [{strategy: price, buyers: [texan, cheap]}]}
  - id: queued
    numbers: ["+18885550003"]
    publisher: pub
    routing: {tiers: [{strategy: price, buyers: [texan]}, {strategy: queue, queue: sales}]}
  - id: rtb-only
    numbers: ["+18885550004"]
    publisher: pub
    routing: {timeout_ms: 1000, tiers: [{strategy: price, buyers: [rtb]}]}
  - id: overflow
    numbers: ["+18885550005"]
    publisher: pub
    routing: {tiers: [{strategy: queue, queue: nobody-home}, {strategy: price, buyers: [mid]}]}
queues:
  - {id: sales}
  - {id: nobody-home}   # no agents: every call overflows to the buyers of the next tier
"""


@dataclass
class Services:
    kafka: KafkaSettings
    procs: dict[str, ServiceProcess] = field(default_factory=dict)


@pytest.fixture(scope="module")
def services(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("router_bidder")
    config = tmp / "routing.yaml"
    config.write_text(CONFIG)
    kafka = broker.kafka_settings()
    env = service_env(
        kafka,
        config,
        # A group of its own: committed offsets of other routers in this session do not apply.
        SWITCHBOARD_ROUTER_APP_ID=f"router-it-{uuid.uuid4().hex[:8]}",
        SWITCHBOARD_ROUTER_DATA_DIR=str(tmp / "router-data"),
    )
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in ("bidder", "router", "queue"):
            procs[name] = ServiceProcess(name, env, ready_dir=tmp, log=tmp / f"{name}.log")
        for p in procs.values():
            p.wait_ready()
        yield Services(kafka, procs)
    finally:
        codes = stop_services(*procs.values())
        assert all(c == 0 for c in codes.values()), f"unclean shutdown {codes}; logs in {tmp}"


async def route(services: Services, event: pb.IvrCompleted) -> tuple[str, object]:
    async with Results(services.kafka) as results, event_bus(services.kafka) as bus:
        await bus.publish(IVR_COMPLETED, event)
        return await results.wait_terminal(event.call_id)


async def test_routes_to_highest_eligible_static_bid_with_trace(services: Services) -> None:
    topic, routed = await route(services, ivr("price", state="CA"))
    assert topic == CALL_ROUTED.name
    assert isinstance(routed, pb.CallRouted)
    assert (routed.buyer_id, routed.price, routed.destination, routed.strategy) == ("top", "40.00", "+18005550100", "price")
    assert routed.caller.number == "+12135550199" and routed.answers["homeowner"] == "yes"
    assert routed.HasField("call_started_at") and routed.HasField("routing_started_at")
    trace = by_target(routed)
    assert trace["top"].winner and trace["mid"].bid_amount == "30.00" and not trace["mid"].winner
    assert trace["blocked"].excluded_by == "blocked_by_publisher"
    assert trace["cheap"].excluded_by == "floor"
    assert trace["texan"].excluded_by == "filter:states"
    assert routed.trace.winning_tier == 0


async def test_state_filter_moves_the_call_to_the_next_best(services: Services) -> None:
    topic, routed = await route(services, ivr("price", state="NV"))
    assert topic == CALL_ROUTED.name and routed.buyer_id == "mid"
    trace = by_target(routed)
    assert trace["top"].excluded_by == "filter:states" and not trace["top"].eligible
    assert trace["blocked"].excluded_by == "blocked_by_publisher"  # 99.00 but never chosen


async def test_call_nobody_takes_is_rejected_with_reason(services: Services) -> None:
    topic, rejected = await route(services, ivr("nobody"))
    assert topic == CALL_REJECTED.name
    assert isinstance(rejected, pb.CallRejected)
    assert rejected.reason == "no_eligible_buyer" and rejected.announcement
    assert {e.target_id: e.excluded_by for e in rejected.trace.entries} == {"texan": "filter:states", "cheap": "floor"}


async def test_rtb_buyer_answers_no_bid_and_the_call_is_rejected_no_bid(services: Services) -> None:
    topic, rejected = await route(services, ivr("rtb-only"))
    assert topic == CALL_REJECTED.name and rejected.reason == "no_bid"
    e = by_target(rejected)["rtb"]
    assert (
        e.eligible and e.bid_outcome == pb.BID_OUTCOME_NO_BID and e.bid_reason == "connection_refused"
    )  # nothing listens on port 9


async def test_queue_tier_produces_call_queued(services: Services) -> None:
    event = ivr("queued")
    async with Results(services.kafka) as results, event_bus(services.kafka) as bus:
        await bus.publish(IVR_COMPLETED, event)
        # The queue service of this module then rejects it (no agents, last tier) on another topic, which
        # may be read first: wait for the router's hand-off itself.
        deadline = time.monotonic() + 20
        while not (found := [e for t, e in results.terminal(event.call_id) if t == CALL_QUEUED.name]):
            assert time.monotonic() < deadline, results.terminal(event.call_id)
            await asyncio.sleep(0.01)
    queued = found[0]
    assert isinstance(queued, pb.CallQueued)
    assert (queued.queue_id, queued.tier_index) == ("sales", 1)
    assert by_target(queued)["texan"].excluded_by == "filter:states"


async def test_call_queued_carries_the_queues_outlook_from_queue_summary(services: Services) -> None:
    """The router follows queue.summary and stamps call.queued (docs/ACD.md "Projected wait")."""
    # Dated a day ahead so that it stays the newest summary of `sales` whatever this module's queue
    # service writes meanwhile (the router keeps the latest occurred_at per queue).
    ahead = pb.QueueSummary(event_id=codec.new_id(), queue_id="sales", waiting=41, projected_wait_s=600)
    ahead.occurred_at.FromSeconds(int(time.time()) + 86_400)
    await publish_raw(services.kafka, [(QUEUE_SUMMARY.name, b"sales", ahead.SerializeToString())])
    deadline = time.monotonic() + 30
    async with Results(services.kafka) as results, event_bus(services.kafka) as bus:
        while True:  # the router reads the summary soon, not at once: queue calls until one carries it
            event = ivr("queued")
            await bus.publish(IVR_COMPLETED, event)
            while not (found := [e for t, e in results.terminal(event.call_id) if t == CALL_QUEUED.name]):
                assert time.monotonic() < deadline, results.terminal(event.call_id)
                await asyncio.sleep(0.01)
            queued = found[0]
            assert isinstance(queued, pb.CallQueued)
            if queued.position != -1:
                break
            assert queued.projected_wait_s == -1 and time.monotonic() < deadline
    assert (queued.position, queued.projected_wait_s) == (42, 600)


async def test_a_queue_with_nobody_overflows_to_the_next_tiers_buyers(services: Services) -> None:
    event = ivr("overflow")
    async with Results(services.kafka, (*RESULT_TOPICS, CALL_OVERFLOWED)) as results, event_bus(services.kafka) as bus:
        await bus.publish(IVR_COMPLETED, event)
        deadline = time.monotonic() + 20
        while not any(t == CALL_ROUTED.name for t, _ in results.terminal(event.call_id)):
            assert time.monotonic() < deadline, results.terminal(event.call_id)
            await asyncio.sleep(0.01)
        # Three topics, read in whatever order their fetches return: put them in the order they were made.
        made = sorted(results.terminal(event.call_id), key=lambda te: (te[1].occurred_at.seconds, te[1].occurred_at.nanos))
        topics = [t for t, _ in made]
        assert topics == [CALL_QUEUED.name, CALL_OVERFLOWED.name, CALL_ROUTED.name]  # nothing rejected it
        _, overflowed = made[1]
        assert isinstance(overflowed, pb.CallOverflowed) and overflowed.reason == "no_agents"
        _, routed = made[2]
        assert isinstance(routed, pb.CallRouted)
        assert (routed.buyer_id, routed.tier_index, routed.attempt, routed.trace.winning_tier) == ("mid", 1, 1, 1)
        assert routed.caller.number == "+12135550199" and routed.answers["homeowner"] == "yes"
        assert any("overflowed" in n for n in routed.trace.notes)


def _same_partition_call_id(call_id: str, partitions: int) -> str:
    """A fresh call id whose messages land on the same partition as `call_id` (the key partitioner's rule)."""
    part = DefaultPartitioner()
    all_parts = list(range(partitions))
    want = part(call_id.encode(), all_parts, all_parts)
    while True:
        other = uuid.uuid4().hex
        if part(other.encode(), all_parts, all_parts) == want:
            return other


async def test_redelivered_ivr_completed_yields_exactly_one_terminal_event(services: Services) -> None:
    event = ivr("price")
    async with Results(services.kafka) as results:
        async with event_bus(services.kafka) as bus:
            await bus.publish(IVR_COMPLETED, event)
            await bus.publish(IVR_COMPLETED, event)  # while the auction is in flight
            await results.wait_terminal(event.call_id)
            await bus.publish(IVR_COMPLETED, event)  # after the call finished
            # The router handles a partition in order: once a later call on the same
            # partition is routed, every copy of `event` has been handled.
            sentinel = ivr("price", call_id=_same_partition_call_id(event.call_id, services.kafka.partitions))
            await bus.publish(IVR_COMPLETED, sentinel)
            await results.wait_terminal(sentinel.call_id)
        assert len(results.terminal(event.call_id)) == 1


async def test_garbage_goes_to_dead_letter_and_routing_goes_on(services: Services) -> None:
    key = f"garbage-{uuid.uuid4().hex}"
    async with Results(services.kafka) as results, event_bus(services.kafka) as bus:
        await bus._producer.send_and_wait(IVR_COMPLETED.name, b"\xff\xfe not protobuf", key=key.encode())  # type: ignore[union-attr]  # event_bus() started it
        letter = await results.wait_dead_letter(key)
        assert letter.service == "router" and letter.source_topic == IVR_COMPLETED.name
        assert "undecodable" in letter.reason and letter.value == b"\xff\xfe not protobuf"
        after = ivr("price")
        await bus.publish(IVR_COMPLETED, after)
        topic, _routed = await results.wait_terminal(after.call_id)
        assert topic == CALL_ROUTED.name


async def test_decision_latency(services: Services) -> None:
    """ivr.completed → call.routed, one call at a time; printed (run with -s), never asserted."""
    latencies: list[float] = []
    async with Results(services.kafka) as results, event_bus(services.kafka) as bus:
        for _ in range(30):
            event = ivr("price")
            await bus.publish(IVR_COMPLETED, event)
            _, routed = await results.wait_terminal(event.call_id)
            ms = codec.ts_ms(routed.occurred_at) - codec.ts_ms(routed.routing_started_at)
            latencies.append(ms)
    latencies.sort()
    print(
        f"\ndecision latency ms: p50={statistics.median(latencies):.0f} p90={latencies[int(len(latencies) * 0.9)]:.0f} max={latencies[-1]:.0f}"
    )
