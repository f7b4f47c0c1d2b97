"""The ping-tree engine: pure decisions for one call, tier by tier. No I/O, no clock reads.

The router service (and later the simulator) drives it:

    step = start_routing(config, call, now)             # → RequestBids | HandToQueue | RejectCall
    ... the service pings step.action.buyer_ids and collects answers until all
        answered or step.action.deadline passed ...
    step = conclude_auction(config, step.progress, pinged, answers, now)
                                                        # → RouteToBuyer | RequestBids (next tier)
                                                        #   | HandToQueue | RejectCall

Every `Step` carries the `Progress` of the call (tier, attempt, decision trace,
counters) that the service keeps between events (as a JSON-able dict in a
Faust table) and hands back on the next call. Actions are commands for the
service; the engine never publishes anything itself.

Strategies live in `STRATEGIES` (name → TierStrategy). The walking skeleton
implements `price` and the `queue` hand-off; the others reject the call with
reason `unsupported_strategy` until they are added in the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from google.protobuf import json_format

from switchboard.core.config import Buyer, Campaign, Publisher, RoutingConfig, Tier
from switchboard.core.eligibility import CallFacts, Exclusion, buyer_exclusion, price_floor_exclusion
from switchboard.v1 import events_pb2 as pb

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class BidAnswer:
    """One buyer's answer to a ping, as the engine needs it (from a bid.received event)."""

    buyer_id: str
    outcome: str  # "bid" | "decline" | "no_bid"
    amount: Decimal | None = None
    reason: str = ""
    latency_ms: int = 0
    available: bool = False

    @classmethod
    def from_pb(cls, bid: pb.BidReceived) -> BidAnswer:
        outcome = {pb.BID_OUTCOME_BID: "bid", pb.BID_OUTCOME_DECLINE: "decline"}.get(bid.outcome, "no_bid")
        amount: Decimal | None = None
        reason = bid.reason
        if outcome == "bid":
            try:
                amount = Decimal(bid.amount)
                if not amount.is_finite() or amount < 0:
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                outcome, amount, reason = "no_bid", None, f"malformed amount {bid.amount!r}"
        return cls(bid.buyer_id, outcome, amount, reason, bid.latency_ms, bid.available)


# ---------------------------------------------------------------- actions (commands for the service)


@dataclass(frozen=True)
class RequestBids:
    """Ping these buyers for one tier; conclude when all answered or at `deadline`."""

    tier_index: int
    attempt: int
    strategy: str
    buyer_ids: tuple[str, ...]
    deadline: datetime


@dataclass(frozen=True)
class RouteToBuyer:
    """Terminal: the call is sold to `buyer_id` at `price` and bridged to `destination`."""

    buyer_id: str
    destination: str
    price: Decimal
    tier_index: int
    attempt: int
    strategy: str


@dataclass(frozen=True)
class HandToQueue:
    """The call goes to an in-house ACD queue (the queue service owns it from here)."""

    queue_id: str
    tier_index: int
    attempt: int


@dataclass(frozen=True)
class RejectCall:
    """Terminal: nobody takes the call."""

    reason: str
    detail: str
    announcement: str


Action = RequestBids | RouteToBuyer | HandToQueue | RejectCall

ANNOUNCEMENTS = {
    "outside_hours": "Thank you for calling. Our partners are closed right now. Please call again during business hours.",
    "unknown_campaign": "We're sorry, this number is not in service.",
}
DEFAULT_ANNOUNCEMENT = "Thank you for calling. No one is available to take your call right now. Please try again later."


# ---------------------------------------------------------------- progress (state between events)


@dataclass
class Progress:
    """Where one call is in its ping tree. JSON-able via to_dict/from_dict."""

    call: CallFacts
    tier_index: int = 0
    attempt: int = 1
    trace: pb.DecisionTrace = field(default_factory=lambda: pb.DecisionTrace(winning_tier=-1))
    eligible_seen: int = 0  # buyers found eligible in any tier
    answers_seen: int = 0  # answers received (bid, decline or no-bid)
    declines_seen: int = 0
    exclusion_rules: list[str] = field(default_factory=list)  # one per excluded buyer, any tier

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call.to_dict(),
            "tier_index": self.tier_index,
            "attempt": self.attempt,
            "trace": json_format.MessageToDict(self.trace, preserving_proto_field_name=True),
            "eligible_seen": self.eligible_seen,
            "answers_seen": self.answers_seen,
            "declines_seen": self.declines_seen,
            "exclusion_rules": list(self.exclusion_rules),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Progress:
        trace = json_format.ParseDict(d.get("trace") or {}, pb.DecisionTrace())
        return cls(
            call=CallFacts.from_dict(d["call"]),
            tier_index=int(d["tier_index"]),
            attempt=int(d["attempt"]),
            trace=trace,
            eligible_seen=int(d.get("eligible_seen", 0)),
            answers_seen=int(d.get("answers_seen", 0)),
            declines_seen=int(d.get("declines_seen", 0)),
            exclusion_rules=list(d.get("exclusion_rules", [])),
        )


