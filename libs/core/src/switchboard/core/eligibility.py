"""Eligibility of a buyer for a call (ROUTING.md "Eligibility"): pure functions, no I/O, no clock.

`buyer_exclusion()` runs the rules in this fixed order and returns the first
one that excludes the buyer, as an `Exclusion(rule, detail)` for the decision
trace, or None when the buyer is eligible. Rule names are stable strings that
analysts filter on:

  1. "blocked_by_publisher"      the call's publisher lists the buyer in blocked_buyers
  2. "filter:states", "filter:zip_prefixes", "filter:area_codes",
     "filter:answers.<key>"      the buyer's filters, in that order
  3. "schedule"                  outside the buyer's hours (its timezone, DST-correct)
  4. "cap:concurrency"           calls bridged to the buyer now >= concurrency
     "cap:hourly", "cap:daily", "cap:monthly"
                                 billable sales in the current hour/day/month of the
                                 buyer's timezone + calls bridged now >= the cap
     "cap:daily_budget"          spend today + prices of calls bridged now + this
                                 call's price > daily_budget
  5. "floor"                     the price is below the publisher's min_price

Caps read the buyer's `BuyerLoad` (core.ledger). Calls bridged now count
against the sales caps and the budget until they end, because each of them may
still become a billable sale: that is what makes "no cap would be exceeded by
this call" exact. Buyers that fail to answer or hang up before
billable_after_s release their slot and never count as sales (ledger.call_ended).

The price of an RTB buyer is only known from its bid, so before the ping its
budget check uses no price (excluded only when the budget is already used up)
and its floor is checked on the bid (`price_floor_exclusion`); the engine runs
`buyer_exclusion` again with the actual price before every offer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from switchboard.core.config import (
    Buyer,
    Caps,
    Filters,
    Publisher,
    Schedule,
    StaticBid,
    expand_days,
)
from switchboard.core.ledger import BuyerLoad, Window, buyer_timezone


@dataclass(frozen=True)
class CallFacts:
    """What routing may know about a call. Never the caller number: pings are built from this."""

    call_id: str
    campaign_id: str
    publisher_id: str = ""
    state: str = ""
    zip: str = ""
    area_code: str = ""
    answers: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "campaign_id": self.campaign_id,
            "publisher_id": self.publisher_id,
            "state": self.state,
            "zip": self.zip,
            "area_code": self.area_code,
            "answers": dict(self.answers),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CallFacts:
        return cls(**{**d, "answers": dict(d.get("answers") or {})})


@dataclass(frozen=True)
class Exclusion:
    rule: str
    detail: str


# ---------------------------------------------------------------- answers conditions

_TRUE = {"yes", "y", "true", "1"}
_FALSE = {"no", "n", "false", "0"}


def _number(v: Any) -> Decimal | None:
    """A finite number from a config value or an answer string; None when it is not one."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        d = Decimal(str(v).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _equal(answer: str, expected: Any) -> bool:
    # YAML reads an unquoted yes/no as a bool: compare it with the answer's truthiness.
    if isinstance(expected, bool):
        return answer.strip().lower() in (_TRUE if expected else _FALSE)
    a, e = _number(answer), _number(expected)
    if a is not None and e is not None:
        return a == e  # "0650" == 650
    return answer.strip().casefold() == str(expected).strip().casefold()


