"""The router's housekeeping on the real broker: calls whose call.ended never comes, callers who hang up
while the router is still deciding, and forgetting finished calls.

One router of its own for the module (no other router runs meanwhile) with short settings:
max_call_duration_s 3, finished_retention_s 5, sweep_interval_s 0.2. Before it starts, the fixture
writes state as a router before these features left it (a buyer record whose open call has no
opening time, a `finished` entry without a time) into its changelogs. The test plays the telephony
edge (helpers from test_router_ledger.py). Everything is waited for on topics: results, the
ledger's view topic, the table changelogs, and the router group's committed offsets (a record is
handled once its offset is committed).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from google.protobuf.message import Message

from switchboard.core.ledger import BuyerLoad
from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.kafka import ensure_topics
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import (
    CALL_ENDED,
    CALL_REJECTED,
    CALL_ROUTED,
    IVR_COMPLETED,
    PING_REQUESTED,
    Topic,
)
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_router_ledger import Edge, Routers, edge, routers_for
from tests.support import by_target, ivr, publish_raw, read_all, until, wait_event

pytestmark = pytest.mark.integration

MAX_CALL_DURATION_S = 3  # long enough that the second call is decided before the first is reaped
RETENTION_S = 5

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  - {id: top,   destination: "+18005550400", bid: {type: static, price: 40.00}, caps: {concurrency: 1}}
  - {id: next,  destination: "+18005550401", bid: {type: static, price: 30.00}}
  # Takes only Alaskan callers (the calls here are Californian); a tier under the floor is refused.
  - {id: cheap, destination: "+18005550402", bid: {type: static, price: 15.00}, filters: {states: [AK]}}
  - {id: old,   destination: "+18005550403", bid: {type: static, price: 40.00}, caps: {concurrency: 1}}
  # No bidder runs in this module: a ping to `silent` is never answered, its auction stays open.
  - {id: silent, destination: "+18005550404", bid: {type: rtb, url: "http://127.0.0.1:9/never", timeout_ms: 20000}}
campaigns:
  - {id: REAP, numbers: ["+18885550401"], publisher: pub, routing: {max_attempts: 2, tiers: [{strategy: priority, buyers: [top, next]}]}}
  - {id: FLOOR, numbers: ["+18885550402"], publisher: pub, routing: {tiers: [{strategy: priority, buyers: [cheap]}]}}
  - {id: LEGACY, numbers: ["+18885550403"], publisher: pub, routing: {tiers: [{strategy: priority, buyers: [old, next]}]}}
  - {id: LEFT, numbers: ["+18885550404"], publisher: pub, routing: {timeout_ms: 30000, tiers: [{strategy: price, buyers: [silent]}]}}
"""


@dataclass
class Setup:
    routers: Routers
    reap: str  # campaign: top (concurrency 1), then next
    floor: str  # campaign: no buyer takes the call (rejected at once)
    legacy: str  # campaign: old (concurrency 1, holding a call from an old record), then next
    left: str  # campaign: one RTB buyer nobody answers for (an auction open for 30 s)
    legacy_finished: str  # a call id in `finished` as an old router wrote it
    started_at: datetime  # before the router started


