"""Router + bidder as real subprocesses: buyer caps through the ledger, re-routing on call.ended, restart, two workers.

Each test owns its campaign and buyers (the broker and, in this module, the router are shared).
The telephony edge is played by the test: it reads call.routed and publishes call.ended.
The restart and two-worker tests are in test_router_workers.py (no other router may run then:
every router of the session reads the same ivr.completed). Whether the ledger released a slot is observed on the router's view topic (what every router
worker reads), with the router's own reader (services.router.view).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from switchboard.core.ledger import BuyerLoad
from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import EventBus
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import (
    CALL_ENDED,
    CALL_REJECTED,
    CALL_ROUTED,
    DEAD_LETTER,
    IVR_COMPLETED,
)
from switchboard.services.router.view import LoadView, ViewReader
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    Results,
    ServiceProcess,
    by_target,
    event_bus,
    ivr,
    service_env,
    stop_services,
    until,
)

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  # (a) concurrency
  - {id: a-top,  destination: "+18005550200", bid: {type: static, price: 40.00}, caps: {concurrency: 1}}
  - {id: a-next, destination: "+18005550201", bid: {type: static, price: 30.00}}
  # (b) daily cap with billable_after_s
  - {id: b-top,  destination: "+18005550210", bid: {type: static, price: 40.00}, billable_after_s: 60, caps: {daily: 2}}
  - {id: b-next, destination: "+18005550211", bid: {type: static, price: 30.00}}
  # (c) re-routing
  - {id: c-first,  destination: "+18005550220", bid: {type: static, price: 40.00}, priority: 1}
  - {id: c-second, destination: "+18005550221", bid: {type: static, price: 35.00}, priority: 2}
  - {id: c-third,  destination: "+18005550222", bid: {type: static, price: 30.00}, priority: 3}
  # (f) weight
  - {id: f-50, destination: "+18005550230", bid: {type: static, price: 20.00}, weight: 50}
  - {id: f-30, destination: "+18005550231", bid: {type: static, price: 20.00}, weight: 30}
  - {id: f-20, destination: "+18005550232", bid: {type: static, price: 20.00}, weight: 20}
campaigns:
  - {id: cap-concurrency, numbers: ["+18885550101"], publisher: pub, routing: {timeout_ms: 2000, tiers: [{strategy: price, buyers: [a-top, a-next]}]}}
  - {id: cap-daily, numbers: ["+18885550102"], publisher: pub, routing: {tiers: [{strategy: priority, buyers: [b-top, b-next]}]}}
  - {id: reroute, numbers: ["+18885550103"], publisher: pub, routing: {max_attempts: 2, tiers: [{strategy: priority, buyers: [c-first, c-second, c-third]}]}}
  - {id: weighted, numbers: ["+18885550104"], publisher: pub, routing: {tiers: [{strategy: weight, buyers: [f-50, f-30, f-20]}]}}
"""

# ------------------------------------------------------------------ helpers


@dataclass
class Routers:
    kafka: KafkaSettings
    app_id: str
    tmp: Path
    env: dict[str, str]
    procs: list[ServiceProcess] = field(default_factory=list)

    def start(self, count: int = 1) -> list[ServiceProcess]:
        new = [
            ServiceProcess(
                "router",
                self.env,
                ready_dir=self.tmp / f"ready-{len(self.procs) + i}",
                log=self.tmp / f"router-{len(self.procs) + i}.log",
            )
            for i in range(count)
        ]
        self.procs.extend(new)
        for p in new:
            p.wait_ready(90)
        return new

    def stop_all(self) -> None:
        codes = stop_services(*[p for p in self.procs if p.proc.poll() is None])
        assert all(c == 0 for c in codes.values()), f"unclean shutdown {codes}; logs in {self.tmp}"


def routers_for(broker: EmbeddedBroker, tmp: Path, config_text: str) -> Routers:
    config = tmp / "routing.yaml"
    config.write_text(config_text)
    app_id = f"router-ledger-{uuid.uuid4().hex[:8]}"
    env = service_env(broker.kafka_settings(), config, SWITCHBOARD_ROUTER_APP_ID=app_id)
    return Routers(broker.kafka_settings(), app_id, tmp, env)


