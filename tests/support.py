"""Helpers shared by the integration tests: service processes, publishing, reading topics back.

The broker is shared by the whole test session, so every test uses fresh call
ids and reads topics filtered by them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

import grpc
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from google.protobuf.message import Message

from switchboard.demo.crm import DEMO_CRM_SECRET_ENV
from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, make_consumer
from switchboard.platform.kafka import read_all as read_topics
from switchboard.platform.lifecycle import READY_DIR_ENV, ready_path
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, DEAD_LETTER, QUEUE_STATUS, Event, Topic
from switchboard.v1 import events_pb2 as pb

M = TypeVar("M", bound=Message)

# What service_env gives cti as the demo config's crm endpoint secret (SWITCHBOARD_DEMO_CRM_SECRET): any
# well-formed whsec_ secret (base64 of "switchboard-demo-crm-test").
TEST_CRM_SECRET = "whsec_c3dpdGNoYm9hcmQtZGVtby1jcm0tdGVzdA=="

# ------------------------------------------------------------------ service processes


def service_env(kafka: KafkaSettings, config: Path | str | None = None, **extra: str) -> dict[str, str]:
    """The environment a service needs on the session broker (plus `extra`, e.g. SWITCHBOARD_QUEUE_*)."""
    env = {
        "SWITCHBOARD_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SWITCHBOARD_KAFKA_PARTITIONS": str(kafka.partitions),
        # The gRPC edge and AgentDesk in plaintext without client credentials, as for local development
        # (docs/IVR.md, "Securing the gRPC edge"; docs/ACD.md, "Securing AgentDesk"); tests of TLS and tokens
        # set their own.
        "SWITCHBOARD_IVR_GRPC_INSECURE": "true",
        "SWITCHBOARD_QUEUE_DESK_INSECURE": "true",
        # The demo config (every service's default) has a crm endpoint whose secret cti must find, or it refuses to
        # start; nothing listens at its default url, so cti's deliveries there just fail and retry in the background.
        DEMO_CRM_SECRET_ENV: TEST_CRM_SECRET,
    }
    if config is not None:
        env["SWITCHBOARD_CONFIG"] = str(config)
    return {**env, **extra}


class ServiceProcess:
    """`python -m switchboard.services.<name>` as a child process, its output appended to `log`.

    Ready once it wrote its ready file (platform.lifecycle.mark_ready) with its own pid.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        ready_dir: Path,
        log: Path,
        *,
        module: str | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.log = log
        self.ready_file = ready_path(name, ready_dir)
        assert self.ready_file is not None
        self.ready_file.unlink(missing_ok=True)  # left by an earlier run of the same service
        self.info: dict = {}
        full_env = {**os.environ, READY_DIR_ENV: str(ready_dir), **env}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module or f"switchboard.services.{name}", *args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def logs(self, tail: int = 4000) -> str:
        """The end of the log (all of it with tail=0)."""
        text = self.log.read_text(errors="replace")
        return text[-tail:] if tail else text

    def wait_ready(self, timeout_s: float = 60.0) -> dict:
        """Wait for the ready file; return (and keep in `info`) what the service wrote there."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before it was ready:\n{self.logs()}")
            if self.ready_file.exists():
                info = json.loads(self.ready_file.read_text())
                if info["pid"] == self.proc.pid:
                    self.info = info
                    return info
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready within {timeout_s}s:\n{self.logs()}")

    def terminate(self) -> None:
        """SIGTERM (the clean shutdown every service implements), if it still runs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        """The exit code; SIGKILL (exit code -9) when it does not exit within `timeout_s`."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: the exit code (0 for a clean shutdown)."""
        self.terminate()
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class BuyerSimProcess(ServiceProcess):
    """The buyer simulator (`python -m switchboard.buyersim --config <config>`); ports known after `wait_ready()`."""

    def __init__(self, config: Path, ready_dir: Path, log: Path, *extra_args: str) -> None:
        super().__init__(
            "buyersim", {}, ready_dir, log, module="switchboard.buyersim", args=("--config", str(config), *extra_args)
        )
        self.http_port = 0
        self.grpc_port = 0

    def wait_ready(self, timeout_s: float = 30.0) -> BuyerSimProcess:  # type: ignore[override]  # itself, ports read, not the info
        info = super().wait_ready(timeout_s)
        self.http_port, self.grpc_port = info["http_port"], info["grpc_port"]
        return self

    def http_url(self, buyer_id: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/ping/{buyer_id}"

    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"


def start_service(
    name: str, env: Mapping[str, str], workdir: Path, timeout_s: float = 60.0, *, log: Path | None = None
) -> ServiceProcess:
    """Start a service (ready files in workdir/ready, log in workdir/<name>.log) and wait until it is ready."""
    service = ServiceProcess(name, env, workdir / "ready", log or workdir / f"{name}.log")
    try:
        service.wait_ready(timeout_s)
    except BaseException:
        service.stop()
        raise
    return service


def stop_services(*services: ServiceProcess, timeout_s: float = 30.0) -> dict[str, int]:
    """SIGTERM all of them first, then collect every exit code."""
    for s in services:
        s.terminate()
    return {s.name: s.wait(timeout_s) for s in services}


def assert_clean_exit(*services: ServiceProcess, timeout_s: float = 30.0) -> None:
    """Stop the services; each must exit 0 on SIGTERM."""
    codes = stop_services(*services, timeout_s=timeout_s)
    for s in services:
        assert codes[s.name] == 0, f"{s.name} exited {codes[s.name]} on SIGTERM; log:\n{s.logs(3000)}"


@contextmanager
def running_service(name: str, env: Mapping[str, str], workdir: Path) -> Iterator[ServiceProcess]:
    """A ready service for the block (a module fixture's body); it must stop cleanly afterwards."""
    service = start_service(name, env, workdir)
    try:
        yield service
    finally:
        assert_clean_exit(service)


@asynccontextmanager
async def ivr_channel(info: Mapping[str, object]) -> AsyncIterator[grpc.aio.Channel]:
    """A plaintext channel to the CallControl edge of a ready ivr (`info`: its ready file, service_env's dev flag)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{info['grpc_port']}") as channel:
        yield channel


# ------------------------------------------------------------------ publishing


@asynccontextmanager
async def event_bus(kafka: KafkaSettings, service: str = "test") -> AsyncIterator[EventBus]:
    """A started EventBus for the block."""
    bus = EventBus(kafka, service)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


async def publish_raw(kafka: KafkaSettings, items: Iterable[tuple[str, bytes, bytes]]) -> dict[TopicPartition, int]:
    """Send (topic, key, value) records as they are (e.g. garbage); return the highest offset written per partition."""
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    last: dict[TopicPartition, int] = {}
    try:
        for topic, key, value in items:
            md = await producer.send_and_wait(topic, value, key=key)
            tp = TopicPartition(md.topic, md.partition)
            last[tp] = max(last.get(tp, -1), md.offset)
    finally:
        await producer.stop()
    return last


# ------------------------------------------------------------------ reading topics back


async def wait_records(
    kafka: KafkaSettings,
    topic: Topic[M],
    pred: Callable[[ConsumerRecord, M], bool],
    timeout_s: float = 20.0,
    count: int = 1,
) -> list[tuple[ConsumerRecord, M]]:
    """Read `topic` from the beginning (all partitions, no group) until `count` (record, event) pairs match `pred`.

    Undecodable records are skipped (other tests of the session publish garbage too).
    """
    consumer = make_consumer(kafka, None, "test")
    await consumer.start()
    found: list[tuple[ConsumerRecord, M]] = []
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
                    if pred(r, ev):
                        found.append((r, ev))
    finally:
        await consumer.stop()
    assert len(found) >= count, f"{topic.name}: {len(found)}/{count} matching events within {timeout_s}s"
    return found


async def wait_event(
    kafka: KafkaSettings, topic: Topic[M], pred: Callable[[M], bool], timeout_s: float = 20.0, count: int = 1
) -> list[M]:
    """Read `topic` from the beginning until `count` events match `pred`; return the matching events."""
    return [ev for _, ev in await wait_records(kafka, topic, lambda _r, ev: pred(ev), timeout_s, count)]


async def read_all(kafka: KafkaSettings, topic: Topic[M], pred: Callable[[M], bool]) -> list[M]:
    """Every event of `topic` matching `pred` up to the end offsets of now (what is already published)."""
    return [ev for _, ev in await read_topics(kafka, [topic]) if pred(ev)]


RESULT_TOPICS = (CALL_ROUTED, CALL_REJECTED, CALL_QUEUED, DEAD_LETTER)


class Results:
    """Reads the result topics (all partitions, from the beginning) in the background."""

    def __init__(self, kafka: KafkaSettings, topics: Iterable[Topic[Event]] = RESULT_TOPICS) -> None:
        self.kafka = kafka
        self.topics = tuple(topics)
        self.records: list[tuple[str, str, Event]] = []  # (topic, key, decoded event)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Results:
        self._consumer = make_consumer(self.kafka, None, "test")
        await self._consumer.start()
        tps = [TopicPartition(t.name, p) for t in self.topics for p in range(self.kafka.partitions)]
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
                        event = codec.decode(r.topic, r.value)
                    except codec.UndecodableEvent:
                        continue
                    self.records.append((r.topic, (r.key or b"").decode(errors="replace"), event))

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def terminal(self, call_id: str) -> list[tuple[str, Event]]:
        return [(t, e) for t, k, e in self.records if k == call_id and t != DEAD_LETTER.name]

    async def wait_terminal(self, call_id: str, timeout_s: float = 20.0) -> tuple[str, Event]:
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
                if t == DEAD_LETTER.name and k == key and isinstance(e, pb.DeadLetter):
                    return e
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no dead letter for key {key}")


# ------------------------------------------------------------------ events


async def until(what: str, cond: Callable[[], object], timeout_s: float = 60.0, interval_s: float = 0.01) -> object:
    """Poll `cond` (plain or async) until it returns something truthy and return that; TimeoutError(`what`) at the deadline.

    Timeouts are generous on purpose: they only bound a failing test, the machines are shared and noisy.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = cond()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(interval_s)
    raise TimeoutError(what)


def new_call_id() -> str:
    return f"t-{uuid.uuid4().hex}"


def ivr(campaign: str, state: str = "CA", call_id: str | None = None) -> pb.IvrCompleted:
    """An ivr.completed of a qualified caller from California (by default) for `campaign`."""
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


async def publish_queue_status(
    bus: EventBus, call_id: str, position: int, wait_s: int, offered: bool = False, queue_id: str = "sales"
) -> pb.QueueStatus:
    """Stand in for the queue: a queue.status of `call_id` (CALLBACK_OFFERED with `offered`)."""
    status = pb.QueueStatus(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        queue_id=queue_id,
        kind=pb.QUEUE_STATUS_KIND_CALLBACK_OFFERED if offered else pb.QUEUE_STATUS_KIND_WAITING,
        position=position,
        projected_wait_s=wait_s,
        callback_offered=offered,
    )
    await bus.publish(QUEUE_STATUS, status)
    return status


async def publish_agent_offer(bus: EventBus, call_id: str, attempt: int, callback_attempt: int = 0) -> None:
    """Stand in for the queue: call.routed of `call_id` to agent ana (a callback try with callback_attempt > 0)."""
    await bus.publish(
        CALL_ROUTED,
        pb.CallRouted(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=codec.now_ts(),
            campaign_id="inhouse",
            kind=pb.TARGET_KIND_AGENT,
            agent_id="ana",
            destination="sip:ana@switchboard.local",
            strategy="queue",
            attempt=attempt,
            callback_attempt=callback_attempt,
        ),
    )


def by_target(event: pb.CallRouted | pb.CallRejected | pb.CallQueued) -> dict[str, pb.TraceEntry]:
    return {e.target_id: e for e in event.trace.entries}
