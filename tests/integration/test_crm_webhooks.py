"""CRM webhooks end to end: the cti process delivers cti.events to a real HTTP receiver on loopback.

The receiver checks every delivery's signature with `standardwebhooks.Webhook(secret).verify` and
answers 500 to half of them (seeded), like a flaky CRM. Every event must arrive, each webhook-id
accepted once after dedup by id, the events of each call in topic order; also when the cti process
is killed (SIGKILL) with deliveries in flight and started again. An endpoint that always fails
dead-letters its events with the reason.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, confirmed_end_offsets, make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED, CTI_EVENTS, DEAD_LETTER
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, new_call_id, service_env, start_service, until, wait_event

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "c3dpdGNoYm9hcmQtY3JtLXdlYmhvb2stdGVzdA=="  # base64 of a test key

CONFIG = """\
version: 1
publishers: [{{id: pub, min_price: 1.00}}]
buyers:
  - {{id: b1, destination: "+18005550100", bid: {{type: static, price: 40.00}}}}
  - {{id: b-down, destination: "+18005550101", bid: {{type: static, price: 40.00}}}}
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: pub
    routing: {{tiers: [{{strategy: price, buyers: [b1, b-down]}}]}}
crm_endpoints:
  - id: crm
    url: "http://127.0.0.1:{crm_port}/hooks/switchboard"
    buyers: [b1]
    secret_env: TEST_CRM_SECRET
    max_attempts: 40
    max_age_s: 600
    timeout_ms: 2000
  - id: down
    url: "http://127.0.0.1:{down_port}/hooks"
    buyers: [b-down]
    secret_env: TEST_CRM_SECRET
    max_attempts: 3
