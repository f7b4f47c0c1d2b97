"""Buyer state the engine reads, and the pure transitions that change it. No I/O, no clock reads.

The engine decides from a read-only snapshot (`Ledger`): per buyer a
`BuyerLoad`, per weight tier a `TierState`. Whoever carries out the engine's
actions (the router service with Faust tables, the simulator, the tests with
`InMemoryLedger`) applies the transitions below and stores the result. Every
state object is JSON-able (`to_dict`/`from_dict`, money as decimal strings,
times as ISO-8601 with offset) so it fits a Faust table value; every
transition is a pure function `old state, facts → new state`.

State
-----
BuyerLoad (key: buyer id)
    open_calls      call id → price of every call routed/bridged to the buyer
                    and not ended yet. `bridged` = len(open_calls) is what the
                    concurrency cap counts. Keyed by call id so a redelivered
                    route or end event is a no-op (idempotent transitions).
    opened_at       call id → when each open call was routed (the reaper's clock).
                    Records written before it existed load without it: `from_dict`
                    stamps such calls with its `loaded_at` (the writer passes
                    "now"), so a call lost before the upgrade is reaped one
                    max_call_duration after the ledger first loads it.
    hour/day/month  billable sales in the current window of the BUYER's time
                    zone (its schedule's timezone, UTC without a schedule),
                    stored as (window key, count). A window key is computed
                    from `now` in that zone; a stored key that differs from
                    the current one means the window rolled over and the count
                    reads as 0 (no reset job needed).
                    Keys: hour "2025-11-02T01-07:00" (the UTC offset is part
                    of it, so the repeated 01:00 hour of a DST fall-back is two
                    windows), day "2025-11-02", month "2025-11".
    day_spend       price of the billable sales of day_key.
    last_routed     when the buyer was last offered/routed a call (`even`).
    last_bid        the last bid it placed (standing bid of RTB buyers; `direct`
                    re-offers by it).
TierState (key: "<campaign id>/<tier index>", see `tier_key`)
    current         smooth weighted round robin current weight per buyer
                    (W × how far the buyer is behind its share; see swrr_order).

Transitions
-----------
call_routed(load, call_id, price, now)     concurrency +1 (call id opened), last_routed = now
call_ended(load, call_id, now, connected_seconds, billable_after_s, tz, answered)
                                           concurrency -1; when billable (core.call_end.is_billable:
                                           answered and connected_seconds >= billable_after_s) one sale in the
                                           hour/day/month windows of `now` and +price on the day's spend.
                                           A buyer that fails to answer or hangs up early only
                                           releases its slot.
stale_calls(load, now, max_call_duration)  the open calls routed at least max_call_duration ago
                                           (needs_reaping: the same question on a stored load)
release_stale_calls(load, now, max_call_duration)
                                           those calls ended without a sale (slot and reserved
                                           spend freed, no sale, no spend): the reaper of calls
                                           whose end was never reported
bid_placed(load, amount, now)              last_bid = amount
swrr_routed(state, pool, chosen)           every buyer of the pool += weight, chosen -= Σweight
                                           (swrr_order reads it: the pick, then the re-pick order)

Caps hold exactly, not approximately: a bridged call may still become a sale,
so eligibility (core.eligibility) counts open calls against the sales caps and
their prices against the daily budget until they end. A call can therefore
never push a window past its cap, whichever way the open calls end.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from switchboard.core.call_end import is_billable
from switchboard.core.config import Buyer

Window = Literal["hourly", "daily", "monthly"]
ZERO = Decimal(0)


# ---------------------------------------------------------------- windows in the buyer's time zone


def buyer_timezone(buyer: Buyer) -> str:
    """The zone a buyer's caps are counted in: its schedule's, else UTC."""
    return buyer.schedule.timezone if buyer.schedule is not None else "UTC"


def window_key(window: Window, now: datetime, tz: str) -> str:
    if now.tzinfo is None:
        raise ValueError("window keys need a timezone-aware datetime")
    local = now.astimezone(ZoneInfo(tz))
    if window == "hourly":
        offset = local.strftime("%z")
        return f"{local:%Y-%m-%dT%H}{offset[:3]}:{offset[3:]}"
    if window == "daily":
        return f"{local:%Y-%m-%d}"
    return f"{local:%Y-%m}"


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


# ---------------------------------------------------------------- BuyerLoad


@dataclass(frozen=True)
class BuyerLoad:
    """One buyer's load and counters. Treat as immutable: transitions return a new one."""

    buyer_id: str
    open_calls: Mapping[str, Decimal] = field(default_factory=dict)
    hour_key: str = ""
    hour_sales: int = 0
    day_key: str = ""
    day_sales: int = 0
    day_spend: Decimal = ZERO
    month_key: str = ""
    month_sales: int = 0
    last_routed: datetime | None = None
    last_bid: Decimal | None = None
    last_bid_at: datetime | None = None
    opened_at: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def bridged(self) -> int:
        """Calls routed to the buyer and not ended yet (what the concurrency cap counts)."""
        return len(self.open_calls)

    @property
    def reserved_spend(self) -> Decimal:
        """Prices of the open calls: spend that may still happen."""
        return sum(self.open_calls.values(), ZERO)

    def sales(self, window: Window, now: datetime, tz: str) -> int:
        """Billable sales in the window of the buyer's zone that contains `now`."""
        stored_key, count = {
            "hourly": (self.hour_key, self.hour_sales),
            "daily": (self.day_key, self.day_sales),
            "monthly": (self.month_key, self.month_sales),
        }[window]
        return count if stored_key == window_key(window, now, tz) else 0

    def spend_today(self, now: datetime, tz: str) -> Decimal:
        return self.day_spend if self.day_key == window_key("daily", now, tz) else ZERO

    def to_dict(self) -> dict[str, Any]:
        return {
            "buyer_id": self.buyer_id,
            "open_calls": {k: f"{v:.2f}" for k, v in self.open_calls.items()},
            "hour_key": self.hour_key,
            "hour_sales": self.hour_sales,
            "day_key": self.day_key,
            "day_sales": self.day_sales,
            "day_spend": f"{self.day_spend:.2f}",
            "month_key": self.month_key,
            "month_sales": self.month_sales,
            "last_routed": _iso(self.last_routed),
            "last_bid": None if self.last_bid is None else f"{self.last_bid:.2f}",
            "last_bid_at": _iso(self.last_bid_at),
            "opened_at": {k: v.isoformat() for k, v in self.opened_at.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], loaded_at: datetime | None = None) -> BuyerLoad:
        """Read `to_dict`'s output. An open call without an opening time (written before
        `opened_at` existed) gets `loaded_at`; without `loaded_at` its time stays unknown
        (never stale, see `unstamped_calls`)."""
        open_calls = {k: Decimal(v) for k, v in (d.get("open_calls") or {}).items()}
        stored = d.get("opened_at") or {}
        opened_at = {k: datetime.fromisoformat(stored[k]) for k in open_calls if stored.get(k)}
        if loaded_at is not None:
            opened_at.update((k, loaded_at) for k in open_calls if k not in opened_at)
        return cls(
            buyer_id=d["buyer_id"],
            open_calls=open_calls,
            hour_key=d.get("hour_key", ""),
            hour_sales=int(d.get("hour_sales", 0)),
            day_key=d.get("day_key", ""),
            day_sales=int(d.get("day_sales", 0)),
            day_spend=Decimal(d.get("day_spend", "0")),
            month_key=d.get("month_key", ""),
            month_sales=int(d.get("month_sales", 0)),
            last_routed=_dt(d.get("last_routed")),
            last_bid=None if d.get("last_bid") is None else Decimal(d["last_bid"]),
            last_bid_at=_dt(d.get("last_bid_at")),
            opened_at=opened_at,
        )

    @property
    def unstamped_calls(self) -> list[str]:
        """Open calls whose opening time is unknown (loaded without `loaded_at` from an old record)."""
        return [c for c in self.open_calls if c not in self.opened_at]


