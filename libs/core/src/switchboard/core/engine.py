"""The ping-tree engine: pure decisions for one call, tier by tier. No I/O, no clock reads.

The router service (and the simulator) drives it; every entry point takes the
time `now` and a read-only `Ledger` snapshot of buyer state (core.ledger;
default: empty, no calls and no history) and returns a `Step`:

    step = start_routing(config, call, now, ledger)
        → RequestBids      ping step.action.buyer_ids; collect BidAnswers (in arrival order)
                           until can_conclude_early(...) or the deadline, then:
    step = conclude_auction(config, step.progress, pinged, answers, now, ledger)
        → RouteToBuyer     offer: bridge the call to the buyer at `price`
        → PostToBuyer      ping_post: send the post; its answer goes to
                           post_answered(config, progress, accepted, now, ledger)
        → RequestBids      the next tier (fall-through)
        → HandToQueue      a queue tier: the queue service owns the call
        → RejectCall       terminal, with a reason
    step = offer_failed(config, progress, outcome, now, ledger)
        the offer (RouteToBuyer) was rejected / not answered / busy / failed, or
        the buyer hung up before billable_after_s → the next candidate of the
        tier's ranking, then the next tier, up to routing.max_attempts offers;
        a caller hang-up ends the call (RejectCall "abandoned").
    step = caller_left(progress, while_)
        the caller hung up before any offer reached them (pings, a post or a
        reservation in flight, or before routing began) → RejectCall "abandoned";
        whatever answers later is stale.
    step = reservation_denied(config, progress, rule, detail, now, ledger)
        the RouteToBuyer could not take its slot in the exact buyer state (a cap
        filled meanwhile, seen by the single writer of that buyer's state): the
        offer is withdrawn without using an attempt → the next candidate.

Tier kinds (core.strategies): auction strategies (price, parallel_highest,
parallel_first, ping_post, availability) return RequestBids and rank the
answers; standing-price strategies (priority, weight, even, direct) rank at once
and return the first offer without a ping; `queue` hands off.

Eligibility (core.eligibility, rule order in its docstring) runs when a tier
starts, with the ledger's loads, and again for each candidate right before it
is offered, with the actual price and the ledger at that moment, so a buyer is
never offered a call while ineligible (caps filled meanwhile, schedule closed,
budget too small for this price).

A buyer whose offer failed is not offered the same call again: in later tiers
it is traced as excluded by "already_offered" (checked before the eligibility
rules).

Offers and attempts: every RouteToBuyer or PostToBuyer is one offer;
`attempt` is the offer's number (1-based). At most routing.max_attempts offers
per call; a failure with no attempts left rejects with reason "max_attempts".
A ping_post post that is accepted becomes a RouteToBuyer of the same attempt.

State between events: `Progress` (JSON-able, to_dict/from_dict) carries the
tier, the attempt, the remaining ranked candidates of the current tier, the
offer in flight and the decision trace. The service applies the ledger
transitions for each action it carries out (see core.ledger): RouteToBuyer →
call_routed (+ swrr_routed with the action's weight_pool for weight tiers);
a failed offer or call end → call_ended; a bid answer → bid_placed.

Decision trace (events_pb2.DecisionTrace): one TraceEntry per buyer per tier
considered: eligible, or the first rule that excluded it (`excluded_by`,
`detail`); its bid/decline/no-bid with reason and latency (standing-price tiers
record the standing price); `winner` on exactly the entry of the buyer the call
is routed to, with winning_tier/winning_attempt; -1 and no winner otherwise.
An offer that failed keeps `winner` false and says why in `detail`. A buyer
excluded at offer time gets a new entry with that offer's attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf import json_format

from switchboard.core import reasons, sharing
from switchboard.core.call_end import CALLER_HANGUP, OFFER_FAILURES
from switchboard.core.config import (
    Buyer,
    Campaign,
    Publisher,
    RoutingConfig,
    StaticBid,
    Tier,
)
from switchboard.core.eligibility import (
    CallFacts,
    Exclusion,
    buyer_exclusion,
    price_floor_exclusion,
)
from switchboard.core.ledger import EMPTY_LEDGER, Ledger, tier_key
from switchboard.core.strategies import STRATEGIES, Offerable, RankContext, Strategy
from switchboard.v1 import events_pb2 as pb

__all__ = [
    "STRATEGIES",
    "Action",
    "BidAnswer",
    "HandToQueue",
    "PostToBuyer",
    "Progress",
    "RejectCall",
    "RequestBids",
    "RouteToBuyer",
    "Step",
    "auction_complete",
    "caller_left",
    "can_conclude_early",
    "conclude_auction",
    "has_later_tier",
    "offer_failed",
    "post_answered",
    "reservation_denied",
    "resume_after_queue",
    "start_routing",
]

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class BidAnswer:
    """One buyer's answer to a ping, as the engine needs it (from a bid.received event).

    `seq` is the arrival order (0 first). When every answer has the same seq,
    the order of the answers mapping is the arrival order (the router keeps
    them in a dict in the order they came).
    """

    buyer_id: str
    outcome: str  # "bid" | "decline" | "no_bid"
    amount: Decimal | None = None
    reason: str = ""
    latency_ms: int = 0
    available: bool = False
    seq: int = 0

    @classmethod
    def from_pb(cls, bid: pb.BidReceived, seq: int = 0) -> BidAnswer:
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
        return cls(bid.buyer_id, outcome, amount, reason, bid.latency_ms, bid.available, seq)


# The bidder stops waiting for RTB buyers this long before a ping's (or post's) deadline, so an
# answer still has time to be published and reach the router. The bidder's setting defaults to
# it (SWITCHBOARD_BIDDER_DEADLINE_MARGIN_MS) and the simulator models it.
DEADLINE_MARGIN_MS = 50


# ---------------------------------------------------------------- actions (commands for the service)


@dataclass(frozen=True)
class RequestBids:
    """Ping these buyers for one tier; conclude when can_conclude_early() or at `deadline`.

    `caller_number_to`: the pinged buyers whose ping may carry the caller number
    (core.sharing: share_caller_number, never for ping_post).
    """

    tier_index: int
    attempt: int
    strategy: str
    buyer_ids: tuple[str, ...]
    deadline: datetime
    caller_number_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteToBuyer:
    """An offer: bridge the call to `buyer_id` at `price`. The sale stands unless offer_failed() follows.

    `weight_pool` (weight tiers): the (buyer id, weight) pool of this pick, for
    ledger.swrr_routed under `tier_key`. What the buyer is shown with the call is
    core.sharing's (by `strategy`).
    """

    buyer_id: str
    destination: str
    price: Decimal
    tier_index: int
    attempt: int
    strategy: str
    tier_key: str = ""
    weight_pool: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class PostToBuyer:
    """ping_post: post the call with full data to the winning bidder; answer with post_answered()."""

    buyer_id: str
    destination: str
    price: Decimal
    include_caller_number: bool
    tier_index: int
    attempt: int
    strategy: str = "ping_post"


@dataclass(frozen=True)
class HandToQueue:
    """The call goes to an in-house ACD queue (the queue service owns it from here)."""

    queue_id: str
    tier_index: int
    attempt: int


@dataclass(frozen=True)
class RejectCall:
    """Terminal: nobody takes the call (or the caller hung up: reason "abandoned").

    `reason` is one of core.reasons.ROUTING_REASONS; `announcement` is core.reasons.announcement(reason).
    """

    reason: str
    detail: str
    announcement: str


Action = RequestBids | RouteToBuyer | PostToBuyer | HandToQueue | RejectCall

# ---------------------------------------------------------------- progress (state between events)


@dataclass
class Progress:
    """Where one call is in its ping tree. JSON-able via to_dict/from_dict.

    candidates:   the rest of the current tier's ranking, best first, as
                  {"buyer_id", "price", "order", "arrival", "available"}.
    offer:        the offer in flight, {"buyer_id", "price", "kind": "route"|"post"}, or None.
    auction:      the ping in flight, {"strategy", "pick", "floor", "deadline"}, or None
                  (what can_conclude_early needs without the config).
    """

    call: CallFacts
    tier_index: int = 0
    attempt: int = 1
    trace: pb.DecisionTrace = field(default_factory=lambda: pb.DecisionTrace(winning_tier=-1))
    eligible_seen: int = 0  # buyers found eligible in any tier
    answers_seen: int = 0  # answers received (bid, decline or no-bid)
    declines_seen: int = 0
    exclusion_rules: list[str] = field(default_factory=list)  # one per excluded buyer, any tier
    offers_made: int = 0
    offers_failed: int = 0
    candidates_seen: int = 0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    offer: dict[str, Any] | None = None
    auction: dict[str, Any] | None = None
    tried: list[str] = field(default_factory=list)  # buyers whose offer failed in this call
    done: bool = False  # a terminal action (RouteToBuyer that stood, RejectCall, HandToQueue) was returned

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
            "offers_made": self.offers_made,
            "offers_failed": self.offers_failed,
            "candidates_seen": self.candidates_seen,
            "candidates": [dict(c) for c in self.candidates],
            "offer": None if self.offer is None else dict(self.offer),
            "auction": None if self.auction is None else dict(self.auction),
            "tried": list(self.tried),
            "done": self.done,
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
            offers_made=int(d.get("offers_made", 0)),
            offers_failed=int(d.get("offers_failed", 0)),
            candidates_seen=int(d.get("candidates_seen", 0)),
            candidates=[dict(c) for c in d.get("candidates") or []],
            offer=None if d.get("offer") is None else dict(d["offer"]),
            auction=None if d.get("auction") is None else dict(d["auction"]),
            tried=list(d.get("tried", [])),
            done=bool(d.get("done", False)),
        )


@dataclass(frozen=True)
class Step:
    action: Action
    progress: Progress


# ---------------------------------------------------------------- entry points


def start_routing(config: RoutingConfig, call: CallFacts, now: datetime, ledger: Ledger = EMPTY_LEDGER) -> Step:
    """First decision for a call that finished its IVR."""
    progress = Progress(call=call)
    try:
        config.campaign(call.campaign_id)
    except StopIteration:
        return _reject(progress, reasons.UNKNOWN_CAMPAIGN, f"campaign {call.campaign_id!r} is not configured")
    if _publisher(config, progress) is None:
        return _reject(progress, reasons.UNKNOWN_PUBLISHER, f"publisher {call.publisher_id!r} is not configured")
    return _advance(config, progress, now, ledger)


def has_later_tier(config: RoutingConfig, campaign_id: str, tier_index: int) -> bool:
    """The campaign has tiers after `tier_index`: a queue tier's call can overflow to them (core.acd)."""
    try:
        return tier_index + 1 < len(config.campaign(campaign_id).routing.tiers)
    except StopIteration:
        return False


