"""The buyer-facing ping protocol: request bodies, answer parsing, effective timeouts (pure functions)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core.config import Buyer, RtbBid
from switchboard.services.bidder import protocol
from switchboard.services.bidder.service import rtb_timeout_s
from switchboard.v1 import bidding_pb2 as bpb
from switchboard.v1 import events_pb2 as pb

MAX = Decimal("100000.00")
BID, DECLINE, NO_BID = pb.BID_OUTCOME_BID, pb.BID_OUTCOME_DECLINE, pb.BID_OUTCOME_NO_BID


def ping(deadline_s: float | None = 1_700_000_000.25) -> pb.PingRequested:
    p = pb.PingRequested(
        event_id="e1",
        call_id="c1",
        auction_id="a1",
        campaign_id="solar",
        publisher_id="pub",
        buyer_ids=["b1"],
        state="CA",
        zip="90001",
        area_code="213",
        answers={"homeowner": "yes", "credit": "700"},
    )
    if deadline_s is not None:
        ts = Timestamp()
        ts.FromMilliseconds(round(deadline_s * 1000))
        p.deadline.CopyFrom(ts)
    return p


def test_ping_json_has_the_documented_fields() -> None:
    body = json.loads(protocol.ping_json(ping(), "b1", 750))
    assert body == {
        "type": "ping",
        "buyer_id": "b1",
        "call_id": "c1",
        "auction_id": "a1",
        "campaign_id": "solar",
        "publisher_id": "pub",
        "state": "CA",
        "zip": "90001",
        "area_code": "213",
        "caller_number": "",
        "answers": {"credit": "700", "homeowner": "yes"},
        "deadline": "2023-11-14T22:13:20.250Z",
        "timeout_ms": 750,
    }


def buyer(**fields: object) -> Buyer:
    return Buyer.model_validate({"id": "b1", "destination": "+18005550100", "bid": {"type": "static", "price": "9"}, **fields})


@pytest.mark.parametrize("strategy", ["price", "parallel_highest", "parallel_first", "availability", "ping_post"])
def test_a_ping_shows_each_buyer_only_what_it_may_see(strategy: str) -> None:
    p = ping()
    p.strategy, p.caller_number = strategy, "+12135550199"
    private = json.loads(protocol.ping_json(protocol.shown_ping(p, buyer()), "b1", 750))
    assert private["caller_number"] == "" and "2135550199" not in json.dumps(private)
    shared = protocol.shown_ping(p, buyer(share_caller_number=True, share_answers=["credit"]))
    assert shared.caller_number == ("" if strategy == "ping_post" else "+12135550199")
    assert protocol.ping_proto(shared, "b1", 750).caller_number == shared.caller_number
    assert dict(shared.answers) == {"credit": "700"} and len(p.answers) == 2  # the buyer's copy, not the router's ping


def test_a_post_shows_the_number_only_to_a_sharing_buyer_and_only_its_answers() -> None:
    post = pb.PostRequested(buyer_id="b1", caller=pb.Caller(number="+12135550199", zip="90001"), answers={"a": "1", "b": "2"})
    assert protocol.shown_post(post, buyer()).caller.number == ""
    shared = protocol.shown_post(post, buyer(share_caller_number=True, share_answers=[]))
    assert shared.caller.number == "+12135550199" and not shared.answers and shared.caller.zip == "90001"


def test_ping_proto_mirrors_the_json() -> None:
    req = protocol.ping_proto(ping(), "b1", 750)
    assert (req.buyer_id, req.call_id, req.zip, req.timeout_ms, dict(req.answers)["homeowner"]) == (
        "b1",
        "c1",
        "90001",
        750,
        "yes",
    )
    assert req.deadline.ToMilliseconds() == 1_700_000_000_250


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"bid": 37.50, "accept": true, "available": true}', (BID, "37.50", "", True)),
        (b'{"bid": "37.5"}', (BID, "37.50", "", True)),
        (b'{"bid": 40, "available": false}', (BID, "40.00", "", False)),
        (b'{"bid": 0}', (BID, "0.00", "", True)),
        (b'{"accept": false, "reason": "no capacity"}', (DECLINE, "", "no capacity", False)),
        (b'{"accept": false}', (DECLINE, "", "declined", False)),
        (b'{"accept": false, "reason": "line1\\nline2"}', (DECLINE, "", "line1 line2", False)),
    ],
)
def test_good_answers(raw: bytes, expected: tuple) -> None:
    a = protocol.parse_json_answer(raw, MAX)
    assert (a.outcome, a.amount, a.reason, a.available) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"bid": 12.5, "accept": tru',
        b"[]",
        b'"37.50"',
        b"null",
        b'{"accept": true}',
        b'{"bid": null}',
        b'{"bid": -1}',
        b'{"bid": "-0.01"}',
        b'{"bid": 37.505}',
        b'{"bid": "37.505"}',
        b'{"bid": "abc"}',
        b'{"bid": true}',
        b'{"bid": [1]}',
        b'{"bid": NaN}',
        b'{"bid": Infinity}',
        b'{"bid": "Infinity"}',
        b'{"bid": "NaN"}',
        b'{"bid": 1e400}',
        b'{"bid": 100000.01}',
        b'{"bid": 10, "accept": "yes"}',
        b'{"bid": 10, "available": "yes"}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_malformed_answers_are_no_bid_malformed(raw: bytes) -> None:
    a = protocol.parse_json_answer(raw, MAX)
    assert (a.outcome, a.reason, a.amount) == (NO_BID, "malformed", "")


def test_proto_answers() -> None:
    ok = protocol.parse_proto_answer(bpb.PingResponse(bid="12.30"), MAX)
    assert (ok.outcome, ok.amount, ok.available) == (BID, "12.30", True)
    busy = protocol.parse_proto_answer(bpb.PingResponse(accept=True, bid="12", available=False), MAX)
    assert (busy.outcome, busy.amount, busy.available) == (BID, "12.00", False)
    no = protocol.parse_proto_answer(bpb.PingResponse(accept=False, reason="full"), MAX)
    assert (no.outcome, no.reason) == (DECLINE, "full")
    for bad in (bpb.PingResponse(), bpb.PingResponse(bid="twelve"), bpb.PingResponse(bid="1.001"), bpb.PingResponse(bid="-5")):
        assert protocol.parse_proto_answer(bad, MAX).reason == "malformed"


def test_effective_timeout_is_the_smaller_of_timeout_ms_and_the_deadline() -> None:
    bid = RtbBid(type="rtb", url="http://127.0.0.1:1/ping", timeout_ms=800)
    p = ping(deadline_s=1000.0)
    assert rtb_timeout_s(bid, p, margin_ms=50, now=990.0) == pytest.approx(0.8)  # timeout_ms binds
    assert rtb_timeout_s(bid, p, margin_ms=50, now=999.5) == pytest.approx(0.45)  # deadline binds
    assert rtb_timeout_s(bid, p, margin_ms=50, now=1001.0) < 0  # already late: no time at all
    assert rtb_timeout_s(bid, ping(deadline_s=None), margin_ms=50, now=0) == pytest.approx(0.8)
