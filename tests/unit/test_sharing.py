"""core.sharing: what an offer's target may see of the call on the CTI outlets (pops, wrap-ups, webhooks, lookups)."""

from __future__ import annotations

from switchboard.core import sharing
from switchboard.core.config import RoutingConfig
from switchboard.v1 import events_pb2 as pb

CFG = RoutingConfig.model_validate(
    {
        "buyers": [
            {"id": "private", "destination": "+18005550100", "bid": {"type": "static", "price": "40.00"}},
            {
                "id": "sharer",
                "destination": "+18005550101",
                "share_caller_number": True,
                "bid": {"type": "static", "price": "40.00"},
            },
        ]
    }
)
BUYERS = {b.id: b for b in CFG.buyers}
PAST = [
    pb.PastCall(call_id="p1", buyer_id="private"),
    pb.PastCall(call_id="p2", buyer_id="sharer"),
    pb.PastCall(call_id="p3", agent_id="ana"),
]


def pop(**target: str) -> pb.CtiEvent:
    return pb.CtiEvent(call_id="c", caller=pb.Caller(number="+13105551234", state="CA"), history=PAST, **target)


def test_a_buyer_without_share_caller_number_sees_no_number_and_only_its_own_past_calls():
    ev = pop(buyer_id="private")
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "" and ev.caller.state == "CA"
    assert [c.call_id for c in ev.history] == ["p1"]


def test_a_sharing_buyer_sees_the_number_and_its_own_past_calls():
    ev = pop(buyer_id="sharer")
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "+13105551234" and [c.call_id for c in ev.history] == ["p2"]


def test_an_in_house_agent_sees_everything_and_an_unknown_target_nothing():
    ev = pop(agent_id="ana")
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "+13105551234" and [c.call_id for c in ev.history] == ["p1", "p2", "p3"]
    for unknown in (pop(), pop(buyer_id="gone")):  # a wrap-up whose offer was never seen; a buyer no longer configured
        sharing.redact(unknown, BUYERS)
        assert unknown.caller.number == ""
    assert list(pop().history) and not sharing.visible_history(pop(), list(PAST))
