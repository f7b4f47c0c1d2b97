"""What the target of an offer may see of the call (docs/ROUTING.md `share_caller_number`, docs/CTI.md "Data sharing").

One rule for the CTI outlets (cti.events, the CRM webhooks made from them, the screen pop lookups):

* an in-house agent sees everything: the caller's number and all the caller's earlier calls;
* a buyer sees the caller's number only with `share_caller_number`, and of the caller's earlier calls only
  those offered to that same buyer (its own dealings with the caller, never a competitor's);
* an event whose target is unknown (a wrap-up whose offer cti never saw) carries neither.

Pings and posts follow the same `share_caller_number` in the router and the bidder (engine.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from switchboard.core.config import Buyer
from switchboard.v1 import events_pb2 as pb


def may_see_number(event: pb.CtiEvent, buyers: Mapping[str, Buyer]) -> bool:
    if event.agent_id:
        return True
    buyer = buyers.get(event.buyer_id)
    return buyer is not None and buyer.share_caller_number


def visible_history(event: pb.CtiEvent, calls: list[pb.PastCall]) -> list[pb.PastCall]:
    if event.agent_id:
        return calls
    if not event.buyer_id:
        return []
    return [c for c in calls if c.buyer_id == event.buyer_id]


def redact(event: pb.CtiEvent, buyers: Mapping[str, Buyer]) -> None:
    """Leave on `event` only what its target may see (in place)."""
    if not may_see_number(event, buyers):
        event.caller.number = ""
    kept = visible_history(event, list(event.history))
    if len(kept) != len(event.history):
        del event.history[:]
        event.history.extend(kept)
