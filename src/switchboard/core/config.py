"""Configuration models of ROUTING.md (the user-facing contract) and the YAML loader.

Field names here are the ones users write; see docs/ROUTING.md. Money is Decimal.
Loading a file or a directory returns a validated `RoutingConfig`, or raises
`ConfigError` listing every problem as `file: path.to.field: message (fix)`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

CENT = Decimal("0.01")


def _to_money(v: Any) -> Decimal:
    """YAML reads 40.00 as the float 40.0: go through its shortest text form, then to cents."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
        raise ValueError("a money amount like 40.00")
    try:
        d = Decimal(str(v).strip())
    except ArithmeticError:
        raise ValueError(f"{v!r} is not a money amount like 40.00") from None
    if not d.is_finite():
        raise ValueError(f"{v!r} is not a money amount like 40.00")
    if d != d.quantize(CENT):
        raise ValueError(f"{v} has more than cents; round it to 2 decimals")
    if d < 0:
        raise ValueError(f"{v} is negative; money amounts are 0 or more")
    return d.quantize(CENT)


Money = Annotated[Decimal, BeforeValidator(_to_money)]

STRATEGIES = (
    "price",
    "priority",
    "weight",
    "parallel_highest",
    "parallel_first",
    "ping_post",
    "even",
    "availability",
    "direct",
    "queue",
)
Strategy = Literal[
    "price", "priority", "weight", "parallel_highest", "parallel_first", "ping_post", "even", "availability", "direct", "queue"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Publisher(_Model):
    id: str
    name: str = ""
    min_price: Money = Decimal("0")
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
        if not re.match(r"^(https?|grpc)://", v):
            raise ValueError("must start with http://, https:// or grpc://")
        return v


Bid = Annotated[StaticBid | RtbBid, Field(discriminator="type")]

Condition = dict[str, Any]
_OPERATORS = {"eq", "ne", "in", "not_in", "gte", "lte", "gt", "lt", "between", "exists"}


class Filters(_Model):
    states: list[str] | None = None
    zip_prefixes: list[str] | None = None
    area_codes: list[str] | None = None
    answers: dict[str, Condition] | None = None

    @field_validator("answers")
    @classmethod
    def _ops(cls, v: dict[str, Condition] | None) -> dict[str, Condition] | None:
        for key, cond in (v or {}).items():
            if not isinstance(cond, dict) or len(cond) != 1:
                raise ValueError(f"answers.{key}: a condition is one operator, e.g. {{eq: \"yes\"}}")
            (op, arg), = cond.items()
            if op not in _OPERATORS:
                raise ValueError(f"answers.{key}: unknown operator {op!r}; use one of {sorted(_OPERATORS)}")
            if op == "between" and not (isinstance(arg, list) and len(arg) == 2):
                raise ValueError(f"answers.{key}: between takes [low, high]")
            if op in ("in", "not_in") and not isinstance(arg, list):
                raise ValueError(f"answers.{key}: {op} takes a list")
        return v


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Schedule(_Model):
    timezone: str
    hours: dict[str, str]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r}; use an IANA name such as America/New_York") from None
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for days, rng in v.items():
            for day in expand_days(days):
                if day in seen:
                    raise ValueError(f"{days}: {day} appears in more than one entry")
                seen.add(day)
            if not _RANGE.match(str(rng)):
                raise ValueError(f"{days}: {rng!r} is not HH:MM-HH:MM")
        return v


def expand_days(spec: str) -> list[str]:
    """'mon-fri' → [mon..fri]; 'sat' → [sat]; 'mon,wed' → [mon, wed]."""
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip().lower()
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in _DAYS or b not in _DAYS:
                raise ValueError(f"unknown day range {part!r}; days are {', '.join(_DAYS)}")
            i, j = _DAYS.index(a), _DAYS.index(b)
            out.extend(_DAYS[i : j + 1] if i <= j else _DAYS[i:] + _DAYS[: j + 1])
        elif part in _DAYS:
            out.append(part)
        else:
            raise ValueError(f"unknown day {part!r}; days are {', '.join(_DAYS)}")
    return out


