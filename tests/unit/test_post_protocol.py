"""ping_post's post, buyer side of the wire: the request bodies and how answers are read."""

from __future__ import annotations

import json

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.buyersim.config import SimConfig
from switchboard.buyersim.server import Simulator
from switchboard.services.bidder import protocol
from switchboard.services.bidder.service import post_answered_event
from switchboard.v1 import bidding_pb2 as bpb
from switchboard.v1 import events_pb2 as pb


def post(number: str = "") -> pb.PostRequested:
    ts = Timestamp()
    ts.FromMilliseconds(1_700_000_000_250)
    return pb.PostRequested(
        call_id="c1",
        auction_id="a1",
        buyer_id="b1",
        price="37.50",
        campaign_id="solar",
        publisher_id="pub",
        caller=pb.Caller(number=number, state="CA", zip="90001", area_code="213"),
        answers={"homeowner": "yes"},
        deadline=ts,
        attempt=2,
    )


def test_post_json_has_the_documented_fields() -> None:
    body = json.loads(protocol.post_json(post("+12135550199"), 900))
    assert body == {
        "type": "post",
        "buyer_id": "b1",
        "call_id": "c1",
        "auction_id": "a1",
        "attempt": 2,
        "campaign_id": "solar",
        "publisher_id": "pub",
        "price": "37.50",
        "caller_number": "+12135550199",
        "state": "CA",
        "zip": "90001",
        "area_code": "213",
        "answers": {"homeowner": "yes"},
        "deadline": "2023-11-14T22:13:20.250Z",
        "timeout_ms": 900,
    }


def test_post_without_a_shared_number_has_an_empty_number() -> None:
    assert json.loads(protocol.post_json(post(), 900))["caller_number"] == ""
    assert protocol.post_proto(post(), 900).caller_number == ""


def test_post_proto_mirrors_the_json() -> None:
    req = protocol.post_proto(post("+12135550199"), 900)
    assert (req.buyer_id, req.price, req.caller_number, req.attempt, req.timeout_ms) == ("b1", "37.50", "+12135550199", 2, 900)
    assert req.deadline.ToMilliseconds() == 1_700_000_000_250


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"accept": true}', (True, "")),
        (b'{"accept": false, "reason": "duplicate lead"}', (False, "duplicate lead")),
        (b'{"accept": false}', (False, "rejected")),
        (b'{"accept": false, "reason": "a\\nb"}', (False, "a b")),
        (b"{}", (False, "malformed")),
        (b'{"accept": "yes"}', (False, "malformed")),
        (b"[true]", (False, "malformed")),
        (b'{"accept": tr', (False, "malformed")),
        (b'{"accept": NaN}', (False, "malformed")),
    ],
)
def test_post_answers(raw: bytes, expected: tuple[bool, str]) -> None:
    r = protocol.parse_json_post_answer(raw)
    assert (r.accepted, r.reason) == expected


def test_proto_post_answers() -> None:
    assert protocol.parse_proto_post_answer(bpb.PostResponse(accept=True)).accepted
    r = protocol.parse_proto_post_answer(bpb.PostResponse(accept=False, reason="nope"))
    assert (r.accepted, r.reason) == (False, "nope")
    assert protocol.parse_proto_post_answer(bpb.PostResponse()).reason == "rejected"


def test_post_answered_event_carries_the_post_key() -> None:
    ev = post_answered_event(post(), protocol.PostResult(False, "timeout"), 0.25)
    assert (ev.call_id, ev.auction_id, ev.buyer_id, ev.attempt, ev.accepted, ev.reason, ev.latency_ms) == (
        "c1",
        "a1",
        "b1",
        2,
        False,
        "timeout",
        250,
    )


def test_buyersim_post_draws_do_not_shift_the_bids() -> None:
    cfg = SimConfig.model_validate(
        {"seed": 3, "buyers": [{"id": "x", "bid": {"type": "uniform", "min": 1, "max": 99}, "post_reject_rate": 0.5}]}
    )
    a, b = Simulator(cfg), Simulator(cfg)
    buyer = a.buyers["x"]
    bids_a = []
    for _ in range(5):
        bids_a.append(a.plan(buyer).bid)
        a.plan_post(buyer)
    bids_b = [b.plan(buyer).bid for _ in range(5)]
    assert bids_a == bids_b
    rejects = [Simulator(cfg).plan_post(buyer).reject for _ in range(1)] + [a.plan_post(buyer).reject for _ in range(50)]
    assert any(rejects) and not all(rejects)
