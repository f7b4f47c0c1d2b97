"""The pure routing core: eligibility rules, schedules (DST), price ranking, tier fall-through, trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from switchboard.core import engine
from switchboard.core.config import RoutingConfig, Schedule
from switchboard.core.eligibility import CallFacts, condition_failure, is_open
from switchboard.v1 import events_pb2 as pb

NOW = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)  # a Wednesday


def make_config(
    buyers: list[dict[str, Any]], tiers: list[dict[str, Any]], min_price: str = "15.00", blocked: list[str] | None = None
) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub", "min_price": min_price, "blocked_buyers": blocked or []}],
            "buyers": [{"destination": f"+1800555{i:04d}", **b} for i, b in enumerate(buyers)],
            "campaigns": [
                {"id": "camp", "numbers": ["+18885550123"], "publisher": "pub", "routing": {"timeout_ms": 1500, "tiers": tiers}}
            ],
            "queues": [{"id": "sales"}],
        }
    )


def static(buyer_id: str, price: str, **extra: Any) -> dict[str, Any]:
    return {"id": buyer_id, "bid": {"type": "static", "price": price}, **extra}


def call(**kw: Any) -> CallFacts:
    base: dict[str, Any] = {
        "call_id": "c1",
        "campaign_id": "camp",
        "publisher_id": "pub",
        "state": "CA",
        "zip": "90001",
        "area_code": "213",
    }
    return CallFacts(**{**base, **kw})


def bids_for(action: engine.RequestBids, config: RoutingConfig) -> dict[str, engine.BidAnswer]:
    """What the bidder answers for static buyers."""
    return {b: engine.BidAnswer(b, "bid", config.buyer(b).bid.price) for b in action.buyer_ids}


def entry(step: engine.Step, buyer_id: str, tier: int = 0) -> pb.TraceEntry:
    return next(e for e in step.progress.trace.entries if e.target_id == buyer_id and e.tier_index == tier)


# ---------------------------------------------------------------- price tier


def test_price_routes_to_highest_static_bid_and_traces_everyone() -> None:
    cfg = make_config(
        [static("a", "30.00"), static("b", "45.00"), static("c", "40.00")], [{"strategy": "price", "buyers": ["a", "b", "c"]}]
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert isinstance(step.action, engine.RequestBids)
    assert step.action.buyer_ids == ("a", "b", "c")
    assert step.action.deadline == NOW + timedelta(milliseconds=1500)
    done = engine.conclude_auction(cfg, step.progress, step.action.buyer_ids, bids_for(step.action, cfg), NOW)
    assert isinstance(done.action, engine.RouteToBuyer)
    assert (done.action.buyer_id, done.action.price, done.action.strategy) == ("b", Decimal("45.00"), "price")
    assert done.action.destination == cfg.buyer("b").destination
    assert entry(done, "b").winner and entry(done, "b").bid_amount == "45.00"
    assert not entry(done, "a").winner and entry(done, "a").bid_outcome == pb.BID_OUTCOME_BID
    assert done.progress.trace.winning_tier == 0


def test_price_ties_go_by_config_order() -> None:
    cfg = make_config(
        [static("a", "30.00"), static("b", "40.00"), static("c", "40.00")], [{"strategy": "price", "buyers": ["c", "b", "a"]}]
    )
    step = engine.start_routing(cfg, call(), NOW)
    done = engine.conclude_auction(cfg, step.progress, step.action.buyer_ids, bids_for(step.action, cfg), NOW)
    assert done.action.buyer_id == "c"


def test_rtb_bid_below_floor_is_excluded_and_next_best_wins() -> None:
    cfg = make_config(
        [static("s", "20.00"), {"id": "r", "bid": {"type": "rtb", "url": "http://127.0.0.1:9/ping"}}],
        [{"strategy": "price", "buyers": ["s", "r"]}],
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert step.action.buyer_ids == ("s", "r")  # RTB floor is checked on its bid
    answers = {"s": engine.BidAnswer("s", "bid", Decimal("20.00")), "r": engine.BidAnswer("r", "bid", Decimal("14.99"))}
    done = engine.conclude_auction(cfg, step.progress, ["s", "r"], answers, NOW)
    assert done.action.buyer_id == "s"
    assert entry(done, "r").excluded_by == "floor" and not entry(done, "r").eligible


def test_missing_answer_counts_as_timeout_no_bid() -> None:
    cfg = make_config([static("a", "30.00"), static("b", "45.00")], [{"strategy": "price", "buyers": ["a", "b"]}])
    step = engine.start_routing(cfg, call(), NOW)
    assert not engine.auction_complete(["a", "b"], {"a": 1})
    done = engine.conclude_auction(cfg, step.progress, ["a", "b"], {"a": engine.BidAnswer("a", "bid", Decimal("30.00"))}, NOW)
    assert done.action.buyer_id == "a"
    assert entry(done, "b").bid_outcome == pb.BID_OUTCOME_NO_BID and entry(done, "b").bid_reason == "timeout"


# ---------------------------------------------------------------- eligibility rules


@pytest.mark.parametrize(
    ("buyer_extra", "facts", "rule"),
    [
        ({"filters": {"states": ["TX"]}}, {}, "filter:states"),
        ({"filters": {"states": ["ca"]}}, {}, None),
        ({"filters": {"zip_prefixes": ["921"]}}, {}, "filter:zip_prefixes"),
        ({"filters": {"zip_prefixes": ["900"]}}, {}, None),
        ({"filters": {"zip_prefixes": ["900"]}}, {"zip": ""}, "filter:zip_prefixes"),
        ({"filters": {"area_codes": ["310"]}}, {}, "filter:area_codes"),
        ({"filters": {"area_codes": ["213"]}}, {}, None),
        ({"filters": {"answers": {"homeowner": {"eq": "yes"}}}}, {"answers": {"homeowner": "no"}}, "filter:answers.homeowner"),
        ({"filters": {"answers": {"homeowner": {"eq": "yes"}}}}, {"answers": {"homeowner": "Yes"}}, None),
        ({"filters": {"answers": {"homeowner": {"eq": "yes"}}}}, {}, "filter:answers.homeowner"),
    ],
)
def test_filters(buyer_extra: dict, facts: dict, rule: str | None) -> None:
    cfg = make_config([static("a", "30.00", **buyer_extra)], [{"strategy": "price", "buyers": ["a"]}])
    step = engine.start_routing(cfg, call(**facts), NOW)
    e = entry(step, "a")
    if rule is None:
        assert e.eligible and isinstance(step.action, engine.RequestBids)
    else:
        assert not e.eligible and e.excluded_by == rule and e.detail
        assert isinstance(step.action, engine.RejectCall) and step.action.reason == "no_eligible_buyer"


@pytest.mark.parametrize(
    ("op", "arg", "answers", "ok"),
    [
        ("eq", "yes", {"k": "yes"}, True),
        ("eq", True, {"k": "yes"}, True),  # YAML reads unquoted yes as a bool
        ("eq", False, {"k": "yes"}, False),
        ("eq", 650, {"k": "650.0"}, True),  # numeric when both are numbers
        ("ne", "yes", {"k": "no"}, True),
        ("ne", "yes", {"k": "YES"}, False),
        ("in", ["en", "es"], {"k": "es"}, True),
        ("in", ["en", "es"], {"k": "fr"}, False),
        ("not_in", ["en", "es"], {"k": "fr"}, True),
        ("not_in", ["en", "es"], {"k": "en"}, False),
        ("gte", 650, {"k": "650"}, True),
        ("gte", 650, {"k": "649"}, False),
        ("lte", 650, {"k": "651"}, False),
        ("gt", 650, {"k": "650"}, False),
        ("gt", 650, {"k": "700"}, True),
        ("lt", 650, {"k": "90"}, True),  # numeric, not string, order ("90" > "650" as text)
        ("gte", 650, {"k": "abc"}, False),
        ("between", [100, 500], {"k": "100"}, True),
        ("between", [100, 500], {"k": "500"}, True),
        ("between", [100, 500], {"k": "500.01"}, False),
        ("exists", True, {"k": "x"}, True),
        ("exists", True, {}, False),
        ("exists", False, {}, True),
        ("exists", False, {"k": "x"}, False),
        ("eq", "yes", {}, False),
        ("ne", "yes", {}, False),  # a missing answer fails every condition but exists: false
    ],
)
def test_answer_conditions(op: str, arg: Any, answers: dict, ok: bool) -> None:
    assert (condition_failure("k", op, arg, answers) is None) is ok


def test_blocked_by_publisher_comes_first() -> None:
    cfg = make_config(
        [static("a", "30.00", filters={"states": ["TX"]}), static("b", "20.00")],
        [{"strategy": "price", "buyers": ["a", "b"]}],
        blocked=["a"],
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert entry(step, "a").excluded_by == "blocked_by_publisher"
    assert step.action.buyer_ids == ("b",)


def test_static_price_below_floor_is_not_pinged() -> None:
    cfg = make_config(
        [static("a", "10.00"), static("b", "15.00")], [{"strategy": "price", "buyers": ["a", "b"]}], min_price="15.00"
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert entry(step, "a").excluded_by == "floor"
    assert step.action.buyer_ids == ("b",)  # at the floor is fine


# ---------------------------------------------------------------- schedules


def sched(hours: dict[str, str], tz: str = "America/Los_Angeles") -> Schedule:
    return Schedule(timezone=tz, hours=hours)


def test_schedule_day_ranges_and_absent_days() -> None:
    s = sched({"mon-fri": "08:00-20:00", "sat": "09:00-13:00"})
    # Wednesday 2025-01-15 in LA (PST = UTC-8)
    assert is_open(s, datetime(2025, 1, 15, 16, 0, tzinfo=UTC))  # 08:00 local: start included
    assert not is_open(s, datetime(2025, 1, 15, 15, 59, tzinfo=UTC))  # 07:59
    assert not is_open(s, datetime(2025, 1, 16, 4, 0, tzinfo=UTC))  # 20:00 local: end excluded
    assert is_open(s, datetime(2025, 1, 18, 20, 0, tzinfo=UTC))  # sat 12:00
    assert not is_open(s, datetime(2025, 1, 18, 21, 0, tzinfo=UTC))  # sat 13:00
    assert not is_open(s, datetime(2025, 1, 19, 20, 0, tzinfo=UTC))  # sunday: absent → closed


def test_schedule_wrapping_day_range_and_midnight_end() -> None:
    s = sched({"fri-mon": "00:00-24:00"}, tz="UTC")
    assert is_open(s, datetime(2025, 1, 19, 23, 59, tzinfo=UTC))  # sunday
    assert not is_open(s, datetime(2025, 1, 15, 12, 0, tzinfo=UTC))  # wednesday


def test_schedule_overnight_range_spills_into_next_day() -> None:
    s = sched({"fri": "22:00-02:00"}, tz="UTC")
    assert is_open(s, datetime(2025, 1, 17, 23, 0, tzinfo=UTC))  # fri 23:00
    assert is_open(s, datetime(2025, 1, 18, 1, 59, tzinfo=UTC))  # sat 01:59 (friday's shift)
    assert not is_open(s, datetime(2025, 1, 18, 2, 0, tzinfo=UTC))
    assert not is_open(s, datetime(2025, 1, 17, 1, 0, tzinfo=UTC))  # fri 01:00: thursday has no shift
    assert not is_open(s, datetime(2025, 1, 18, 23, 0, tzinfo=UTC))  # sat 23:00


def test_schedule_is_dst_correct() -> None:
    s = sched({"mon-sun": "08:00-20:00"})
    # 15:30 UTC is 07:30 PST in winter (closed) but 08:30 PDT in summer (open).
    assert not is_open(s, datetime(2025, 3, 8, 15, 30, tzinfo=UTC))  # Sat before the switch
    assert is_open(s, datetime(2025, 3, 10, 15, 30, tzinfo=UTC))  # Mon after the switch (2025-03-09)
    # The day of the switch itself: 02:00 → 03:00 local; 08:00 PDT is 15:00 UTC.
    assert is_open(s, datetime(2025, 3, 9, 15, 0, tzinfo=UTC))
    assert not is_open(s, datetime(2025, 3, 9, 14, 59, tzinfo=UTC))
    # Back to standard time on 2025-11-02: 08:00 PST is 16:00 UTC.
    assert not is_open(s, datetime(2025, 11, 2, 15, 30, tzinfo=UTC))
    assert is_open(s, datetime(2025, 11, 2, 16, 0, tzinfo=UTC))


def test_schedule_needs_aware_time() -> None:
    with pytest.raises(ValueError):
        is_open(sched({"mon": "08:00-20:00"}), datetime(2025, 1, 13, 12, 0))


def test_closed_buyer_is_traced_and_all_closed_rejects_outside_hours() -> None:
    cfg = make_config(
        [static("a", "30.00", schedule={"timezone": "America/New_York", "hours": {"sat-sun": "10:00-12:00"}})],
        [{"strategy": "price", "buyers": ["a"]}],
    )
    step = engine.start_routing(cfg, call(), NOW)  # wednesday
    assert entry(step, "a").excluded_by == "schedule" and "America/New_York" in entry(step, "a").detail
    assert isinstance(step.action, engine.RejectCall) and step.action.reason == "outside_hours"
    assert step.action.announcement


# ---------------------------------------------------------------- tiers


def test_tier_with_nobody_eligible_falls_through_to_next_price_tier() -> None:
    cfg = make_config(
        [static("a", "30.00", filters={"states": ["TX"]}), static("b", "20.00")],
        [{"strategy": "price", "buyers": ["a"]}, {"strategy": "price", "buyers": ["b"]}],
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert isinstance(step.action, engine.RequestBids) and step.action.tier_index == 1 and step.action.buyer_ids == ("b",)
    done = engine.conclude_auction(cfg, step.progress, ["b"], bids_for(step.action, cfg), NOW)
    assert done.action.buyer_id == "b" and done.action.tier_index == 1
    assert done.progress.trace.winning_tier == 1
    assert entry(done, "a", tier=0).excluded_by == "filter:states"
    assert any("tier 0 price: no eligible buyer" in n for n in done.progress.trace.notes)


def test_tier_without_bids_falls_through_with_a_new_deadline() -> None:
    cfg = make_config(
        [static("a", "30.00"), static("b", "20.00")],
        [{"strategy": "price", "buyers": ["a"]}, {"strategy": "price", "buyers": ["b"]}],
    )
    step = engine.start_routing(cfg, call(), NOW)
    later = NOW + timedelta(seconds=2)
    step2 = engine.conclude_auction(cfg, step.progress, ["a"], {}, later)
    assert isinstance(step2.action, engine.RequestBids) and step2.action.tier_index == 1
    assert step2.action.deadline == later + timedelta(milliseconds=1500)


def test_queue_tier_hands_off() -> None:
    cfg = make_config(
        [static("a", "30.00", filters={"states": ["TX"]})],
        [{"strategy": "price", "buyers": ["a"]}, {"strategy": "queue", "queue": "sales"}],
    )
    step = engine.start_routing(cfg, call(), NOW)
    assert step.action == engine.HandToQueue("sales", 1, 1)
    assert step.progress.trace.winning_tier == -1 and entry(step, "a").excluded_by == "filter:states"


def test_no_bids_anywhere_rejects_no_bid_and_all_declines_rejects_all_declined() -> None:
    cfg = make_config([static("a", "30.00"), static("b", "20.00")], [{"strategy": "price", "buyers": ["a", "b"]}])
    step = engine.start_routing(cfg, call(), NOW)
    done = engine.conclude_auction(cfg, step.progress, ["a", "b"], {}, NOW)
    assert isinstance(done.action, engine.RejectCall) and done.action.reason == "no_bid"
    step = engine.start_routing(cfg, call(), NOW)
    declines = {b: engine.BidAnswer(b, "decline", reason="full") for b in ("a", "b")}
    done = engine.conclude_auction(cfg, step.progress, ["a", "b"], declines, NOW)
    assert done.action.reason == "all_declined"
    assert entry(done, "a").bid_outcome == pb.BID_OUTCOME_DECLINE and entry(done, "a").bid_reason == "full"


def test_unsupported_strategy_rejects_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Config validation refuses unknown names; a strategy missing from the registry still rejects cleanly.
    monkeypatch.delitem(engine.STRATEGIES, "weight")
    cfg = make_config([static("a", "30.00")], [{"strategy": "weight", "buyers": ["a"]}])
    step = engine.start_routing(cfg, call(), NOW)
    assert isinstance(step.action, engine.RejectCall) and step.action.reason == "unsupported_strategy"
    assert "weight" in step.action.detail and "not supported" in step.action.detail


def test_unknown_campaign_and_publisher_reject() -> None:
    cfg = make_config([static("a", "30.00")], [{"strategy": "price", "buyers": ["a"]}])
    assert engine.start_routing(cfg, call(campaign_id="nope"), NOW).action.reason == "unknown_campaign"
    assert engine.start_routing(cfg, call(publisher_id="nope"), NOW).action.reason == "unknown_publisher"
    # An event without a publisher uses the campaign's.
    assert isinstance(engine.start_routing(cfg, call(publisher_id=""), NOW).action, engine.RequestBids)


def test_progress_round_trips_through_json() -> None:
    import json

    cfg = make_config([static("a", "30.00"), static("b", "5.00")], [{"strategy": "price", "buyers": ["a", "b"]}])
    step = engine.start_routing(cfg, call(answers={"x": "1"}), NOW)
    restored = engine.Progress.from_dict(json.loads(json.dumps(step.progress.to_dict())))
    assert restored.call == step.progress.call
    assert restored.trace == step.progress.trace
    done = engine.conclude_auction(cfg, restored, ["a"], bids_for(step.action, cfg), NOW)
    assert done.action.buyer_id == "a"


def test_bid_answer_from_pb_treats_malformed_amount_as_no_bid() -> None:
    ok = engine.BidAnswer.from_pb(pb.BidReceived(buyer_id="a", outcome=pb.BID_OUTCOME_BID, amount="37.50", latency_ms=3))
    assert (ok.outcome, ok.amount, ok.latency_ms) == ("bid", Decimal("37.50"), 3)
    bad = engine.BidAnswer.from_pb(pb.BidReceived(buyer_id="a", outcome=pb.BID_OUTCOME_BID, amount="lots"))
    assert bad.outcome == "no_bid" and "malformed" in bad.reason
    assert engine.BidAnswer.from_pb(pb.BidReceived(buyer_id="a", outcome=pb.BID_OUTCOME_DECLINE)).outcome == "decline"


def test_a_caller_who_leaves_during_the_auction_is_rejected_abandoned_and_keeps_the_trace() -> None:
    cfg = make_config(
        [static("s", "20.00"), {"id": "r", "bid": {"type": "rtb", "url": "http://127.0.0.1:9/ping"}}],
        [{"strategy": "price", "buyers": ["s", "r"]}],
    )
    pinging = engine.start_routing(cfg, call(), NOW)
    assert isinstance(pinging.action, engine.RequestBids)
    left = engine.caller_left(pinging.progress, "while routing (auction)")
    assert left.action == engine.RejectCall("abandoned", "the caller hung up while routing (auction)", "")
    assert left.progress.done and left.progress.offer is None and left.progress.candidates == []
    assert left.progress.trace.winning_tier == -1 and {e.target_id for e in left.progress.trace.entries} == {"s", "r"}
    assert left.progress.trace.notes[-1] == "rejected: abandoned: the caller hung up while routing (auction)"
    # Before routing started: nothing considered, still one terminal outcome with the reason.
    early = engine.caller_left(engine.Progress(call=call()), "before routing started")
    assert isinstance(early.action, engine.RejectCall) and early.action.reason == "abandoned" and not early.progress.trace.entries