@dataclass(frozen=True)
class Step:
    action: Action
    progress: Progress


# ---------------------------------------------------------------- strategies


class TierStrategy(Protocol):
    name: str

    def to_ping(self, tier: Tier, eligible: Sequence[Buyer]) -> list[str]:
        """Which eligible buyers to ping, in order."""

    def rank(self, tier: Tier, usable: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
        """Offer order among the usable bids (buyer id → amount at or above the floor)."""


class PriceStrategy:
    """`price`: the highest bid (static price or bid received) wins; ties go by config order."""

    name = "price"

    def to_ping(self, tier: Tier, eligible: Sequence[Buyer]) -> list[str]:
        return [b.id for b in eligible]

    def rank(self, tier: Tier, usable: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
        order = {b: i for i, b in enumerate(tier.buyers)}
        return sorted(usable.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order))))


STRATEGIES: dict[str, TierStrategy] = {"price": PriceStrategy()}


# ---------------------------------------------------------------- the engine


def start_routing(config: RoutingConfig, call: CallFacts, now: datetime) -> Step:
    """First decision for a call that finished its IVR."""
    progress = Progress(call=call)
    try:
        config.campaign(call.campaign_id)
    except StopIteration:
        return _reject(progress, "unknown_campaign", f"campaign {call.campaign_id!r} is not configured")
    if _publisher(config, progress) is None:
        return _reject(progress, "unknown_publisher", f"publisher {call.publisher_id!r} is not configured")
    return _advance(config, progress, now)


def auction_complete(pinged: Sequence[str], answers: Mapping[str, Any]) -> bool:
    """Every pinged buyer answered (the service may conclude before the deadline)."""
    return all(b in answers for b in pinged)


def conclude_auction(
    config: RoutingConfig,
    progress: Progress,
    pinged: Sequence[str],
    answers: Mapping[str, BidAnswer],
    now: datetime,
) -> Step:
    """Decide the tier whose pings are answered (or whose deadline passed); fall through when nobody takes it."""
    campaign = config.campaign(progress.call.campaign_id)
    publisher = _publisher(config, progress)
    assert publisher is not None, "checked in start_routing"
    tier = campaign.routing.tiers[progress.tier_index]
    strategy = STRATEGIES[tier.strategy]
    entries = {
        e.target_id: e
        for e in progress.trace.entries
        if e.tier_index == progress.tier_index and e.attempt == progress.attempt
    }
    usable: dict[str, Decimal] = {}
    for buyer_id in pinged:
        entry = entries.get(buyer_id)
        if entry is None:  # pinged but unknown to the trace: record it anyway
            entry = entries[buyer_id] = _entry(progress, buyer_id)
        answer = answers.get(buyer_id) or BidAnswer(buyer_id, "no_bid", reason="timeout")
        progress.answers_seen += 1
        entry.bid_reason = answer.reason
        entry.bid_latency_ms = answer.latency_ms
        if answer.outcome == "bid" and answer.amount is not None:
            entry.bid_outcome = pb.BID_OUTCOME_BID
            entry.bid_amount = f"{answer.amount:.2f}"
            below = price_floor_exclusion(answer.amount, publisher)
            if below:
                _exclude(progress, entry, below)
            else:
                usable[buyer_id] = answer.amount
        elif answer.outcome == "decline":
            entry.bid_outcome = pb.BID_OUTCOME_DECLINE
            progress.declines_seen += 1
        else:
            entry.bid_outcome = pb.BID_OUTCOME_NO_BID
    ranked = strategy.rank(tier, usable)
    label = _label(progress, tier)
    if ranked:
        buyer_id, price = ranked[0]
        entries[buyer_id].winner = True
        progress.trace.winning_tier = progress.tier_index
        progress.trace.winning_attempt = progress.attempt
        progress.trace.notes.append(f"{label}: {buyer_id} wins at {price:.2f} ({len(usable)} usable bid(s))")
        buyer = config.buyer(buyer_id)
        action = RouteToBuyer(buyer_id, buyer.destination, price, progress.tier_index, progress.attempt, tier.strategy)
        return Step(action, progress)
    progress.trace.notes.append(f"{label}: no bid at or above the floor {publisher.min_price:.2f}")
    progress.tier_index += 1
    return _advance(config, progress, now)


