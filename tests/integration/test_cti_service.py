"""The cti service as a real process: call.routed / call.ended in, cti.events out."""

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
from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.platform import codec
from switchboard.platform.kafka import EventBus
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED, CTI_EVENTS, Topic
from switchboard.v1 import events_pb2 as pb

pytestmark = pytest.mark.integration


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
def cti_service(broker, tmp_path_factory) -> Iterator[dict]:
    workdir = tmp_path_factory.mktemp("cti")
    proc, info = start_service("cti", {"SWITCHBOARD_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}, workdir)
    try:
        yield {**info, "proc": proc}
    finally:
        code = stop_process(proc)
        assert code == 0, f"cti exited {code} on SIGTERM; log:\n{(workdir / 'cti.log').read_text()[-3000:]}"


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


def routed(call_id: str) -> pb.CallRouted:
    return pb.CallRouted(
        event_id=codec.new_id(), call_id=call_id, occurred_at=codec.now_ts(), call_started_at=codec.now_ts(),
        campaign_id="solar-ca", publisher_id="solar-media", kind=pb.TARGET_KIND_BUYER, buyer_id="acme-solar",
        destination="+18005550100", price="40.00", strategy="price",
        caller=pb.Caller(number="+13105551234", state="CA", zip="90210", area_code="310", timezone="America/Los_Angeles"),
        answers={"homeowner": "yes"},
    )


def cti_of(call_id: str, kind: int) -> Callable[[object], bool]:
    return lambda e: e.call_id == call_id and e.type == kind


# -- tests ---------------------------------------------------------------------------------------
async def test_screen_pop_and_wrap_up_carry_the_call_context(cti_service, bus, kafka):
    cid = new_id()
    await bus.publish(CALL_ROUTED, routed(cid))
    [pop] = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ROUTED))
    assert (pop.campaign_id, pop.publisher_id, pop.kind, pop.buyer_id, pop.destination, pop.price) == (
        "solar-ca", "solar-media", pb.TARGET_KIND_BUYER, "acme-solar", "+18005550100", "40.00",
    )
    assert (pop.caller.number, pop.caller.state, pop.caller.zip) == ("+13105551234", "CA", "90210")
    assert dict(pop.answers) == {"homeowner": "yes"}

    await bus.publish(
        CALL_ENDED,
        pb.CallEnded(event_id=codec.new_id(), call_id=cid, occurred_at=codec.now_ts(), outcome=pb.CALL_OUTCOME_ANSWERED,
                     connected_seconds=95, buyer_id="acme-solar"),
    )
    [end] = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ENDED))
    assert (end.outcome, end.connected_seconds, end.buyer_id) == (pb.CALL_OUTCOME_ANSWERED, 95, "acme-solar")
    assert (end.campaign_id, end.caller.state, end.destination) == ("solar-ca", "CA", "+18005550100")
    assert end.event_id != pop.event_id


async def test_call_ended_without_routed_context(cti_service, bus, kafka):
    cid = new_id()
    await bus.publish(
        CALL_ENDED,
        pb.CallEnded(event_id=codec.new_id(), call_id=cid, occurred_at=codec.now_ts(), outcome=pb.CALL_OUTCOME_CALLER_HANGUP, agent_id="ana"),
    )
    [end] = await wait_event(kafka, CTI_EVENTS, cti_of(cid, pb.CTI_EVENT_TYPE_CALL_ENDED))
    assert (end.outcome, end.agent_id, end.kind, end.campaign_id) == (pb.CALL_OUTCOME_CALLER_HANGUP, "ana", pb.TARGET_KIND_AGENT, "")


async def test_redelivered_routed_event_gives_one_screen_pop(cti_service, bus, kafka):
    cid, marker = new_id(), new_id()
    ev = routed(cid)
    await bus.publish(CALL_ROUTED, ev)
    await bus.publish(CALL_ROUTED, ev)
    await bus.publish(CALL_ROUTED, routed(marker), key=cid)  # same partition: handled after the repeat
    await wait_event(kafka, CTI_EVENTS, cti_of(marker, pb.CTI_EVENT_TYPE_CALL_ROUTED))
    assert len(await read_all(kafka, CTI_EVENTS, lambda e: e.call_id == cid)) == 1
