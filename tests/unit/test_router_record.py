"""The router's per-call records (record.py) without a broker: the JSON older routers wrote loads, what is
written reads back the same and keeps the keys older routers read, and the call side carries on from
records in the older shape (a router restarted on an existing changelog)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from switchboard.core import engine
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import CallFacts
from switchboard.platform import codec
from switchboard.platform.topics import CALL_ROUTED
from switchboard.services.router import protocol
from switchboard.services.router.app import Router, _wire
from switchboard.services.router.record import (
    Auction,
    CallRecord,
    CallRecords,
    Finished,
    FinishedCalls,
    FinishedKind,
    Offer,
    OfferTime,
    Phase,
    Post,
    Reservation,
)
from switchboard.services.router.settings import RouterSettings
from switchboard.v1 import events_pb2 as pb

IVR = pb.IvrCompleted(
    event_id="e1",
    call_id="c1",
    campaign_id="camp",
    publisher_id="pub",
    caller=pb.Caller(number="+12135550199", state="CA", zip="90001", area_code="213"),
    answers={"homeowner": "yes"},
)
PROGRESS = engine.Progress(call=CallFacts(call_id="c1", campaign_id="camp", publisher_id="pub", state="CA")).to_dict()
CTX = {"ivr": base64.b64encode(IVR.SerializeToString()).decode(), "routing_started_ms": 1_700_000_000_000}

# As the router wrote them before record.py (phase by phase, with the keys earlier phases left behind).
OLD_AUCTION = {
    "ctx": CTX,
    "routed": [],
    "progress": PROGRESS,
    "phase": "auction",
    "auction_id": "au1",
    "pinged": ["r1", "r2"],
    "answers": {
        "r2": {"outcome": "bid", "amount": "60.00", "reason": "", "latency_ms": 12, "available": True, "seq": 0},
        "r1": {"outcome": "decline", "amount": None, "reason": "full", "latency_ms": 30, "available": False},  # no seq
    },
    "deadline_ms": 1_700_000_002_000,
    "reservation": None,
}
OLD_POSTING = {
    **OLD_AUCTION,
    "phase": "posting",
    "post": {
        "auction_id": "au1",
        "buyer_id": "r2",
        "attempt": 1,
        "price": "60.00",
        "deadline_ms": 1_700_000_003_000,
        "timeout_ms": 1500,
    },
}
OLD_RESERVING = {
    "ctx": CTX,
    "routed": [1],
    "progress": PROGRESS,
    "phase": "reserving",
    "reservation": {
        "id": "res2",
        "buyer_id": "a",
        "destination": "+18005550001",
        "price": "40.00",
        "tier_index": 0,
        "attempt": 2,
        "strategy": "priority",
        "tier_key": "camp/0",
        "pool": [],
    },
    "auction_id": None,
    "pinged": [],
    "answers": {},
    "deadline_ms": None,
    "post": None,
    "offer": None,
}
OLD_OFFERED = {  # an offer from before offered_ms was kept
    **OLD_RESERVING,
    "phase": "offered",
    "reservation": None,
    "offer": {"buyer_id": "a", "attempt": 2, "price": "40.00", "billable_after_s": 60},
}


def test_records_older_routers_wrote_load_phase_by_phase() -> None:
    auction = CallRecord.from_json(OLD_AUCTION)
    assert (
        auction.phase == Phase.AUCTION
        and auction.ivr_completed() == IVR
        and auction.routing_started_ms == CTX["routing_started_ms"]
    )
    assert auction.auction == Auction(
        "au1",
        ("r1", "r2"),
        1_700_000_002_000,
        {
            "r2": engine.BidAnswer("r2", "bid", Decimal("60.00"), "", 12, True, 0),
            "r1": engine.BidAnswer("r1", "decline", None, "full", 30, False, 0),
        },
    )
    assert list(auction.auction.answers) == ["r2", "r1"]  # arrival order kept
    assert auction.progress().call.call_id == "c1"
    assert CallRecord.from_json(OLD_POSTING).post == Post("au1", "r2", 1, "60.00", 1_700_000_003_000, 1500)
    reserving = CallRecord.from_json(OLD_RESERVING)
    assert reserving.reservation == Reservation("res2", "a", "+18005550001", "40.00", 0, 2, "priority")
    assert reserving.routed == (1,) and reserving.offer is None and reserving.auction is None
    assert CallRecord.from_json(OLD_OFFERED).offer == Offer("a", 2, 60, None)


@pytest.mark.parametrize("old", [OLD_AUCTION, OLD_POSTING, OLD_RESERVING, OLD_OFFERED], ids=lambda d: d["phase"])
def test_a_record_reads_back_the_same_and_keeps_the_keys_older_routers_read(old: dict[str, Any]) -> None:
    rec = CallRecord.from_json(old)
    written = json.loads(json.dumps(rec.to_json()))  # through the changelog
    assert CallRecord.from_json(written) == rec
    # Older routers read these keys in this phase (and .get() the others).
    keys = {"ctx", "routed", "progress", "phase"} | {
        "auction": {"auction_id", "pinged", "answers", "deadline_ms"},
        "posting": {"auction_id", "post"},
        "reserving": {"reservation"},
        "offered": {"offer"},
    }[old["phase"]]
    assert keys <= set(written)
    # The same values, but for what no router ever read back: the reservation's weight pool (it goes to the
    # ledger with the reserve) and the offer's price; an older offer's time stays unknown.
    expected = {k: old[k] for k in keys - {"answers"}}
    if "reservation" in expected:
        expected["reservation"] = {k: v for k, v in expected["reservation"].items() if k not in ("tier_key", "pool")}
    if "offer" in expected:
        expected["offer"] = {**{k: v for k, v in expected["offer"].items() if k != "price"}, "offered_ms": None}
    assert {k: written[k] for k in keys - {"answers"}} == expected


def test_finished_entries_old_and_new() -> None:
    assert Finished.from_json("routed") == Finished(FinishedKind.ROUTED, None)
    assert Finished.from_json({"kind": "hung_up", "at_ms": 7}) == Finished(FinishedKind.HUNG_UP, 7)
    assert Finished(FinishedKind.REAPED, 9).to_json() == {"kind": "reaped", "at_ms": 9}


def test_the_timers_read_deadlines_and_offers_from_the_stored_json() -> None:
    table = {"a": OLD_AUCTION, "p": OLD_POSTING, "r": OLD_RESERVING, "o": OLD_OFFERED}
    records = CallRecords(table)
    # (call id, auction id, the post's attempt or None for an auction, deadline)
    assert records.due() == [("a", "au1", None, 1_700_000_002_000), ("p", "au1", 1, 1_700_000_003_000)]
    assert records.offer_time("o") == OfferTime(2, CTX["routing_started_ms"])  # an older offer: since routing started
    assert records.offer_time("r") is None and records.offer_time("nope") is None


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


class _App:
    """What _wire uses of a Faust app: tables as dicts, topics that keep what is sent."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self.topics: dict[str, _Topic] = {}

    def Table(self, name: str, **_: Any) -> dict[str, Any]:
        return self.tables.setdefault(name, {})

    def topic(self, *names: str, **_: Any) -> _Topic:
        return self.topics.setdefault(names[0] if len(names) == 1 else "+".join(names), _Topic())

    def agent(self, *_: Any, **__: Any) -> Any:
        return lambda f: f

    timer = agent


