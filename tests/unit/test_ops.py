"""platform.ops: the health logic, and the real ops HTTP server on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from switchboard.platform import ops
from switchboard.platform.ops import EVENT_LOOP, STARTED, Health, OpsServer, beat_event_loop
from switchboard.platform.settings import OpsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(stall_after_s=30, clock=clock)


@pytest.fixture
def server(health: Health) -> Iterator[OpsServer]:
    s = OpsServer(health, "127.0.0.1", 0)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_a_loop_silent_past_the_stall_time_is_stalled_and_a_beat_revives_it(health: Health, clock: Clock):
    loop = health.loop("consume:g")
    clock.now += 30
    assert health.live().ok  # at the limit, not past it
    clock.now += 1
    verdict = health.live()
    assert not verdict.ok and verdict.status == 503
    assert verdict.body["stalled"] == {"consume:g": 31.0}
    loop.beat()
    assert health.live().ok


def test_a_work_item_loop_is_alive_while_idle_and_stalled_when_an_item_takes_too_long(health: Health, clock: Clock):
    agents = health.loop("router-agents", idle_is_alive=True)
    clock.now += 3600  # nothing to do for an hour: alive
    assert health.live().ok
    agents.enter()  # an event enters an agent ...
    clock.now += 29
    assert health.live().ok
    clock.now += 2  # ... and is still there past the stall time
    assert health.live().body["stalled"] == {"router-agents": 31.0}
    agents.leave()
    assert health.live().ok


def test_a_forgotten_or_finished_loop_is_not_watched(health: Health, clock: Clock):
    health.loop("a")
    with health.watching("b"):
        pass
    health.forget("a")
    clock.now += 100
    assert health.live().ok


def test_readiness_needs_every_check_and_no_stall_and_no_shutdown(health: Health, clock: Clock):
    verdict = health.ready()
    assert not verdict.ok and verdict.body["failed"] == {STARTED: "starting"}
    health.set(STARTED, True)
    health.set("broker", False, "KafkaConnectionError: refused")
    assert health.ready().body["failed"] == {"broker": "KafkaConnectionError: refused"}
    health.set("broker", True)
    assert health.ready().ok
    loop = health.loop("consume:g")
    clock.now += 31
    assert set(health.ready().body["failed"]) == {"not_stalled"}
    assert "consume:g" in health.ready().body["failed"]["not_stalled"]
    loop.beat()
    assert health.ready().ok
    health.set("assigned:g", False, "no partitions")
    health.clear("assigned:g")
    assert health.ready().ok
    health.shutting_down()
    assert health.ready().body["failed"] == {"not_stopping": "shutting down"}


def test_http_endpoints_answer_what_health_says(health: Health, server: OpsServer, clock: Clock):
    status, body = get(server.port, "/readyz")
    assert status == 503 and json.loads(body)["failed"] == {STARTED: "starting"}
    health.set(STARTED, True)
    status, body = get(server.port, "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert get(server.port, "/livez")[0] == 200
    health.loop("consume:bidder")
    clock.now += 60
    status, body = get(server.port, "/livez")
    assert status == 503 and json.loads(body)["stalled"] == {"consume:bidder": 60.0}
    status, text = get(server.port, "/metrics")
    assert status == 200
    assert "switchboard_live 0.0" in text and "switchboard_ready 0.0" in text  # both evaluated by the requests above
    assert "process_cpu_seconds_total" in text or "python_info" in text  # prometheus-client's default collectors
    assert get(server.port, "/nope")[0] == 404


def test_livez_reports_a_blocked_event_loop(health: Health, server: OpsServer):
    """A blocking call in the event loop stops its heartbeat: the server thread still answers, 503."""
    real = Health(stall_after_s=0.3)  # the real clock: the loop is really blocked
    server.health = real
    assert server._server is not None
    server._server.health = real
    seen: list[tuple[int, str]] = []
    released = threading.Event()

    def watch() -> None:  # from another thread: the event loop cannot answer anything now
        while not released.is_set():
            status, body = get(server.port, "/livez")
            if status == 503:
                seen.append((status, body))
                released.set()

    async def scenario() -> None:
        stop = asyncio.Event()
        beating = asyncio.create_task(beat_event_loop(real, stop, every_s=0.05))
        await asyncio.sleep(0.1)  # let it beat once
        assert get(server.port, "/livez")[0] == 200
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        released.wait(20)  # noqa: ASYNC — blocks the event loop on purpose, until the watcher saw the 503
        watcher.join(5)
        stop.set()
        await beating

    asyncio.run(scenario())
    assert seen, "/livez never answered 503 while the event loop was blocked"
    assert EVENT_LOOP in json.loads(seen[0][1])["stalled"]


def test_start_ops_is_one_server_per_process(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ops, "_current", None)
    first = ops.start_ops(OpsSettings(port=0))
    try:
        assert ops.start_ops(OpsSettings(port=0)) is first
        assert ops.current() is first and ops.health() is first.health
        assert get(first.port, "/livez")[0] == 200
    finally:
        first.server.stop()
