"""Buyer state and its pure transitions: windows in the buyer's time zone (rollover, DST), idempotence, SWRR, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from switchboard.core.ledger import (
    BuyerLoad,
    InMemoryLedger,
    TierState,
    bid_placed,
    call_ended,
    call_routed,
    is_billable,
    swrr_order,
    swrr_routed,
    window_key,
)

LA = "America/Los_Angeles"


def test_window_keys_are_local_to_the_zone() -> None:
    # 2025-01-16 07:30 UTC is still 2025-01-15 23:30 in LA (PST, UTC-8).
    t = datetime(2025, 1, 16, 7, 30, tzinfo=UTC)
    assert window_key("daily", t, LA) == "2025-01-15"
    assert window_key("daily", t, "UTC") == "2025-01-16"
    assert window_key("hourly", t, LA) == "2025-01-15T23-08:00"
    assert window_key("monthly", datetime(2025, 2, 1, 7, 59, tzinfo=UTC), LA) == "2025-01"
    assert window_key("monthly", datetime(2025, 2, 1, 8, 0, tzinfo=UTC), LA) == "2025-02"


def test_dst_fall_back_repeated_hour_is_two_windows_and_spring_forward_skips_one() -> None:
    # 2025-11-02: 01:00-02:00 PDT (08:00-09:00 UTC) then 01:00-02:00 PST (09:00-10:00 UTC).
    first = window_key("hourly", datetime(2025, 11, 2, 8, 30, tzinfo=UTC), LA)
    second = window_key("hourly", datetime(2025, 11, 2, 9, 30, tzinfo=UTC), LA)
    assert first == "2025-11-02T01-07:00" and second == "2025-11-02T01-08:00"
    # The local day is 25 hours long: 07:00 UTC Nov 2 (00:00 PDT) to 08:00 UTC Nov 3 (00:00 PST).
    start = datetime(2025, 11, 2, 7, 0, tzinfo=UTC)
    assert {window_key("daily", start + timedelta(minutes=30 + 60 * h), LA) for h in range(25)} == {"2025-11-02"}
    assert window_key("daily", start + timedelta(hours=25), LA) == "2025-11-03"
    # 2025-03-09 02:00 PST jumps to 03:00 PDT: 09:59 UTC is 01:59 PST, 10:00 UTC is 03:00 PDT.
    assert window_key("hourly", datetime(2025, 3, 9, 9, 59, tzinfo=UTC), LA) == "2025-03-09T01-08:00"
    assert window_key("hourly", datetime(2025, 3, 9, 10, 0, tzinfo=UTC), LA) == "2025-03-09T03-07:00"


def test_routed_then_billable_end_counts_a_sale_in_every_window() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    load = call_routed(BuyerLoad("b"), "c1", Decimal("40.00"), t)
    assert load.bridged == 1 and load.last_routed == t and load.reserved_spend == Decimal("40.00")
    assert call_routed(load, "c1", Decimal("40.00"), t + timedelta(seconds=5)) == load  # redelivered: no-op
    ended = call_ended(load, "c1", t + timedelta(minutes=3), 120, 90, LA)
    assert ended.bridged == 0
    later = t + timedelta(minutes=3)
    assert (ended.sales("hourly", later, LA), ended.sales("daily", later, LA), ended.sales("monthly", later, LA)) == (1, 1, 1)
    assert ended.spend_today(later, LA) == Decimal("40.00")
    assert call_ended(ended, "c1", later, 120, 90, LA) == ended  # redelivered end: no-op


def test_short_unanswered_and_zero_second_calls_only_release_the_slot() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    load = call_routed(BuyerLoad("b"), "c1", Decimal("40.00"), t)
    for connected, answered in ((89, None), (0, None), (200, False)):
        ended = call_ended(load, "c1", t, connected, 90, LA, answered)
        assert ended.bridged == 0 and ended.sales("daily", t, LA) == 0 and ended.spend_today(t, LA) == 0
    assert is_billable(90, 90) and not is_billable(0, 0) and is_billable(0, 0, answered=True)


def test_windows_roll_over_at_local_midnight_and_month_end() -> None:
    # 23:50 LA on Jan 31 (07:50 UTC Feb 1): one sale; 20 minutes later it is Feb 1 in LA.
    t = datetime(2025, 2, 1, 7, 50, tzinfo=UTC)
    load = call_ended(call_routed(BuyerLoad("b"), "c1", Decimal("10.00"), t), "c1", t, 100, 90, LA)
    assert load.sales("daily", t, LA) == 1 and load.sales("monthly", t, LA) == 1
    after = t + timedelta(minutes=20)
    assert load.sales("daily", after, LA) == 0 and load.sales("monthly", after, LA) == 0 and load.spend_today(after, LA) == 0
    # A new sale after the rollover starts the new windows at 1.
    load2 = call_ended(call_routed(load, "c2", Decimal("5.00"), after), "c2", after, 100, 90, LA)
    assert load2.sales("daily", after, LA) == 1 and load2.spend_today(after, LA) == Decimal("5.00")


def test_state_round_trips_through_json() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    load = call_routed(BuyerLoad("b"), "open", Decimal("12.50"), t)
    load = call_ended(call_routed(load, "c1", Decimal("40.00"), t), "c1", t, 100, 90, LA)
    load = bid_placed(load, Decimal("37.50"), t)
    assert BuyerLoad.from_dict(json.loads(json.dumps(load.to_dict()))) == load
    state = swrr_routed(TierState("camp/0"), [("a", 5), ("b", 3)], "a")
    assert TierState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_swrr_is_smooth_and_exact() -> None:
    # nginx's own pick (largest current+weight) drifts past ±1 with weights 1,1,1,11,11: ours must not.
    pool5 = [("p", 1), ("q", 1), ("r", 1), ("s", 11), ("t", 11)]
    state5, counts = TierState("k5"), dict.fromkeys("pqrst", 0)
    for n in range(1, 100):
        pick = swrr_order(state5, pool5)[0]
        counts[pick] += 1
        state5 = swrr_routed(state5, pool5, pick)
        assert all(abs(counts[b] - n * w / 25) <= 1 for b, w in pool5), (n, counts)
    pool = [("a", 5), ("b", 1), ("c", 1)]
    state, picks = TierState("k"), []
    for _ in range(7):
        pick = swrr_order(state, pool)[0]
        picks.append(pick)
        state = swrr_routed(state, pool, pick)
        assert sum(state.current.values()) == 0
    assert "".join(picks) == "aaabaac"  # interleaved (not a×5 then b, c), deterministic
    assert all(v == 0 for v in state.current.values())  # a full cycle returns to the start


def test_in_memory_ledger_applies_actions() -> None:
    from switchboard.core.config import Buyer

    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    led = InMemoryLedger()

    class Routed:  # the shape of engine.RouteToBuyer the ledger needs
        buyer_id, price, tier_key, weight_pool = "a", Decimal("20.00"), "camp/0", (("a", 2), ("b", 1))

    led.route("c1", Routed(), t)
    assert led.buyer_load("a").bridged == 1 and led.tier_state("camp/0").current == {"a": -1, "b": 1}
    buyer = Buyer.model_validate({"id": "a", "destination": "+18005550100", "bid": {"type": "static", "price": "20.00"}})
    led.end("c1", buyer, t, 95)
    assert led.buyer_load("a").bridged == 0 and led.buyer_load("a").sales("daily", t, "UTC") == 1
    led.bid("b", Decimal("33.00"), t)
    assert led.buyer_load("b").last_bid == Decimal("33.00")