def call_routed(load: BuyerLoad, call_id: str, price: Decimal, now: datetime) -> BuyerLoad:
    """The call was routed (bridged) to the buyer: it takes a concurrency slot until it ends."""
    if call_id in load.open_calls:
        return load  # redelivered
    return replace(
        load,
        open_calls={**load.open_calls, call_id: price},
        opened_at={**load.opened_at, call_id: now},
        last_routed=now,
    )


def _without(load: BuyerLoad, call_ids: Collection[str]) -> BuyerLoad:
    """The load with these calls no longer open (nothing else changes)."""
    return replace(
        load,
        open_calls={k: v for k, v in load.open_calls.items() if k not in call_ids},
        opened_at={k: v for k, v in load.opened_at.items() if k not in call_ids},
    )


def call_ended(
    load: BuyerLoad,
    call_id: str,
    now: datetime,
    connected_seconds: int,
    billable_after_s: int,
    tz: str,
    answered: bool | None = None,
) -> BuyerLoad:
    """The call routed to the buyer ended (or the offer failed): release the slot; count the sale if billable."""
    if call_id not in load.open_calls:
        return load  # never routed here, or a redelivered end
    price = load.open_calls[call_id]
    rest = _without(load, (call_id,))
    if not is_billable(connected_seconds, billable_after_s, answered):
        return rest
    hour, day, month = (window_key(w, now, tz) for w in ("hourly", "daily", "monthly"))
    return replace(
        rest,
        hour_key=hour,
        hour_sales=(load.hour_sales if load.hour_key == hour else 0) + 1,
        day_key=day,
        day_sales=(load.day_sales if load.day_key == day else 0) + 1,
        day_spend=(load.day_spend if load.day_key == day else ZERO) + price,
        month_key=month,
        month_sales=(load.month_sales if load.month_key == month else 0) + 1,
    )


