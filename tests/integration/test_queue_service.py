"""The queue service (in-house ACD) as a real process: call.queued / call.ended in, call.routed / call.rejected out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switchboard.platform import codec
from switchboard.platform.kafka import EventBus
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ENDED, CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, DEAD_LETTER, Topic
from switchboard.v1 import events_pb2 as pb

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
queues:
  - {id: two, strategy: longest_idle, max_wait_s: 120}
  - {id: short, strategy: longest_idle, max_wait_s: 1}
  - {id: wide, strategy: round_robin, max_wait_s: 120}
  - {id: hang, max_wait_s: 120}
agents:
  - {id: a1, queues: [two], destination: "sip:a1@switchboard.local"}
  - {id: a2, queues: [two]}
  - {id: s1, queues: [short]}
  - {id: w1, queues: [wide], max_concurrent: 50}
  - {id: h1, queues: [hang]}
"""


# -- helpers: a service process, reading a topic ------------------------------------------------
def start_service(name: str, env: dict[str, str], workdir: Path, timeout_s: float = 60.0) -> tuple[subprocess.Popen, dict]:
    """Start `python -m switchboard.services.<name>` and wait for its ready file; return (process, ready info)."""
    ready_dir = workdir / "ready"
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, "SWITCHBOARD_READY_DIR": str(ready_dir), **env}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", f"switchboard.services.{name}"], env=full_env, stdout=log, stderr=subprocess.STDOUT)
    ready = ready_dir / f"{name}.ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.exists():
            return proc, json.loads(ready.read_text())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(proc)
    raise AssertionError(f"{name} not ready (exit {proc.returncode}); log:\n{log_path.read_text(errors='replace')[-4000:]}")


def stop_process(proc: subprocess.Popen, timeout_s: float = 15.0) -> int | None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


async def wait_event(kafka: KafkaSettings, topic: Topic, pred: Callable[[object], bool], timeout_s: float = 20.0, count: int = 1) -> list:
    """Read `topic` from the beginning (all partitions, no group) until `count` events match `pred`."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=5)
    await consumer.start()
    found: list = []
    try:
        await consumer.topics()
        consumer.assign([TopicPartition(topic.name, p) for p in consumer.partitions_for_topic(topic.name)])
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline and len(found) < count:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    try:
                        ev = codec.decode(topic, r.value)
                    except codec.UndecodableEvent:
                        continue
                    if pred(ev):
                        found.append(ev)
    finally:
        await consumer.stop()
    assert len(found) >= count, f"{topic.name}: {len(found)}/{count} matching events within {timeout_s}s"
    return found


async def read_all(kafka: KafkaSettings, topic: Topic, pred: Callable[[object], bool]) -> list:
    """Every event of `topic` matching `pred` up to the end offsets of now (what is already published)."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=5)
    await consumer.start()
    found: list = []
    try:
        await consumer.topics()
        tps = [TopicPartition(topic.name, p) for p in consumer.partitions_for_topic(topic.name)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    try:
                        ev = codec.decode(topic, r.value)
                    except codec.UndecodableEvent:
                        continue
                    if pred(ev):
                        found.append(ev)
    finally:
        await consumer.stop()
    return found


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def queue_service(broker, tmp_path_factory) -> Iterator[dict]:
    workdir = tmp_path_factory.mktemp("queue")
    config = workdir / "acd.yaml"
    config.write_text(CONFIG)
    env = {
        "SWITCHBOARD_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SWITCHBOARD_CONFIG": str(config),
        "SWITCHBOARD_QUEUE_SWEEP_INTERVAL_S": "0.1",
    }
    proc, info = start_service("queue", env, workdir)
    try:
        yield {**info, "proc": proc}
    finally:
        code = stop_process(proc)
        assert code == 0, f"queue exited {code} on SIGTERM; log:\n{(workdir / 'queue.log').read_text()[-3000:]}"


@pytest.fixture()
async def bus(kafka) -> EventBus:
    b = EventBus(kafka, "test")
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def new_id() -> str:
    return f"t-{uuid.uuid4().hex}"


def queued(call_id: str, queue_id: str, **kw) -> pb.CallQueued:
    trace = pb.DecisionTrace(notes=["tier 0 price: no eligible buyer"])
    return pb.CallQueued(
        event_id=codec.new_id(), call_id=call_id, occurred_at=codec.now_ts(), call_started_at=codec.now_ts(),
        campaign_id="solar-ca", publisher_id="solar-media", queue_id=queue_id, tier_index=1, attempt=1,
        caller=pb.Caller(number="+13105551234", state="CA", area_code="310"), answers={"zip": "90210"},
        trace=trace, routing_started_at=codec.now_ts(), **kw,
    )


def ended(call_id: str) -> pb.CallEnded:
    return pb.CallEnded(event_id=codec.new_id(), call_id=call_id, occurred_at=codec.now_ts(), outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=30)


# -- tests ---------------------------------------------------------------------------------------
async def test_two_agents_three_calls_third_waits_for_a_free_agent(queue_service, bus, kafka):
    c1, c2, c3 = new_id(), new_id(), new_id()
    for c in (c1, c2):
        await bus.publish(CALL_QUEUED, queued(c, "two"))
    r1, r2 = [(await wait_event(kafka, CALL_ROUTED, lambda e, c=c: e.call_id == c))[0] for c in (c1, c2)]
    assert {r1.agent_id, r2.agent_id} == {"a1", "a2"}
    for r in (r1, r2):
        assert (r.kind, r.queue_id, r.price, r.strategy, r.campaign_id) == (pb.TARGET_KIND_AGENT, "two", "0", "queue", "solar-ca")
        assert r.caller.state == "CA" and dict(r.answers) == {"zip": "90210"}
        assert r.tier_index == 1 and r.trace.winning_tier == 1 and r.trace.notes[0] == "tier 0 price: no eligible buyer"
        winners = [e for e in r.trace.entries if e.winner]
        assert [(w.target_id, w.kind) for w in winners] == [(r.agent_id, pb.TARGET_KIND_AGENT)]
    a1_call = r1 if r1.agent_id == "a1" else r2
    assert a1_call.destination == "sip:a1@switchboard.local"
    assert (r2 if a1_call is r1 else r1).destination == "agent:a2"

    await bus.publish(CALL_QUEUED, queued(c3, "two"))
    # A marker on c3's partition of call.queued: once it is routed, c3 was handled, and it must be waiting.
    marker = new_id()
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=c3)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == c3) == []
    freed = r2
    await bus.publish(CALL_ENDED, ended(freed.call_id))
    [r3] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c3)
    assert r3.agent_id == freed.agent_id
    busy = [e for e in r3.trace.entries if not e.winner]
    assert [(e.target_id, e.excluded_by) for e in busy] == [(r1.agent_id, "agent:busy")]  # r1's agent still talks
    for c in (c1, c3):  # free the agents for whoever comes next
        await bus.publish(CALL_ENDED, ended(c))


