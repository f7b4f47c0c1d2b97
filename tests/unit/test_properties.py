"""Property tests: random configs and call sequences driven through the pure core with the in-memory ledger.

A small driver plays the outside world (bidder answers, offer outcomes, call
ends over time) and checks after every decision:
  - no offer (route or post) and no ping to a buyer an independent oracle finds ineligible;
  - concurrency, hourly/daily/monthly caps and the daily budget never exceeded;
  - every call gets exactly one terminal outcome, within max_attempts offers;
  - the trace agrees with the outcome (one winner entry = the routed buyer; none otherwise).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from switchboard.core import engine
from switchboard.core.config import Buyer, RoutingConfig
from switchboard.core.eligibility import CallFacts, is_open
from switchboard.core.ledger import BuyerLoad, InMemoryLedger, buyer_timezone

START = datetime(2025, 3, 8, 6, 0, tzinfo=UTC)  # the weekend of a DST change in the US
STRATEGY_NAMES = [
    "price",
    "priority",
    "weight",
    "parallel_highest",
    "parallel_first",
    "ping_post",
    "even",
    "availability",
    "direct",
]
WINDOWS = ("hourly", "daily", "monthly")

maybe_cap = st.sampled_from([None, None, None, 0, 1, 2, 4])


@st.composite
def buyers(draw: st.DrawFn, i: int) -> dict[str, Any]:
    b: dict[str, Any] = {
        "id": f"b{i}",
        "destination": f"+1800555{i:04d}",
        "share_caller_number": draw(st.booleans()),
        "billable_after_s": draw(st.sampled_from([0, 30, 90])),
        "priority": draw(st.integers(1, 3)),
        "weight": draw(st.integers(1, 5)),
        "caps": {
            "concurrency": draw(maybe_cap),
            "hourly": draw(maybe_cap),
            "daily": draw(maybe_cap),
            "monthly": draw(st.sampled_from([None, None, 3, 8])),
            "daily_budget": draw(st.sampled_from([None, None, None, "0.00", "50.00", "120.00"])),
        },
    }
    if draw(st.booleans()):
        b["bid"] = {"type": "static", "price": f"{draw(st.integers(5, 60))}.00"}
    else:
        b["bid"] = {"type": "rtb", "url": "http://127.0.0.1:9/ping"}
    if draw(st.booleans()):
        b["filters"] = {"states": draw(st.lists(st.sampled_from(["CA", "TX", "NY"]), min_size=1, max_size=2, unique=True))}
    if draw(st.booleans()):
        tz = draw(st.sampled_from(["America/Los_Angeles", "America/New_York", "UTC"]))
        b["schedule"] = {
            "timezone": tz,
            "hours": {
                draw(st.sampled_from(["mon-fri", "mon-sun", "sat-sun"])): draw(
                    st.sampled_from(["06:00-22:00", "00:00-24:00", "20:00-04:00"])
                )
            },
        }
    return b


@st.composite
def configs(draw: st.DrawFn) -> RoutingConfig:
    n = draw(st.integers(2, 5))
    bs = [draw(buyers(i)) for i in range(n)]
    ids = [b["id"] for b in bs]
    tiers = []
    for _ in range(draw(st.integers(1, 3))):
        strategy = draw(st.sampled_from(STRATEGY_NAMES))
        t: dict[str, Any] = {
            "strategy": strategy,
            "buyers": draw(st.lists(st.sampled_from(ids), min_size=1, max_size=n, unique=True)),
        }
        if strategy == "parallel_first" and draw(st.booleans()):
            t["pick"] = "priority"
        tiers.append(t)
    if draw(st.booleans()):
        tiers.append({"strategy": "queue", "queue": "sales"})
    data = {
        "publishers": [
            {
                "id": "pub",
                "min_price": draw(st.sampled_from(["0.00", "15.00"])),
                "blocked_buyers": draw(st.lists(st.sampled_from(ids), max_size=1)),
            }
        ],
        "buyers": bs,
        "campaigns": [
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"timeout_ms": 1000, "max_attempts": draw(st.integers(1, 4)), "tiers": tiers},
            }
        ],
        "queues": [{"id": "sales"}],
    }
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as exc:
        # A tier whose every buyer is blocked or under the floor is refused by the configuration
        # (it could never place a call): not a configuration the engine ever runs.
        assume("can never place a call" not in str(exc))
        raise


# ---------------------------------------------------------------- the oracle (written from ROUTING.md, not from the engine)


def oracle_ok(cfg: RoutingConfig, buyer: Buyer, call: CallFacts, now: datetime, load: BuyerLoad, price: Decimal | None) -> bool:
    pub = cfg.publisher("pub")
    if buyer.id in pub.blocked_buyers:
        return False
    if buyer.filters.states is not None and call.state not in buyer.filters.states:
        return False
    if buyer.schedule is not None and not is_open(buyer.schedule, now):
        return False
    caps, tz = buyer.caps, buyer_timezone(buyer)
    if caps.concurrency is not None and load.bridged >= caps.concurrency:
        return False
    for w in WINDOWS:
        cap = getattr(caps, w)
        if cap is not None and load.sales(w, now, tz) + load.bridged >= cap:
            return False
    if caps.daily_budget is not None:
        committed = load.spend_today(now, tz) + load.reserved_spend
        if committed + (price or Decimal(0)) > caps.daily_budget or (price is None and committed >= caps.daily_budget):
            return False
    return price is None or price >= pub.min_price


def check_caps(cfg: RoutingConfig, led: InMemoryLedger, now: datetime) -> None:
    for buyer in cfg.buyers:
        load, caps, tz = led.buyer_load(buyer.id), buyer.caps, buyer_timezone(buyer)
        if caps.concurrency is not None:
            assert load.bridged <= caps.concurrency, (buyer.id, "concurrency", load)
        for w in WINDOWS:
            cap = getattr(caps, w)
            if cap is not None:
                assert load.sales(w, now, tz) <= cap, (buyer.id, w, load)
        if caps.daily_budget is not None:
            assert load.spend_today(now, tz) <= caps.daily_budget, (buyer.id, "daily_budget", load)


def check_trace(step: engine.Step, terminal: bool) -> None:
    trace = step.progress.trace
    for e in trace.entries:
        assert e.eligible == (e.excluded_by == ""), e
    won = [e for e in trace.entries if e.winner]
    if isinstance(step.action, engine.RouteToBuyer):
        assert [(e.target_id, e.tier_index) for e in won] == [(step.action.buyer_id, step.action.tier_index)]
        assert won[0].eligible
        assert (trace.winning_tier, trace.winning_attempt) == (step.action.tier_index, step.action.attempt)
    elif terminal or isinstance(step.action, engine.PostToBuyer | engine.RequestBids):
        assert won == [] and trace.winning_tier == -1


# ---------------------------------------------------------------- the driver


@dataclass
class World:
    cfg: RoutingConfig
    led: InMemoryLedger
    rng: random.Random
    ends: list[tuple[datetime, str, str, int]]  # (when, call id, buyer id, connected seconds)

    def end_calls_until(self, now: datetime) -> None:
        while self.ends and self.ends[0][0] <= now:
            when, call_id, buyer_id, connected = heapq.heappop(self.ends)
            self.led.end(call_id, self.cfg.buyer(buyer_id), when, connected)
            check_caps(self.cfg, self.led, when)

    def answers(self, pinged: tuple[str, ...], now: datetime) -> list[engine.BidAnswer]:
        out = []
        for seq, buyer_id in enumerate(self.rng.sample(pinged, len(pinged))):
            buyer = self.cfg.buyer(buyer_id)
            roll = self.rng.random()
            if roll < 0.15:
                continue  # no answer before the deadline
            if roll < 0.25:
                out.append(engine.BidAnswer(buyer_id, "decline", reason="full", seq=seq))
                continue
            amount = buyer.bid.price if buyer.bid.type == "static" else Decimal(self.rng.randint(5, 70))
            self.led.bid(buyer_id, amount, now)
            out.append(engine.BidAnswer(buyer_id, "bid", amount, latency_ms=seq, available=self.rng.random() < 0.7, seq=seq))
        return out


def play_call(world: World, call: CallFacts, now: datetime) -> str:
    """Drive one call to its terminal outcome; returns it. Checks every decision on the way."""
    cfg, led, rng = world.cfg, world.led, world.rng
    campaign = cfg.campaign("camp")
    step = engine.start_routing(cfg, call, now, led)
    outcomes: list[str] = []
    for _ in range(100):
        action = step.action
        tier = (
            campaign.routing.tiers[step.progress.tier_index] if step.progress.tier_index < len(campaign.routing.tiers) else None
        )
        if isinstance(action, engine.RequestBids):
            check_trace(step, terminal=False)
            assert tier is not None and set(action.buyer_ids) <= set(tier.buyers)
            for b in action.buyer_ids:
                buyer = cfg.buyer(b)
                static = buyer.bid.price if buyer.bid.type == "static" else None
                assert oracle_ok(cfg, buyer, call, now, led.buyer_load(b), static), f"pinged ineligible {b}"
            shares = {b for b in action.buyer_ids if cfg.buyer(b).share_caller_number}
            assert set(action.caller_number_to) <= shares
            if action.strategy == "ping_post":
                assert action.caller_number_to == ()
            answers: dict[str, engine.BidAnswer] = {}
            concluded_at = action.deadline
            for a in world.answers(action.buyer_ids, now):
                answers[a.buyer_id] = a
                if engine.can_conclude_early(step.progress, action.buyer_ids, answers):
                    concluded_at = now + timedelta(milliseconds=10 * (len(answers)))
                    break
            step = engine.conclude_auction(cfg, step.progress, action.buyer_ids, answers, concluded_at, led)
            continue
        if isinstance(action, engine.PostToBuyer | engine.RouteToBuyer):
            check_trace(step, terminal=False)
            buyer = cfg.buyer(action.buyer_id)
            assert tier is not None and action.buyer_id in tier.buyers
            assert oracle_ok(cfg, buyer, call, now, led.buyer_load(buyer.id), action.price), f"offer to ineligible {buyer.id}"
            assert action.attempt <= campaign.routing.max_attempts
            if isinstance(action, engine.PostToBuyer):
                assert action.include_caller_number == buyer.share_caller_number
                step = engine.post_answered(cfg, step.progress, rng.random() < 0.6, now, led)
                continue
            led.route(call.call_id, action, now)
            check_caps(cfg, led, now)
            roll = rng.random()
            if roll < 0.55:
                connected = rng.choice([0, 20, 95, 300])
                heapq.heappush(world.ends, (now + timedelta(seconds=connected + 5), call.call_id, buyer.id, connected))
                outcomes.append("routed")
                break
            outcome = rng.choice(["reject", "no_answer", "busy", "failed", "buyer_hangup", "caller_hangup"])
            led.end(call.call_id, buyer, now, 0, answered=False)
            check_caps(cfg, led, now)
            step = engine.offer_failed(cfg, step.progress, outcome, now, led)
            continue
        check_trace(step, terminal=True)
        outcomes.append("queued" if isinstance(action, engine.HandToQueue) else f"rejected:{action.reason}")
        break
    assert len(outcomes) == 1, f"a call needs exactly one terminal outcome, got {outcomes}"
    assert step.progress.offers_made <= campaign.routing.max_attempts
    return outcomes[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1), n_calls=st.integers(1, 30))
def test_random_configs_and_call_sequences_keep_every_invariant(cfg: RoutingConfig, seed: int, n_calls: int) -> None:
    rng = random.Random(seed)
    world = World(cfg, InMemoryLedger(), rng, [])
    now = START
    seen: dict[str, str] = {}
    for i in range(n_calls):
        now += timedelta(minutes=rng.choice([0, 1, 7, 45, 180]))
        world.end_calls_until(now)
        call = CallFacts(
            call_id=f"c{i}",
            campaign_id="camp",
            publisher_id="pub",
            state=rng.choice(["CA", "TX", "NY"]),
            zip="90001",
            area_code="213",
        )
        seen[call.call_id] = play_call(world, call, now)
        check_caps(cfg, world.led, now)
    world.end_calls_until(now + timedelta(days=1))
    assert len(seen) == n_calls
    assert all(load.bridged == 0 for load in world.led.loads.values())  # every slot was released


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(1, 50), min_size=1, max_size=6), n=st.integers(1, 300))
def test_weight_share_is_within_one_call_after_every_call(weights: list[int], n: int) -> None:
    cfg = RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub"}],
            "buyers": [
                {"id": f"w{i}", "destination": f"+1800555{i:04d}", "bid": {"type": "static", "price": "20.00"}, "weight": w}
                for i, w in enumerate(weights)
            ],
            "campaigns": [
                {
                    "id": "camp",
                    "numbers": ["+18885550123"],
                    "publisher": "pub",
                    "routing": {"tiers": [{"strategy": "weight", "buyers": [f"w{i}" for i in range(len(weights))]}]},
                }
            ],
        }
    )
    led, counts, total = InMemoryLedger(), [0] * len(weights), sum(weights)
    for k in range(1, n + 1):
        step = engine.start_routing(cfg, CallFacts(f"c{k}", "camp", "pub"), START, led)
        assert isinstance(step.action, engine.RouteToBuyer)
        led.route(f"c{k}", step.action, START)
        counts[int(step.action.buyer_id[1:])] += 1
        assert all(abs(c - k * w / total) <= 1 for c, w in zip(counts, weights, strict=True)), (k, counts)
