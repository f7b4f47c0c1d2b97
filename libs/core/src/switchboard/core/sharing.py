"""What the target of a call may see of it: the one data sharing rule (docs/ROUTING.md "Data sharing").

Every outlet that carries call data to a buyer asks `for_buyer` (or `for_cti_event`) and shows only what
the answer allows:

* pings (the bidder's HTTP / gRPC ping of an RTB buyer),
* posts (ping_post's post to the winner),
* offers: the offer's CTI events on cti.events (screen pop, wrap-up), the CRM webhooks made from them,
  the screen pop lookups, and the caller ID the bridged call presents (ivr).

The rule:

* an in-house agent sees everything: the caller's number, every answer, all the caller's earlier calls;
* a buyer sees the caller's number only with `share_caller_number`, and then not in a ping_post ping
  (essential data only) nor in a `direct` offer (partial application data);
* a buyer sees only the IVR answers its `share_answers` lists (absent: all of them), in its pings, posts,
  offers and in the earlier calls it is shown;
* a buyer sees of the caller's earlier calls only those offered to that same buyer (its own dealings with
  the caller, never a competitor's), and none with a `direct` offer;
* a target the rule cannot place (an event whose offer cti never saw, an unknown buyer or strategy) sees
  neither the number, nor an answer, nor an earlier call.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from enum import StrEnum

from switchboard.core.config import Buyer
from switchboard.core.strategies import STRATEGIES
from switchboard.v1 import events_pb2 as pb


class Outlet(StrEnum):
    PING = "ping"
    POST = "post"
    OFFER = "offer"  # the offered call itself and its CTI events, webhooks and lookups


class History(StrEnum):
    ALL = "all"  # every earlier call of the caller
    OWN = "own"  # the earlier calls offered to the same buyer
    NONE = "none"


@dataclass(frozen=True)
class Disclosure:
    number: bool
    answers: frozenset[str] | None  # the answer keys shown; None: all
    history: History

    def shown_answers(self, answers: Mapping[str, str]) -> dict[str, str]:
        if self.answers is None:
            return dict(answers)
        return {k: v for k, v in answers.items() if k in self.answers}

    def drop_hidden_answers(self, answers: MutableMapping[str, str]) -> None:
        """Remove from `answers` (in place: a protobuf map field) the keys this target may not see."""
        if self.answers is None:
            return
        for key in [k for k in answers if k not in self.answers]:
            del answers[key]


EVERYTHING = Disclosure(number=True, answers=None, history=History.ALL)
NOTHING = Disclosure(number=False, answers=frozenset(), history=History.NONE)


def for_buyer(buyer: Buyer | None, strategy: str, outlet: Outlet) -> Disclosure:
    """What `buyer` may see of a call reaching it through `outlet` from a tier of `strategy`."""
    kind = STRATEGIES.get(strategy)
    if buyer is None or kind is None or strategy == "queue":
        return NOTHING
    partial = kind.data_scope == "partial"
    number = buyer.share_caller_number and not partial and (outlet is not Outlet.PING or kind.caller_number_in_ping)
    answers = None if buyer.share_answers is None else frozenset(buyer.share_answers)
    return Disclosure(number=number, answers=answers, history=History.NONE if partial else History.OWN)


def for_cti_event(event: pb.CtiEvent, buyers: Mapping[str, Buyer]) -> Disclosure:
    """What the target of the offer `event` is about may see (its kind, buyer and the offer's strategy)."""
    if event.agent_id or event.kind == pb.TARGET_KIND_AGENT:
        return EVERYTHING
    if not event.buyer_id:
        return NOTHING
    return for_buyer(buyers.get(event.buyer_id), event.strategy, Outlet.OFFER)


def visible_history(event: pb.CtiEvent, shown: Disclosure, calls: list[pb.PastCall]) -> list[pb.PastCall]:
    if shown.history is History.ALL:
        return calls
    if shown.history is History.NONE:
        return []
    return [c for c in calls if c.buyer_id == event.buyer_id]


def redact(event: pb.CtiEvent, buyers: Mapping[str, Buyer]) -> None:
    """Leave on `event` only what its target may see (in place)."""
    shown = for_cti_event(event, buyers)
    if not shown.number:
        event.caller.number = ""
    shown.drop_hidden_answers(event.answers)
    kept = visible_history(event, shown, list(event.history))
    if len(kept) != len(event.history):
        del event.history[:]
        event.history.extend(kept)
    for past in event.history:
        shown.drop_hidden_answers(past.answers)
