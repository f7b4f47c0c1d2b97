"""Honest health on real parts: /readyz follows the broker (killed, then restarted on the same port) in a
real service process; /livez fails while a consumer loop is stuck in its handler."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.platform import ops
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import EventBus, consume
from switchboard.platform.ops import Health, Ops, OpsServer
from switchboard.platform.settings import OpsSettings
from switchboard.platform.topics import CALL_ENDED
from switchboard.v1 import events_pb2 as pb
from tests.support import assert_clean_exit, new_call_id, service_env, start_service, until


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def answer(port: int, path: str, status: int, timeout_s: float = 60.0) -> dict:
    """Poll `path` until it answers `status`; return its body."""

    async def check() -> dict | None:
        got, body = await asyncio.to_thread(get, port, path)
        return body if got == status else None

    found = await until(f"{path} answering {status}", check, timeout_s=timeout_s, interval_s=0.1)
    assert isinstance(found, dict)
    return found


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test alone: it is killed and restarted (same port) by the test."""
    b = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    asyncio.run(b.start())
    try:
        yield b
    finally:
        b.stop()


def test_readyz_follows_the_broker_away_and_back(own_broker: EmbeddedBroker, tmp_path: Path):
    env = service_env(own_broker.kafka_settings(), SWITCHBOARD_OPS_BROKER_CHECK_S="0.5")
    cti = start_service("cti", env, tmp_path)
    try:
        port = cti.info["ops_port"]
        assert cti.info["ops_host"] == "127.0.0.1"

        async def scenario() -> None:
            assert await answer(port, "/readyz", 200) == {"status": "ok"}
            assert own_broker.process is not None
            os.kill(own_broker.process.pid, signal.SIGKILL)  # the broker goes away, no goodbye
            own_broker.process.wait()
            own_broker.process = None
            body = await answer(port, "/readyz", 503)
            assert "broker" in body["failed"], body
            assert (await asyncio.to_thread(get, port, "/livez"))[0] == 200  # alive: it waits for the broker
            await own_broker.start()  # the same port again (empty: Tansu keeps topics in memory; recreated)
            await answer(port, "/readyz", 200)

        asyncio.run(scenario())
    finally:
        assert_clean_exit(cti)
    assert "broker_unreachable" in cti.logs(0) and "broker_reachable" in cti.logs(0)


@pytest.fixture
def process_ops(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ops]:
    """This test process's ops server, with a short stall time (as service_main starts it in a service)."""
    settings = OpsSettings(stall_after_s=0.5)
    health = Health(settings.stall_after_s)
    server = OpsServer(health)
    server.start()
    running = Ops(settings, health, server)
    monkeypatch.setattr(ops, "_current", running)
    try:
        yield running
    finally:
        server.stop()


async def test_livez_fails_while_a_consumer_loop_is_stuck_in_its_handler(bus: EventBus, process_ops: Ops):
    call_id = new_call_id()
    stuck = asyncio.Event()
    release = asyncio.Event()
    listening = asyncio.Event()

    async def handler(topic, event, record) -> None:
        if event.call_id == call_id:
            stuck.set()
            await release.wait()  # a handler that never returns (a hung downstream call)

    stop = asyncio.Event()
    consumer = asyncio.create_task(consume(bus, [CALL_ENDED], handler, None, stop, from_beginning=False, on_ready=listening.set))
    try:
        await asyncio.wait_for(listening.wait(), 30)
        port = process_ops.port
        assert (await asyncio.to_thread(get, port, "/livez"))[0] == 200
        await bus.publish(CALL_ENDED, pb.CallEnded(event_id="e", call_id=call_id))
        await asyncio.wait_for(stuck.wait(), 30)
        body = await answer(port, "/livez", 503, timeout_s=30)
        assert list(body["stalled"]) == ["consume:test"], body  # the consumer loop, not the event loop
        ready = await asyncio.to_thread(get, port, "/readyz")
        assert ready[0] == 503 and "consume:test" in ready[1]["failed"]["not_stalled"]
        release.set()
        await answer(port, "/livez", 200, timeout_s=30)
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(consumer, 30)