def condition_failure(key: str, op: str, arg: Any, answers: Mapping[str, str]) -> str | None:
    """None when `answers[key]` satisfies `{op: arg}`, else a human-readable reason."""
    present = key in answers and str(answers[key]).strip() != ""
    if op == "exists":
        want = bool(arg) if not isinstance(arg, str) else arg.strip().lower() in _TRUE
        if present == want:
            return None
        return f"{key} is missing" if want else f"{key} is present ({answers[key]!r})"
    if not present:
        return f"{key} is missing (needs {op} {arg!r})"
    value = str(answers[key])
    if op == "eq":
        ok = _equal(value, arg)
    elif op == "ne":
        ok = not _equal(value, arg)
    elif op == "in":
        ok = any(_equal(value, x) for x in arg)
    elif op == "not_in":
        ok = not any(_equal(value, x) for x in arg)
    else:  # numeric comparisons: both sides must be numbers
        n = _number(value)
        args = arg if op == "between" else [arg]
        bounds = [b for b in (_number(x) for x in args) if b is not None]
        if n is None or len(bounds) < len(args):
            return f"{key}={value!r} is not comparable as a number with {op} {arg!r}"
        if op == "between":
            lo, hi = sorted(bounds)
            ok = lo <= n <= hi
        else:
            b = bounds[0]
            ok = {"gte": n >= b, "lte": n <= b, "gt": n > b, "lt": n < b}[op]
    return None if ok else f"{key}={value!r} fails {op} {arg!r}"


# ---------------------------------------------------------------- filters


def filters_exclusion(filters: Filters, call: CallFacts) -> Exclusion | None:
    if filters.states is not None:
        allowed = {s.upper() for s in filters.states}
        if call.state.upper() not in allowed:
            return Exclusion("filter:states", f"state {call.state or '(unknown)'} not in {sorted(allowed)}")
    if filters.zip_prefixes is not None and (not call.zip or not any(call.zip.startswith(p) for p in filters.zip_prefixes)):
        return Exclusion("filter:zip_prefixes", f"zip {call.zip or '(unknown)'} matches none of {filters.zip_prefixes}")
    if filters.area_codes is not None and call.area_code not in filters.area_codes:
        return Exclusion("filter:area_codes", f"area code {call.area_code or '(unknown)'} not in {filters.area_codes}")
    for key, cond in (filters.answers or {}).items():
        ((op, arg),) = cond.items()
        why = condition_failure(key, op, arg, call.answers)
        if why:
            return Exclusion(f"filter:answers.{key}", why)
    return None


# ---------------------------------------------------------------- schedule


def _parse_range(rng: str) -> tuple[time, time | None, bool]:
    """'08:00-20:00' → (08:00, 20:00, overnight=False); an end of 24:00 is None (end of day)."""
    a, b = rng.split("-")
    start = time(int(a[:2]), int(a[3:]))
    end = None if b == "24:00" else time(int(b[:2]), int(b[3:]))
    overnight = end is not None and end <= start and end != time(0, 0)
    if end == time(0, 0):
        end = None  # "20:00-00:00" means until midnight
    return start, end, overnight


def _hours_by_day(schedule: Schedule) -> dict[str, str]:
    out: dict[str, str] = {}
    for days, rng in schedule.hours.items():
        for day in expand_days(days):
            out[day] = rng
    return out


_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_open(schedule: Schedule, now: datetime) -> bool:
    """Is `now` (timezone-aware) inside the schedule? Local wall time in the schedule's zone, DST-correct.

    A day's range is [start, end). An overnight range (22:00-02:00 on fri) runs
    from friday 22:00 to saturday 02:00. An absent day is closed.
    """
    if now.tzinfo is None:
        raise ValueError("is_open needs a timezone-aware datetime")
    local = now.astimezone(ZoneInfo(schedule.timezone))
    t = local.time().replace(tzinfo=None)
    hours = _hours_by_day(schedule)
    today = _DAY_NAMES[local.weekday()]
    yesterday = _DAY_NAMES[(local - timedelta(days=1)).weekday()]
    if today in hours:
        start, end, overnight = _parse_range(hours[today])
        if overnight:
            if t >= start:
                return True
        elif start <= t and (end is None or t < end):
            return True
    if yesterday in hours:
        _, end, overnight = _parse_range(hours[yesterday])
        if overnight and end is not None and t < end:
            return True
    return False