def stale_calls(load: BuyerLoad, now: datetime, max_call_duration: timedelta) -> list[str]:
    """Open calls routed at least `max_call_duration` before `now`, oldest first.

    No call lasts that long, so their end was lost (the edge crashed or dropped the call) and
    their slot would be held forever. Calls whose opening time is unknown are never stale.
    """
    oldest = now - max_call_duration
    return sorted(
        (c for c, at in load.opened_at.items() if at <= oldest and c in load.open_calls), key=lambda c: load.opened_at[c]
    )


def needs_reaping(stored: Mapping[str, Any], now: datetime, max_call_duration: timedelta) -> bool:
    """On a stored load (`BuyerLoad.to_dict`), without decoding all of it: whether an open call is
    stale (as `stale_calls`) or has no opening time yet (a record from before `opened_at`)."""
    open_calls = stored.get("open_calls") or {}
    if not open_calls:
        return False
    times = stored.get("opened_at") or {}
    oldest = now - max_call_duration
    return any(c not in times or datetime.fromisoformat(times[c]) <= oldest for c in open_calls)


def release_stale_calls(load: BuyerLoad, now: datetime, max_call_duration: timedelta) -> tuple[BuyerLoad, list[str]]:
    """End the stale calls without a sale: slot and reserved spend freed, no sale, no spend.

    Returns the new load and the call ids released. Idempotent: a second run at the same or a
    later `now` finds nothing more (a call that is not open is never released twice).
    """
    stale = stale_calls(load, now, max_call_duration)
    return (_without(load, set(stale)) if stale else load), stale


def bid_placed(load: BuyerLoad, amount: Decimal, now: datetime) -> BuyerLoad:
    return replace(load, last_bid=amount, last_bid_at=now)


# ---------------------------------------------------------------- TierState: smooth weighted round robin


def tier_key(campaign_id: str, tier_index: int) -> str:
    return f"{campaign_id}/{tier_index}"


@dataclass(frozen=True)
class TierState:
    """SWRR current weights of one weight tier (buyers absent from `current` are at 0)."""

    key: str
    current: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "current": dict(self.current)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TierState:
        return cls(d["key"], {k: int(v) for k, v in (d.get("current") or {}).items()})