async def seed_legacy_state(kafka: KafkaSettings, app_id: str, finished_call_id: str) -> None:
    """Write what a router from before opened_at / at_ms left: into the changelogs (and the view) of `app_id`."""
    legacy_load = BuyerLoad("old", open_calls={"ghost": Decimal("40.00")}).to_dict()
    del legacy_load["opened_at"]
    names = [f"{app_id}-loads-changelog", f"{app_id}-finished-changelog", f"{app_id}.view"]
    await ensure_topics(kafka, [Topic(n, Message, "seeded by the test") for n in names])
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all")
    await producer.start()
    try:

        def partition(key: str) -> int:  # where the router's own messages keyed `key` land
            return DefaultPartitioner()(key.encode(), list(range(kafka.partitions)), list(range(kafka.partitions)))

        def j(v: object) -> bytes:
            return json.dumps(v).encode()

        await producer.send_and_wait(
            names[0], j({"version": 1, "load": legacy_load, "closed": []}), key=j("old"), partition=partition("old")
        )
        await producer.send_and_wait(names[1], j("routed"), key=j(finished_call_id), partition=partition(finished_call_id))
        view = {"kind": "load", "key": "old", "version": 1, "state": legacy_load}
        await producer.send_and_wait(names[2], j(view), key=b"load:old", partition=partition("load:old"))
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def setup(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    # Campaign ids of their own: a new group reads ivr.completed from the beginning.
    reap, floor, legacy, left = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("reap", "floor", "legacy", "left"))
    config = CONFIG.replace("REAP", reap).replace("FLOOR", floor).replace("LEGACY", legacy).replace("LEFT", left)
    routers = routers_for(broker, tmp_path_factory.mktemp("router_reaper"), config)
    routers.env.update(
        SWITCHBOARD_ROUTER_MAX_CALL_DURATION_S=str(MAX_CALL_DURATION_S),
        SWITCHBOARD_ROUTER_FINISHED_RETENTION_S=str(RETENTION_S),
        SWITCHBOARD_ROUTER_SWEEP_INTERVAL_S="0.2",
    )
    legacy_finished = f"t-legacy-{uuid.uuid4().hex}"
    asyncio.run(seed_legacy_state(routers.kafka, routers.app_id, legacy_finished))
    started_at = datetime.now(UTC)
    try:
        routers.start()
        yield Setup(routers, reap, floor, legacy, left, legacy_finished, started_at)
    finally:
        routers.stop_all()