@pytest.fixture(scope="module")
def shared(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routers]:
    tmp = tmp_path_factory.mktemp("router_ledger")
    routers = routers_for(broker, tmp, CONFIG)
    bidder = ServiceProcess("bidder", routers.env, ready_dir=tmp, log=tmp / "bidder.log")
    try:
        bidder.wait_ready()
        routers.start()
        yield routers
    finally:
        routers.stop_all()
        assert stop_services(bidder)["bidder"] == 0


class Edge:
    """The test as telephony edge: publishes calls and their outcomes, reads results and the ledger view."""

    def __init__(self, kafka: KafkaSettings, app_id: str, bus: EventBus, results: Results, view: LoadView) -> None:
        self.kafka, self.app_id, self.bus, self.results, self.view = kafka, app_id, bus, results, view

    async def call(self, campaign: str, call_id: str | None = None) -> pb.IvrCompleted:
        event = ivr(campaign, call_id=call_id or f"t-{uuid.uuid4().hex}")
        await self.bus.publish(IVR_COMPLETED, event)
        return event

    async def end(self, routed: pb.CallRouted, outcome: pb.CallOutcome, seconds: int = 0) -> None:
        ended = pb.CallEnded(
            event_id=codec.new_id(),
            call_id=routed.call_id,
            occurred_at=codec.now_ts(),
            outcome=outcome,
            connected_seconds=seconds,
            buyer_id=routed.buyer_id,
            attempt=routed.attempt,
        )
        await self.bus.publish(CALL_ENDED, ended)

    def events(self, call_id: str, topic: str | None = None) -> list:
        """The call's result events, once per event id (a reader may see a record twice; the router's
        duplicates would carry distinct event ids and still count)."""
        seen: dict[str, object] = {}
        for t, k, ev in self.results.records:
            if k == call_id and t != DEAD_LETTER.name and (topic is None or t == topic):
                seen.setdefault(ev.event_id, ev)
        return list(seen.values())

    async def until(self, what: str, cond: Callable[[], object], timeout_s: float = 60.0) -> object:
        return await until(what, cond, timeout_s, interval_s=0.005)

    async def routed(self, call_id: str, attempt: int = 1) -> pb.CallRouted:
        def find() -> pb.CallRouted | None:
            return next((e for e in self.events(call_id, CALL_ROUTED.name) if e.attempt == attempt), None)

        return await self.until(f"call.routed {call_id} attempt {attempt}", find)

    async def outcome(self, call_id: str, topic: str) -> object:
        return await self.until(f"{topic} for {call_id}", lambda: next(iter(self.events(call_id, topic)), None))

    async def released(self, buyer_id: str, call_id: str) -> BuyerLoad:
        """Wait until the ledger published the buyer's load without the call (its slot is free again)."""

        def done() -> BuyerLoad | None:
            entry = self.view.loads.get(buyer_id)
            return entry[1] if entry is not None and call_id not in entry[1].open_calls else None

        return await self.until(f"{buyer_id} released {call_id}", done)


@asynccontextmanager
async def edge(routers: Routers) -> AsyncIterator[Edge]:
    view = LoadView()
    reader = ViewReader(routers.kafka, f"{routers.app_id}.view", view)
    reading = asyncio.create_task(reader.run())
    try:
        async with Results(routers.kafka) as results, event_bus(routers.kafka) as bus:
            yield Edge(routers.kafka, routers.app_id, bus, results, view)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


def routed_once_per_attempt(e: Edge, call_ids: list[str]) -> None:
    for call_id in call_ids:
        attempts = Counter(ev.attempt for ev in e.events(call_id, CALL_ROUTED.name))
        assert all(n == 1 for n in attempts.values()), f"{call_id}: call.routed per attempt {dict(attempts)}"
        assert len(e.events(call_id, CALL_REJECTED.name)) <= 1


# ------------------------------------------------------------------ (a) concurrency