def resume_after_queue(
    config: RoutingConfig,
    call: CallFacts,
    from_tier: int,
    attempt: int,
    trace: pb.DecisionTrace,
    now: datetime,
    ledger: Ledger = EMPTY_LEDGER,
) -> Step:
    """Routing goes on after a queue tier gave the call back (overflow, docs/ACD.md): the tiers after
    `from_tier` in order, as if the queue tier had found nobody, with the offers already made counted
    (`attempt` is the next offer's number) so routing.max_attempts bounds the whole call."""
    progress = Progress(call=call, tier_index=from_tier + 1, attempt=max(1, attempt), offers_made=max(0, attempt - 1))
    progress.trace.CopyFrom(trace)
    progress.trace.winning_tier = -1
    progress.trace.winning_attempt = 0
    for e in progress.trace.entries:
        e.winner = False
    try:
        config.campaign(call.campaign_id)
    except StopIteration:
        return _reject(progress, reasons.UNKNOWN_CAMPAIGN, f"campaign {call.campaign_id!r} is not configured")
    if _publisher(config, progress) is None:
        return _reject(progress, reasons.UNKNOWN_PUBLISHER, f"publisher {call.publisher_id!r} is not configured")
    return _advance(config, progress, now, ledger)


def auction_complete(pinged: Sequence[str], answers: Mapping[str, Any]) -> bool:
    """Every pinged buyer answered (the service may conclude before the deadline)."""
    return all(b in answers for b in pinged)


