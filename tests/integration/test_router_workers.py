"""Routers of their own (no other router runs meanwhile): restart with open calls, two workers sharing the partitions.

Helpers (the test as telephony edge, the view reader) come from test_router_ledger.py.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from pathlib import Path

import pytest

from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED, IVR_COMPLETED
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_router_ledger import (
    edge,
    routed_once_per_attempt,
    routers_for,
)
from tests.support import by_target, ivr, read_all

pytestmark = pytest.mark.integration

# A campaign id of its own per test: a router with a new group reads ivr.completed from the
# beginning, and calls of an earlier test's campaign would otherwise take this test's slots.
OWN_CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  - {id: top,  destination: "+18005550300", bid: {type: static, price: 40.00}, billable_after_s: 10, caps: {concurrency: CONC, daily: DAILY}}
  - {id: next, destination: "+18005550301", bid: {type: static, price: 30.00}}
campaigns:
  - {id: CAMPAIGN, numbers: ["+18885550201"], publisher: pub, routing: {tiers: [{strategy: priority, buyers: [top, next]}]}}
"""

# ------------------------------------------------------------------ (d) restart


async def test_restart_keeps_open_calls_and_counters(broker: EmbeddedBroker, tmp_path: Path) -> None:
    campaign = f"capped-{uuid.uuid4().hex[:8]}"
    routers = routers_for(broker, tmp_path, OWN_CONFIG.replace("CONC", "1").replace("DAILY", "2").replace("CAMPAIGN", campaign))
    try:
        routers.start()
        async with edge(routers) as e:
            one = await e.routed((await e.call(campaign)).call_id)
            await e.end(one, pb.CALL_OUTCOME_ANSWERED, 30)  # sale 1
            await e.released("top", one.call_id)
            two = await e.routed((await e.call(campaign)).call_id)  # open across the restart
            three = await e.routed((await e.call(campaign)).call_id)
            assert (one.buyer_id, two.buyer_id, three.buyer_id) == ("top", "top", "next")

            [before] = routers.procs
            assert before.stop() == 0, "SIGTERM must stop the router cleanly"
            routers.start()

            four = await e.routed((await e.call(campaign)).call_id, 1)
            assert four.buyer_id == "next" and by_target(four)["top"].excluded_by == "cap:concurrency"
            await e.end(two, pb.CALL_OUTCOME_ANSWERED, 11)  # the call open across the restart ends: sale 2
            load = await e.released("top", two.call_id)
            assert load.day_sales == 2 and not load.open_calls
            five = await e.routed((await e.call(campaign)).call_id)
            assert five.buyer_id == "next" and by_target(five)["top"].excluded_by == "cap:daily"
            # Redelivered calls after the restart are not sold again.
            for again in (one, two, four):
                await e.bus.publish(IVR_COMPLETED, ivr(campaign, call_id=again.call_id))
            six = await e.routed((await e.call(campaign)).call_id)
            assert six.buyer_id == "next"
            calls = [x.call_id for x in (one, two, three, four, five, six)]
            routed_once_per_attempt(e, calls)
            assert all(len(e.events(c)) == 1 for c in calls), {
                c: [(type(x).__name__, getattr(x, "attempt", 0), x.event_id) for x in e.events(c)] for c in calls
            }
    finally:
        routers.stop_all()


# ------------------------------------------------------------------ (e) two workers


async def test_two_workers_never_exceed_the_concurrency_cap(broker: EmbeddedBroker, tmp_path: Path) -> None:
    cap = 3
    campaign = f"capped-{uuid.uuid4().hex[:8]}"
    routers = routers_for(
        broker, tmp_path, OWN_CONFIG.replace("CONC", str(cap)).replace("DAILY", "100000").replace("CAMPAIGN", campaign)
    )
    try:
        routers.start(2)
        assert all(p.info["partitions"] > 0 for p in routers.procs), [p.info for p in routers.procs]
        rng = random.Random(7)
        async with edge(routers) as e:

            async def one_call() -> list[pb.CallRouted]:
                call = await e.call(campaign)
                routed = await e.routed(call.call_id)
                if routed.buyer_id == "top":
                    await asyncio.sleep(rng.uniform(0.0, 0.15))  # the call's talk time
                    await e.end(routed, pb.CALL_OUTCOME_ANSWERED, 30)
                return [routed]

            async def caller(n: int) -> list[pb.CallRouted]:
                out: list[pb.CallRouted] = []
                for _ in range(n):
                    out += await one_call()
                return out

            batches = await asyncio.gather(*(caller(8) for _ in range(10)))
            routed = [r for b in batches for r in b]
        assert len(routed) == 80
        tops = [r for r in routed if r.buyer_id == "top"]
        assert len(tops) >= cap, (Counter(r.buyer_id for r in routed), routed[0].trace)
        peak = await max_open(routers.kafka, {r.call_id for r in routed}, "top")
        assert peak <= cap, f"{peak} calls open at once with top (cap {cap})"
        # Both workers routed calls (each owns some partitions of the call-keyed topics).
        assert all("call_routed" in p.logs(0) for p in routers.procs)
        denied = sum(p.logs(0).count("reservation_denied") for p in routers.procs)
        print(f"\ntwo workers: {Counter(r.buyer_id for r in routed)}, peak {peak}/{cap}, reservations denied {denied}")
    finally:
        routers.stop_all()


async def max_open(kafka: KafkaSettings, call_ids: set[str], buyer_id: str) -> int:
    """The most calls open at once with `buyer_id`, from call.routed and call.ended read back from the topics.

    An end counts before a route at the same instant: the ledger frees a slot only after the edge
    reported the end, and grants it again before the router publishes call.routed.
    """
    routed = await read_all(kafka, CALL_ROUTED, lambda ev: ev.call_id in call_ids and ev.buyer_id == buyer_id)
    ended = await read_all(kafka, CALL_ENDED, lambda ev: ev.call_id in call_ids and ev.buyer_id == buyer_id)
    timeline = sorted(
        [(codec.ts_ms(ev.occurred_at), 1, ev.call_id) for ev in routed]
        + [(codec.ts_ms(ev.occurred_at), 0, ev.call_id) for ev in ended]
    )
    open_calls: set[str] = set()
    peak = 0
    for _, is_route, call_id in timeline:
        if is_route:
            assert call_id not in open_calls, f"{call_id} routed to {buyer_id} twice"
            open_calls.add(call_id)
            peak = max(peak, len(open_calls))
        else:
            open_calls.discard(call_id)
    return peak