class JsonTopic:
    """A topic of JSON keys and values read in the background from the beginning: (key, value or None for a tombstone)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.records: list[tuple[object, object]] = []

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(**self.kafka.client_kwargs(), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.topic, p) for p in range(self.kafka.partitions)])
            await consumer.seek_to_beginning()
            while True:
                for records in (await consumer.getmany(timeout_ms=50)).values():
                    for r in records:
                        key = r.key.decode() if r.key.startswith(b"load:") else json.loads(r.key)  # view keys are plain text
                        self.records.append((key, None if r.value is None else json.loads(r.value)))
        finally:
            await consumer.stop()

    def of(self, key: str) -> list[Any]:
        return [v for k, v in self.records if k == key]


@asynccontextmanager
async def watching(routers: Routers, topic_suffix: str = "-finished-changelog") -> AsyncIterator[tuple[Edge, JsonTopic]]:
    log = JsonTopic(routers.kafka, f"{routers.app_id}{topic_suffix}")
    reading = asyncio.create_task(log.run())
    try:
        async with edge(routers) as e:
            yield e, log
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


async def publish_handled(routers: Routers, topic: str, event: object, timeout_s: float = 90.0) -> None:
    """Publish `event` and wait until the router group committed past it (the router handled it)."""
    [(tp, offset)] = (await publish_raw(routers.kafka, [(topic, event.call_id.encode(), codec.encode(event))])).items()
    consumer = AIOKafkaConsumer(**routers.kafka.client_kwargs(), group_id=routers.app_id, enable_auto_commit=False)
    await consumer.start()  # carries the group id but never joins: only asks for committed offsets
    try:
        deadline = time.monotonic() + timeout_s
        while ((await consumer.committed(tp)) or 0) <= offset:
            assert time.monotonic() < deadline, f"the router did not commit {tp} past {offset} within {timeout_s}s"
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


def router_log(routers: Routers) -> str:
    return "".join(p.logs(0) for p in routers.procs)


async def test_a_call_whose_end_never_comes_gives_its_slot_back(setup: Setup) -> None:
    routers, campaign = setup.routers, setup.reap
    async with watching(routers) as (e, changelog):
        lost = await e.routed((await e.call(campaign)).call_id)
        assert lost.buyer_id == "top"
        # No call.ended ever comes for `lost`: top's one slot is taken.
        refused = await e.routed((await e.call(campaign)).call_id)
        assert refused.buyer_id == "next"
        assert by_target(refused)["top"].excluded_by == "cap:concurrency"

        # The ledger's sweep releases it after max_call_duration_s, as ended without a sale.
        load = await e.released("top", lost.call_id)
        assert load.day_sales == 0 and load.day_spend == 0 and load.reserved_spend == 0
        # The router's workers learn it from the view topic a hop after this test's reader did:
        # until then a call still sees top's slot taken (eventually consistent, see router/view.py).
        for _ in range(50):
            again = await e.routed((await e.call(campaign)).call_id)
            if again.buyer_id == "top":
                break
            assert again.buyer_id == "next" and by_target(again)["top"].excluded_by == "cap:concurrency"
        assert again.buyer_id == "top" and by_target(again)["top"].eligible

        # The call side forgot the offer too (finished "reaped")...
        await until(
            "the lost call finished as reaped",
            lambda: any(isinstance(v, dict) and v["kind"] == "reaped" for v in changelog.of(lost.call_id)),
        )
        # ...so an end reported now changes nothing: a no-answer would otherwise re-route it (max_attempts 2).
        late = pb.CallEnded(
            event_id=codec.new_id(),
            call_id=lost.call_id,
            occurred_at=codec.now_ts(),
            outcome=pb.CALL_OUTCOME_NO_ANSWER,
            buyer_id=lost.buyer_id,
            attempt=lost.attempt,
        )
        await publish_handled(routers, CALL_ENDED.name, late)
        assert [ev.attempt for ev in e.events(lost.call_id, CALL_ROUTED.name)] == [1]
        assert e.events(lost.call_id, CALL_REJECTED.name) == []

    log = router_log(routers)
    reaped = [line for line in log.splitlines() if "open_call_reaped" in line and lost.call_id in line]
    assert reaped and "top" in reaped[0], f"no warning for the reaped call in the router log:\n{log[-3000:]}"


async def test_finished_calls_are_forgotten_after_the_retention(setup: Setup) -> None:
    routers, campaign = setup.routers, setup.floor
    async with watching(routers) as (e, changelog):
        first = ivr(campaign)  # no buyer takes a Californian: rejected at once
        await e.bus.publish(IVR_COMPLETED, first)
        await e.outcome(first.call_id, CALL_REJECTED.name)
        entry = await until("the finished entry", lambda: changelog.of(first.call_id))
        assert entry[0]["kind"] == "rejected"

        # Fresh: a redelivery is recognised and dropped.
        await publish_handled(routers, IVR_COMPLETED.name, first)
        assert len(e.events(first.call_id, CALL_REJECTED.name)) == 1

        # Old: the sweep deletes the entry through the owning partition (a tombstone in the changelog).
        await until("the finished entry forgotten", lambda: None in changelog.of(first.call_id))
        # The same redelivery now is older than the retention: still ignored, never routed twice.
        await publish_handled(routers, IVR_COMPLETED.name, first)
        assert len(e.events(first.call_id, CALL_REJECTED.name)) == 1
        ignored = [
            line for line in router_log(routers).splitlines() if "stale_ivr_completed_ignored" in line and first.call_id in line
        ]
        assert ignored, "no warning for the ignored stale ivr.completed"
        # The entry is gone from the running table, not only from the changelog: a new event under
        # the same call id (fresh occurred_at) is routed again.
        await e.bus.publish(IVR_COMPLETED, ivr(campaign, call_id=first.call_id))
        await until("the call id routed again", lambda: len(e.events(first.call_id, CALL_REJECTED.name)) == 2)


async def test_state_from_an_older_router_loads_and_is_swept(setup: Setup) -> None:
    """An open call without an opening time counts from when the ledger loads it; a `finished`
    entry without a time from when the sweep first sees it. Both are then swept like the others."""
    routers = setup.routers
    async with watching(routers, ".view") as (e, view):

        def old_loads() -> list[dict]:
            return [v["state"] for v in view.of("load:old") if v is not None and v["version"] > 1]

        # The ledger stamped the open call (its first write of the record after loading it)...
        stamped = await until("the old open call stamped", lambda: [s for s in old_loads() if "ghost" in s["open_calls"]])
        opened = datetime.fromisoformat(stamped[0]["opened_at"]["ghost"])
        assert opened >= setup.started_at  # "now" at load, not some time before the router ran
        # ...and released it one max_call_duration_s later, without a sale.
        reaped = await until("the old open call reaped", lambda: [s for s in old_loads() if not s["open_calls"]])
        assert reaped[0]["day_sales"] == 0 and reaped[0]["day_spend"] == "0.00"
        sold = await e.routed((await e.call(setup.legacy)).call_id)
        assert sold.buyer_id == "old"
        # The old `finished` entry was loaded (a bare kind) and forgotten one retention after it was first seen.
        async with watching(routers) as (_, finished):
            await until("the old finished entry forgotten", lambda: None in finished.of(setup.legacy_finished))
        assert finished.of(setup.legacy_finished)[0] == "routed"


def hung_up(call_id: str) -> pb.CallEnded:
    """What the ivr publishes when the caller hangs up after ivr.completed, before a decision reached it."""
    return pb.CallEnded(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        outcome=pb.CALL_OUTCOME_CALLER_HANGUP,
        routing_pending=True,
    )


async def test_a_caller_who_hangs_up_during_the_auction_is_abandoned_not_sold(setup: Setup) -> None:
    routers = setup.routers
    async with watching(routers) as (e, changelog):
        call = await e.call(setup.left)
        await wait_event(routers.kafka, PING_REQUESTED, lambda p: p.call_id == call.call_id)  # the auction is open
        await e.bus.publish(CALL_ENDED, hung_up(call.call_id))
        rejected = await e.outcome(call.call_id, CALL_REJECTED.name)
        assert (rejected.reason, rejected.detail) == ("abandoned", "the caller hung up while routing (auction)")
        assert rejected.campaign_id == setup.left and rejected.trace.winning_tier == -1
        await until(
            "the call finished as rejected",
            lambda: any(isinstance(v, dict) and v["kind"] == "rejected" for v in changelog.of(call.call_id)),
        )
        # The same report again (at-least-once) changes nothing.
        await publish_handled(routers, CALL_ENDED.name, hung_up(call.call_id))
        assert len(e.events(call.call_id)) == 1


async def test_a_hang_up_that_overtakes_its_ivr_completed_ends_the_call_without_routing_it(setup: Setup) -> None:
    routers = setup.routers
    async with watching(routers) as (e, changelog):
        call = ivr(setup.left)
        # call.ended and ivr.completed are on different topics: nothing orders them. Here the hang-up is handled first.
        await publish_handled(routers, CALL_ENDED.name, hung_up(call.call_id))
        await until(
            "the hang-up remembered",
            lambda: [v["kind"] for v in changelog.of(call.call_id) if isinstance(v, dict)] == ["hung_up"],
        )
        await e.bus.publish(IVR_COMPLETED, call)
        rejected = await e.outcome(call.call_id, CALL_REJECTED.name)
        assert (rejected.reason, rejected.detail) == ("abandoned", "the caller hung up before routing started")
        assert rejected.campaign_id == setup.left
        assert await read_all(routers.kafka, PING_REQUESTED, lambda p: p.call_id == call.call_id) == []  # nobody was pinged
        # A redelivered ivr.completed is a duplicate now.
        await publish_handled(routers, IVR_COMPLETED.name, call)
        assert len(e.events(call.call_id)) == 1