def can_conclude_early(progress: Progress, pinged: Sequence[str], answers: Mapping[str, Any]) -> bool:
    """May the service conclude now, before the deadline? When everyone answered, or for
    parallel_first with pick first_response as soon as one qualified answer (a bid at or above
    the floor) is in. Answers are BidAnswers or the router's dicts ({"outcome", "amount", ...})."""
    if auction_complete(pinged, answers):
        return True
    auction = progress.auction or {}
    if not auction.get("early"):
        return False
    floor = Decimal(auction.get("floor", "0"))
    for buyer_id in pinged:
        a = answers.get(buyer_id)
        if a is None:
            continue
        outcome = a.outcome if isinstance(a, BidAnswer) else a.get("outcome")
        amount = a.amount if isinstance(a, BidAnswer) else a.get("amount")
        if outcome == "bid" and amount is not None and Decimal(str(amount)) >= floor:
            return True
    return False


def conclude_auction(
    config: RoutingConfig,
    progress: Progress,
    pinged: Sequence[str],
    answers: Mapping[str, BidAnswer],
    now: datetime,
    ledger: Ledger = EMPTY_LEDGER,
) -> Step:
    """Rank the answers of the tier in flight and make the first offer; fall through when nobody takes it."""
    campaign = config.campaign(progress.call.campaign_id)
    publisher = _publisher(config, progress)
    assert publisher is not None, "checked in start_routing"
    tier = campaign.routing.tiers[progress.tier_index]
    strategy = STRATEGIES[tier.strategy]
    auction = progress.auction or {}
    deadline = datetime.fromisoformat(auction["deadline"]) if auction.get("deadline") else None
    # Only an early-pick tier concludes on purpose before its deadline; anything else missing timed out.
    waited = not auction.get("early") or deadline is None or now >= deadline
    progress.auction = None
    entries: dict[str, pb.TraceEntry] = {}
    for e in progress.trace.entries:
        if e.tier_index == progress.tier_index and e.attempt == progress.attempt:
            entries[e.target_id] = e
    # Arrival order: by seq, then the order of the answers mapping.
    arrival = {b: i for i, b in enumerate(sorted(answers, key=lambda b: (answers[b].seq, list(answers).index(b))))}
    order = {b: i for i, b in enumerate(tier.buyers)}
    offers: list[Offerable] = []
    for buyer_id in pinged:
        entry = entries.get(buyer_id)
        if entry is None:  # pinged but unknown to the trace: record it anyway
            entry = entries[buyer_id] = _entry(progress, buyer_id)
        answer = answers.get(buyer_id)
        if answer is None:
            answer = BidAnswer(buyer_id, "no_bid", reason=reasons.TIMEOUT if waited else "not waited for: concluded early")
        progress.answers_seen += 1
        entry.bid_reason = answer.reason
        entry.bid_latency_ms = answer.latency_ms
        if answer.outcome == "bid" and answer.amount is not None:
            entry.bid_outcome = pb.BID_OUTCOME_BID
            entry.bid_amount = f"{answer.amount:.2f}"
            below = price_floor_exclusion(answer.amount, publisher)
            if below:
                _exclude(progress, entry, below)
                continue
            try:
                buyer = config.buyer(buyer_id)
            except StopIteration:
                continue
            offer = Offerable(buyer, answer.amount, order.get(buyer_id, len(order)), arrival.get(buyer_id, 0), answer.available)
            unusable = strategy.usable(offer)
            if unusable:
                entry.bid_reason = f"{answer.reason}; {unusable}" if answer.reason else unusable
                continue
            offers.append(offer)
        elif answer.outcome == "decline":
            entry.bid_outcome = pb.BID_OUTCOME_DECLINE
            progress.declines_seen += 1
        else:
            entry.bid_outcome = pb.BID_OUTCOME_NO_BID
    ranked = strategy.rank(tier, offers, RankContext(ledger, tier_key(campaign.id, progress.tier_index)))
    progress.trace.notes.append(
        f"{_label(progress, tier)}: {len(offers)} usable bid(s), ranked {', '.join(o.buyer.id for o in ranked) or '-'}"
    )
    progress.candidates = [_cand(o) for o in ranked]
    progress.candidates_seen += len(ranked)
    return _offer_next(config, progress, now, ledger)


