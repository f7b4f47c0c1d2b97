"""The ten strategies, caps and re-routing exactly as ROUTING.md defines them (the seeds' examples)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from switchboard.core import engine, sharing
from switchboard.core.config import RoutingConfig
from switchboard.core.ledger import BuyerLoad, InMemoryLedger, call_ended, call_routed
from switchboard.v1 import events_pb2 as pb
from tests.unit.test_engine import NOW, call, make_config, static


def rtb(buyer_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": buyer_id, "bid": {"type": "rtb", "url": "http://127.0.0.1:9/ping"}, **extra}


def tier(strategy: str, buyers: list[str], **extra: Any) -> dict[str, Any]:
    return {"strategy": strategy, "buyers": buyers, **extra}


def cfg_with(buyers: list[dict[str, Any]], tiers: list[dict[str, Any]], max_attempts: int = 3, **kw: Any) -> RoutingConfig:
    cfg = make_config(buyers, tiers, **kw)
    data = cfg.model_dump(exclude_unset=True)
    data["campaigns"][0]["routing"]["max_attempts"] = max_attempts
    return RoutingConfig.model_validate(data)


def bid(buyer_id: str, amount: str | None, seq: int = 0, available: bool = True, outcome: str = "bid") -> engine.BidAnswer:
    return engine.BidAnswer(buyer_id, outcome, None if amount is None else Decimal(amount), "", 7, available, seq)


def winners(step: engine.Step) -> list[tuple[str, int]]:
    return [(e.target_id, e.tier_index) for e in step.progress.trace.entries if e.winner]


def routed_to(step: engine.Step) -> str:
    assert isinstance(step.action, engine.RouteToBuyer), step.action
    assert winners(step) == [(step.action.buyer_id, step.action.tier_index)]
    assert step.progress.trace.winning_tier == step.action.tier_index
    assert step.progress.trace.winning_attempt == step.action.attempt
    return step.action.buyer_id


# ---------------------------------------------------------------- price


def test_price_offers_the_highest_then_the_next_on_reject_and_no_answer() -> None:
    cfg = cfg_with([static("a", "30.00"), static("b", "45.00"), static("c", "40.00")], [tier("price", ["a", "b", "c"])])
    step = engine.start_routing(cfg, call(), NOW)
    answers = {b: bid(b, str(cfg.buyer(b).bid.price)) for b in ("a", "b", "c")}
    step = engine.conclude_auction(cfg, step.progress, ["a", "b", "c"], answers, NOW)
    assert routed_to(step) == "b" and step.action.attempt == 1
    step = engine.offer_failed(cfg, step.progress, "reject", NOW)
    assert routed_to(step) == "c" and step.action.attempt == 2 and step.action.price == Decimal("40.00")
    step = engine.offer_failed(cfg, step.progress, "no_answer", NOW)
    assert routed_to(step) == "a" and step.action.attempt == 3
    failed = [e for e in step.progress.trace.entries if "failed" in e.detail]
    assert [(e.target_id, e.detail) for e in failed] == [
        ("b", "offer 1 (route) failed: reject"),
        ("c", "offer 2 (route) failed: no_answer"),
    ]


# ---------------------------------------------------------------- priority


def test_priority_orders_by_priority_then_price_then_config_order_without_a_ping() -> None:
    cfg = cfg_with(
        [
            static("p2", "90.00", priority=2),
            static("p1_low", "20.00", priority=1),
            static("p1_high", "30.00", priority=1),
            static("p1_high_too", "30.00", priority=1),
        ],
        [tier("priority", ["p2", "p1_low", "p1_high", "p1_high_too"])],
        max_attempts=4,
    )
    step = engine.start_routing(cfg, call(), NOW)
    order = [routed_to(step)]
    for _ in range(3):
        step = engine.offer_failed(cfg, step.progress, "reject", NOW)
        order.append(routed_to(step))
    assert order == ["p1_high", "p1_high_too", "p1_low", "p2"]
    e = next(x for x in step.progress.trace.entries if x.target_id == "p2")
    assert e.bid_amount == "90.00" and e.bid_reason == "standing bid: static price"


def test_rtb_buyer_stands_on_its_last_placed_bid_or_is_not_offerable() -> None:
    cfg = cfg_with([rtb("r"), static("s", "20.00")], [tier("priority", ["r", "s"])])
    step = engine.start_routing(cfg, call(), NOW)
    assert routed_to(step) == "s"
    e = next(x for x in step.progress.trace.entries if x.target_id == "r")
    assert e.eligible and e.bid_outcome == pb.BID_OUTCOME_NO_BID and "no standing bid" in e.bid_reason
    led = InMemoryLedger()
    led.bid("r", Decimal("25.00"), NOW)
    step = engine.start_routing(cfg, call(), NOW, led)
    assert routed_to(step) == "r" and step.action.price == Decimal("25.00")


# ---------------------------------------------------------------- weight


def drive_weight(cfg: RoutingConfig, n: int, led: InMemoryLedger) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(n):
        t = NOW + timedelta(seconds=i)
        step = engine.start_routing(cfg, call(call_id=f"c{i}"), t, led)
        assert isinstance(step.action, engine.RouteToBuyer)
        led.route(f"c{i}", step.action, t)
        led.end(f"c{i}", cfg.buyer(step.action.buyer_id), t, 100)
        counts[step.action.buyer_id] = counts.get(step.action.buyer_id, 0) + 1
        total = sum(w.weight for w in cfg.buyers)
        for b in cfg.buyers:  # after every call, not only at the end
            assert abs(counts.get(b.id, 0) - (i + 1) * b.weight / total) <= 1, (i, counts)
    return counts


def test_weight_50_30_20_over_1000_calls_is_within_one_call_each() -> None:
    cfg = cfg_with(
        [static("b1", "20.00", weight=50), static("b2", "20.00", weight=30), static("b3", "20.00", weight=20)],
        [tier("weight", ["b1", "b2", "b3"])],
    )
    assert drive_weight(cfg, 1000, InMemoryLedger()) == {"b1": 500, "b2": 300, "b3": 200}


def test_weight_is_round_robin_not_random_and_re_picks_among_the_remaining_on_reject() -> None:
    cfg = cfg_with([static("a", "20.00", weight=2), static("b", "20.00", weight=1)], [tier("weight", ["a", "b"])])
    led = InMemoryLedger()
    step = engine.start_routing(cfg, call(call_id="x"), NOW, led)
    assert routed_to(step) == "a" and step.action.weight_pool == (("a", 2), ("b", 1))
    led.route("x", step.action, NOW)
    led.end("x", cfg.buyer("a"), NOW, 0)  # a rejects
    step = engine.offer_failed(cfg, step.progress, "reject", NOW, led)
    assert routed_to(step) == "b" and step.action.weight_pool == (("b", 1),)


# ---------------------------------------------------------------- even


def test_even_gives_the_call_to_the_least_recently_routed() -> None:
    cfg = cfg_with([static("a", "20.00"), static("b", "50.00"), static("c", "20.00")], [tier("even", ["a", "b", "c"])])
    led = InMemoryLedger()
    led.loads["a"] = BuyerLoad("a", last_routed=NOW - timedelta(minutes=5))
    led.loads["b"] = BuyerLoad("b", last_routed=NOW - timedelta(minutes=1))
    led.loads["c"] = BuyerLoad("c", last_routed=NOW - timedelta(minutes=10))
    assert routed_to(engine.start_routing(cfg, call(), NOW, led)) == "c"
    del led.loads["b"]  # never routed counts as oldest
    assert routed_to(engine.start_routing(cfg, call(), NOW, led)) == "b"
    # A fresh ledger: everyone never routed → config order, then it rotates.
    led = InMemoryLedger()
    seen = []
    for i in range(6):
        t = NOW + timedelta(seconds=i)
        step = engine.start_routing(cfg, call(call_id=f"e{i}"), t, led)
        seen.append(routed_to(step))
        led.route(f"e{i}", step.action, t)
        led.end(f"e{i}", cfg.buyer(seen[-1]), t, 100)
    assert seen == ["a", "b", "c", "a", "b", "c"]


# ---------------------------------------------------------------- parallel_highest / parallel_first


def test_parallel_highest_highest_bid_wins_ties_by_earlier_response() -> None:
    cfg = cfg_with([rtb("a"), rtb("b"), rtb("c")], [tier("parallel_highest", ["a", "b", "c"])])
    step = engine.start_routing(cfg, call(), NOW)
    assert isinstance(step.action, engine.RequestBids) and step.action.buyer_ids == ("a", "b", "c")
    assert not engine.can_conclude_early(step.progress, ["a", "b", "c"], {"c": bid("c", "50.00")})
    answers = {"c": bid("c", "50.00", seq=0), "a": bid("a", "50.00", seq=1), "b": bid("b", "49.00", seq=2)}
    assert routed_to(engine.conclude_auction(cfg, step.progress, ["a", "b", "c"], answers, NOW)) == "c"


def test_parallel_first_concludes_on_the_first_qualified_response_without_waiting() -> None:
    cfg = cfg_with([rtb("slow_rich"), rtb("fast"), rtb("cheap")], [tier("parallel_first", ["slow_rich", "fast", "cheap"])])
    step = engine.start_routing(cfg, call(), NOW)
    pinged = list(step.action.buyer_ids)
    # A bid below the floor (15.00) does not qualify; a decline does not either.
    assert not engine.can_conclude_early(step.progress, pinged, {"cheap": bid("cheap", "5.00")})
    assert not engine.can_conclude_early(step.progress, pinged, {"cheap": bid("cheap", None, outcome="decline")})
    arrived = {"cheap": bid("cheap", "5.00", seq=0), "fast": bid("fast", "20.00", seq=1)}
    assert engine.can_conclude_early(step.progress, pinged, arrived)
    # The router's dict form of answers works too.
    assert engine.can_conclude_early(step.progress, pinged, {"fast": {"outcome": "bid", "amount": "20.00"}})
    early = NOW + timedelta(milliseconds=40)
    done = engine.conclude_auction(cfg, step.progress, pinged, arrived, early)
    assert routed_to(done) == "fast" and done.action.price == Decimal("20.00")
    slow = next(e for e in done.progress.trace.entries if e.target_id == "slow_rich")
    assert slow.bid_outcome == pb.BID_OUTCOME_NO_BID and "not waited" in slow.bid_reason


def test_parallel_first_pick_priority_waits_and_ranks_by_priority_then_price() -> None:
    cfg = cfg_with(
        [rtb("p2", priority=2), rtb("p1a", priority=1), rtb("p1b", priority=1)],
        [tier("parallel_first", ["p2", "p1a", "p1b"], pick="priority")],
    )
    step = engine.start_routing(cfg, call(), NOW)
    pinged = list(step.action.buyer_ids)
    first = {"p2": bid("p2", "90.00", seq=0)}
    assert not engine.can_conclude_early(step.progress, pinged, first)
    answers = {**first, "p1a": bid("p1a", "20.00", seq=1), "p1b": bid("p1b", "25.00", seq=2)}
    assert engine.can_conclude_early(step.progress, pinged, answers)  # everyone answered
    assert routed_to(engine.conclude_auction(cfg, step.progress, pinged, answers, NOW)) == "p1b"


# ---------------------------------------------------------------- ping_post


def test_ping_post_never_pings_with_the_number_and_posts_it_only_to_sharing_buyers() -> None:
    cfg = cfg_with(
        [rtb("shares", share_caller_number=True), rtb("private")],
        [tier("ping_post", ["shares", "private"])],
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert isinstance(step.action, engine.RequestBids) and step.action.caller_number_to == ()
    assert "number" not in json.dumps(step.progress.call.to_dict())  # pings are built from CallFacts: no number field
    answers = {"shares": bid("shares", "40.00", seq=1), "private": bid("private", "45.00", seq=0)}
    step = engine.conclude_auction(cfg, step.progress, ["shares", "private"], answers, NOW)
    assert step.action == engine.PostToBuyer("private", cfg.buyer("private").destination, Decimal("45.00"), False, 0, 1)
    assert winners(step) == []  # a post is not a sale yet
    step = engine.post_answered(cfg, step.progress, False, NOW, reason="not interested")
    assert isinstance(step.action, engine.PostToBuyer)
    assert (step.action.buyer_id, step.action.include_caller_number, step.action.attempt) == ("shares", True, 2)
    step = engine.post_answered(cfg, step.progress, True, NOW)
    assert routed_to(step) == "shares" and step.action.attempt == 2 and step.action.price == Decimal("40.00")


def test_other_ping_strategies_may_send_the_number_only_to_sharing_buyers() -> None:
    cfg = cfg_with([rtb("shares", share_caller_number=True), rtb("private")], [tier("parallel_highest", ["shares", "private"])])
    step = engine.start_routing(cfg, call(), NOW)
    assert step.action.caller_number_to == ("shares",)


# ---------------------------------------------------------------- availability


def test_availability_lower_bid_with_free_reps_beats_higher_bid_without() -> None:
    cfg = cfg_with([rtb("busy_rich"), rtb("free_cheap")], [tier("availability", ["busy_rich", "free_cheap"])])
    step = engine.start_routing(cfg, call(), NOW)
    answers = {"busy_rich": bid("busy_rich", "60.00", available=False), "free_cheap": bid("free_cheap", "25.00", available=True)}
    done = engine.conclude_auction(cfg, step.progress, ["busy_rich", "free_cheap"], answers, NOW)
    assert routed_to(done) == "free_cheap" and done.action.price == Decimal("25.00")
    rich = next(e for e in done.progress.trace.entries if e.target_id == "busy_rich")
    assert rich.bid_amount == "60.00" and rich.bid_reason == "not available now"
    # Nobody available: the tier yields no taker.
    answers = {b: bid(b, "60.00", available=False) for b in ("busy_rich", "free_cheap")}
    assert (
        engine.conclude_auction(cfg, engine.start_routing(cfg, call(), NOW).progress, list(answers), answers, NOW).action.reason
        == "no_bid"
    )


# ---------------------------------------------------------------- direct


def test_direct_offers_the_list_in_order_at_the_static_price_with_partial_data() -> None:
    cfg = cfg_with(
        [static("x", "10.00"), static("y", "50.00"), static("z", "30.00")], [tier("direct", ["z", "x", "y"])], min_price="5.00"
    )
    step = engine.start_routing(cfg, call(), NOW)
    seen = [(routed_to(step), step.action.price, step.action.strategy)]
    for _ in range(2):
        step = engine.offer_failed(cfg, step.progress, "reject", NOW)
        seen.append((routed_to(step), step.action.price, step.action.strategy))
    assert seen == [("z", Decimal("30.00"), "direct"), ("x", Decimal("10.00"), "direct"), ("y", Decimal("50.00"), "direct")]
    # partial application data: whatever share_caller_number says, the offer shows no number nor earlier calls
    shown = sharing.for_buyer(cfg.buyer("z").model_copy(update={"share_caller_number": True}), "direct", sharing.Outlet.OFFER)
    assert (shown.number, shown.history) == (False, sharing.History.NONE)


def test_direct_after_a_reject_offers_the_next_buyer_by_previously_placed_bid() -> None:
    cfg = cfg_with(
        [static("x", "10.00"), static("y", "50.00"), static("z", "30.00")], [tier("direct", ["z", "x", "y"])], min_price="5.00"
    )
    led = InMemoryLedger()
    led.bid("y", Decimal("52.00"), NOW - timedelta(hours=1))
    led.bid("x", Decimal("11.00"), NOW - timedelta(hours=1))
    step = engine.start_routing(cfg, call(), NOW, led)
    assert routed_to(step) == "z"  # the list's first
    step = engine.offer_failed(cfg, step.progress, "reject", NOW, led)
    assert routed_to(step) == "y" and step.action.price == Decimal("50.00")  # at its static price


# ---------------------------------------------------------------- caps


def loaded(buyer_id: str, open_calls: int = 0, price: str = "10.00") -> BuyerLoad:
    return BuyerLoad(buyer_id, open_calls={f"o{i}": Decimal(price) for i in range(open_calls)})


def sold(load: BuyerLoad, n: int, at: datetime, tz: str, price: str = "10.00") -> BuyerLoad:
    for i in range(n):
        cid = f"s{at.isoformat()}-{i}"
        load = call_ended(call_routed(load, cid, Decimal(price), at), cid, at, 100, 90, tz)
    return load


def first_offer(cfg: RoutingConfig, now: datetime, led: InMemoryLedger) -> engine.Step:
    return engine.start_routing(cfg, call(), now, led)


def cap_entry(step: engine.Step, buyer_id: str) -> pb.TraceEntry:
    return next(e for e in step.progress.trace.entries if e.target_id == buyer_id)


def test_concurrency_cap_counts_calls_bridged_now() -> None:
    cfg = cfg_with([static("a", "40.00", caps={"concurrency": 2}), static("b", "20.00")], [tier("priority", ["a", "b"])])
    led = InMemoryLedger()
    led.loads["a"] = loaded("a", open_calls=1)
    assert routed_to(first_offer(cfg, NOW, led)) == "a"
    led.loads["a"] = loaded("a", open_calls=2)
    step = first_offer(cfg, NOW, led)
    assert routed_to(step) == "b"
    e = cap_entry(step, "a")
    assert (e.eligible, e.excluded_by) == (False, "cap:concurrency") and "2 call(s) bridged now" in e.detail


@pytest.mark.parametrize("window", ["hourly", "daily", "monthly"])
def test_sales_caps_count_billable_sales_in_the_buyer_timezone(window: str) -> None:
    tz = "America/New_York"
    sched = {"timezone": tz, "hours": {"mon-sun": "00:00-24:00"}}
    cfg = cfg_with([static("a", "40.00", schedule=sched, caps={window: 3}), static("b", "20.00")], [tier("priority", ["a", "b"])])
    led = InMemoryLedger()
    led.loads["a"] = sold(BuyerLoad("a"), 2, NOW, tz)
    assert routed_to(first_offer(cfg, NOW, led)) == "a"
    # A call in progress may become the third sale: it holds the last slot.
    led.loads["a"] = call_routed(led.loads["a"], "live", Decimal("40.00"), NOW)
    step = first_offer(cfg, NOW, led)
    assert routed_to(step) == "b" and cap_entry(step, "a").excluded_by == f"cap:{window}"
    # It ended short of billable_after_s: the slot is free again.
    led.loads["a"] = call_ended(led.loads["a"], "live", NOW, 30, 90, tz)
    assert routed_to(first_offer(cfg, NOW, led)) == "a"
    led.loads["a"] = sold(led.loads["a"], 1, NOW, tz)
    assert cap_entry(first_offer(cfg, NOW, led), "a").excluded_by == f"cap:{window}"


def test_daily_cap_rolls_over_at_midnight_in_the_buyer_timezone_not_utc() -> None:
    tz = "America/Los_Angeles"
    cfg = cfg_with(
        [
            static("a", "40.00", schedule={"timezone": tz, "hours": {"mon-sun": "00:00-24:00"}}, caps={"daily": 1}),
            static("b", "20.00"),
        ],
        [tier("priority", ["a", "b"])],
    )
    led = InMemoryLedger()
    evening = datetime(2025, 1, 16, 7, 0, tzinfo=UTC)  # Jan 15 23:00 in LA, already Jan 16 in UTC
    led.loads["a"] = sold(BuyerLoad("a"), 1, evening, tz)
    assert cap_entry(first_offer(cfg, evening + timedelta(minutes=59), led), "a").excluded_by == "cap:daily"  # 23:59 LA
    assert routed_to(first_offer(cfg, evening + timedelta(hours=1), led)) == "a"  # 00:00 LA: a new day


def test_hourly_cap_across_dst_fall_back_treats_the_repeated_hour_as_two_windows() -> None:
    tz = "America/Los_Angeles"
    cfg = cfg_with(
        [
            static("a", "40.00", schedule={"timezone": tz, "hours": {"mon-sun": "00:00-24:00"}}, caps={"hourly": 1}),
            static("b", "20.00"),
        ],
        [tier("priority", ["a", "b"])],
    )
    led = InMemoryLedger()
    first_0130 = datetime(2025, 11, 2, 8, 30, tzinfo=UTC)  # 01:30 PDT
    led.loads["a"] = sold(BuyerLoad("a"), 1, first_0130, tz)
    assert cap_entry(first_offer(cfg, first_0130 + timedelta(minutes=20), led), "a").excluded_by == "cap:hourly"
    assert routed_to(first_offer(cfg, first_0130 + timedelta(hours=1), led)) == "a"  # 01:30 PST: the second 01:00 hour


def test_daily_budget_counts_spend_calls_in_progress_and_this_price() -> None:
    tz = "UTC"
    cfg = cfg_with([static("a", "40.00", caps={"daily_budget": "100.00"}), static("b", "20.00")], [tier("priority", ["a", "b"])])
    led = InMemoryLedger()
    led.loads["a"] = sold(BuyerLoad("a"), 1, NOW, tz, price="40.00")  # 40 spent
    led.loads["a"] = call_routed(led.loads["a"], "live", Decimal("20.00"), NOW)  # 20 more may be spent
    assert routed_to(first_offer(cfg, NOW, led)) == "a"  # 40 + 20 + 40 = 100: at the budget is fine
    led.loads["a"] = call_routed(led.loads["a"], "live2", Decimal("0.01"), NOW)
    step = first_offer(cfg, NOW, led)
    e = cap_entry(step, "a")
    assert routed_to(step) == "b" and e.excluded_by == "cap:daily_budget" and "100.00" in e.detail


def test_rtb_bid_is_checked_against_the_budget_at_offer_time() -> None:
    cfg = cfg_with([rtb("r", caps={"daily_budget": "50.00"}), rtb("s")], [tier("price", ["r", "s"])])
    led = InMemoryLedger()
    led.loads["r"] = sold(BuyerLoad("r"), 1, NOW, "UTC", price="20.00")
    step = engine.start_routing(cfg, call(), NOW, led)
    assert step.action.buyer_ids == ("r", "s")  # 30.00 of budget left: may still bid low
    answers = {"r": bid("r", "35.00"), "s": bid("s", "25.00")}
    done = engine.conclude_auction(cfg, step.progress, ["r", "s"], answers, NOW, led)
    assert routed_to(done) == "s"
    assert [e.excluded_by for e in done.progress.trace.entries if e.target_id == "r"] == ["", "cap:daily_budget"]


def test_exclusion_order_is_block_filters_schedule_caps_floor() -> None:
    closed = {"timezone": "UTC", "hours": {"sat": "10:00-11:00"}}
    cfg = cfg_with(
        [
            static("all", "1.00", filters={"states": ["TX"]}, schedule=closed, caps={"concurrency": 0}),
            static("sched_cap_floor", "1.00", schedule=closed, caps={"concurrency": 0}),
            static("cap_floor", "1.00", caps={"concurrency": 0}),
            static("floor", "1.00"),
            static("open", "50.00"),  # one buyer that can take the call (a tier that never could is refused)
        ],
        [tier("price", ["all", "sched_cap_floor", "cap_floor", "floor", "open"])],
    )
    step = engine.start_routing(cfg, call(), NOW, InMemoryLedger())
    assert {e.target_id: e.excluded_by for e in step.progress.trace.entries} == {
        "all": "filter:states",
        "sched_cap_floor": "schedule",
        "cap_floor": "cap:concurrency",
        "floor": "floor",
        "open": "",
    }


# ---------------------------------------------------------------- re-routing and rejection reasons


def test_rerouting_walks_the_tier_then_the_next_tier_up_to_max_attempts() -> None:
    cfg = cfg_with(
        [static("a", "40.00"), static("b", "30.00"), static("c", "20.00"), static("d", "19.00")],
        [tier("priority", ["a", "b"]), tier("even", ["c", "d"])],
        max_attempts=3,
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert routed_to(step) == "a"
    step = engine.offer_failed(cfg, step.progress, "busy", NOW)
    assert routed_to(step) == "b"
    step = engine.offer_failed(cfg, step.progress, "buyer_hangup", NOW)
    assert routed_to(step) == "c" and step.action.tier_index == 1 and step.action.attempt == 3
    step = engine.offer_failed(cfg, step.progress, "failed", NOW)
    assert isinstance(step.action, engine.RejectCall) and step.action.reason == "max_attempts"
    assert winners(step) == [] and step.progress.trace.winning_tier == -1


def test_all_offers_failing_before_max_attempts_rejects_all_declined_or_falls_to_queue() -> None:
    cfg = cfg_with([static("a", "40.00")], [tier("priority", ["a"])], max_attempts=5)
    step = engine.offer_failed(cfg, engine.start_routing(cfg, call(), NOW).progress, "no_answer", NOW)
    assert step.action.reason == "all_declined"
    cfg = cfg_with([static("a", "40.00")], [tier("priority", ["a"]), {"strategy": "queue", "queue": "sales"}])
    step = engine.offer_failed(cfg, engine.start_routing(cfg, call(), NOW).progress, "reject", NOW)
    assert step.action == engine.HandToQueue("sales", 1, 2) and winners(step) == []


def test_caller_hangup_ends_the_call_without_rerouting() -> None:
    cfg = cfg_with([static("a", "40.00"), static("b", "30.00")], [tier("priority", ["a", "b"])])
    step = engine.offer_failed(cfg, engine.start_routing(cfg, call(), NOW).progress, "caller_hangup", NOW)
    assert isinstance(step.action, engine.RejectCall) and step.action.reason == "abandoned"
    assert winners(step) == []
    with pytest.raises(ValueError):
        engine.offer_failed(cfg, step.progress, "reject", NOW)  # nothing in flight any more


def test_offer_time_recheck_skips_a_buyer_that_filled_up_since_the_ping() -> None:
    cfg = cfg_with([static("a", "40.00", caps={"concurrency": 1}), static("b", "30.00")], [tier("price", ["a", "b"])])
    led = InMemoryLedger()
    step = engine.start_routing(cfg, call(), NOW, led)
    led.loads["a"] = loaded("a", open_calls=1)  # another call took a's only line meanwhile
    answers = {"a": bid("a", "40.00"), "b": bid("b", "30.00")}
    done = engine.conclude_auction(cfg, step.progress, ["a", "b"], answers, NOW, led)
    assert routed_to(done) == "b"
    assert [e.excluded_by for e in done.progress.trace.entries if e.target_id == "a"] == ["", "cap:concurrency"]


def test_progress_mid_offer_round_trips_through_json() -> None:
    cfg = cfg_with([rtb("a"), rtb("b")], [tier("ping_post", ["a", "b"])])
    step = engine.start_routing(cfg, call(), NOW)
    restored = engine.Progress.from_dict(json.loads(json.dumps(step.progress.to_dict())))
    step = engine.conclude_auction(cfg, restored, ["a", "b"], {"a": bid("a", "30.00"), "b": bid("b", "20.00")}, NOW)
    restored = engine.Progress.from_dict(json.loads(json.dumps(step.progress.to_dict())))
    assert restored.candidates == step.progress.candidates and restored.offer == step.progress.offer
    step = engine.post_answered(cfg, restored, False, NOW)
    assert step.action.buyer_id == "b"
