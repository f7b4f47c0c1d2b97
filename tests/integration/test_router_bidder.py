"""Router (Faust) + bidder as real subprocesses on the session broker: calls in, terminal events out.

The broker is shared by the whole test session, so every test uses fresh call
ids and reads the result topics filtered by them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import EventBus
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, DEAD_LETTER, IVR_COMPLETED
from switchboard.v1 import events_pb2 as pb

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
queues:
  - {id: sales}
"""

RESULT_TOPICS = (CALL_ROUTED, CALL_REJECTED, CALL_QUEUED, DEAD_LETTER)


@dataclass
class Services:
    kafka: KafkaSettings
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)


def _wait_ready(ready: Path, procs: dict[str, subprocess.Popen], logs: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{(logs / f'{name}.log').read_text()[-4000:]}")
        if all((ready / f"{name}.ready").exists() for name in procs):
            return
        time.sleep(0.05)
    raise TimeoutError(f"services not ready within {timeout_s}s: {[n for n in procs if not (ready / f'{n}.ready').exists()]}")


@pytest.fixture(scope="module")
def services(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("router_bidder")
    config = tmp / "routing.yaml"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        "SWITCHBOARD_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SWITCHBOARD_KAFKA_PARTITIONS": str(broker.partitions),
        "SWITCHBOARD_CONFIG": str(config),
        "SWITCHBOARD_READY_DIR": str(tmp),
        # A group of its own: committed offsets of other routers in this session do not apply.
        "SWITCHBOARD_ROUTER_APP_ID": f"router-it-{uuid.uuid4().hex[:8]}",
        "SWITCHBOARD_ROUTER_DATA_DIR": str(tmp / "router-data"),
    }
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in ("bidder", "router"):
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"switchboard.services.{name}"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_ready(tmp, procs, tmp)
        yield Services(broker.kafka_settings(), procs)
    finally:
        codes = {}
        for name, p in procs.items():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for name, p in procs.items():
            try:
                codes[name] = p.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                codes[name] = p.wait()
        assert all(c == 0 for c in codes.values()), f"unclean shutdown {codes}; logs in {tmp}"


class Results:
    """Reads the result topics (all partitions, from the beginning) in the background."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.records: list[tuple[str, str, object]] = []  # (topic, key, decoded event)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Results:
        self._consumer = AIOKafkaConsumer(**self.kafka.client_kwargs(), fetch_max_wait_ms=5, enable_auto_commit=False)
        await self._consumer.start()
        tps = [TopicPartition(t.name, p) for t in RESULT_TOPICS for p in range(self.kafka.partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=50)
            for recs in batches.values():
                for r in recs:
                    try:  # other tests of the session publish their own (even broken) records here
                        event: object = codec.decode(r.topic, r.value)
                    except codec.UndecodableEvent:
                        continue
                    self.records.append((r.topic, (r.key or b"").decode(errors="replace"), event))

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def terminal(self, call_id: str) -> list[tuple[str, object]]:
        return [(t, e) for t, k, e in self.records if k == call_id and t != DEAD_LETTER.name]

    async def wait_terminal(self, call_id: str, timeout_s: float = 20.0) -> tuple[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.terminal(call_id)
            if found:
                return found[0]
            await asyncio.sleep(0.005)
        raise TimeoutError(f"no terminal event for {call_id}")

    async def wait_dead_letter(self, key: str, timeout_s: float = 20.0) -> pb.DeadLetter:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for t, k, e in self.records:
                if t == DEAD_LETTER.name and k == key:
                    return e  # type: ignore[return-value]
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no dead letter for key {key}")


def ivr(campaign: str, state: str = "CA", call_id: str | None = None) -> pb.IvrCompleted:
    return pb.IvrCompleted(
        event_id=codec.new_id(),
        call_id=call_id or uuid.uuid4().hex,
        occurred_at=codec.now_ts(),
        call_started_at=codec.now_ts(),
        campaign_id=campaign,
        publisher_id="pub",
        caller=pb.Caller(number="+12135550199", state=state, zip="90001", area_code="213"),
        answers={"homeowner": "yes"},
        qualified=True,
    )


def by_target(event: pb.CallRouted | pb.CallRejected | pb.CallQueued) -> dict[str, pb.TraceEntry]:
    return {e.target_id: e for e in event.trace.entries}


async def route(services: Services, event: pb.IvrCompleted) -> tuple[str, object]:
    async with Results(services.kafka) as results:
        bus = EventBus(services.kafka, "test")
        await bus.start()
        try:
            await bus.publish(IVR_COMPLETED, event)
            return await results.wait_terminal(event.call_id)
        finally:
            await bus.stop()


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
    assert topic == CALL_ROUTED.name and routed.buyer_id == "mid"  # type: ignore[attr-defined]
    trace = by_target(routed)  # type: ignore[arg-type]
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
    assert topic == CALL_REJECTED.name and rejected.reason == "no_bid"  # type: ignore[attr-defined]
    e = by_target(rejected)["rtb"]  # type: ignore[arg-type]
    assert e.eligible and e.bid_outcome == pb.BID_OUTCOME_NO_BID and e.bid_reason == "rtb_not_supported"


async def test_queue_tier_produces_call_queued(services: Services) -> None:
    topic, queued = await route(services, ivr("queued"))
    assert topic == CALL_QUEUED.name
    assert isinstance(queued, pb.CallQueued)
    assert (queued.queue_id, queued.tier_index) == ("sales", 1)
    assert by_target(queued)["texan"].excluded_by == "filter:states"


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
        bus = EventBus(services.kafka, "test")
        await bus.start()
        try:
            await bus.publish(IVR_COMPLETED, event)
            await bus.publish(IVR_COMPLETED, event)  # while the auction is in flight
            await results.wait_terminal(event.call_id)
            await bus.publish(IVR_COMPLETED, event)  # after the call finished
            # The router handles a partition in order: once a later call on the same
            # partition is routed, every copy of `event` has been handled.
            sentinel = ivr("price", call_id=_same_partition_call_id(event.call_id, services.kafka.partitions))
            await bus.publish(IVR_COMPLETED, sentinel)
            await results.wait_terminal(sentinel.call_id)
        finally:
            await bus.stop()
        assert len(results.terminal(event.call_id)) == 1


async def test_garbage_goes_to_dead_letter_and_routing_goes_on(services: Services) -> None:
    key = f"garbage-{uuid.uuid4().hex}"
    async with Results(services.kafka) as results:
        bus = EventBus(services.kafka, "test")
        await bus.start()
        try:
            await bus._producer.send_and_wait(IVR_COMPLETED.name, b"\xff\xfe not protobuf", key=key.encode())  # type: ignore[union-attr]
            letter = await results.wait_dead_letter(key)
            assert letter.service == "router" and letter.source_topic == IVR_COMPLETED.name
            assert "undecodable" in letter.reason and letter.value == b"\xff\xfe not protobuf"
            after = ivr("price")
            await bus.publish(IVR_COMPLETED, after)
            topic, routed = await results.wait_terminal(after.call_id)
            assert topic == CALL_ROUTED.name
        finally:
            await bus.stop()


async def test_decision_latency(services: Services) -> None:
    """ivr.completed → call.routed, one call at a time; printed (run with -s), never asserted."""
    latencies: list[float] = []
    async with Results(services.kafka) as results:
        bus = EventBus(services.kafka, "test")
        await bus.start()
        try:
            for _ in range(30):
                event = ivr("price")
                await bus.publish(IVR_COMPLETED, event)
                _, routed = await results.wait_terminal(event.call_id)
                ms = codec.ts_ms(routed.occurred_at) - codec.ts_ms(routed.routing_started_at)  # type: ignore[attr-defined]
                latencies.append(ms)
        finally:
            await bus.stop()
    latencies.sort()
    print(f"\ndecision latency ms: p50={statistics.median(latencies):.0f} p90={latencies[int(len(latencies) * 0.9)]:.0f} max={latencies[-1]:.0f}")