def post_answered(
    config: RoutingConfig,
    progress: Progress,
    accepted: bool,
    now: datetime,
    ledger: Ledger = EMPTY_LEDGER,
    reason: str = "",
) -> Step:
    """ping_post: the posted buyer accepted (→ RouteToBuyer, same attempt) or rejected (→ the next highest bid)."""
    offer = progress.offer
    if offer is None or offer.get("kind") != "post":
        raise ValueError("post_answered without a post in flight")
    if not accepted:
        return offer_failed(config, progress, "post_rejected", now, ledger, detail=reason)
    campaign = config.campaign(progress.call.campaign_id)
    publisher = _publisher(config, progress)
    assert publisher is not None
    tier = campaign.routing.tiers[progress.tier_index]
    buyer = config.buyer(offer["buyer_id"])
    price = Decimal(offer["price"])
    # The buyer's load may have changed since the post: check again before bridging.
    why = buyer_exclusion(buyer, publisher, progress.call, now, ledger.buyer_load(buyer.id), price)
    if why:
        entry = _entry(progress, buyer.id)
        _exclude(progress, entry, why)
        return offer_failed(config, progress, "failed", now, ledger, detail=f"no longer eligible at post acceptance: {why.rule}")
    progress.offer = {**offer, "kind": "route"}
    return _route(config, progress, tier, buyer, price, pool=())