def _event(topic: str, key: str, value: bytes) -> Any:
    message = SimpleNamespace(topic=topic, key=key.encode(), value=value, partition=0, offset=0)
    return SimpleNamespace(message=message, key=message.key, value=value)


CONFIG = RoutingConfig.model_validate(
    {
        "publishers": [{"id": "pub", "min_price": "10.00"}],
        "buyers": [
            {"id": "a", "destination": "+18005550001", "bid": {"type": "static", "price": "40.00"}, "billable_after_s": 30}
        ],
        "campaigns": [
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "priority", "buyers": ["a"]}]},
            }
        ],
    }
)


def _router() -> tuple[_App, Router, RouterSettings]:
    settings = RouterSettings(config="routing.yaml")
    app = _App()
    return app, _wire(app, CONFIG, settings), settings  # _App has what _wire uses of a RouterApp


async def test_a_restarted_router_carries_on_from_older_records() -> None:
    app, router, settings = _router()
    app.tables["auctions"]["c1"] = json.loads(json.dumps(OLD_RESERVING))
    app.tables["auctions"]["c2"] = json.loads(json.dumps({**OLD_OFFERED, "ctx": {**CTX}}))
    # The grant of the reservation in flight: call.routed for attempt 2, the record now waits for its end.
    granted = protocol.Granted(type="granted", reservation_id="res2", call_id="c1", buyer_id="a")
    await router.calls.handle(_event(settings.internal_topic("replies"), "c1", protocol.encode(granted)))
    routed = pb.CallRouted.FromString(app.topics[CALL_ROUTED.name].sent[-1][1])
    assert (routed.call_id, routed.buyer_id, routed.attempt, routed.price, routed.billable_after_s) == ("c1", "a", 2, "40.00", 30)
    offer = CallRecords(app.tables["auctions"]).get("c1")
    assert offer is not None and offer.offer is not None and (offer.offer.attempt, offer.routed) == (2, (1, 2))
    # The older offer's answered end: the call is finished "routed", with the offer's own terms (60 s).
    ended = pb.CallEnded(
        event_id="x", call_id="c2", attempt=2, buyer_id="a", outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=45
    )
    await router.calls.handle(_event("call.ended", "c2", codec.encode(ended)))
    assert "c2" not in app.tables["auctions"]
    finished = FinishedCalls(app.tables["finished"]).get("c2")
    assert finished is not None and finished.kind == FinishedKind.ROUTED
    release = json.loads(app.topics[settings.internal_topic("ledger")].sent[-1][1])
    assert (release["type"], release["billable_after_s"], release["connected_seconds"]) == ("release", 60, 45)
