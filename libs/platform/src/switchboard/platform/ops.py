"""The ops HTTP server of every service: /metrics, /livez, /readyz (docs/OPERATIONS.md).

- `Health`: what the endpoints answer. Loops (the event loop, each consumer loop) register
  a `Loop` and `beat()` when they make progress; readiness is a set of named checks
  (started, broker, assigned, ...) the service sets, plus "not stopping" and "not stalled".
- `OpsServer`: http.server's ThreadingHTTPServer in a daemon thread. Why a thread: /livez
  must still answer when the event loop is stuck (a blocking call in async code), and say so.
- `BrokerProbe`: asks the cluster for metadata every `broker_check_s` through its own small
  aiokafka client, so /readyz goes false when the broker goes away and true when it is back.
- `start_ops()` / `current()`: the process's one Health and server, started by
  lifecycle.service_main before the service runs (tests build their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from switchboard.platform.metrics import LIVE, READY
from switchboard.platform.settings import KafkaSettings, OpsSettings

log = structlog.get_logger(__name__)

EVENT_LOOP = "event_loop"
STARTED = "started"  # the service finished its start (recovery, catching up): lifecycle.mark_ready sets it
BROKER = "broker"


@dataclass
class Loop:
    """One loop whose progress /livez watches. `beat()` after each round (an idle poll counts).

    `idle_is_alive`: for loops driven by work items rather than a poll (the router's agents,
    seen through Faust's sensor): between `enter()` and `leave()` the loop must beat within
    the stall time; with nothing in flight it is alive however long it waits.
    """

    name: str
    clock: Callable[[], float] = time.monotonic
    idle_is_alive: bool = False
    last_beat: float = field(init=False)
    inflight: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.last_beat = self.clock()

    def beat(self) -> None:
        self.last_beat = self.clock()

    def enter(self) -> None:
        if self.inflight == 0:
            self.last_beat = self.clock()  # the item's time starts now, not at the last idle moment
        self.inflight += 1

    def leave(self) -> None:
        self.inflight = max(0, self.inflight - 1)
        self.last_beat = self.clock()

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last beat, or None when an idle loop of work items has nothing to do."""
        if self.idle_is_alive and self.inflight == 0:
            return None
        return now - self.last_beat


@dataclass(frozen=True)
class Verdict:
    ok: bool
    body: dict[str, Any]

    @property
    def status(self) -> int:
        return 200 if self.ok else 503


class Health:
    """Liveness and readiness of one process (module doc). Thread-safe: the HTTP thread reads it."""

    def __init__(self, stall_after_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.clock = clock
        self._lock = threading.Lock()
        self._loops: dict[str, Loop] = {}
        self._checks: dict[str, tuple[bool, str]] = {STARTED: (False, "starting")}
        self.stopping = False

    def loop(self, name: str, *, idle_is_alive: bool = False) -> Loop:
        """Register (or replace) the loop `name`; /livez watches it until `forget(name)`."""
        loop = Loop(name, self.clock, idle_is_alive)
        with self._lock:
            self._loops[name] = loop
        return loop

    def forget(self, name: str) -> None:
        """A loop that ended on purpose (its consumer stopped) is no longer watched."""
        with self._lock:
            self._loops.pop(name, None)

    @contextlib.contextmanager
    def watching(self, name: str, *, idle_is_alive: bool = False) -> Iterator[Loop]:
        """`with health.watching("consume:bidder") as loop: ... loop.beat()`: watched while the block runs."""
        loop = self.loop(name, idle_is_alive=idle_is_alive)
        try:
            yield loop
        finally:
            with self._lock:
                if self._loops.get(name) is loop:
                    del self._loops[name]

    def set(self, check: str, ok: bool, detail: str = "") -> None:
        """Set a readiness check: /readyz is 200 only when every check is ok."""
        with self._lock:
            self._checks[check] = (ok, detail)

    def clear(self, check: str) -> None:
        with self._lock:
            self._checks.pop(check, None)

    def shutting_down(self) -> None:
        self.stopping = True
        READY.set(0)

    def stalled(self) -> dict[str, float]:
        """The loops silent for longer than the stall time → seconds since their last beat."""
        now = self.clock()
        with self._lock:
            loops = list(self._loops.values())
        out: dict[str, float] = {}
        for loop in loops:
            silent = loop.silent_for(now)
            if silent is not None and silent > self.stall_after_s:
                out[loop.name] = round(silent, 1)
        return out

    def live(self) -> Verdict:
        stalled = self.stalled()
        LIVE.set(0 if stalled else 1)
        if stalled:
            return Verdict(False, {"status": "stalled", "stalled": stalled, "stall_after_s": self.stall_after_s})
        return Verdict(True, {"status": "ok"})

    def ready(self) -> Verdict:
        with self._lock:
            failed = {name: detail or "not yet" for name, (ok, detail) in self._checks.items() if not ok}
        if self.stopping:
            failed["not_stopping"] = "shutting down"
        stalled = self.stalled()
        if stalled:
            failed["not_stalled"] = ", ".join(f"{name} silent {s} s" for name, s in sorted(stalled.items()))
        READY.set(0 if failed else 1)
        if failed:
            return Verdict(False, {"status": "not ready", "failed": failed})
        return Verdict(True, {"status": "ok"})


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.server.health.live()  # switchboard_live / switchboard_ready as of this scrape
            self.server.health.ready()
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        elif path in ("/livez", "/readyz"):
            verdict = self.server.health.live() if path == "/livez" else self.server.health.ready()
            self._send(verdict.status, "application/json", json.dumps(verdict.body).encode())
        else:
            self._send(404, "application/json", b'{"status": "not found", "paths": ["/metrics", "/livez", "/readyz"]}')

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a scrape timeout, a stopping Prometheus): nobody is left to answer, and the
            # server's default handle_error would print a traceback that is not a JSON log line.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes come every few seconds: no access log


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung scrape never keeps the process from exiting

    def __init__(self, address: tuple[str, int], health: Health) -> None:
        self.health = health
        super().__init__(address, _Handler)


class OpsServer:
    """The ops HTTP server in a daemon thread (module doc). `port` is the bound port after `start()`."""

    def __init__(self, health: Health, host: str = "127.0.0.1", port: int = 0) -> None:
        self.health = health
        self.host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "OpsServer.start() first"
        return int(self._server.server_address[1])

    def start(self) -> int:
        self._server = _Server((self.host, self._requested_port), self.health)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


async def beat_event_loop(health: Health, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Beat the "event_loop" loop every `every_s` until `stop`: a blocked event loop stops beating."""
    with health.watching(EVENT_LOOP) as loop:
        while not stop.is_set():
            loop.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


class BrokerProbe:
    """Sets the "broker" check from a metadata request every `every_s` (its timeout too), until `stop`.

    Its own AIOKafkaClient, not one of the service's: it is the one cheap request every service
    can make the same way (the router's clients belong to Faust), and a consumer's fetch errors
    are not surfaced by aiokafka. While the broker is away aiokafka logs its connection errors.
    """

    def __init__(self, health: Health, kafka: KafkaSettings, every_s: float = 2.0) -> None:
        self.health = health
        self.kafka = kafka
        self.every_s = every_s
        health.set(BROKER, False, "not checked yet")

    _last: bool | None = None

    def _show(self, ok: bool, detail: str) -> None:
        self.health.set(BROKER, ok, detail)
        if self._last is not ok:  # log the changes only, not every round
            if ok:
                log.info("broker_reachable")
            else:
                log.warning("broker_unreachable", detail=detail)
        self._last = ok

    async def check_once(self, client: Any) -> None:
        """One round: bootstrap until that worked once, then a metadata request; the "broker" check set from it."""
        try:
            if not client.cluster.brokers():
                await asyncio.wait_for(client.bootstrap(), self.every_s)
            # Raises KafkaError when no known node answers (its timeout: request_timeout_ms).
            cluster = await asyncio.wait_for(client.fetch_all_metadata(), self.every_s)
        except Exception as exc:  # noqa: BLE001 — any failure means "not reachable now"; the next round retries
            self._show(False, f"{type(exc).__name__}: {exc}"[:300])
            return
        ok = bool(cluster.brokers())
        self._show(ok, "" if ok else f"no broker of {self.kafka.bootstrap_servers} in the metadata")

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(**self.kafka.client_kwargs(), request_timeout_ms=int(self.every_s * 1000), client_id="ops-probe")
        try:
            while not stop.is_set():
                await self.check_once(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every_s)
        finally:
            await client.close()


@dataclass
class Ops:
    """The process's health, its HTTP server and its settings."""

    settings: OpsSettings
    health: Health
    server: OpsServer

    @property
    def port(self) -> int:
        return self.server.port

    async def watch(self, kafka: KafkaSettings, stop: asyncio.Event) -> None:
        """Beat the event loop and probe the broker until `stop` (run as a task next to the service)."""
        await asyncio.gather(
            beat_event_loop(self.health, stop),
            BrokerProbe(self.health, kafka, self.settings.broker_check_s).run(stop),
        )


_current: Ops | None = None


def start_ops(settings: OpsSettings) -> Ops:
    """Start the process's ops server (once; later calls return the running one)."""
    global _current
    if _current is None:
        health = Health(settings.stall_after_s)
        server = OpsServer(health, settings.host, settings.port)
        server.start()
        _current = Ops(settings, health, server)
        log.info("ops_listening", host=settings.host, port=server.port, paths="/metrics /livez /readyz")
    return _current


def current() -> Ops | None:
    """The process's ops (None when nothing started it, e.g. a service run inside a test)."""
    return _current


def health() -> Health:
    """The process's Health, or a detached one nothing serves (so the shared paths need no None checks)."""
    return _current.health if _current is not None else _DETACHED


_DETACHED = Health()