def offer_failed(
    config: RoutingConfig,
    progress: Progress,
    outcome: str,
    now: datetime,
    ledger: Ledger = EMPTY_LEDGER,
    detail: str = "",
) -> Step:
    """The offer in flight did not stand: re-route to the next candidate, the next tier, or give up.

    outcome: one of OFFER_FAILURES ("reject", "no_answer", "busy", "failed",
    "buyer_hangup" before billable_after_s, "post_rejected") or "caller_hangup"
    (the call is over: RejectCall "abandoned", no re-route).
    """
    offer = progress.offer
    if offer is None:
        raise ValueError("offer_failed without an offer in flight")
    if outcome != CALLER_HANGUP and outcome not in OFFER_FAILURES:
        raise ValueError(f"unknown offer outcome {outcome!r}; one of {(*OFFER_FAILURES, CALLER_HANGUP)}")
    progress.done = False
    progress.offer = None
    progress.offers_failed += 1
    if offer["buyer_id"] not in progress.tried:
        progress.tried.append(offer["buyer_id"])
    for e in progress.trace.entries:
        if e.winner:
            e.winner = False
    entry = _last_entry(progress, offer["buyer_id"], progress.tier_index, eligible_only=True)
    what = f"offer {progress.attempt} ({offer['kind']}) failed: {outcome}" + (f" ({detail})" if detail else "")
    if entry is not None:
        entry.detail = what
    progress.trace.winning_tier = -1
    progress.trace.winning_attempt = 0
    progress.trace.notes.append(f"{offer['buyer_id']}: {what}")
    if outcome == CALLER_HANGUP:
        progress.candidates = []
        return _reject(progress, reasons.ABANDONED, f"the caller hung up during offer {progress.attempt} to {offer['buyer_id']}")
    progress.attempt += 1
    max_attempts = config.campaign(progress.call.campaign_id).routing.max_attempts
    if progress.offers_made >= max_attempts:
        progress.candidates = []
        return _reject(
            progress, reasons.MAX_ATTEMPTS, f"{progress.offers_made} offer(s) made, routing.max_attempts is {max_attempts}"
        )
    campaign = config.campaign(progress.call.campaign_id)
    tier = campaign.routing.tiers[progress.tier_index]
    strategy = STRATEGIES[tier.strategy]
    remaining = [_offerable(config, c) for c in progress.candidates]
    reranked = strategy.rerank(
        tier, [o for o in remaining if o is not None], RankContext(ledger, tier_key(campaign.id, progress.tier_index))
    )
    progress.candidates = [_cand(o) for o in reranked]
    return _offer_next(config, progress, now, ledger)


def reservation_denied(
    config: RoutingConfig,
    progress: Progress,
    rule: str,
    detail: str,
    now: datetime,
    ledger: Ledger = EMPTY_LEDGER,
) -> Step:
    """The RouteToBuyer just returned could not take its slot: whoever keeps the exact buyer
    state (the router's single-writer ledger) found a cap full (`rule`, e.g. "cap:concurrency").

    Not an attempt: the offer is withdrawn before the buyer ever saw it, the buyer is traced as
    excluded by `rule` in this tier (a new entry, like an exclusion at offer time), and the next
    candidate of the ranking gets the offer (then the next tier, as usual).
    """
    offer = progress.offer
    if offer is None or offer.get("kind") != "route":
        raise ValueError("reservation_denied without a route offer in flight")
    campaign = config.campaign(progress.call.campaign_id)
    tier = campaign.routing.tiers[progress.tier_index]
    progress.offer = None
    progress.done = False
    progress.offers_made -= 1
    progress.attempt = progress.offers_made + 1  # the withdrawn offer's number goes to the next one
    for e in progress.trace.entries:
        e.winner = False
    progress.trace.winning_tier = -1
    progress.trace.winning_attempt = 0
    _exclude(progress, _entry(progress, offer["buyer_id"]), Exclusion(rule, f"reservation denied: {detail}"))
    progress.trace.notes.append(
        f"{_label(progress, tier)}: {offer['buyer_id']} reservation denied ({rule}); offer withdrawn, not an attempt"
    )
    return _offer_next(config, progress, now, ledger)


