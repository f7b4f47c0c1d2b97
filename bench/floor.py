"""(a) The floor: a bare aiokafka consume→produce relay on the embedded broker (Tansu).

The relay (bench/relay.py) runs in a process of its own, like a service: a group
consumer with the project's consumer settings (platform.kafka.make_consumer: 5 ms
fetch wait), acks=all, a commit per fetched batch. Each record carries the source's
send time t0; the relay appends its own produce time t1 (as a service stamps
occurred_at), so one hop is t1 - t0, measured the way the live stages measure decisions.

- hop latency: paced traffic (floor_rate msgs/s for floor_latency_s), p50/p99 of t1 - t0.
- msgs/s: floor_messages flooded into the input topic; the relay's output rate. The
  floor is the pipelined relay (send a fetched batch, then await its acks); the serial
  relay (send_and_wait per record, as handlers under platform.kafka.consume publish)
  is measured too, for reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from google.protobuf.message import Message

from bench.measure import percentile, rate_of
from bench.settings import BenchSettings
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import ensure_topics, make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import Topic

IN = Topic("bench.in", Message, "bench relay input")
OUT = Topic("bench.out", Message, "bench relay output")
STAMP = struct.Struct("!d")
REPO = Path(__file__).resolve().parents[1]


class Sink:
    """Reads the relay's output (all partitions, from now on): (t0, t1) per record."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.seen: list[tuple[float, float]] = []
        self._task: asyncio.Task | None = None
        self.consumer = make_consumer(kafka, None, "bench-sink")  # connects in start()

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(OUT.name, p) for p in range(self.kafka.partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)  # resolve now: everything relayed later is read
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    self.seen.append((STAMP.unpack_from(r.value, 0)[0], STAMP.unpack_from(r.value, STAMP.size)[0]))

    async def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count and time.monotonic() < deadline:  # noqa: ASYNC110 — a count another task grows, up to a deadline
            await asyncio.sleep(0.02)
        return len(self.seen) >= count

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


async def stop_process(proc: asyncio.subprocess.Process, timeout_s: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`; the exit code."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
    return await proc.wait()


@contextlib.asynccontextmanager
async def running_relay(kafka: KafkaSettings, mode: str, workdir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """The relay process for the block, once its consumer owns partitions; stopped by pid afterwards."""
    log_path = workdir / f"floor-relay-{mode}.log"
    log = await asyncio.to_thread(open, log_path, "ab")
    try:
        relay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.relay",
            kafka.bootstrap_servers,
            str(kafka.partitions),
            mode,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops the relay
        )
    finally:
        log.close()
    try:
        assert relay.stdout is not None
        try:
            line = await asyncio.wait_for(relay.stdout.readline(), 60)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            raise RuntimeError(f"the bench relay did not get its partitions within 60 s (log: {log_path})")
        yield relay
    finally:
        await stop_process(relay)


async def run_floor(settings: BenchSettings, workdir: Path, progress: Callable[[str], None]) -> dict:
    progress("(a) floor: starting the broker and the relay")
    # Teardown in reverse order, each step whatever the others did: relay, producer, sink, broker.
    async with contextlib.AsyncExitStack() as cleanup:
        broker = EmbeddedBroker(partitions=settings.partitions, log_path=workdir / "floor-broker.log")
        cleanup.callback(broker.stop)
        await broker.start()
        kafka = broker.kafka_settings()
        await ensure_topics(kafka, [IN, OUT])
        sink = Sink(kafka)
        cleanup.push_async_callback(sink.stop)
        await sink.start()
        producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=kafka.linger_ms, client_id="bench-source")
        cleanup.push_async_callback(producer.stop)
        await producer.start()
        async with running_relay(kafka, "pipelined", workdir):
            result = await _paced(producer, sink, settings, progress)
            result["msgs_per_s"] = await _flood(producer, sink, settings, "pipelined", progress)
        async with running_relay(kafka, "serial", workdir):
            result["serial_msgs_per_s"] = await _flood(producer, sink, settings, "serial", progress)
    result["relay"] = "aiokafka group consumer (5 ms fetch wait) → produce acks=all → commit per batch, one process"
    return result


async def _paced(producer: AIOKafkaProducer, sink: Sink, settings: BenchSettings, progress: Callable[[str], None]) -> dict:
    before = len(sink.seen)
    count = max(10, int(settings.floor_rate * settings.floor_latency_s))
    interval = 1.0 / settings.floor_rate
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    progress(f"(a) floor: hop latency, {count} records at {settings.floor_rate:g}/s")
    for _ in range(count):
        await producer.send_and_wait(IN.name, STAMP.pack(time.time()) + STAMP.pack(0.0), key=uuid.uuid4().hex.encode())
        next_at += interval
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    if not await sink.wait_for(before + count, 30):
        raise RuntimeError(f"the relay passed on {len(sink.seen) - before}/{count} paced records within 30 s")
    hops = [(t1 - t0) * 1000 for t0, t1 in sink.seen[before : before + count]]
    return {
        "hop_p50_ms": percentile(hops, 50),
        "hop_p99_ms": percentile(hops, 99),
        "paced_records": count,
        "paced_rate": settings.floor_rate,
    }


async def _flood(
    producer: AIOKafkaProducer, sink: Sink, settings: BenchSettings, mode: str, progress: Callable[[str], None]
) -> float:
    """The relay's output rate for `floor_messages` records sent as fast as the source can."""
    before = len(sink.seen)
    count = int(settings.floor_messages)
    progress(f"(a) floor: {mode} relay msgs/s, {count} records flooded")
    pending: list[asyncio.Future] = []
    for _ in range(count):
        pending.append(await producer.send(IN.name, STAMP.pack(time.time()) + STAMP.pack(0.0), key=uuid.uuid4().hex.encode()))
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    timeout_s = max(60.0, count / 100)
    if not await sink.wait_for(before + count, timeout_s):
        raise RuntimeError(
            f"the {mode} relay passed on {len(sink.seen) - before}/{count} flooded records within {timeout_s:.0f} s"
        )
    return rate_of([t1 for _, t1 in sink.seen[before : before + count]])
