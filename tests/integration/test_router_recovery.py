"""The router alone (no bidder): auction deadlines, and an auction in flight survives a restart.

Nobody answers the pings here, so every auction ends at its deadline. The
router's state lives in changelog-backed tables: a router stopped mid-auction
and started again (same app id) recovers the auction and still gives the call
exactly one terminal event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_QUEUED, CALL_REJECTED, IVR_COMPLETED, PING_REQUESTED
from tests.support import Results, ServiceProcess, by_target, event_bus, ivr, service_env, wait_records

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 15.00}
buyers:
  - {id: silent, destination: "+18005550100", bid: {type: static, price: 40.00}}
campaigns:
  - id: slow
    numbers: ["+18885550011"]
    publisher: pub
    routing: {timeout_ms: 300, tiers: [{strategy: price, buyers: [silent]}, {strategy: queue, queue: sales}]}
  - id: long
    numbers: ["+18885550012"]
    publisher: pub
    routing: {timeout_ms: 2500, tiers: [{strategy: price, buyers: [silent]}]}
queues:
  - {id: sales}
"""


class RouterProcess:
    """The router as a process that a test can stop and start again (same app id, so same state)."""

    def __init__(self, broker: EmbeddedBroker, tmp: Path) -> None:
        config = tmp / "routing.yaml"
        config.write_text(CONFIG)
        self.tmp = tmp
        self.env = service_env(broker.kafka_settings(), config, SWITCHBOARD_ROUTER_APP_ID=f"router-rec-{uuid.uuid4().hex[:8]}")
        self.service: ServiceProcess | None = None
        self.runs = 0

    def start(self, timeout_s: float = 60.0) -> None:
        self.runs += 1
        self.service = ServiceProcess("router", self.env, ready_dir=self.tmp, log=self.tmp / f"router-{self.runs}.log")
        self.service.wait_ready(timeout_s)

    def stop(self) -> int:
        service, self.service = self.service, None
        return service.stop() if service is not None else 0


@pytest.fixture(scope="module")
def router(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    r = RouterProcess(broker, tmp_path_factory.mktemp("router_recovery"))
    try:
        r.start()
        yield r
    finally:
        r.stop()


async def test_deadline_without_answers_falls_through_to_queue(router: RouterProcess, kafka: KafkaSettings) -> None:
    event = ivr("slow")
    async with Results(kafka) as results, event_bus(kafka) as bus:
        await bus.publish(IVR_COMPLETED, event)
        topic, queued = await results.wait_terminal(event.call_id)
    assert topic == CALL_QUEUED.name
    e = by_target(queued)["silent"]  # type: ignore[arg-type]
    assert e.eligible and e.bid_reason == "timeout"
    # The deadline was honoured: the hand-off came no earlier than timeout_ms after routing started.
    assert codec.ts_ms(queued.occurred_at) - codec.ts_ms(queued.routing_started_at) >= 300  # type: ignore[attr-defined]


async def test_auction_in_flight_survives_a_restart(router: RouterProcess, kafka: KafkaSettings) -> None:
    event = ivr("long")
    async with Results(kafka) as results:
        async with event_bus(kafka) as bus:
            await bus.publish(IVR_COMPLETED, event)
            # Stop the router mid-auction (deadline 2.5 s away), once it has written the auction.
            await _wait_for_ping(kafka, event.call_id)
            assert router.stop() == 0, "SIGTERM must stop the router cleanly"
            assert results.terminal(event.call_id) == []
            await asyncio.to_thread(router.start)
            topic, rejected = await results.wait_terminal(event.call_id, timeout_s=30)
            assert topic == CALL_REJECTED.name and rejected.reason == "no_bid"  # type: ignore[attr-defined]
            # The finished table was recovered too: a redelivery after the restart is ignored.
            await bus.publish(IVR_COMPLETED, event)
            follow = ivr("slow")
            await bus.publish(IVR_COMPLETED, follow)
            await results.wait_terminal(follow.call_id, timeout_s=30)
        assert len(results.terminal(event.call_id)) == 1


async def _wait_for_ping(kafka: KafkaSettings, call_id: str, timeout_s: float = 20.0) -> None:
    await wait_records(kafka, PING_REQUESTED, lambda r, _ev: (r.key or b"").decode() == call_id, timeout_s)
