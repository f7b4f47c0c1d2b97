"""The ten tier strategies of ROUTING.md as pure ranking rules.

A strategy never decides eligibility (core.eligibility does, before any
strategy) and never performs I/O. It says:

  auction   True: ping every eligible buyer and rank their answers
            (price, parallel_highest, parallel_first, ping_post, availability).
            False: rank eligible buyers by their standing price and offer at
            once, without a ping (priority, weight, even, direct).
  post      True (ping_post): the ranked winner first gets a post
            (PostToBuyer) it may reject before the call is bridged.
  rank()    the offer order of the offerable buyers; the engine offers the
            first, and on reject / no answer / early hang-up the next one
            (re-checking eligibility with the state at that moment).

Standing price (non-auction strategies): the static price, or for an RTB
buyer its last placed bid (BuyerLoad.last_bid); a buyer with neither is not
offerable (traced as no-bid "no standing bid").

`price` pings even static buyers: the ping confirms the standing bid (the
bidder answers at once with the static price; an RTB buyer places its bid), so
a buyer that is down is not offered a call. Its ranking is by that bid, ties by
config order.

Ties not fixed by ROUTING.md: price, availability, priority → config order;
parallel_highest, ping_post → earlier response (ROUTING.md for
parallel_highest; ping_post follows it as a binding auction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from switchboard.core.config import Buyer, Tier
from switchboard.core.ledger import Ledger, TierState, swrr_order

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Offerable:
    """A buyer that may be offered the call at `price`."""

    buyer: Buyer
    price: Decimal
    order: int  # index in the tier's buyers list (config order)
    arrival: int = 0  # answer arrival order, 0 first (auction strategies)
    available: bool = True  # the buyer reported free capacity (availability)


@dataclass(frozen=True)
class RankContext:
    ledger: Ledger
    tier_key: str


class Strategy:
    name = ""
    auction = False
    post = False
    data_scope = "full"  # what the buyer is shown with the call: "full" or "partial" (application data)
    caller_number_in_ping = True  # pings may carry the number to buyers with share_caller_number

    def usable(self, offer: Offerable) -> str | None:
        """None when an answered bid may be ranked, else why not (traced as the bid reason)."""
        return None

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        raise NotImplementedError

    def rerank(self, tier: Tier, remaining: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        """The order of the remaining candidates after a failed offer (default: unchanged)."""
        return list(remaining)

    def early_pick(self, tier: Tier) -> bool:
        """May the auction conclude on the first qualified answer, before everyone answered?"""
        return False


class Price(Strategy):
    name, auction = "price", True

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return sorted(offers, key=lambda o: (-o.price, o.order))


class ParallelHighest(Strategy):
    name, auction = "parallel_highest", True

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return sorted(offers, key=lambda o: (-o.price, o.arrival, o.order))


class ParallelFirst(Strategy):
    """pick first_response: answer order; pick priority: priority, then price, then answer order."""

    name, auction = "parallel_first", True

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        if tier.pick == "priority":
            return sorted(offers, key=lambda o: (o.buyer.priority, -o.price, o.arrival, o.order))
        return sorted(offers, key=lambda o: (o.arrival, o.order))

    def early_pick(self, tier: Tier) -> bool:
        return tier.pick == "first_response"


class PingPost(Strategy):
    name, auction, post = "ping_post", True, True
    caller_number_in_ping = False  # essential data only; the number goes with the post, if shared

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return sorted(offers, key=lambda o: (-o.price, o.arrival, o.order))


class Availability(Strategy):
    name, auction = "availability", True

    def usable(self, offer: Offerable) -> str | None:
        return None if offer.available else "not available now"

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return sorted((o for o in offers if o.available), key=lambda o: (-o.price, o.order))


class Priority(Strategy):
    name = "priority"

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return sorted(offers, key=lambda o: (o.buyer.priority, -o.price, o.order))


class Weight(Strategy):
    """Smooth weighted round robin over the offerable buyers, state in the ledger's TierState.

    The first candidate is the SWRR pick; after a failed offer the remaining are
    re-ordered with the tier state at that moment (the service has accounted the
    failed offer with ledger.swrr_routed), i.e. a re-pick among the remaining.
    """

    name = "weight"

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        state: TierState = ctx.ledger.tier_state(ctx.tier_key)
        by_id = {o.buyer.id: o for o in offers}
        ordered = sorted(offers, key=lambda o: o.order)
        return [by_id[b] for b in swrr_order(state, [(o.buyer.id, o.buyer.weight) for o in ordered])]

    def rerank(self, tier: Tier, remaining: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return self.rank(tier, remaining, ctx)


class Even(Strategy):
    """Least recently routed first; never routed is oldest; ties by config order."""

    name = "even"

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        def key(o: Offerable) -> tuple[datetime, int]:
            return (ctx.ledger.buyer_load(o.buyer.id).last_routed or _NEVER, o.order)

        return sorted(offers, key=key)


class Direct(Strategy):
    """The listed buyers in order at their static price; after a reject, the next by previously placed bid.

    The first offer goes to the first offerable buyer of the list. The rest are
    ordered by their last placed bid (highest first; buyers that never placed a
    bid follow, in list order), so with no bidding history the list order holds.
    """

    name = "direct"
    data_scope = "partial"

    def rank(self, tier: Tier, offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        ordered = sorted(offers, key=lambda o: o.order)
        if not ordered:
            return []
        return [ordered[0], *self._by_last_bid(ordered[1:], ctx)]

    def rerank(self, tier: Tier, remaining: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        return self._by_last_bid(remaining, ctx)

    @staticmethod
    def _by_last_bid(offers: Sequence[Offerable], ctx: RankContext) -> list[Offerable]:
        def key(o: Offerable) -> tuple[int, Decimal, int]:
            last = ctx.ledger.buyer_load(o.buyer.id).last_bid
            return (0, -last, o.order) if last is not None else (1, Decimal(0), o.order)

        return sorted(offers, key=key)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (Price(), ParallelHighest(), ParallelFirst(), PingPost(), Availability(), Priority(), Weight(), Even(), Direct())
}
# `queue` is a hand-off, not a ranking: the engine handles it directly.
