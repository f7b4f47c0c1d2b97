"""The header every decision event about a call starts with (pure: no clock reads, no I/O).

A decision (call.routed, call.rejected, call.queued) names its call and says when it happened:
the ivr rejecting a call at the edge, the router routing, queueing or rejecting it, the queue
routing it to an agent or rejecting it all start their events with the same fields, built here:

    event_id, occurred_at      this event (the caller stamps it: codec.new_id(), codec.now_ts())
    call_id                    the call
    campaign_id, publisher_id  whose call it is (the router puts the campaign's publisher when the
                               call names none)
    call_started_at            when the call reached the tracking number (call.started)
    routing_started_at         when routing started (ivr.completed's time); absent for a call the
                               ivr rejects before routing: decision latency is measured from it

What follows the header (the target, price and attempt, the reason and announcement, the
decision trace) is the decision's own, passed to `DecisionHeader.event` as the message's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.v1 import events_pb2 as pb

Decision = TypeVar("Decision", pb.CallRouted, pb.CallRejected, pb.CallQueued)


@dataclass(frozen=True)
class DecisionHeader:
    """The call a decision is about and when that call and its routing started (module doc)."""

    call_id: str
    campaign_id: str
    publisher_id: str
    call_started_at: Timestamp
    routing_started_at: Timestamp | None = None

    @classmethod
    def of_queued(cls, queued: pb.CallQueued) -> DecisionHeader:
        """The header of a decision about a queued call: the queue's decisions carry over the router's hand-off's."""
        return cls(queued.call_id, queued.campaign_id, queued.publisher_id, queued.call_started_at, queued.routing_started_at)

    def event(self, message: type[Decision], *, event_id: str, occurred_at: Timestamp, **decision: Any) -> Decision:
        """The decision event `message` with this header, stamped `event_id` at `occurred_at`, and the `decision` fields."""
        header: dict[str, Any] = {
            "event_id": event_id,
            "call_id": self.call_id,
            "occurred_at": occurred_at,
            "call_started_at": self.call_started_at,
            "campaign_id": self.campaign_id,
            "publisher_id": self.publisher_id,
        }
        if self.routing_started_at is not None:
            header["routing_started_at"] = self.routing_started_at
        return message(**header, **decision)
