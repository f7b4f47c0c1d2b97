"""Who sells and who buys calls, and how a campaign routes them (docs/ROUTING.md).

Publishers send calls; buyers bid for them (a static price or an RTB endpoint) within their
filters, schedule and caps; a campaign owns tracking numbers and routes each call through its
tiers of buyers (or to an in-house queue), after its blocklist and duplicate window.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from switchboard.core.config.conditions import AnswerKey, Filters
from switchboard.core.config.schedules import Schedule
from switchboard.core.config.types import (
    E164,
    AreaCode,
    Destination,
    FieldPath,
    FieldProblems,
    Money,
    Strategy,
    _Model,
    _not_a_yaml_number,
)

# ---------------------------------------------------------------- publishers and buyers


class Publisher(_Model):
    id: str
    name: str = ""
    min_price: Money = Decimal("0.00")
    blocked_buyers: list[str] = []


class StaticBid(_Model):
    type: Literal["static"]
    price: Money


class RtbBid(_Model):
    type: Literal["rtb"]
    url: str
    timeout_ms: int = Field(800, gt=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(https?|grpcs?)://[^/\s]+", v):
            raise ValueError(
                f"{v!r} must be an http://, https://, grpc:// or grpcs:// URL with a host "
                '(write it like "http://127.0.0.1:9100/ping" or "grpc://127.0.0.1:9101")'
            )
        return v


Bid = Annotated[StaticBid | RtbBid, Field(discriminator="type")]


class Caps(_Model):
    concurrency: int | None = Field(None, ge=0)
    hourly: int | None = Field(None, ge=0)
    daily: int | None = Field(None, ge=0)
    monthly: int | None = Field(None, ge=0)
    daily_budget: Money | None = None


class Buyer(_Model):
    id: str
    name: str = ""
    destination: Destination
    share_caller_number: bool = False
    # The IVR answer keys this buyer is shown in pings, posts and offers (core/sharing.py); None: all of them.
    share_answers: list[AnswerKey] | None = None
    bid: Bid
    billable_after_s: int = Field(90, ge=0)
    priority: int = Field(1, ge=1)
    weight: int = Field(1, gt=0)
    filters: Filters = Filters()
    schedule: Schedule | None = None
    caps: Caps = Caps()


# ---------------------------------------------------------------- campaigns and routing


class Tier(_Model):
    strategy: Strategy
    buyers: list[str] = []
    queue: str | None = None
    pick: Literal["first_response", "priority"] = "first_response"

    @model_validator(mode="after")
    def _targets(self) -> Tier:
        problems: list[tuple[FieldPath, str]] = []
        if self.strategy == "queue":
            if not self.queue:
                problems.append((("queue",), "a queue tier needs a queue (add `queue: <queue id>`)"))
            if self.buyers:
                problems.append(
                    (
                        ("buyers",),
                        "a queue tier hands the call to a queue, not to buyers (remove buyers, or use another strategy)",
                    )
                )
        else:
            if not self.buyers:
                problems.append((("buyers",), f"a {self.strategy} tier needs buyers (add `buyers: [<buyer id>, ...]`)"))
            if self.queue is not None:
                problems.append((("queue",), "only a queue tier takes `queue` (remove it, or set `strategy: queue`)"))
        seen: set[str] = set()
        for i, b in enumerate(self.buyers):
            if b in seen:
                problems.append((("buyers", i), f"{b!r} is listed twice in this tier (remove the second one)"))
            seen.add(b)
        if "pick" in self.model_fields_set and self.strategy != "parallel_first":
            problems.append(
                (
                    ("pick",),
                    f"pick only applies to parallel_first, not {self.strategy} (remove it, or set `strategy: parallel_first`)",
                )
            )
        if problems:
            raise FieldProblems(problems)
        return self


class Routing(_Model):
    timeout_ms: int = Field(2000, gt=0)
    max_attempts: int = Field(3, ge=1)
    tiers: list[Tier] = Field(min_length=1)


_DURATION = re.compile(r"^([1-9]\d*)([smhd])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """'30m' → 1800; the format `duplicate_window` accepts."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return int(m.group(1)) * _DURATION_SECONDS[m.group(2)]


def _check_duration(v: Any) -> Any:
    if v is None:
        return v
    if not isinstance(v, str) or not _DURATION.match(v.strip()):
        raise ValueError(f"{v!r} is not a duration (write a whole number and a unit s, m, h or d: 30m, 24h or 7d)")
    return v.strip()


# Number prefixes are written like E.164 numbers, only shorter: "+1900".
_PREFIX = re.compile(r"^\+\d{1,15}$")


def _number_prefix(v: str) -> str:
    if not _PREFIX.match(v):
        raise ValueError(f'{v!r} is not a number prefix (write it like "+1900": +, then digits, no spaces)')
    return v


NumberPrefix = Annotated[str, BeforeValidator(lambda v: _not_a_yaml_number(v, '"+1900"')), AfterValidator(_number_prefix)]


class Blocklist(_Model):
    """Callers refused with `rejected: blocked` (top level: every campaign; on a campaign: that one)."""

    numbers: list[E164] = []
    prefixes: list[NumberPrefix] = []
    area_codes: list[AreaCode] = []


class Campaign(_Model):
    id: str
    name: str = ""
    numbers: list[E164] = Field(min_length=1)
    publisher: str
    ivr: str | None = None
    duplicate_window: str | None = None
    blocklist: Blocklist = Blocklist()
    allow_invalid_numbers: bool = False  # false: invalid/unplaceable callers end as `rejected: invalid_number`
    routing: Routing

    @field_validator("duplicate_window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Any:
        return _check_duration(v)
