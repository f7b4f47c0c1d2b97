"""(c) The pure routing core: decisions per second for one 50-buyer campaign.

No I/O: core.engine start_routing → (RequestBids → conclude_auction)* → an action,
with a core.ledger.InMemoryLedger carrying caps and weight counters across calls, as
the router and the simulator drive it. Static buyers answer their standing price;
RTB buyers answer a seeded random bid or decline (the bidder's part, not timed
separately). Calls end after a while (ledger.end), so concurrency caps fill and free.
One decision = one call from start_routing to its first offer, queue hand-off or reject.
"""

from __future__ import annotations

import random
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.measure import percentile
from switchboard.core import engine
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import CallFacts
from switchboard.core.ledger import InMemoryLedger
from switchboard.demo.traffic import AREAS

BUYERS = 50
STATES = sorted({state for state, _, _ in AREAS})
START = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)  # a Wednesday afternoon
CLOCK_STEP = timedelta(milliseconds=200)  # simulated time between two calls
OPEN_CALLS = 40  # calls talking at once; the oldest ends when another is routed


def campaign_config(buyers: int = BUYERS, seed: int = 1) -> RoutingConfig:
    """A campaign of `buyers` buyers in three tiers: price (static and RTB), weight, priority."""
    rng = random.Random(seed)
    defs: list[dict] = []
    for i in range(buyers):
        rtb = i % 5 == 4  # one in five bids in real time
        bid = (
            {"type": "rtb", "url": f"http://127.0.0.1:9/ping/b{i:02d}", "timeout_ms": 300}
            if rtb
            else {"type": "static", "price": f"{rng.uniform(12, 60):.2f}"}
        )
        filters: dict = {}
        if rng.random() < 0.6:
            filters["states"] = rng.sample(STATES, rng.randint(2, 6))
        if rng.random() < 0.3:
            filters["answers"] = {"homeowner": {"eq": "yes"}}
        if rng.random() < 0.2:
            filters["area_codes"] = rng.sample([a for _, a, _ in AREAS], 4)
        caps: dict = {}
        if rng.random() < 0.5:
            caps["concurrency"] = rng.randint(1, 6)
        if rng.random() < 0.3:
            caps["daily"] = rng.randint(200, 2000)
        defs.append(
            {
                "id": f"b{i:02d}",
                "destination": f"+1800555{i:04d}",
                "bid": bid,
                "weight": rng.randint(1, 5),
                "priority": rng.randint(1, 3),
                "filters": filters,
                "caps": caps,
            }
        )
    ids = [d["id"] for d in defs]
    price, weight, priority = ids[: buyers * 3 // 5], ids[buyers * 3 // 5 : buyers * 4 // 5], ids[buyers * 4 // 5 :]
    return RoutingConfig.model_validate(
        {
            "version": 1,
            "publishers": [{"id": "pub", "min_price": "15.00"}],
            "buyers": defs,
            "campaigns": [
                {
                    "id": "bench",
                    "numbers": ["+18885550999"],
                    "publisher": "pub",
                    "routing": {
                        "timeout_ms": 1000,
                        "max_attempts": 3,
                        "tiers": [
                            {"strategy": "price", "buyers": price},
                            {"strategy": "weight", "buyers": weight},
                            {"strategy": "priority", "buyers": priority},
                        ],
                    },
                }
            ],
        }
    )


def _answers(config: RoutingConfig, action: engine.RequestBids, rng: random.Random) -> dict[str, engine.BidAnswer]:
    out: dict[str, engine.BidAnswer] = {}
    for seq, buyer_id in enumerate(action.buyer_ids):
        bid = config.buyer(buyer_id).bid
        if bid.type == "static":
            out[buyer_id] = engine.BidAnswer(buyer_id, "bid", bid.price, seq=seq)
        elif rng.random() < 0.2:
            out[buyer_id] = engine.BidAnswer(buyer_id, "decline", reason="no agents free", latency_ms=40, seq=seq)
        else:
            amount = Decimal(f"{rng.uniform(8, 70):.2f}")
            out[buyer_id] = engine.BidAnswer(buyer_id, "bid", amount, latency_ms=40, available=True, seq=seq)
    return out


def run_core(duration_s: float, seed: int = 1, buyers: int = BUYERS) -> dict:
    """Route calls through the core for `duration_s`; decisions/s and per-decision time."""
    config = campaign_config(buyers, seed)
    campaign = config.campaigns[0]
    rng = random.Random(seed)
    ledger = InMemoryLedger()
    open_calls: deque[tuple[str, str]] = deque()
    outcomes: dict[str, int] = {}
    per_call_us: list[float] = []
    now = START
    n = 0
    began = time.perf_counter()
    deadline = began + duration_s
    while time.perf_counter() < deadline:
        n += 1
        now += CLOCK_STEP
        state, area, zip3 = rng.choice(AREAS)
        call = CallFacts(
            call_id=f"c{n}",
            campaign_id=campaign.id,
            publisher_id=campaign.publisher,
            state=state,
            zip=f"{zip3}{rng.randint(0, 99):02d}",
            area_code=area,
            answers={"homeowner": rng.choice(["yes", "yes", "no"])},
        )
        t0 = time.perf_counter()
        step = engine.start_routing(config, call, now, ledger)
        while isinstance(step.action, engine.RequestBids):
            answers = _answers(config, step.action, rng)
            for a in answers.values():
                if a.amount is not None:
                    ledger.bid(a.buyer_id, a.amount, now)
            step = engine.conclude_auction(config, step.progress, step.action.buyer_ids, answers, now, ledger)
        action = step.action
        if isinstance(action, engine.RouteToBuyer):
            ledger.route(call.call_id, action, now)
            open_calls.append((call.call_id, action.buyer_id))
        per_call_us.append((time.perf_counter() - t0) * 1e6)
        kind = type(action).__name__
        outcomes[kind] = outcomes.get(kind, 0) + 1
        while len(open_calls) > OPEN_CALLS:
            call_id, buyer_id = open_calls.popleft()
            ledger.end(call_id, config.buyer(buyer_id), now, connected_seconds=rng.choice([15, 45, 95, 120, 240]))
    elapsed = time.perf_counter() - began
    return {
        "buyers": buyers,
        "decisions": n,
        "decisions_per_s": n / elapsed if elapsed > 0 else 0.0,
        "decision_p50_us": percentile(per_call_us, 50),
        "decision_p99_us": percentile(per_call_us, 99),
        "outcomes": outcomes,
    }
