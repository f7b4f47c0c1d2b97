"""The router's ledger pieces without a broker: the engine's reservation-denied entry point, call.ended
outcomes, the worker's LoadView (published state + its pending changes) and the internal protocol."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from switchboard.core import engine
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import CallFacts
from switchboard.core.ledger import BuyerLoad, TierState, call_routed, swrr_routed
from switchboard.services.router import protocol
from switchboard.services.router import view as view_module
from switchboard.services.router.record import finished_at_ms
from switchboard.services.router.sweeps import forgettable
from switchboard.services.router.view import LoadView

NOW = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)


def config(tiers: list[dict[str, Any]], max_attempts: int = 3) -> RoutingConfig:
    buyers = [
        {"id": "a", "destination": "+18005550001", "bid": {"type": "static", "price": "40.00"}, "caps": {"concurrency": 1}},
        {"id": "b", "destination": "+18005550002", "bid": {"type": "static", "price": "30.00"}},
    ]
    return RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub", "min_price": "10.00"}],
            "buyers": buyers,
            "campaigns": [
                {
                    "id": "camp",
                    "numbers": ["+18885550123"],
                    "publisher": "pub",
                    "routing": {"max_attempts": max_attempts, "tiers": tiers},
                }
            ],
        }
    )


CALL = CallFacts(call_id="c1", campaign_id="camp", publisher_id="pub", state="CA")


def test_reservation_denied_offers_the_next_candidate_without_using_an_attempt() -> None:
    cfg = config([{"strategy": "priority", "buyers": ["a", "b"]}], max_attempts=1)
    step = engine.start_routing(cfg, CALL, NOW)
    assert isinstance(step.action, engine.RouteToBuyer) and step.action.buyer_id == "a" and step.action.attempt == 1
    step = engine.reservation_denied(cfg, step.progress, "cap:concurrency", "1 call(s) bridged now", NOW)
    # max_attempts 1 and still an offer: the denied one was never an attempt.
    assert isinstance(step.action, engine.RouteToBuyer) and step.action.buyer_id == "b" and step.action.attempt == 1
    entries = [e for e in step.progress.trace.entries if e.target_id == "a"]
    assert any(e.excluded_by == "cap:concurrency" and "reservation denied" in e.detail for e in entries)
    assert not any(e.winner for e in entries)
    winners = [e.target_id for e in step.progress.trace.entries if e.winner]
    assert winners == ["b"] and step.progress.trace.winning_attempt == 1


def test_reservation_denied_for_the_last_candidate_falls_through() -> None:
    cfg = config([{"strategy": "priority", "buyers": ["a"]}, {"strategy": "priority", "buyers": ["b"]}])
    step = engine.start_routing(cfg, CALL, NOW)
    step = engine.reservation_denied(cfg, step.progress, "cap:daily", "full", NOW)
    assert isinstance(step.action, engine.RouteToBuyer) and (step.action.buyer_id, step.action.tier_index) == ("b", 1)


def test_reservation_denied_needs_a_route_offer() -> None:
    cfg = config([{"strategy": "priority", "buyers": ["a"]}])
    progress = engine.Progress(call=CALL)
    with pytest.raises(ValueError):
        engine.reservation_denied(cfg, progress, "cap:daily", "", NOW)


def _load_record(load: BuyerLoad, version: int) -> dict[str, Any]:
    return {"kind": "load", "key": load.buyer_id, "version": version, "state": load.to_dict()}


def test_view_keeps_the_newest_version_and_overlays_pending_changes() -> None:
    view = LoadView()
    held = call_routed(BuyerLoad("a"), "x", Decimal(40), NOW)
    view.apply(_load_record(held, 2))
    view.apply(_load_record(BuyerLoad("a"), 1))  # older: ignored
    assert set(view.buyer_load("a").open_calls) == {"x"}
    view.reserve("y", "a", Decimal(40), NOW, "", ())
    assert set(view.buyer_load("a").open_calls) == {"x", "y"}
    view.answered("y", granted=False)
    assert set(view.buyer_load("a").open_calls) == {"x"}
    view.release("x", "a", NOW, 90, 60, "UTC", True)
    load = view.buyer_load("a")
    assert not load.open_calls and load.day_sales == 1  # the end counts at once on this worker
    ended = load
    view.apply(_load_record(ended, 3))  # the ledger confirmed it: the pending release is dropped
    assert not view.releasing and view.buyer_load("a").day_sales == 1


def test_a_reservation_stops_counting_when_its_call_finishes_or_is_never_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    view = LoadView()
    view.reserve("gone", "a", Decimal(40), NOW, "", ())
    assert set(view.buyer_load("a").open_calls) == {"gone"}
    view.finished("gone")  # the caller hung up while the reservation was in flight: no reply will pop it
    assert not view.buyer_load("a").open_calls
    # A reply lost for good: the pending reservation counts no longer than PENDING_TTL_S.
    view.reserve("lost", "a", Decimal(40), NOW, "", ())
    later = view_module.time.monotonic() + view_module.PENDING_TTL_S + 1
    monkeypatch.setattr(view_module.time, "monotonic", lambda: later)
    assert not view.buyer_load("a").open_calls and not view.reserving


def test_view_overlays_weight_picks_until_the_tier_state_holds_them() -> None:
    view = LoadView()
    pool = (("a", 2), ("b", 1))
    view.reserve("y", "a", Decimal(1), NOW, "camp/0", pool)
    expected = swrr_routed(TierState("camp/0"), pool, "a")
    assert view.tier_state("camp/0") == expected
    view.answered("y", granted=True)  # granted: the pick stays pending until the tier state shows it
    assert view.tier_state("camp/0") == expected
    view.apply({"kind": "tier", "key": "camp/0", "version": 1, "state": expected.to_dict(), "recent": ["y"]})
    assert not view.swrr and view.tier_state("camp/0") == expected  # counted once


def test_protocol_refuses_what_is_not_a_router_message() -> None:
    for raw in (b"\xff", b"[1]", b'{"type": "reserve"}', b'{"type": "nope"}'):
        with pytest.raises(protocol.InvalidMessage):
            protocol.decode_typed(raw)
    msg = {"type": "bid", "buyer_id": "a", "amount": "1.00", "at": NOW.isoformat()}
    assert protocol.decode_typed(protocol.encode(msg)) == msg


def test_finished_entries_older_than_the_retention_are_forgotten_and_fresh_ones_stay() -> None:
    now_ms, retention_ms = 10_000_000, 5_000
    entries = [
        ("old", {"kind": "routed", "at_ms": now_ms - 6_000}),
        ("just", {"kind": "rejected", "at_ms": now_ms - retention_ms}),  # exactly the retention: forgotten
        ("fresh", {"kind": "queued", "at_ms": now_ms - 4_999}),
        ("legacy", "routed"),  # written before the time was kept
    ]
    first_seen: dict[str, int] = {}
    assert forgettable(entries, now_ms, retention_ms, first_seen) == ["old", "just"]
    # An entry without a time counts from when this worker first saw it, not from 0 (forgotten at once).
    assert first_seen == {"legacy": now_ms}
    assert forgettable(entries, now_ms + 4_999, retention_ms, first_seen) == ["old", "just", "fresh"]
    assert forgettable(entries, now_ms + retention_ms, retention_ms, first_seen) == ["old", "just", "fresh", "legacy"]
    assert finished_at_ms("routed") is None and finished_at_ms({"kind": "routed", "at_ms": 7}) == 7


def test_protocol_knows_the_reap_message() -> None:
    msg = {"type": "reap", "buyer_id": "a"}
    assert protocol.decode_typed(protocol.encode(msg)) == msg
    with pytest.raises(protocol.InvalidMessage):
        protocol.decode_typed(b'{"type": "reap"}')