def _advance(config: RoutingConfig, progress: Progress, now: datetime) -> Step:
    """Walk the tiers from progress.tier_index until one needs pings, hands off, or all are exhausted."""
    campaign: Campaign = config.campaign(progress.call.campaign_id)
    publisher = _publisher(config, progress)
    assert publisher is not None
    tiers = campaign.routing.tiers
    while progress.tier_index < len(tiers):
        tier = tiers[progress.tier_index]
        label = _label(progress, tier)
        if tier.strategy == "queue":
            assert tier.queue is not None
            progress.trace.notes.append(f"{label}: handed to queue {tier.queue}")
            return Step(HandToQueue(tier.queue, progress.tier_index, progress.attempt), progress)
        strategy = STRATEGIES.get(tier.strategy)
        if strategy is None:
            return _reject(
                progress, "unsupported_strategy", f"tier {progress.tier_index} strategy {tier.strategy!r} is not yet supported"
            )
        eligible: list[Buyer] = []
        for buyer_id in tier.buyers:
            buyer = config.buyer(buyer_id)
            entry = _entry(progress, buyer_id)
            why = buyer_exclusion(buyer, publisher, progress.call, now)
            if why:
                _exclude(progress, entry, why)
            else:
                entry.eligible = True
                eligible.append(buyer)
        progress.eligible_seen += len(eligible)
        to_ping = strategy.to_ping(tier, eligible)
        if to_ping:
            progress.trace.notes.append(f"{label}: pinging {', '.join(to_ping)}")
            deadline = now + timedelta(milliseconds=campaign.routing.timeout_ms)
            action = RequestBids(progress.tier_index, progress.attempt, tier.strategy, tuple(to_ping), deadline)
            return Step(action, progress)
        progress.trace.notes.append(f"{label}: no eligible buyer")
        progress.tier_index += 1
    return _exhausted(progress)


def _exhausted(progress: Progress) -> Step:
    if progress.eligible_seen == 0:
        rules = set(progress.exclusion_rules)
        if rules == {"schedule"}:
            return _reject(progress, "outside_hours", "every buyer is outside its schedule")
        return _reject(progress, "no_eligible_buyer", "no buyer passed eligibility in any tier")
    if progress.answers_seen and progress.declines_seen == progress.answers_seen:
        return _reject(progress, "all_declined", "every pinged buyer declined")
    return _reject(progress, "no_bid", "no bid at or above the floor in any tier")


def _reject(progress: Progress, reason: str, detail: str) -> Step:
    progress.trace.winning_tier = -1
    progress.trace.notes.append(f"rejected: {reason}: {detail}")
    return Step(RejectCall(reason, detail, ANNOUNCEMENTS.get(reason, DEFAULT_ANNOUNCEMENT)), progress)


def _publisher(config: RoutingConfig, progress: Progress) -> Publisher | None:
    """The event's publisher, or the campaign's when the event names none."""
    publisher_id = progress.call.publisher_id or config.campaign(progress.call.campaign_id).publisher
    try:
        return config.publisher(publisher_id)
    except StopIteration:
        return None


def _entry(progress: Progress, buyer_id: str) -> pb.TraceEntry:
    return progress.trace.entries.add(
        target_id=buyer_id, kind=pb.TARGET_KIND_BUYER, tier_index=progress.tier_index, attempt=progress.attempt
    )


def _exclude(progress: Progress, entry: pb.TraceEntry, why: Exclusion) -> None:
    entry.eligible = False
    entry.excluded_by = why.rule
    entry.detail = why.detail
    progress.exclusion_rules.append(why.rule)


def _label(progress: Progress, tier: Tier) -> str:
    return f"tier {progress.tier_index} {tier.strategy}"