# ---------------------------------------------------------------- internals


def _advance(config: RoutingConfig, progress: Progress, now: datetime, ledger: Ledger) -> Step:
    """Walk the tiers from progress.tier_index until one pings, offers, hands off, or all are exhausted."""
    campaign: Campaign = config.campaign(progress.call.campaign_id)
    publisher = _publisher(config, progress)
    assert publisher is not None
    tiers = campaign.routing.tiers
    max_attempts = campaign.routing.max_attempts
    while progress.tier_index < len(tiers):
        if progress.offers_made >= max_attempts:
            return _reject(
                progress, reasons.MAX_ATTEMPTS, f"{progress.offers_made} offer(s) made, routing.max_attempts is {max_attempts}"
            )
        tier = tiers[progress.tier_index]
        label = _label(progress, tier)
        if tier.strategy == "queue":
            assert tier.queue is not None
            progress.trace.notes.append(f"{label}: handed to queue {tier.queue}")
            progress.done = True
            return Step(HandToQueue(tier.queue, progress.tier_index, progress.attempt), progress)
        strategy = STRATEGIES.get(tier.strategy)
        if strategy is None:
            return _reject(
                progress, reasons.UNSUPPORTED_STRATEGY, f"tier {progress.tier_index} strategy {tier.strategy!r} is not supported"
            )
        if strategy.auction:
            step = _start_auction(config, campaign, publisher, tier, strategy, progress, now, ledger)
        else:
            step = _start_standing(config, campaign, publisher, tier, strategy, progress, now, ledger)
        if step is not None:
            return step
        progress.tier_index += 1
    return _exhausted(progress)


def _eligible(
    config: RoutingConfig,
    publisher: Publisher,
    buyer: Buyer,
    progress: Progress,
    now: datetime,
    ledger: Ledger,
    price: Decimal | None,
) -> pb.TraceEntry | None:
    """Trace the buyer for this tier; the entry when eligible, None when excluded."""
    entry = _entry(progress, buyer.id)
    why = _already_offered(progress, buyer.id) or buyer_exclusion(
        buyer, publisher, progress.call, now, ledger.buyer_load(buyer.id), price
    )
    if why:
        _exclude(progress, entry, why)
        return None
    entry.eligible = True
    progress.eligible_seen += 1
    return entry


def _start_auction(
    config: RoutingConfig,
    campaign: Campaign,
    publisher: Publisher,
    tier: Tier,
    strategy: Strategy,
    progress: Progress,
    now: datetime,
    ledger: Ledger,
) -> Step | None:
    to_ping: list[Buyer] = []
    for buyer_id in tier.buyers:
        buyer = config.buyer(buyer_id)
        if _eligible(config, publisher, buyer, progress, now, ledger, None) is not None:
            to_ping.append(buyer)
    label = _label(progress, tier)
    if not to_ping:
        progress.trace.notes.append(f"{label}: no eligible buyer")
        return None
    ids = tuple(b.id for b in to_ping)
    shared = tuple(b.id for b in to_ping if sharing.for_buyer(b, tier.strategy, sharing.Outlet.PING).number)
    deadline = now + timedelta(milliseconds=campaign.routing.timeout_ms)
    progress.auction = {
        "strategy": tier.strategy,
        "pick": tier.pick,
        "early": strategy.early_pick(tier),
        "floor": f"{publisher.min_price:.2f}",
        "deadline": deadline.isoformat(),
    }
    progress.trace.notes.append(f"{label}: pinging {', '.join(ids)}")
    return Step(RequestBids(progress.tier_index, progress.attempt, tier.strategy, ids, deadline, shared), progress)