def schedule_exclusion(schedule: Schedule | None, now: datetime) -> Exclusion | None:
    if schedule is None or is_open(schedule, now):
        return None
    local = now.astimezone(ZoneInfo(schedule.timezone))
    return Exclusion("schedule", f"closed at {local:%a %H:%M} {schedule.timezone}")


# ---------------------------------------------------------------- caps


def caps_exclusion(caps: Caps, load: BuyerLoad, now: datetime, tz: str, price: Decimal | None) -> Exclusion | None:
    """The first cap this call would exceed (see the module docstring for what each counts)."""
    bridged = load.bridged
    if caps.concurrency is not None and bridged >= caps.concurrency:
        return Exclusion("cap:concurrency", f"{bridged} call(s) bridged now, concurrency cap {caps.concurrency}")
    windows: tuple[tuple[Window, int | None, str], ...] = (
        ("hourly", caps.hourly, "hour"),
        ("daily", caps.daily, "day"),
        ("monthly", caps.monthly, "month"),
    )
    for window, cap, unit in windows:
        if cap is None:
            continue
        sold = load.sales(window, now, tz)
        if sold + bridged >= cap:
            return Exclusion(
                f"cap:{window}",
                f"{sold} billable sale(s) this {unit} ({tz}) + {bridged} in progress, {window} cap {cap}",
            )
    if caps.daily_budget is not None:
        committed = load.spend_today(now, tz) + load.reserved_spend
        if (price is None and committed >= caps.daily_budget) or (price is not None and committed + price > caps.daily_budget):
            this = "" if price is None else f" + {price:.2f} for this call"
            return Exclusion(
                "cap:daily_budget",
                f"spend today {committed:.2f} (incl. calls in progress){this} exceeds daily_budget {caps.daily_budget:.2f} ({tz})",
            )
    return None


# ---------------------------------------------------------------- the rule chain

Rule = Callable[[Buyer, Publisher, CallFacts, datetime], Exclusion | None]


def _blocked(buyer: Buyer, publisher: Publisher, call: CallFacts, now: datetime) -> Exclusion | None:
    if buyer.id in publisher.blocked_buyers:
        return Exclusion("blocked_by_publisher", f"publisher {publisher.id} blocks {buyer.id}")
    return None


def _filters(buyer: Buyer, publisher: Publisher, call: CallFacts, now: datetime) -> Exclusion | None:
    return filters_exclusion(buyer.filters, call)


def _schedule(buyer: Buyer, publisher: Publisher, call: CallFacts, now: datetime) -> Exclusion | None:
    return schedule_exclusion(buyer.schedule, now)


def price_floor_exclusion(price: Decimal, publisher: Publisher) -> Exclusion | None:
    if price < publisher.min_price:
        return Exclusion("floor", f"price {price:.2f} below publisher {publisher.id} min_price {publisher.min_price:.2f}")
    return None


def static_price(buyer: Buyer) -> Decimal | None:
    return buyer.bid.price if isinstance(buyer.bid, StaticBid) else None


# Order matters: the trace records the first rule that excluded a buyer. Caps and floor follow these.
RULES: tuple[Rule, ...] = (_blocked, _filters, _schedule)


def buyer_exclusion(
    buyer: Buyer,
    publisher: Publisher,
    call: CallFacts,
    now: datetime,
    load: BuyerLoad | None = None,
    price: Decimal | None = None,
) -> Exclusion | None:
    """The first rule excluding `buyer`, or None. `price` defaults to the static price (None for RTB:
    the floor is then checked on the bid); `load` None skips the caps (no state known)."""
    for rule in RULES:
        found = rule(buyer, publisher, call, now)
        if found is not None:
            return found
    if price is None:
        price = static_price(buyer)
    if load is not None:
        found = caps_exclusion(buyer.caps, load, now, buyer_timezone(buyer), price)
        if found is not None:
            return found
    if price is not None:
        return price_floor_exclusion(price, publisher)
    return None