class Caps(_Model):
    concurrency: int | None = Field(None, ge=0)
    hourly: int | None = Field(None, ge=0)
    daily: int | None = Field(None, ge=0)
    monthly: int | None = Field(None, ge=0)
    daily_budget: Money | None = None


class Buyer(_Model):
    id: str
    name: str = ""
    destination: str
    share_caller_number: bool = False
    bid: Bid
    billable_after_s: int = Field(90, ge=0)
    priority: int = Field(1, ge=1)
    weight: int = Field(1, gt=0)
    filters: Filters = Filters()
    schedule: Schedule | None = None
    caps: Caps = Caps()

    @field_validator("destination")
    @classmethod
    def _dest(cls, v: str) -> str:
        if not (re.match(r"^\+[1-9]\d{6,14}$", v) or v.startswith("sip:")):
            raise ValueError("must be an E.164 number like +18005550100 or a sip: URI")
        return v


class Tier(_Model):
    strategy: Strategy
    buyers: list[str] = []
    queue: str | None = None
    pick: Literal["first_response", "priority"] = "first_response"

    @model_validator(mode="after")
    def _targets(self) -> Tier:
        if self.strategy == "queue":
            if not self.queue:
                raise ValueError("a queue tier needs `queue: <queue id>`")
        elif not self.buyers:
            raise ValueError(f"a {self.strategy} tier needs `buyers: [<buyer id>, ...]`")
        return self


class Routing(_Model):
    timeout_ms: int = Field(2000, gt=0)
    max_attempts: int = Field(3, ge=1)
    tiers: list[Tier] = Field(min_length=1)


_DURATION = re.compile(r"^(\d+)([smhd])$")


