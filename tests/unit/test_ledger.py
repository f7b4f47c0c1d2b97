"""Buyer state and its pure transitions: windows in the buyer's time zone (rollover, DST), idempotence, SWRR, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from switchboard.core.call_end import is_billable
from switchboard.core.ledger import (
    BuyerLoad,
    InMemoryLedger,
    TierState,
    bid_placed,
    call_ended,
    call_routed,
    needs_reaping,
    release_stale_calls,
    stale_calls,
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


# ---------------------------------------------------------------- the reaper of calls whose end never came


def test_open_calls_remember_when_they_were_routed() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    load = call_routed(BuyerLoad("b"), "c1", Decimal("40.00"), t)
    load = call_routed(load, "c2", Decimal("10.00"), t + timedelta(minutes=1))
    assert load.opened_at == {"c1": t, "c2": t + timedelta(minutes=1)}
    assert call_routed(load, "c1", Decimal("40.00"), t + timedelta(hours=1)).opened_at["c1"] == t  # redelivered: first time kept
    ended = call_ended(load, "c1", t + timedelta(minutes=2), 120, 90, LA)
    assert ended.opened_at == {"c2": t + timedelta(minutes=1)} and set(ended.open_calls) == {"c2"}
    assert BuyerLoad.from_dict(json.loads(json.dumps(ended.to_dict()))) == ended


def test_old_records_without_opening_times_still_load() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    old = call_routed(BuyerLoad("b"), "c1", Decimal("40.00"), t).to_dict()
    del old["opened_at"]  # what the changelog holds from before the field existed
    unknown = BuyerLoad.from_dict(old)
    assert unknown.bridged == 1 and unknown.reserved_spend == Decimal("40.00") and unknown.unstamped_calls == ["c1"]
    assert stale_calls(unknown, t + timedelta(days=30), timedelta(hours=4)) == []  # unknown age: never stale
    loaded_at = t + timedelta(days=2)
    stamped = BuyerLoad.from_dict(old, loaded_at=loaded_at)
    assert stamped.opened_at == {"c1": loaded_at} and stamped.unstamped_calls == []
    # "now" at load starts the clock: stale one max_call_duration after that, not at once.
    assert stale_calls(stamped, loaded_at + timedelta(hours=3), timedelta(hours=4)) == []
    assert stale_calls(stamped, loaded_at + timedelta(hours=4), timedelta(hours=4)) == ["c1"]
    # A stored time wins over loaded_at; a time of a call no longer open is dropped.
    newer = call_routed(BuyerLoad("b"), "c2", Decimal("1.00"), t).to_dict()
    newer["opened_at"]["gone"] = t.isoformat()
    assert BuyerLoad.from_dict(newer, loaded_at=loaded_at).opened_at == {"c2": t}


def test_stale_calls_are_released_without_a_sale() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    max_age = timedelta(hours=4)
    load = call_ended(call_routed(BuyerLoad("b"), "sold", Decimal("5.00"), t), "sold", t, 100, 90, LA)
    load = call_routed(load, "lost-2", Decimal("30.00"), t + timedelta(minutes=5))
    load = call_routed(load, "lost-1", Decimal("40.00"), t)
    load = call_routed(load, "live", Decimal("20.00"), t + timedelta(hours=3))
    now = t + timedelta(hours=4, minutes=5)  # lost-1 is 4 h 5 min old, lost-2 exactly 4 h: both stale
    assert stale_calls(load, now, max_age) == ["lost-1", "lost-2"]  # oldest first
    released, reaped = release_stale_calls(load, now, max_age)
    assert reaped == ["lost-1", "lost-2"]
    assert set(released.open_calls) == {"live"} and released.opened_at == {"live": t + timedelta(hours=3)}
    assert released.reserved_spend == Decimal("20.00")
    # Not billable: the sales and spend are those of the one real sale.
    for window in ("hourly", "daily", "monthly"):
        assert released.sales(window, t, LA) == load.sales(window, t, LA) == 1
    assert released.spend_today(t, LA) == Decimal("5.00")
    # Idempotent: a second run (a duplicate reap message) and a late call.ended change nothing.
    assert release_stale_calls(released, now, max_age) == (released, [])
    assert call_ended(released, "lost-1", now, 600, 90, LA, True) == released
    # Nothing stale: the same object back.
    assert release_stale_calls(load, t + timedelta(hours=1), max_age) == (load, [])


def test_needs_reaping_reads_the_stored_form_like_stale_calls() -> None:
    t = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
    max_age = timedelta(hours=4)
    assert not needs_reaping(BuyerLoad("b").to_dict(), t, max_age)  # no open call
    stored = call_routed(BuyerLoad("b"), "c1", Decimal("40.00"), t).to_dict()
    for now in (t, t + timedelta(hours=3, minutes=59), t + timedelta(hours=4), t + timedelta(days=3)):
        load = BuyerLoad.from_dict(stored)
        assert needs_reaping(stored, now, max_age) == bool(stale_calls(load, now, max_age))
    del stored["opened_at"]  # an old record: it needs its open calls stamped, whatever the time
    assert needs_reaping(stored, t, max_age)