async def test_waiting_longer_than_max_wait_is_abandoned(queue_service, bus, kafka):
    holder, waiter = new_id(), new_id()
    await bus.publish(CALL_QUEUED, queued(holder, "short"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
    assert r.agent_id == "s1"
    await bus.publish(CALL_QUEUED, queued(waiter, "short"))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == waiter)
    assert rej.reason == "abandoned" and "max_wait_s 1" in rej.detail and rej.announcement
    assert rej.campaign_id == "solar-ca" and rej.trace.winning_tier == -1
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == waiter) == []
    await bus.publish(CALL_ENDED, ended(holder))


async def test_caller_hanging_up_while_waiting_is_abandoned(queue_service, bus, kafka):
    holder, waiter = new_id(), new_id()
    await bus.publish(CALL_QUEUED, queued(holder, "hang"))
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
    await bus.publish(CALL_QUEUED, queued(waiter, "hang"))
    # call.queued and call.ended are not ordered against each other: make sure the waiter waits first
    # (a marker on the waiter's partition of call.queued is routed only after the waiter was handled).
    marker = new_id()
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=waiter)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    await bus.publish(CALL_ENDED, ended(waiter))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == waiter)
    assert rej.reason == "abandoned" and "hung up" in rej.detail
    await bus.publish(CALL_ENDED, ended(holder))  # h1 is free again and nobody waits for it
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == waiter) == []


async def test_duplicate_call_queued_is_assigned_once(queue_service, bus, kafka):
    cid, marker = new_id(), new_id()
    event = queued(cid, "wide")
    await bus.publish(CALL_QUEUED, event)
    await bus.publish(CALL_QUEUED, event)  # redelivery: same event, same call
    # The marker shares the key (so the partition) with the duplicate: once it is routed, the duplicate was handled.
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=cid)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    routed = await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == cid)
    assert len(routed) == 1 and routed[0].agent_id == "w1"


async def test_unknown_queue_is_rejected(queue_service, bus, kafka):
    cid = new_id()
    await bus.publish(CALL_QUEUED, queued(cid, "no-such-queue"))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert rej.reason == "unknown_queue" and "no-such-queue" in rej.detail


async def test_garbage_goes_to_dead_letter_and_service_keeps_working(queue_service, bus, kafka):
    key = new_id().encode()
    producer = AIOKafkaProducer(**kafka.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(CALL_QUEUED.name, b"\xff\xfe definitely not protobuf", key=key)
    finally:
        await producer.stop()
    [letter] = await wait_event(kafka, DEAD_LETTER, lambda e: e.key == key)
    assert (letter.service, letter.source_topic) == ("queue", CALL_QUEUED.name) and "undecodable" in letter.reason
    cid = new_id()
    await bus.publish(CALL_QUEUED, queued(cid, "wide"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == cid)
    assert r.agent_id == "w1"