def _start_standing(
    config: RoutingConfig,
    campaign: Campaign,
    publisher: Publisher,
    tier: Tier,
    strategy: Strategy,
    progress: Progress,
    now: datetime,
    ledger: Ledger,
) -> Step | None:
    offers: list[Offerable] = []
    for order, buyer_id in enumerate(tier.buyers):
        buyer = config.buyer(buyer_id)
        price, source = _standing_price(buyer, ledger)
        entry = _eligible(config, publisher, buyer, progress, now, ledger, price)
        if entry is None:
            continue
        if price is None:
            entry.bid_outcome = pb.BID_OUTCOME_NO_BID
            entry.bid_reason = "no standing bid (RTB buyer without a previous bid)"
            continue
        entry.bid_outcome = pb.BID_OUTCOME_BID
        entry.bid_amount = f"{price:.2f}"
        entry.bid_reason = f"standing bid: {source}"
        offers.append(Offerable(buyer, price, order))
    label = _label(progress, tier)
    ranked = strategy.rank(tier, offers, RankContext(ledger, tier_key(campaign.id, progress.tier_index)))
    if not ranked:
        progress.trace.notes.append(f"{label}: no eligible buyer with a standing price")
        return None
    progress.trace.notes.append(f"{label}: ranked {', '.join(o.buyer.id for o in ranked)}")
    progress.candidates = [_cand(o) for o in ranked]
    progress.candidates_seen += len(ranked)
    return _offer_next(config, progress, now, ledger)


def _already_offered(progress: Progress, buyer_id: str) -> Exclusion | None:
    if buyer_id in progress.tried:
        return Exclusion("already_offered", f"{buyer_id} already had this call and did not take it")
    return None


def _standing_price(buyer: Buyer, ledger: Ledger) -> tuple[Decimal | None, str]:
    if isinstance(buyer.bid, StaticBid):
        return buyer.bid.price, "static price"
    last = ledger.buyer_load(buyer.id).last_bid
    return (last, "last placed bid") if last is not None else (None, "")


def _offer_next(config: RoutingConfig, progress: Progress, now: datetime, ledger: Ledger) -> Step:
    """Offer the call to the best remaining candidate still eligible now; else the next tier."""
    campaign = config.campaign(progress.call.campaign_id)
    publisher = _publisher(config, progress)
    assert publisher is not None
    tier = campaign.routing.tiers[progress.tier_index]
    strategy = STRATEGIES[tier.strategy]
    max_attempts = campaign.routing.max_attempts
    while progress.candidates:
        if progress.offers_made >= max_attempts:
            progress.candidates = []
            return _reject(
                progress, reasons.MAX_ATTEMPTS, f"{progress.offers_made} offer(s) made, routing.max_attempts is {max_attempts}"
            )
        cand = progress.candidates.pop(0)
        buyer = config.buyer(cand["buyer_id"])
        price = Decimal(cand["price"])
        why = _already_offered(progress, buyer.id) or buyer_exclusion(
            buyer, publisher, progress.call, now, ledger.buyer_load(buyer.id), price
        )
        if why:
            _exclude(progress, _entry(progress, buyer.id), why)
            progress.trace.notes.append(f"{_label(progress, tier)}: {buyer.id} no longer eligible at offer time ({why.rule})")
            continue
        progress.offers_made += 1
        progress.attempt = progress.offers_made
        if strategy.post:
            progress.offer = {"buyer_id": buyer.id, "price": f"{price:.2f}", "kind": "post"}
            progress.trace.notes.append(f"{_label(progress, tier)}: post to {buyer.id} at {price:.2f} (offer {progress.attempt})")
            shares = sharing.for_buyer(buyer, tier.strategy, sharing.Outlet.POST).number
            action = PostToBuyer(buyer.id, buyer.destination, price, shares, progress.tier_index, progress.attempt)
            return Step(action, progress)
        pool: tuple[tuple[str, int], ...] = ()
        if tier.strategy == "weight":
            others = [(c["buyer_id"], config.buyer(c["buyer_id"]).weight) for c in progress.candidates]
            pool = tuple(sorted([(buyer.id, buyer.weight), *others], key=lambda bw: tier.buyers.index(bw[0])))
        progress.offer = {"buyer_id": buyer.id, "price": f"{price:.2f}", "kind": "route"}
        return _route(config, progress, tier, buyer, price, pool)
    progress.trace.notes.append(f"{_label(progress, tier)}: no taker")
    progress.tier_index += 1
    return _advance(config, progress, now, ledger)


