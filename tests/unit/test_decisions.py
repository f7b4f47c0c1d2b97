"""core.decisions: the header of call.routed / call.rejected / call.queued, built once for every producer."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core.decisions import DecisionHeader
from switchboard.v1 import events_pb2 as pb


def ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


HEADER = DecisionHeader("c1", "camp", "pub", call_started_at=ts(100), routing_started_at=ts(105))


def test_every_decision_event_starts_with_the_header() -> None:
    for message in (pb.CallRouted, pb.CallRejected, pb.CallQueued):
        event = HEADER.event(message, event_id="e1", occurred_at=ts(110))
        assert isinstance(event, message)
        assert (event.event_id, event.call_id, event.campaign_id, event.publisher_id) == ("e1", "c1", "camp", "pub")
        assert (event.occurred_at, event.call_started_at, event.routing_started_at) == (ts(110), ts(100), ts(105))


def test_the_decision_fields_follow_the_header() -> None:
    trace = pb.DecisionTrace(winning_tier=-1, notes=["rejected: no_bid: nobody"])
    rejected = HEADER.event(
        pb.CallRejected, event_id="e2", occurred_at=ts(111), reason="no_bid", detail="nobody", announcement="bye", trace=trace
    )
    assert (rejected.reason, rejected.detail, rejected.announcement, rejected.trace) == ("no_bid", "nobody", "bye", trace)
    routed = HEADER.event(pb.CallRouted, event_id="e3", occurred_at=ts(112), kind=pb.TARGET_KIND_AGENT, agent_id="a1", attempt=2)
    assert (routed.kind, routed.agent_id, routed.attempt, routed.call_id) == (pb.TARGET_KIND_AGENT, "a1", 2, "c1")


def test_a_call_rejected_before_routing_has_no_routing_start() -> None:
    event = DecisionHeader("c1", "camp", "pub", ts(100)).event(pb.CallRejected, event_id="e1", occurred_at=ts(101))
    assert not event.HasField("routing_started_at") and event.HasField("call_started_at")


def test_the_queue_carries_the_hand_offs_header_over() -> None:
    queued = pb.CallQueued(
        event_id="q1",
        call_id="c9",
        occurred_at=ts(50),
        call_started_at=ts(40),
        campaign_id="camp",
        publisher_id="pub",
        queue_id="sales",
        routing_started_at=ts(45),
        attempt=1,
    )
    header = DecisionHeader.of_queued(queued)
    assert header == DecisionHeader("c9", "camp", "pub", ts(40), ts(45))
    event = header.event(pb.CallRejected, event_id="e1", occurred_at=ts(60), reason="abandoned")
    expected = pb.CallRejected(
        event_id="e1",
        call_id="c9",
        occurred_at=ts(60),
        call_started_at=ts(40),
        campaign_id="camp",
        publisher_id="pub",
        routing_started_at=ts(45),
        reason="abandoned",
    )
    assert event.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