"""


# -- the receiver ----------------------------------------------------------------------------------
@dataclass
class Receiver:
    """A flaky CRM: verifies each signature, answers 500 with probability `fail_share` (seeded), records the rest.

    `held`: while set, requests wait until it is cleared and then get 503 (a CRM that hangs, then errs).
    """

    fail_share: float
    seed: int = 13
    accepted: dict[str, dict] = field(default_factory=dict)  # webhook-id → body, first acceptance only, in order
    duplicates: int = 0
    refused: int = 0
    bad_signatures: list[str] = field(default_factory=list)
    waiting: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.release.set()

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            data = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.bad_signatures.append(str(exc))
            return 400
        if self.hold.is_set():
            with self.lock:
                self.waiting += 1
            self.release.wait(60)
            with self.lock:
                self.waiting -= 1
            return 503
        with self.lock:
            if self.rng.random() < self.fail_share:
                self.refused += 1
                return 500
            wid = headers["webhook-id"]
            if wid in self.accepted:
                self.duplicates += 1
            else:
                self.accepted[wid] = data
        return 200

    def ids_of(self, call_id: str) -> list[str]:
        with self.lock:
            return [d["data"]["event_id"] for d in self.accepted.values() if d["data"]["call_id"] == call_id]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    yield from serve(Receiver(fail_share=0.5))


@pytest.fixture
def down() -> Iterator[tuple[Receiver, int]]:
    yield from serve(Receiver(fail_share=1.0))


def serve(crm: Receiver) -> Iterator[tuple[Receiver, int]]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx pools connections

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender was killed mid-request: nothing to verify or answer
                self.close_connection = True
                return
            status = crm.answer(body, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield crm, server.server_address[1]
    finally:
        crm.hold.clear()
        crm.release.set()
        server.shutdown()
        server.server_close()


# -- the cti process -------------------------------------------------------------------------------
async def start_group_at_end(kafka: KafkaSettings, group: str) -> None:
    """Commit `group` at the end of cti's inputs: the session broker holds other tests' calls."""
    consumer = make_consumer(kafka, group, "test")
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t.name, p) for t in (CALL_ROUTED, CALL_ENDED) for p in consumer.partitions_for_topic(t.name)]
        consumer.assign(tps)
        await consumer.commit(await confirmed_end_offsets(consumer, kafka, tps, "test"))
    finally:
        await consumer.stop()


class Cti:
    """One cti (its own group ids) that can be started again after a kill."""

    def __init__(self, kafka: KafkaSettings, workdir: Path, crm_port: int, down_port: int) -> None:
        self.group = f"cti-crm-test-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir
        config = workdir / "routing.yaml"
        config.write_text(CONFIG.format(crm_port=crm_port, down_port=down_port))
        self.env = service_env(
            kafka,
            config,
            SWITCHBOARD_CTI_GROUP_ID=self.group,
            SWITCHBOARD_CTI_WEBHOOK_BACKOFF_BASE_S="0.01",
            SWITCHBOARD_CTI_WEBHOOK_BACKOFF_MAX_S="0.2",
            TEST_CRM_SECRET=SECRET,
        )
        self.runs = 0
        self.process: ServiceProcess | None = None

    def start(self) -> ServiceProcess:
        self.runs += 1
        self.process = start_service("cti", self.env, self.workdir, log=self.workdir / f"cti-{self.runs}.log")
        return self.process


@pytest.fixture
async def cti(kafka, tmp_path, receiver, down) -> AsyncIterator[Cti]:
    instance = Cti(kafka, tmp_path, receiver[1], down[1])
    await start_group_at_end(kafka, instance.group)
    yield instance
    if instance.process is not None:
        instance.process.stop()


def cti_event(call_id: str, n: int, buyer: str = "b1") -> pb.CtiEvent:
    """The n-th event of a call: routed, ended, routed again (attempt 2), ..."""
    routed = n % 2 == 0
    return pb.CtiEvent(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        type=pb.CTI_EVENT_TYPE_CALL_ROUTED if routed else pb.CTI_EVENT_TYPE_CALL_ENDED,
        campaign_id="c1",
        buyer_id=buyer,
        kind=pb.TARGET_KIND_BUYER,
        caller=pb.Caller(number="+13105551234", state="CA"),
        attempt=n // 2 + 1,
        outcome=pb.CALL_OUTCOME_UNSPECIFIED if routed else pb.CALL_OUTCOME_NO_ANSWER,
    )


async def publish_calls(bus: EventBus, calls: list[str], per_call: int, start: int = 0) -> dict[str, list[str]]:
    """Publish events `start` .. `start + per_call - 1` of every call, interleaved across calls; their ids per call."""
    ids: dict[str, list[str]] = {c: [] for c in calls}
    for n in range(start, start + per_call):
        for c in calls:
            ev = cti_event(c, n)
            await bus.publish(CTI_EVENTS, ev)
            ids[c].append(ev.event_id)
    return ids


def assert_all_once_in_order(crm: Receiver, sent: dict[str, list[str]]) -> None:
    assert crm.bad_signatures == []
    for call_id, ids in sent.items():
        assert crm.ids_of(call_id) == ids, f"call {call_id}: accepted {crm.ids_of(call_id)}, sent {ids}"
    for wid, body in crm.accepted.items():
        assert body["data"]["event_id"] == wid
        assert body["type"] == ("call.routed" if body["data"]["type"] == "CTI_EVENT_TYPE_CALL_ROUTED" else "call.ended")


# -- tests -----------------------------------------------------------------------------------------
async def test_every_event_arrives_once_per_id_in_order_per_call_through_a_flaky_crm(cti, receiver, down, bus, kafka):
    crm, _ = receiver
    await asyncio.to_thread(cti.start)
    calls = [new_call_id() for _ in range(30)]
    sent = await publish_calls(bus, calls, per_call=4)
    # The screen pop of a call.routed, made by cti itself, reaches the CRM too.
    pop_call = new_call_id()
    await bus.publish(
        CALL_ROUTED,
        pb.CallRouted(
            event_id=codec.new_id(),
            call_id=pop_call,
            occurred_at=codec.now_ts(),
            campaign_id="c1",
            kind=pb.TARGET_KIND_BUYER,
            buyer_id="b1",
            destination="+18005550100",
            price="40.00",
            strategy="price",
            attempt=1,
        ),
    )
    total = sum(len(v) for v in sent.values())
    await until("every event accepted", lambda: all(len(crm.ids_of(c)) == len(ids) for c, ids in sent.items()))
    await until("the screen pop delivered", lambda: crm.ids_of(pop_call))
    assert_all_once_in_order(crm, sent)
    assert crm.refused >= total // 4  # the receiver did fail about half of the attempts
    [pop] = [b for b in crm.accepted.values() if b["data"]["call_id"] == pop_call]
    assert (pop["type"], pop["data"]["buyer_id"], pop["data"]["price"]) == ("call.routed", "b1", "40.00")


async def test_an_endpoint_that_always_fails_dead_letters_with_the_reason(cti, down, bus, kafka):
    failing, _ = down
    await asyncio.to_thread(cti.start)
    call_id = new_call_id()
    ev = cti_event(call_id, 0, buyer="b-down")
    await bus.publish(CTI_EVENTS, ev)
    [letter] = await wait_event(kafka, DEAD_LETTER, lambda d: d.key == call_id.encode() and d.source_topic == CTI_EVENTS.name)
    assert letter.reason == "undeliverable: crm endpoint down: 3 attempts failed, the last http_500"
    assert pb.CtiEvent.FromString(letter.value).event_id == ev.event_id
    assert failing.refused == 3 and failing.accepted == {}
    assert "+13105551234" not in cti.process.logs(0)  # no caller number in a log line


async def test_sigkill_with_deliveries_in_flight_loses_nothing(cti, receiver, bus, kafka):
    crm, _ = receiver
    process = await asyncio.to_thread(cti.start)
    calls = [new_call_id() for _ in range(20)]
    sent = await publish_calls(bus, calls, per_call=3)
    await until("a third delivered", lambda: len(crm.accepted) >= 20)
    crm.release.clear()
    crm.hold.set()  # the CRM hangs: the next deliveries stay in flight
    await until("deliveries in flight", lambda: crm.waiting > 0)
    process.kill()  # SIGKILL: nothing committed past what was finished
    delivered_before = len(crm.accepted)
    more = await publish_calls(bus, calls, per_call=2, start=3)  # published while cti is down
    for c in calls:
        sent[c] += more[c]
    crm.hold.clear()
    crm.release.set()
    assert delivered_before < 20 * 3
    await asyncio.to_thread(cti.start)
    await until("every event accepted after the restart", lambda: all(len(crm.ids_of(c)) == len(i) for c, i in sent.items()))
    assert_all_once_in_order(crm, sent)


async def test_cti_refuses_to_start_without_an_endpoints_secret(kafka, tmp_path):
    config = tmp_path / "routing.yaml"
    config.write_text(CONFIG.format(crm_port=9, down_port=9))
    assert "TEST_CRM_SECRET" not in os.environ  # only the other tests' cti processes get it
    process = ServiceProcess("cti", service_env(kafka, config), tmp_path / "ready", tmp_path / "cti.log")
    assert await asyncio.to_thread(process.wait) == 2
    assert f"{config}: crm_endpoints.0.secret_env: environment variable TEST_CRM_SECRET is not set for cti" in process.logs()


async def test_a_hanging_crm_does_not_hold_the_screen_pops(cti, receiver, bus, kafka):
    crm, _ = receiver
    await asyncio.to_thread(cti.start)
    crm.release.clear()
    crm.hold.set()  # every delivery hangs until released
    held = [new_call_id() for _ in range(5)]
    await publish_calls(bus, held, per_call=1)
    await until("deliveries hanging", lambda: crm.waiting >= 1)
    call_id = new_call_id()
    await bus.publish(
        CALL_ROUTED,
        pb.CallRouted(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=codec.now_ts(),
            campaign_id="c1",
            kind=pb.TARGET_KIND_BUYER,
            buyer_id="b1",
            strategy="price",
            attempt=1,
        ),
    )
    await wait_event(kafka, CTI_EVENTS, lambda e: e.call_id == call_id)
    assert crm.waiting >= 1 and not crm.ids_of(held[0])  # the pop came out while the CRM still hung
    crm.hold.clear()
    crm.release.set()
    await until("the held events delivered after all", lambda: all(crm.ids_of(c) for c in [*held, call_id]))