async def test_concurrency_cap_sends_the_overlapping_call_to_the_next_buyer(shared: Routers) -> None:
    async with edge(shared) as e:
        first = await e.routed((await e.call("cap-concurrency")).call_id)
        assert first.buyer_id == "a-top"
        second = await e.routed((await e.call("cap-concurrency")).call_id)
        assert second.buyer_id == "a-next"
        t = by_target(second)
        assert t["a-top"].excluded_by == "cap:concurrency" and not t["a-top"].eligible
        await e.end(first, pb.CALL_OUTCOME_ANSWERED, 120)
        await e.released("a-top", first.call_id)
        third = await e.routed((await e.call("cap-concurrency")).call_id)
        assert third.buyer_id == "a-top"
        # A sale that stands finishes the call: no re-route, no rejection.
        assert e.events(first.call_id) == [first]


# ------------------------------------------------------------------ (b) daily cap, billable_after_s


async def test_daily_cap_counts_billable_calls_only(shared: Routers) -> None:
    async with edge(shared) as e:
        short = await e.routed((await e.call("cap-daily")).call_id)
        assert short.buyer_id == "b-top"
        await e.end(short, pb.CALL_OUTCOME_ANSWERED, 59)  # caller hung up before billable_after_s: no sale
        load = await e.released("b-top", short.call_id)
        assert load.day_sales == 0
        for n in (1, 2):
            sale = await e.routed((await e.call("cap-daily")).call_id)
            assert sale.buyer_id == "b-top"
            await e.end(sale, pb.CALL_OUTCOME_ANSWERED, 60)
            load = await e.released("b-top", sale.call_id)
            assert load.day_sales == n and load.day_spend == 40 * n
        third = await e.routed((await e.call("cap-daily")).call_id)
        assert third.buyer_id == "b-next"
        assert by_target(third)["b-top"].excluded_by == "cap:daily"
        routed_once_per_attempt(e, [short.call_id, third.call_id])
        assert e.events(short.call_id) == [short]  # ANSWERED, not billable: finished all the same


# ------------------------------------------------------------------ (c) re-routing


async def test_no_answer_reroutes_with_the_next_attempt_until_max_attempts(shared: Routers) -> None:
    async with edge(shared) as e:
        call = await e.call("reroute")
        one = await e.routed(call.call_id, 1)
        assert one.buyer_id == "c-first"
        await e.end(one, pb.CALL_OUTCOME_NO_ANSWER)
        two = await e.routed(call.call_id, 2)
        assert two.buyer_id == "c-second" and two.trace.winning_attempt == 2
        assert "failed: no_answer" in by_target(two)["c-first"].detail or any("no_answer" in n for n in two.trace.notes)
        await e.end(one, pb.CALL_OUTCOME_NO_ANSWER)  # a redelivered outcome of offer 1: ignored
        await e.end(two, pb.CALL_OUTCOME_BUSY)
        rejected = await e.outcome(call.call_id, CALL_REJECTED.name)
        assert rejected.reason == "max_attempts"
        await e.released("c-first", call.call_id)
        await e.released("c-second", call.call_id)
        await e.end(two, pb.CALL_OUTCOME_BUSY)  # after the rejection: nothing more
        # An early buyer hang-up re-routes too; a caller hang-up after answering finishes the call.
        other = await e.call("reroute")
        first = await e.routed(other.call_id, 1)
        await e.end(first, pb.CALL_OUTCOME_BUYER_HANGUP, 3)
        second = await e.routed(other.call_id, 2)
        assert second.buyer_id == "c-second"
        await e.end(second, pb.CALL_OUTCOME_ANSWERED, 4)
        await e.released("c-second", other.call_id)
        routed_once_per_attempt(e, [call.call_id, other.call_id])
        assert [type(x).__name__ for x in e.events(call.call_id)] == ["CallRouted", "CallRouted", "CallRejected"]
        assert e.events(other.call_id, CALL_REJECTED.name) == []


# ------------------------------------------------------------------ (f) weight through the live router


async def test_weight_shares_100_calls_within_one(shared: Routers) -> None:
    async with edge(shared) as e:
        calls = await asyncio.gather(*(e.call("weighted") for _ in range(100)))
        routed = [await e.routed(c.call_id) for c in calls]
    counts = Counter(r.buyer_id for r in routed)
    for buyer, share in (("f-50", 50), ("f-30", 30), ("f-20", 20)):
        assert abs(counts[buyer] - share) <= 1, counts