def _route(
    config: RoutingConfig, progress: Progress, tier: Tier, buyer: Buyer, price: Decimal, pool: tuple[tuple[str, int], ...]
) -> Step:
    entry = _last_entry(progress, buyer.id, progress.tier_index, eligible_only=True)
    if entry is None:
        entry = _entry(progress, buyer.id)
        entry.eligible = True
    entry.winner = True
    progress.trace.winning_tier = progress.tier_index
    progress.trace.winning_attempt = progress.attempt
    progress.trace.notes.append(f"{_label(progress, tier)}: offer {progress.attempt} to {buyer.id} at {price:.2f}")
    progress.done = True
    action = RouteToBuyer(
        buyer.id,
        buyer.destination,
        price,
        progress.tier_index,
        progress.attempt,
        tier.strategy,
        tier_key(progress.call.campaign_id, progress.tier_index),
        pool,
    )
    return Step(action, progress)


def _exhausted(progress: Progress) -> Step:
    if progress.offers_made:
        return _reject(progress, reasons.ALL_DECLINED, f"all {progress.offers_made} offer(s) failed and no tier is left")
    if progress.eligible_seen == 0:
        rules = set(progress.exclusion_rules)
        if rules == {"schedule"}:
            return _reject(progress, reasons.OUTSIDE_HOURS, "every buyer is outside its schedule")
        return _reject(progress, reasons.NO_ELIGIBLE_BUYER, "no buyer passed eligibility in any tier")
    if progress.candidates_seen:
        return _reject(progress, reasons.NO_ELIGIBLE_BUYER, "every candidate became ineligible before its offer")
    if progress.answers_seen and progress.declines_seen == progress.answers_seen:
        return _reject(progress, reasons.ALL_DECLINED, "every pinged buyer declined")
    return _reject(progress, reasons.NO_BID, "no bid at or above the floor in any tier")


def caller_left(progress: Progress, while_: str) -> Step:
    """The caller hung up with no offer ringing (routing still deciding): terminal, "abandoned".

    `while_` says when, for the trace ("while routing", "before routing started").
    An offer in flight is dropped from the decision: a post or reservation answered later is stale.
    """
    progress.candidates = []
    return _reject(progress, reasons.ABANDONED, f"the caller hung up {while_}")


def _reject(progress: Progress, reason: str, detail: str) -> Step:
    progress.trace.winning_tier = -1
    progress.trace.winning_attempt = 0
    for e in progress.trace.entries:
        e.winner = False
    progress.offer = None
    progress.auction = None
    progress.done = True
    progress.trace.notes.append(f"rejected: {reason}: {detail}")
    return Step(RejectCall(reason, detail, reasons.announcement(reason)), progress)


def _publisher(config: RoutingConfig, progress: Progress) -> Publisher | None:
    """The event's publisher, or the campaign's when the event names none."""
    publisher_id = progress.call.publisher_id or config.campaign(progress.call.campaign_id).publisher
    try:
        return config.publisher(publisher_id)
    except StopIteration:
        return None


def _cand(o: Offerable) -> dict[str, Any]:
    return {"buyer_id": o.buyer.id, "price": f"{o.price:.2f}", "order": o.order, "arrival": o.arrival, "available": o.available}


def _offerable(config: RoutingConfig, c: Mapping[str, Any]) -> Offerable | None:
    try:
        buyer = config.buyer(c["buyer_id"])
    except StopIteration:
        return None
    return Offerable(buyer, Decimal(c["price"]), int(c.get("order", 0)), int(c.get("arrival", 0)), bool(c.get("available", True)))


def _entry(progress: Progress, buyer_id: str) -> pb.TraceEntry:
    return progress.trace.entries.add(
        target_id=buyer_id, kind=pb.TARGET_KIND_BUYER, tier_index=progress.tier_index, attempt=progress.attempt
    )


def _last_entry(progress: Progress, buyer_id: str, tier_index: int, eligible_only: bool = False) -> pb.TraceEntry | None:
    for e in reversed(progress.trace.entries):
        if e.target_id == buyer_id and e.tier_index == tier_index and (e.eligible or not eligible_only):
            return e
    return None


def _exclude(progress: Progress, entry: pb.TraceEntry, why: Exclusion) -> None:
    entry.eligible = False
    entry.excluded_by = why.rule
    entry.detail = why.detail
    progress.exclusion_rules.append(why.rule)


def _label(progress: Progress, tier: Tier) -> str:
    return f"tier {progress.tier_index} {tier.strategy}"