class Campaign(_Model):
    id: str
    name: str = ""
    numbers: list[str] = Field(min_length=1)
    publisher: str
    ivr: str | None = None
    duplicate_window: str | None = None
    routing: Routing

    @field_validator("duplicate_window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None and not _DURATION.match(v):
            raise ValueError("a duration like 30m, 24h or 7d")
        return v


class Queue(_Model):
    id: str
    strategy: Literal["longest_idle", "round_robin", "fewest_calls", "best_performer"] = "longest_idle"
    match: list[str] = []
    max_wait_s: int = Field(180, ge=0)
    callback_offer_after_s: int | None = Field(None, ge=0)


class Agent(_Model):
    id: str
    name: str = ""
    queues: list[str] = Field(min_length=1)
    skills: dict[str, list[str]] = {}
    location: str = ""
    performance: float = Field(0.5, ge=0, le=1)
    max_concurrent: int = Field(1, ge=1)
    destination: str = ""


class IvrFlow(_Model):
    # The node format arrives with the IVR issue; until then nodes are kept as given.
    model_config = ConfigDict(extra="allow", frozen=True)
    id: str


class RoutingConfig(_Model):
    version: Literal[1] = 1
    publishers: list[Publisher] = []
    buyers: list[Buyer] = []
    campaigns: list[Campaign] = []
    queues: list[Queue] = []
    agents: list[Agent] = []
    ivr_flows: list[IvrFlow] = []
    # The offline simulation model (issue: simulate); kept as given until it is defined.
    simulation: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        problems: list[str] = []
        for kind in ("publishers", "buyers", "campaigns", "queues", "agents", "ivr_flows"):
            ids = [x.id for x in getattr(self, kind)]
            dups = sorted({i for i in ids if ids.count(i) > 1})
            if dups:
                problems.append(f"{kind}: duplicate id {', '.join(dups)} (ids must be unique)")
        buyers = {b.id for b in self.buyers}
        publishers = {p.id for p in self.publishers}
        queues = {q.id for q in self.queues}
        flows = {f.id for f in self.ivr_flows}
        numbers: dict[str, str] = {}
        for ci, c in enumerate(self.campaigns):
            if c.publisher not in publishers:
                problems.append(f"campaigns.{ci}.publisher: unknown publisher {c.publisher!r} (define it under publishers)")
            if c.ivr and c.ivr not in flows:
                problems.append(f"campaigns.{ci}.ivr: unknown IVR flow {c.ivr!r} (define it under ivr_flows)")
            for n in c.numbers:
                if n in numbers:
                    problems.append(f"campaigns.{ci}.numbers: {n} already belongs to campaign {numbers[n]!r}")
                numbers[n] = c.id
            for ti, t in enumerate(c.routing.tiers):
                for b in t.buyers:
                    if b not in buyers:
                        problems.append(f"campaigns.{ci}.routing.tiers.{ti}.buyers: unknown buyer {b!r} (define it under buyers)")
                if t.queue and t.queue not in queues:
                    problems.append(f"campaigns.{ci}.routing.tiers.{ti}.queue: unknown queue {t.queue!r} (define it under queues)")
        for pi, p in enumerate(self.publishers):
            for b in p.blocked_buyers:
                if b not in buyers:
                    problems.append(f"publishers.{pi}.blocked_buyers: unknown buyer {b!r}")
        for ai, a in enumerate(self.agents):
            for q in a.queues:
                if q not in queues:
                    problems.append(f"agents.{ai}.queues: unknown queue {q!r} (define it under queues)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # Lookups used by every service; built lazily, the model is frozen.
    def campaign_for_number(self, dialed: str) -> Campaign | None:
        for c in self.campaigns:
            if dialed in c.numbers:
                return c
        return None

    def campaign(self, campaign_id: str) -> Campaign:
        return next(c for c in self.campaigns if c.id == campaign_id)

    def buyer(self, buyer_id: str) -> Buyer:
        return next(b for b in self.buyers if b.id == buyer_id)

    def publisher(self, publisher_id: str) -> Publisher:
        return next(p for p in self.publishers if p.id == publisher_id)

    def queue(self, queue_id: str) -> Queue:
        return next(q for q in self.queues if q.id == queue_id)


class ConfigError(ValueError):
    """Invalid configuration: `problems` holds one `file: field: message (fix)` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


_LIST_SECTIONS = ("publishers", "buyers", "campaigns", "queues", "agents", "ivr_flows")


def load_config(path: str | Path) -> RoutingConfig:
    """Load one YAML file or every *.yaml/*.yml file of a directory (sections are concatenated)."""
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise ConfigError([f"{path}: no *.yaml files in this directory"])
    elif path.exists():
        files = [path]
    else:
        raise ConfigError([f"{path}: no such file or directory (pass a YAML file or a directory of them)"])
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, int], Path] = {}
    problems: list[str] = []
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as exc:
            problems.append(f"{f}: not valid YAML: {exc}")
            continue
        if not isinstance(doc, dict):
            problems.append(f"{f}: the top level must be a mapping (version, buyers, campaigns, ...)")
            continue
        for key, value in doc.items():
            if key in _LIST_SECTIONS:
                if not isinstance(value, list):
                    problems.append(f"{f}: {key}: must be a list")
                    continue
                start = len(merged.setdefault(key, []))
                merged[key].extend(value)
                for i in range(len(value)):
                    origin[(key, start + i)] = f
            else:
                merged[key] = value
                origin[(key, -1)] = f
    if problems:
        raise ConfigError(problems)
    try:
        return RoutingConfig.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            where = files[0] if len(files) == 1 else None
            if len(loc) >= 2 and loc[1].isdigit():
                where = origin.get((loc[0], int(loc[1])), where)
            elif loc:
                where = origin.get((loc[0], -1), where)
            field = ".".join(loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where or path}: {field}: {msg}")
        raise ConfigError(problems) from None
