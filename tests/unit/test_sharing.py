"""core.sharing: what a call's target may see of it on every outlet (pings, posts, offers and their CTI events)."""

from __future__ import annotations

import pytest

from switchboard.core import sharing
from switchboard.core.config import RoutingConfig
from switchboard.core.sharing import History, Outlet
from switchboard.core.strategies import STRATEGIES
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
            {
                "id": "picky",
                "destination": "+18005550102",
                "share_caller_number": True,
                "share_answers": ["zip"],
                "bid": {"type": "static", "price": "40.00"},
            },
        ]
    }
)
BUYERS = {b.id: b for b in CFG.buyers}
ANSWERS = {"zip": "90210", "homeowner": "yes", "credit_score": "710"}
PAST = [
    pb.PastCall(call_id="p1", buyer_id="private", answers=ANSWERS),
    pb.PastCall(call_id="p2", buyer_id="sharer", answers=ANSWERS),
    pb.PastCall(call_id="p3", agent_id="ana", answers=ANSWERS),
    pb.PastCall(call_id="p4", buyer_id="picky", answers=ANSWERS),
]
# Which outlets each strategy uses to reach a buyer: pings for the auctions, posts for ping_post, offers for all.
OUTLETS = [
    (name, outlet)
    for name, kind in sorted(STRATEGIES.items())
    for outlet in (Outlet.OFFER, *([Outlet.PING] if kind.auction else []), *([Outlet.POST] if kind.post else []))
]


def pop(strategy: str = "price", **target: str) -> pb.CtiEvent:
    return pb.CtiEvent(
        call_id="c",
        caller=pb.Caller(number="+13105551234", state="CA"),
        answers=ANSWERS,
        history=PAST,
        strategy=strategy,
        **target,
    )


@pytest.mark.parametrize(("strategy", "outlet"), OUTLETS)
def test_no_outlet_of_any_strategy_shows_the_number_to_a_buyer_without_share_caller_number(strategy: str, outlet: Outlet):
    assert not sharing.for_buyer(BUYERS["private"], strategy, outlet).number
    shared = sharing.for_buyer(BUYERS["sharer"], strategy, outlet).number
    # essential data only in ping_post's pings; partial application data in direct's offers
    assert shared == (not (strategy == "ping_post" and outlet is Outlet.PING) and strategy != "direct")


def test_every_strategy_with_pings_or_posts_is_covered():
    assert {s for s, o in OUTLETS if o is Outlet.PING} == {
        "price",
        "parallel_highest",
        "parallel_first",
        "ping_post",
        "availability",
    }
    assert {s for s, o in OUTLETS if o is Outlet.POST} == {"ping_post"}


def test_share_answers_is_an_allowlist_on_every_outlet_absent_means_all():
    for strategy, outlet in OUTLETS:
        assert sharing.for_buyer(BUYERS["picky"], strategy, outlet).shown_answers(ANSWERS) == {"zip": "90210"}
        assert sharing.for_buyer(BUYERS["private"], strategy, outlet).shown_answers(ANSWERS) == ANSWERS


def test_a_buyer_without_share_caller_number_sees_no_number_and_only_its_own_past_calls():
    ev = pop(buyer_id="private")
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "" and ev.caller.state == "CA"
    assert [c.call_id for c in ev.history] == ["p1"]


def test_a_sharing_buyer_sees_the_number_and_its_own_past_calls():
    ev = pop(buyer_id="sharer")
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "+13105551234" and [c.call_id for c in ev.history] == ["p2"]


def test_share_answers_trims_the_pop_and_the_earlier_calls_shown():
    ev = pop(buyer_id="picky")
    sharing.redact(ev, BUYERS)
    assert dict(ev.answers) == {"zip": "90210"}
    assert [(c.call_id, dict(c.answers)) for c in ev.history] == [("p4", {"zip": "90210"})]


def test_direct_shows_partial_application_data_no_number_no_earlier_calls():
    ev = pop("direct", buyer_id="sharer")
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "" and ev.caller.state == "CA" and not ev.history
    assert dict(ev.answers) == ANSWERS
    assert sharing.for_buyer(BUYERS["sharer"], "direct", Outlet.OFFER).history is History.NONE


def test_an_in_house_agent_sees_everything_and_an_unknown_target_nothing():
    ev = pop("queue", agent_id="ana", kind=pb.TARGET_KIND_AGENT)
    sharing.redact(ev, BUYERS)
    assert ev.caller.number == "+13105551234" and [c.call_id for c in ev.history] == ["p1", "p2", "p3", "p4"]
    assert dict(ev.answers) == ANSWERS
    # a wrap-up whose offer was never seen; a buyer no longer configured; an offer of an unknown strategy
    for unknown in (pop(""), pop(buyer_id="gone"), pop("", buyer_id="sharer")):
        sharing.redact(unknown, BUYERS)
        assert unknown.caller.number == "" and not unknown.answers and not unknown.history