def swrr_order(state: TierState, pool: Sequence[tuple[str, int]]) -> list[str]:
    """The pool (buyer id, weight) in preference order; the first is the pick.

    `current[b]` is W·lag: (calls so far)·w_b − (calls b got)·W with W = Σ weights,
    exactly nginx's smooth weighted round robin state. nginx picks the largest
    current+w; that can drift past ±1 call (weights 1,1,1,11,11 after 16 calls:
    6 instead of 7.04). So among the buyers that may take a call without getting
    ahead by more than one (current + w >= 0) we pick the one whose next call is
    due first — earliest deadline ⌊(W − current)/w⌋ — which keeps every buyer
    within ±1 call of N·w/W after every call N (a feasible schedule exists by
    Tijdeman's chairman-assignment theorem and EDF finds it for unit jobs). Ties:
    the exact ratio, then pool (config) order. Still deterministic and interleaved,
    never random.
    """
    total = sum(w for _, w in pool)

    def key(item: tuple[int, tuple[str, int]]) -> tuple[int, int, Fraction, int]:
        index, (buyer_id, weight) = item
        cur = state.current.get(buyer_id, 0)
        released = cur + weight >= 0
        return (0 if released else 1, (total - cur) // weight, Fraction(total - cur, weight), index)

    return [buyer_id for _, (buyer_id, _) in sorted(enumerate(pool), key=key)]


def swrr_routed(state: TierState, pool: Sequence[tuple[str, int]], chosen: str) -> TierState:
    """Account one call given to `chosen` out of `pool`: Σ current over the pool stays 0."""
    total = sum(w for _, w in pool)
    current = dict(state.current)
    for buyer_id, weight in pool:
        current[buyer_id] = current.get(buyer_id, 0) + weight
    current[chosen] = current.get(chosen, 0) - total
    return replace(state, current=current)


# ---------------------------------------------------------------- the snapshot the engine reads


class Ledger(Protocol):
    """Read-only view of buyer and tier state at decision time."""

    def buyer_load(self, buyer_id: str) -> BuyerLoad: ...

    def tier_state(self, key: str) -> TierState: ...


class EmptyLedger:
    """No calls, no sales, no history: what callers that keep no state get."""

    def buyer_load(self, buyer_id: str) -> BuyerLoad:
        return BuyerLoad(buyer_id)

    def tier_state(self, key: str) -> TierState:
        return TierState(key)


EMPTY_LEDGER: Ledger = EmptyLedger()


class InMemoryLedger:
    """A mutable ledger in dicts for tests and the simulator; every change goes through the pure transitions."""

    def __init__(self) -> None:
        self.loads: dict[str, BuyerLoad] = {}
        self.tiers: dict[str, TierState] = {}
        self.buyer_of: dict[str, str] = {}  # open call id → buyer id

    def buyer_load(self, buyer_id: str) -> BuyerLoad:
        return self.loads.get(buyer_id) or BuyerLoad(buyer_id)

    def tier_state(self, key: str) -> TierState:
        return self.tiers.get(key) or TierState(key)

    def route(self, call_id: str, action: Any, now: datetime) -> None:
        """Apply an engine RouteToBuyer (buyer_id, price, tier_key, weight_pool)."""
        self.loads[action.buyer_id] = call_routed(self.buyer_load(action.buyer_id), call_id, action.price, now)
        self.buyer_of[call_id] = action.buyer_id
        if action.weight_pool:
            pool = [(b, int(w)) for b, w in action.weight_pool]
            self.tiers[action.tier_key] = swrr_routed(self.tier_state(action.tier_key), pool, action.buyer_id)

    def end(self, call_id: str, buyer: Buyer, now: datetime, connected_seconds: int, answered: bool | None = None) -> None:
        self.loads[buyer.id] = call_ended(
            self.buyer_load(buyer.id), call_id, now, connected_seconds, buyer.billable_after_s, buyer_timezone(buyer), answered
        )
        self.buyer_of.pop(call_id, None)

    def bid(self, buyer_id: str, amount: Decimal, now: datetime) -> None:
        self.loads[buyer_id] = bid_placed(self.buyer_load(buyer_id), amount, now)
