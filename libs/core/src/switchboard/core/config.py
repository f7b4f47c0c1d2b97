"""Configuration models of ROUTING.md (the user-facing contract) and the YAML loader.

Field names here are the ones users write; see docs/ROUTING.md for the contract
and docs/CONFIG.md for every field, default and validation rule. Money is Decimal.

Loading a file or a directory returns a validated `RoutingConfig`, or raises
`ConfigError` whose `.problems` lists EVERY problem, one line each, as
`file:line: path.to.field: message (fix)`. Line numbers come from the YAML node
positions of the file the field was written in, also when several files are
merged. Shape errors (pydantic) and cross-reference errors (unknown buyer, ...)
are collected in one pass, so a user fixes everything in one go.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

CENT = Decimal("0.01")
DOCS = "docs/CONFIG.md"

# A field path as the user writes it: ("campaigns", 0, "routing", "tiers", 1, "strategy").
FieldPath = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """'; did you mean X?' when a choice is close to `word`, else ''."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class FieldProblems(ValueError):
    """Raised by a validator that found several problems, each below the validated field.

    `items` holds (sub-path, message) pairs; the loader appends each sub-path to
    the field's location, so `hours` problems point at `hours.mon-fri` and its line.
    """

    def __init__(self, items: list[tuple[FieldPath, str]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{format_path(p)}: {m}" if p else m for p, m in items))


# ---------------------------------------------------------------- scalars


class ExactFloat(float):
    """A YAML float that remembers how it was written: money `40.00` becomes Decimal("40.00") exactly."""

    text: str


def _to_money(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
        raise ValueError(f"{v!r} is not a money amount (write it like 40.00)")  # noqa: TRY004 (pydantic reports ValueError)
    text = getattr(v, "text", None) or str(v).strip()
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{text!r} is not a money amount (write it like 40.00)") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a money amount (write it like 40.00)")
    if d < 0:
        raise ValueError(f"{text} is negative (money amounts are 0 or more, e.g. 40.00)")
    try:
        cents = d.quantize(CENT)
    except InvalidOperation:
        raise ValueError(f"{text} is too large (write a realistic amount like 40.00)") from None
    if d != cents:
        raise ValueError(f"{text} has fractions of a cent (round it to cents, e.g. {cents})")
    return cents


Money = Annotated[Decimal, BeforeValidator(_to_money)]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _not_a_yaml_number(v: Any, example: str) -> Any:
    """Unquoted +18885550123 is an integer to YAML: say how to quote it instead of 'expected text'."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(f"{v} was read as a number (put it in quotes with its leading +, e.g. {example})")  # noqa: TRY004
    return v


def _e164(v: str) -> str:
    if not _E164.match(v):
        raise ValueError(f'{v!r} is not an E.164 number (write it like "+18885550123": +, country code, number, no spaces)')
    return v


def _destination(v: str) -> str:
    if _E164.match(v) or re.match(r"^sips?:[^\s]+$", v):
        return v
    raise ValueError(f'{v!r} is neither an E.164 number nor a sip: URI (write it like "+18005550100" or "sip:sales@example.com")')


E164 = Annotated[str, BeforeValidator(lambda v: _not_a_yaml_number(v, '"+18885550123"')), AfterValidator(_e164)]
Destination = Annotated[str, BeforeValidator(lambda v: _not_a_yaml_number(v, '"+18005550100"')), AfterValidator(_destination)]


def _pattern(regex: str, what: str, example: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def check(v: str) -> str:
        if not compiled.match(v):
            raise ValueError(f"{v!r} is not {what} (write it like {example})")
        return v

    return check


StateCode = Annotated[str, AfterValidator(_pattern(r"^[A-Za-z]{2}$", "a two-letter state code", "CA"))]
ZipPrefix = Annotated[str, AfterValidator(_pattern(r"^\d{1,5}$", "a ZIP prefix of 1 to 5 digits", '"900"'))]
AreaCode = Annotated[str, AfterValidator(_pattern(r"^\d{3}$", "a three-digit area code", '"213"'))]

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
QUEUE_STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "best_performer")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        if not re.match(r"^(https?|grpc)://[^/\s]+", v):
            raise ValueError(
                f"{v!r} must be an http://, https:// or grpc:// URL with a host "
                '(write it like "http://127.0.0.1:9100/ping" or "grpc://127.0.0.1:9101")'
            )
        return v


Bid = Annotated[StaticBid | RtbBid, Field(discriminator="type")]

Condition = dict[str, Any]
OPERATORS = ("eq", "ne", "in", "not_in", "gte", "lte", "gt", "lt", "between", "exists")
_OPERATORS = set(OPERATORS)  # older name
# What people write from other languages, for "did you mean".
_OPERATOR_ALIASES = {
    "equals": "eq",
    "is": "eq",
    "==": "eq",
    "=": "eq",
    "not": "ne",
    "not_eq": "ne",
    "!=": "ne",
    ">=": "gte",
    "ge": "gte",
    "min": "gte",
    "<=": "lte",
    "le": "lte",
    "max": "lte",
    ">": "gt",
    "<": "lt",
    "range": "between",
    "one_of": "in",
    "any": "in",
    "nin": "not_in",
    "not in": "not_in",
    "notin": "not_in",
    "present": "exists",
    "has": "exists",
}


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, Decimal)) and v is not None


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float, Decimal)):
        return Decimal(str(v)).is_finite()
    if isinstance(v, str):
        try:
            return Decimal(v.strip()).is_finite()
        except InvalidOperation:
            return False
    return False


def _operator_argument_problem(op: str, arg: Any) -> str | None:
    """What is wrong with `{op: arg}`, with the fix; None when its shape is right."""
    if op in ("eq", "ne"):
        if not _is_scalar(arg):
            return f'{op} compares with one value, got {arg!r} (write it like {{{op}: "yes"}}; for several values use in: [a, b])'
    elif op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg or not all(_is_scalar(x) for x in arg):
            return f"{op} needs a non-empty list of values, got {arg!r} (write it like {{{op}: [en, es]}})"
    elif op in ("gte", "lte", "gt", "lt"):
        if not _is_number(arg):
            return f"{op} needs a number, got {arg!r} (write it like {{{op}: 650}})"
    elif op == "between":
        if not (isinstance(arg, list) and len(arg) == 2 and all(_is_number(x) for x in arg)):
            return f"between needs [low, high], got {arg!r} (write it like {{between: [100, 500]}})"
    elif op == "exists" and not isinstance(arg, bool):
        return f"exists needs true or false, got {arg!r} (write it like {{exists: true}})"
    return None


def _check_answers(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return v  # None, or a shape error pydantic reports
    problems: list[tuple[FieldPath, str]] = []
    for key, cond in v.items():
        if not isinstance(cond, Mapping) or len(cond) != 1:
            problems.append(
                (
                    (key,),
                    (
                        f"a condition is exactly one operator, got {cond!r} "
                        '(write it like {eq: "yes"}; for a range use {between: [low, high]})'
                    ),
                )
            )
            continue
        ((op, arg),) = cond.items()
        if op not in _OPERATORS:
            hint = f"; did you mean {_OPERATOR_ALIASES[op]}?" if op in _OPERATOR_ALIASES else _did_you_mean(op, OPERATORS)
            problems.append(((key, op), f"unknown operator {op!r}{hint} (use one of: {', '.join(OPERATORS)})"))
            continue
        why = _operator_argument_problem(op, arg)
        if why:
            problems.append(((key, op), why))
    if problems:
        raise FieldProblems(problems)
    return v


class Filters(_Model):
    states: list[StateCode] | None = None
    zip_prefixes: list[ZipPrefix] | None = None
    area_codes: list[AreaCode] | None = None
    answers: dict[str, Condition] | None = None

    @field_validator("answers", mode="before")
    @classmethod
    def _answers(cls, v: Any) -> Any:
        return _check_answers(v)


# ---------------------------------------------------------------- schedules

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d"
_RANGE = re.compile(rf"^({_TIME})-({_TIME}|24:00)$")


def expand_days(spec: str) -> list[str]:
    """'mon-fri' → [mon..fri]; 'sat' → [sat]; 'mon,wed' → [mon, wed]; 'fri-mon' wraps the weekend."""
    out: list[str] = []
    for part in str(spec).split(","):
        part = part.strip().lower()
        names = part.split("-", 1) if "-" in part else [part]
        for name in names:
            if name not in _DAYS:
                raise ValueError(
                    f"unknown day {name!r}{_did_you_mean(name, _DAYS)} "
                    f"(days are {', '.join(_DAYS)}; ranges look like mon-fri, lists like mon,wed)"
                )
        if len(names) == 2:
            i, j = _DAYS.index(names[0]), _DAYS.index(names[1])
            out.extend(_DAYS[i : j + 1] if i <= j else _DAYS[i:] + _DAYS[: j + 1])
        else:
            out.append(names[0])
    return out


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_hours(v: Any) -> Any:
    """Each entry `days: "HH:MM-HH:MM"`; a day in one entry only; overnight ranges may not run into the next day's hours."""
    if not isinstance(v, Mapping):
        return v
    problems: list[tuple[FieldPath, str]] = []
    if not v:
        problems.append(
            ((), 'no hours: the buyer would always be closed (add e.g. {mon-fri: "08:00-20:00"}, or remove the schedule)')
        )
    owner: dict[str, str] = {}  # day -> the entry that covers it
    spans: dict[str, tuple[int, int, str]] = {}  # day -> (start, end, entry); end < start runs overnight
    out: dict[str, str] = {}
    for key, rng in v.items():
        try:
            days = expand_days(key)
        except ValueError as exc:
            problems.append(((key,), str(exc)))
            days = []
        fresh = []
        for day in days:
            if day in owner:
                problems.append(((key,), f"{day} is already covered by {owner[day]!r} (list each day in one entry only)"))
            else:
                owner[day] = str(key)
                fresh.append(day)
        if not isinstance(rng, str):
            problems.append(
                ((key,), f'{rng!r} is not a time range (write it in quotes like "08:00-20:00"; to close a day, leave it out)')
            )
            continue
        rng = rng.strip()
        m = _RANGE.match(rng)
        if not m:
            problems.append(
                (
                    (key,),
                    (
                        f'{rng!r} is not a time range HH:MM-HH:MM (write it like "08:00-20:00"; '
                        'times run 00:00 to 24:00, and "20:00-08:00" runs overnight)'
                    ),
                )
            )
            continue
        start, end = _minutes(m.group(1)), _minutes(m.group(2))
        if end == 0:
            end = 24 * 60  # "20:00-00:00" is until midnight
        if start == end:
            problems.append(((key,), f'{rng!r} starts and ends at the same time (for the whole day write "00:00-24:00")'))
            continue
        out[str(key)] = rng
        for day in fresh:
            spans[day] = (start, end, str(key))
    for day, (start, end, key) in spans.items():
        if end >= start:
            continue
        nxt = _DAYS[(_DAYS.index(day) + 1) % 7]
        if nxt in spans and spans[nxt][0] < end:
            problems.append(
                (
                    (key,),
                    (
                        f"{day} runs past midnight until {_hhmm(end)} on {nxt}, overlapping {nxt} from {_hhmm(spans[nxt][0])} "
                        f"(end {day} earlier or start {nxt} later)"
                    ),
                )
            )
    if problems:
        raise FieldProblems(problems)
    return out


def _check_timezone(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        import zoneinfo

        hint = _did_you_mean(v, zoneinfo.available_timezones())
        raise ValueError(f"unknown timezone {v!r}{hint} (use an IANA name such as America/New_York)") from None
    return v


class Schedule(_Model):
    timezone: str
    hours: dict[str, str]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: Any) -> Any:
        return _check_timezone(v)

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, v: Any) -> Any:
        return _check_hours(v)


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


# ---------------------------------------------------------------- in-house ACD and IVR


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


# IVR flows (docs/IVR.md). The models check each node's shape; `ivr_flow_problems`
# checks the graph (missing targets, unreachable nodes, loops without an exit) on
# the raw data, so graph problems are reported together with shape problems.
# The engine that walks a flow is core/ivr.py.

IVR_NODE_TYPES = ("menu", "question", "set_language", "end")
IVR_INPUTS = ("digits", "speech", "digits_or_speech")
DTMF_KEYS = tuple("0123456789*#")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def _yaml_text(v: Any) -> Any:
    """An unquoted yes/no/1 in YAML is a bool or a number: take it as the text the user meant."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float, Decimal)):
        return str(getattr(v, "text", None) or v)
    return v


IvrValue = Annotated[str, BeforeValidator(_yaml_text)]


def _check_identifier(v: str) -> str:
    if not _IDENTIFIER.match(v):
        fixed = re.sub(r"\W+", "_", v).strip("_") or "answer"
        if fixed[0].isdigit():
            fixed = "a_" + fixed
        raise ValueError(
            f"{v!r} is not an answer key: letters, digits and _ only, not starting with a digit "
            f"(buyer filters name it under answers:, write it like {fixed})"
        )
    return v


AnswerKey = Annotated[str, AfterValidator(_check_identifier)]


def _check_language(v: str) -> str:
    if not _LANGUAGE.match(v):
        raise ValueError(f"{v!r} is not a language code (write it like en, es or en-US)")
    return v


LanguageCode = Annotated[str, AfterValidator(_check_language)]


def _check_prompt(v: Any) -> Any:
    """A prompt is text, or a mapping language → text; never empty."""
    if isinstance(v, str):
        if not v.strip():
            raise ValueError('empty prompt (write what the caller hears, e.g. "Press 1 for English")')
        return v
    if isinstance(v, Mapping):
        problems: list[tuple[FieldPath, str]] = []
        if not v:
            problems.append(((), 'no text in any language (write it like {en: "Hello", es: "Hola"})'))
        for lang, text in v.items():
            if not isinstance(lang, str) or not _LANGUAGE.match(lang):
                problems.append(((lang,), f"{lang!r} is not a language code (write it like en, es or en-US)"))
            elif not isinstance(text, str) or not text.strip():
                problems.append(
                    ((lang,), f'expected the prompt text in {lang}, got {_show(text)} (write it in quotes, e.g. "Hello")')
                )
        if problems:
            raise FieldProblems(problems)
        return dict(v)
    raise ValueError(f'expected text or a mapping language → text, got {_show(v)} (write "Hello" or {{en: "Hello", es: "Hola"}})')


IvrPrompt = Annotated[str | dict[str, str], BeforeValidator(_check_prompt)]


def _check_keys(v: Any) -> Any:
    """Menu options are keyed by one DTMF key; YAML reads an unquoted 1: as the number 1."""
    if not isinstance(v, Mapping):
        return v
    problems: list[tuple[FieldPath, str]] = []
    out: dict[str, Any] = {}
    for key, option in v.items():
        text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
        if not isinstance(text, str) or text not in DTMF_KEYS:
            problems.append(((key,), f'{key!r} is not a single phone key (use one of 0-9, * or #; quote * and # like "*":)'))
            continue
        out[text] = option
    if not v:
        problems.append(((), 'no options (add at least one, e.g. "1": next-node)'))
    if problems:
        raise FieldProblems(problems)
    return out


def _condition_problems(when: Any) -> list[tuple[FieldPath, str]]:
    """`when` is {op: arg} on the node's own answer, or {answer_key: {op: arg}, ...} on earlier answers."""
    if not isinstance(when, Mapping) or not when:
        return [((), f'expected a condition, got {_show(when)} (write it like {{gte: 650}} or {{homeowner: {{eq: "yes"}}}})')]
    problems: list[tuple[FieldPath, str]] = []
    for key, arg in when.items():
        if isinstance(arg, Mapping):  # answer_key: {op: arg}
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                problems.append(((key,), f"{key!r} is not an answer key (letters, digits and _ only, e.g. monthly_bill)"))
                continue
            try:
                _check_answers({key: arg})
            except FieldProblems as exc:
                problems.extend(exc.items)
        elif key not in _OPERATORS:
            hint = f"; did you mean {_OPERATOR_ALIASES[key]}?" if key in _OPERATOR_ALIASES else _did_you_mean(key, OPERATORS)
            problems.append(((key,), f"unknown operator {key!r}{hint} (use one of: {', '.join(OPERATORS)})"))
        else:
            why = _operator_argument_problem(key, arg)
            if why:
                problems.append(((key,), why))
    return problems


class IvrOption(_Model):
    next: str
    value: IvrValue | None = None  # stored under the menu's answer_key; default the key pressed
    say: list[IvrValue] = []  # spoken words that choose this option


class IvrLanguageOption(_Model):
    language: LanguageCode
    say: list[IvrValue] = []


class IvrValidate(_Model):
    pattern: str | None = None  # a regular expression the whole answer must match
    min: Decimal | None = None  # numeric answers: inclusive bounds
    max: Decimal | None = None
    choices: list[IvrValue] | None = Field(None, min_length=1)  # one of these (case-insensitive)
    yes_no: bool = False  # yes/no question: 1 or spoken yes → "yes", 2 or spoken no → "no"

    @model_validator(mode="after")
    def _consistent(self) -> IvrValidate:
        problems: list[tuple[FieldPath, str]] = []
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                problems.append((("pattern",), f"not a valid regular expression: {exc} (write it like '^\\d{{5}}$')"))
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append((("min",), f"min {self.min} is above max {self.max} (swap them)"))
        if self.yes_no and (self.choices or self.pattern or self.min is not None or self.max is not None):
            problems.append((("yes_no",), "yes_no takes no other rule (remove pattern/min/max/choices, or yes_no)"))
        if problems:
            raise FieldProblems(problems)
        return self


class IvrBranch(_Model):
    when: dict[Any, Any]
    goto: str

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: Any) -> Any:
        problems = _condition_problems(v)
        if problems:
            raise FieldProblems(problems)
        return v


class _IvrGather(_Model):
    prompt: IvrPrompt
    retry_prompt: IvrPrompt | None = None  # said instead of prompt after an invalid answer
    input: Literal["digits", "speech", "digits_or_speech"] = "digits_or_speech"
    retries: int = Field(2, ge=0, le=10)  # re-prompts after an invalid answer
    on_invalid: str | None = None  # where to go when retries run out; absent: end disqualified (invalid_input)


class IvrMenuNode(_IvrGather):
    type: Literal["menu"]
    options: dict[str, str | IvrOption]
    answer_key: AnswerKey | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        return _check_keys(v)


class IvrQuestionNode(_IvrGather):
    type: Literal["question"]
    answer_key: AnswerKey
    validation: IvrValidate | None = Field(None, alias="validate")
    branches: list[IvrBranch] = []  # first whose `when` holds wins
    next: str  # when no branch holds


class IvrSetLanguageNode(_IvrGather):
    type: Literal["set_language"]
    options: dict[str, LanguageCode | IvrLanguageOption]
    next: str

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        return _check_keys(v)


class IvrEndNode(_Model):
    type: Literal["end"]
    result: Literal["qualified", "disqualified"]
    reason: str = ""
    prompt: IvrPrompt | None = None  # said before the call moves on (or hangs up)


def _check_node_type(v: Any) -> Any:
    if isinstance(v, Mapping):
        t = v.get("type")
        if t is None:
            raise FieldProblems([(("type",), f"a node needs a type (add `type:` with one of: {', '.join(IVR_NODE_TYPES)})")])
        if t not in IVR_NODE_TYPES:
            raise FieldProblems(
                [
                    (
                        ("type",),
                        f"unknown node type {_show(t)}{_did_you_mean(t, IVR_NODE_TYPES)} (use one of: {', '.join(IVR_NODE_TYPES)})",
                    )
                ]
            )
    return v


IvrNode = Annotated[
    IvrMenuNode | IvrQuestionNode | IvrSetLanguageNode | IvrEndNode,
    Field(discriminator="type"),
    BeforeValidator(_check_node_type),
]


def _check_node_ids(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return v
    bad = [
        ((k,), f"{k!r} is not a node id (letters, digits, _ and - only, e.g. ask_zip)")
        for k in v
        if not isinstance(k, str) or not _NODE_ID.match(k)
    ]
    if bad:
        raise FieldProblems(bad)
    return v


class IvrFlow(_Model):
    id: str
    language: LanguageCode = "en"  # prompts are said in this language until a set_language node changes it
    start: str | None = None
    max_steps: int = Field(50, ge=1)  # answers per call before it ends disqualified (max_steps); bounds menu loops
    # A flow without nodes asks nothing and qualifies every call (a campaign can name its flow before it is written).
    nodes: dict[str, IvrNode] = {}

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_ids(cls, v: Any) -> Any:
        return _check_node_ids(v)


def ivr_node_targets(node: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """(sub-path, node id) of every node `node` can go to; tolerant of bad shapes (raw or dumped data)."""
    out: list[tuple[FieldPath, str]] = []
    kind = node.get("type")
    options = node.get("options")
    if kind == "menu" and isinstance(options, Mapping):
        for key, option in options.items():
            if isinstance(option, str):
                out.append((("options", key), option))
            elif isinstance(option, Mapping) and isinstance(option.get("next"), str):
                out.append((("options", key, "next"), option["next"]))
    branches = node.get("branches")
    if isinstance(branches, list):
        for i, b in enumerate(branches):
            if isinstance(b, Mapping) and isinstance(b.get("goto"), str):
                out.append((("branches", i, "goto"), b["goto"]))
    for name in ("next", "on_invalid"):
        if isinstance(node.get(name), str) and kind != "end":
            out.append(((name,), node[name]))
    return out


def ivr_flow_problems(flow: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """The graph of one flow (raw data): targets exist, every node is reachable, every reachable node can end."""
    nodes = flow.get("nodes")
    start = flow.get("start")
    if not nodes and start is None:
        return []  # the pass-through flow (no nodes, no start)
    if not isinstance(nodes, Mapping):
        if nodes is None:
            return [(("nodes",), "a flow with a start needs nodes (add `nodes:` with at least an end node, or remove start)")]
        return []  # a shape problem pydantic reports
    ids = [k for k in nodes if isinstance(k, str)]
    problems: list[tuple[FieldPath, str]] = []
    if start is None:
        problems.append(
            (("start",), f"required field is missing (add `start: <node id>`, e.g. start: {ids[0] if ids else 'welcome'})")
        )
    elif isinstance(start, str) and start not in nodes:
        problems.append((("start",), f"unknown node {start!r}{_did_you_mean(start, ids)} (start at one of: {', '.join(ids)})"))
    edges: dict[str, list[str]] = {}
    ends: set[str] = set()
    for nid in ids:
        node = nodes[nid]
        if not isinstance(node, Mapping):
            ends.add(nid)  # a shape problem: reported there, not as a trap
            continue
        if node.get("type") not in ("menu", "question", "set_language"):
            ends.add(nid)  # end nodes, and unknown types (reported by the shape check)
        edges[nid] = []
        targets = ivr_node_targets(node)
        if not targets:
            ends.add(nid)  # a missing next/options: reported by the shape check, not as a trap
        for sub, target in targets:
            if target in nodes:
                edges[nid].append(target)
            else:
                ends.add(nid)  # reported as an unknown node below, not again as a trap
                problems.append(
                    (
                        ("nodes", nid, *sub),
                        f"unknown node {target!r}{_did_you_mean(target, ids)} (point it at one of: {', '.join(ids)})",
                    )
                )
    if not any(isinstance(nodes[n], Mapping) and nodes[n].get("type") == "end" for n in ids):
        problems.append(
            (("nodes",), "no end node: no call could ever finish (add one, e.g. done: {type: end, result: qualified})")
        )
        return problems
    if not (isinstance(start, str) and start in nodes):
        return problems
    reachable = _reach([start], edges)
    for nid in ids:
        if nid not in reachable:
            problems.append(
                (
                    ("nodes", nid),
                    f"node {nid!r} is never reached from start {start!r} (point a next, option or branch at it, or remove it)",
                )
            )
    incoming: dict[str, list[str]] = {n: [] for n in ids}
    for src, targets in edges.items():
        for t in targets:
            incoming[t].append(src)
    can_end = _reach(list(ends), incoming)
    trapped = reachable - can_end
    for nid in ids:  # report where a caller enters the trap, once per entry
        if nid not in trapped or not (nid == start or any(p in reachable and p not in trapped for p in incoming[nid])):
            continue
        loop = _cycle_from(nid, edges, trapped)
        problems.append(
            (
                ("nodes", nid),
                (
                    f"loop without an exit: from {nid!r} the call can only go round {' → '.join(loop)} and never reach an end node "
                    "(add an option, branch or on_invalid that leads to an end node)"
                ),
            )
        )
    return problems


def _reach(roots: list[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(roots)
    todo = list(roots)
    while todo:
        for nxt in edges.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycle_from(nid: str, edges: Mapping[str, list[str]], within: set[str]) -> list[str]:
    """A path from `nid` that comes back to a node already on it, for the message (trapped nodes always have one)."""
    path = [nid]
    while True:
        nxt = next((t for t in edges.get(path[-1], []) if t in within), None)
        if nxt is None:
            return path
        path.append(nxt)
        if nxt in path[:-1]:
            return path


# ---------------------------------------------------------------- the whole configuration

_LIST_SECTIONS = ("publishers", "buyers", "campaigns", "queues", "agents", "ivr_flows")
_SECTION_NOUN = {
    "publishers": "publisher",
    "buyers": "buyer",
    "campaigns": "campaign",
    "queues": "queue",
    "agents": "agent",
    "ivr_flows": "IVR flow",
}


def _items(data: Mapping[str, Any], section: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = data.get(section)
    if not isinstance(value, list):
        return []
    return [(i, x) for i, x in enumerate(value) if isinstance(x, Mapping)]


def _ids(data: Mapping[str, Any], section: str) -> set[Any]:
    return {x["id"] for _, x in _items(data, section) if isinstance(x.get("id"), str)}


def _seq(value: Any) -> list[tuple[int, Any]]:
    return [(i, x) for i, x in enumerate(value) if isinstance(x, str)] if isinstance(value, list) else []


def reference_problems(data: Mapping[str, Any], where: Callable[[FieldPath], str] = lambda p: "") -> list[tuple[FieldPath, str]]:
    """Cross-references and uniqueness over the raw (or dumped) configuration, tolerant of bad shapes.

    Runs on raw data so its problems are reported together with shape problems.
    `where(path)` renders a location ("a.yaml:12") for messages that mention another place.
    """
    problems: list[tuple[FieldPath, str]] = []

    def also(path: FieldPath) -> str:
        w = where(path)
        return f" at {w}" if w else ""

    for section in _LIST_SECTIONS:
        first: dict[str, int] = {}
        for i, item in _items(data, section):
            ident = item.get("id")
            if not isinstance(ident, str):
                continue
            if ident in first:
                problems.append(
                    (
                        (section, i, "id"),
                        (
                            f"duplicate {_SECTION_NOUN[section]} id {ident!r}, first defined{also((section, first[ident], 'id'))} "
                            "(ids must be unique: rename or remove one)"
                        ),
                    )
                )
            else:
                first[ident] = i

    buyers, publishers, queues, flows = (_ids(data, s) for s in ("buyers", "publishers", "queues", "ivr_flows"))

    def unknown(kind: str, section: str, ident: str, known: set[Any], action: str) -> str:
        return f"unknown {kind} {ident!r}{_did_you_mean(ident, known)} (define it under {section}, or {action})"

    number_owner: dict[str, tuple[str, FieldPath]] = {}
    for ci, c in _items(data, "campaigns"):
        pub = c.get("publisher")
        if isinstance(pub, str) and pub not in publishers:
            problems.append(
                (
                    ("campaigns", ci, "publisher"),
                    unknown("publisher", "publishers", pub, publishers, "use an existing publisher id"),
                )
            )
        ivr = c.get("ivr")
        if isinstance(ivr, str) and ivr not in flows:
            problems.append(
                (("campaigns", ci, "ivr"), unknown("IVR flow", "ivr_flows", ivr, flows, "remove `ivr` from the campaign"))
            )
        for ni, n in _seq(c.get("numbers")):
            path: FieldPath = ("campaigns", ci, "numbers", ni)
            if n in number_owner:
                owner, other = number_owner[n]
                same = owner == c.get("id")
                problems.append(
                    (
                        path,
                        f"tracking number {n} is listed twice in this campaign (remove one)"
                        if same
                        else f"tracking number {n} already belongs to campaign {owner!r}{also(other)} "
                        "(a number routes to one campaign: remove it from one of them)",
                    )
                )
            else:
                number_owner[n] = (str(c.get("id")), path)
        routing = c.get("routing")
        if not isinstance(routing, Mapping):
            continue
        for ti, t in _items(routing, "tiers"):
            tier_path: FieldPath = ("campaigns", ci, "routing", "tiers", ti)
            for bi, b in _seq(t.get("buyers")):
                if b not in buyers:
                    problems.append(
                        ((*tier_path, "buyers", bi), unknown("buyer", "buyers", b, buyers, "remove it from the tier"))
                    )
            q = t.get("queue")
            if isinstance(q, str) and q not in queues:
                problems.append(
                    ((*tier_path, "queue"), unknown("queue", "queues", q, queues, "point the tier at an existing queue"))
                )
    for pi, p in _items(data, "publishers"):
        for bi, b in _seq(p.get("blocked_buyers")):
            if b not in buyers:
                problems.append(
                    (
                        ("publishers", pi, "blocked_buyers", bi),
                        unknown("buyer", "buyers", b, buyers, "remove it from blocked_buyers"),
                    )
                )
    for ai, a in _items(data, "agents"):
        for qi, q in _seq(a.get("queues")):
            if q not in queues:
                problems.append(
                    (("agents", ai, "queues", qi), unknown("queue", "queues", q, queues, "remove it from the agent's queues"))
                )
    for fi, flow in _items(data, "ivr_flows"):
        problems.extend((("ivr_flows", fi, *sub), msg) for sub, msg in ivr_flow_problems(flow))
    ids = {"campaigns": _ids(data, "campaigns"), "buyers": buyers, "agents": _ids(data, "agents"), "queues": queues}
    problems.extend(simulation_reference_problems(data, ids))
    return problems


# ---------------------------------------------------------------- simulation (docs/SIMULATION.md)

# The offline model `switchboard simulate` drives through the routing core: who calls and when,
# how buyers answer pings, posts and offers, how long agents talk, how long callers wait.
# Every field has a default, so a configuration without `simulation:` still simulates.

DISTRIBUTIONS = ("fixed", "uniform", "normal", "lognormal", "exponential")
_DIST_EXAMPLE = "{type: exponential, mean: 300}"


class FixedDist(_Model):
    type: Literal["fixed"]
    value: float = Field(ge=0)


class UniformDist(_Model):
    type: Literal["uniform"]
    min: float = Field(ge=0)
    max: float = Field(ge=0)


class NormalDist(_Model):
    """Drawn values are clipped to [min, max]."""

    type: Literal["normal"]
    mean: float
    sd: float = Field(ge=0)
    min: float = Field(0, ge=0)
    max: float | None = None


class LogNormalDist(_Model):
    """median·e^(sigma·Z), clipped at max."""

    type: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(0.5, ge=0)
    max: float | None = Field(None, gt=0)


class ExponentialDist(_Model):
    type: Literal["exponential"]
    mean: float = Field(gt=0)


def _check_distribution(v: Any) -> Any:
    """A bare number is a fixed value (`ring_s: 20`); a mapping needs its `type`."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(
                f"{_show(v)} is negative (write a value of 0 or more, e.g. 300, or a distribution like {_DIST_EXAMPLE})"
            )
        return {"type": "fixed", "value": v}
    if isinstance(v, Mapping) and "type" not in v:
        raise ValueError(
            f"a distribution needs a type (write it like {_DIST_EXAMPLE} or a plain number for a fixed value; "
            f"types: {', '.join(DISTRIBUTIONS)})"
        )
    if isinstance(v, Mapping) and v.get("type") in ("uniform", "normal"):
        low, high = v.get("min", 0), v.get("max")
        if _is_number(low) and _is_number(high) and float(high) < float(low):
            raise FieldProblems([(("max",), f"max {_show(high)} is below min {_show(low)} (set max to {_show(low)} or more)")])
    return v


# Parameter names of the distributions: a mapping of only these is a distribution without its type.
_DIST_PARAMETERS = {"value", "min", "max", "mean", "sd", "median", "sigma"}


Distribution = Annotated[
    FixedDist | UniformDist | NormalDist | LogNormalDist | ExponentialDist,
    Field(discriminator="type"),
    BeforeValidator(_check_distribution),
]
Rate = Annotated[float, Field(ge=0, le=1)]


class ChoiceDist(_Model):
    """A categorical answer: value → relative weight."""

    type: Literal["choice"]
    weights: dict[str, float]


def _check_answer_spec(v: Any) -> Any:
    """An IVR answer model: a numeric distribution (drawn, then rounded to a whole number), or the
    shorthand for a choice: a mapping value → weight (`{yes: 2, no: 1}`) or a list of values (equal weights)."""
    if isinstance(v, list):
        if not all(isinstance(x, (str, int, float, bool)) for x in v):
            raise ValueError(
                f"expected a list of values, got {_show(v)} (write it like [en, es], or {{yes: 2, no: 1}} for weights)"
            )
        weights: dict[Any, float] = {}
        for x in v:  # a value listed twice is twice as likely
            weights[x] = weights.get(x, 0) + 1
        v = {"type": "choice", "weights": weights}
    elif isinstance(v, Mapping) and "type" not in v:
        if v and set(map(str, v)) <= _DIST_PARAMETERS:
            return _check_distribution(v)  # {mean: 3}: a distribution that forgot its type, not a choice of "mean"
        v = {"type": "choice", "weights": dict(v)}
    if isinstance(v, Mapping) and v.get("type") == "choice":
        choices = v.get("weights")
        if not isinstance(choices, Mapping) or not choices:
            raise ValueError("no values to choose from (write it like {yes: 2, no: 1} or [en, es])")
        problems: list[tuple[FieldPath, str]] = []
        out: dict[str, float] = {}
        for value, weight in choices.items():
            if not _is_number(weight) or float(weight) < 0:
                problems.append(
                    ((_yaml_text(value),), f"weight {_show(weight)} is not a number ≥ 0 (write it like {_yaml_text(value)}: 2)")
                )
                continue
            out[str(_yaml_text(value))] = float(weight)
        if not problems and sum(out.values()) <= 0:
            problems.append(((), "every weight is 0: no value could ever be drawn (give at least one value a weight above 0)"))
        if problems:
            raise FieldProblems(problems)
        return {"type": "choice", "weights": out}
    return _check_distribution(v)


AnswerSpec = Annotated[
    ChoiceDist | FixedDist | UniformDist | NormalDist | LogNormalDist | ExponentialDist,
    Field(discriminator="type"),
    BeforeValidator(_check_answer_spec),
]

_HOURS = re.compile(r"^(\d{1,2})(?:-(\d{1,2}))?$")


def _check_hourly_profile(v: Any) -> Any:
    """`{"08-20": 1.0, "20-08": 0.2}`: relative arrival rate by local hour; hours not listed get none."""
    if not isinstance(v, Mapping):
        return v
    problems: list[tuple[FieldPath, str]] = []
    owner: dict[int, str] = {}
    out: dict[str, float] = {}
    for key, rate in v.items():
        text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
        m = _HOURS.match(text) if isinstance(text, str) else None
        start = int(m.group(1)) if m else -1
        end = (int(m.group(2)) if m.group(2) is not None else start + 1) if m else -1
        if not m or not (0 <= start <= 23) or not (1 <= end <= 24) or start == end:
            problems.append(
                (
                    (key,),
                    f'{key!r} is not an hour range (write it like "08-20" for 08:00 to 20:00, "20-06" overnight, or 13 for one hour)',
                )
            )
            continue
        if not _is_number(rate) or float(rate) < 0:
            problems.append(((key,), f'rate {_show(rate)} is not a number ≥ 0 (write it like "{text}": 1.0)'))
            continue
        hours = list(range(start, end)) if start < end else [*range(start, 24), *range(end)]
        clash = next((h for h in hours if h in owner), None)
        if clash is not None:
            problems.append(
                ((key,), f"hour {clash:02d} is already covered by {owner[clash]!r} (list each hour in one range only)")
            )
            continue
        for h in hours:
            owner[h] = str(text)
        out[str(text)] = float(rate)
    if not problems and not any(r > 0 for r in out.values()):
        problems.append(((), 'no hour has a rate above 0: no call would ever arrive (give some hours a rate, e.g. "08-20": 1.0)'))
    if problems:
        raise FieldProblems(problems)
    return out


HourlyProfile = Annotated[dict[str, float], BeforeValidator(_check_hourly_profile)]


def hourly_rates(profile: Mapping[str, float] | None) -> list[float]:
    """The 24 relative rates (local hour 0..23) of a validated hourly profile; None is flat 1.0."""
    if profile is None:
        return [1.0] * 24
    rates = [0.0] * 24
    for key, rate in profile.items():
        m = _HOURS.match(key)
        assert m is not None, "validated by _check_hourly_profile"
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start + 1
        for h in range(start, end) if start < end else [*range(start, 24), *range(end)]:
            rates[h] = rate
    return rates


class CallerArea(_Model):
    """Where callers are: a caller's number is drawn in the area code, the ZIP from the ZIP prefix.

    The state is not drawn: like the live ivr service, the simulator derives it from the caller's
    number (core.caller). `state`, when written, is checked against the area code's state.
    """

    state: StateCode | None = None
    area_code: AreaCode
    zip_prefix: ZipPrefix | None = None  # the ZIP is completed with random digits; none: no ZIP
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _real_area_code(self) -> CallerArea:
        # Imported here: phonenumbers' metadata is only needed by configurations that list areas.
        from switchboard.core.caller import caller_facts

        facts = caller_facts(f"+1{self.area_code}2345678")
        if not facts.valid:
            why = (
                f"area code {self.area_code} has no valid phone numbers: every caller from it would be rejected invalid_number "
                '(use a real area code such as "213"; model invalid callers with callers.invalid_number_rate)'
            )
            raise FieldProblems([(("area_code",), why)])
        if self.state is not None and self.state.upper() != facts.state:
            if facts.state:
                why = f"area code {self.area_code} is in {facts.state}, not {self.state} (set state: {facts.state}, or leave state out)"
            else:
                why = (
                    f"area code {self.area_code} is in no US state, so its callers have none, not {self.state} (leave state out)"
                )
            raise FieldProblems([(("state",), why)])
        return self


def _check_menu_weights(v: Any) -> Any:
    """How callers choose in one menu: phone key → relative weight (YAML reads an unquoted 1: as the number 1)."""
    if not isinstance(v, Mapping):
        return v
    problems: list[tuple[FieldPath, str]] = []
    out: dict[str, float] = {}
    for key, weight in v.items():
        text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
        if not isinstance(text, str) or text not in DTMF_KEYS:
            problems.append(((key,), f'{key!r} is not a single phone key (use one of 0-9, * or #; quote * and # like "*":)'))
        elif not _is_number(weight) or float(weight) < 0:
            problems.append(((key,), f'weight {_show(weight)} is not a number ≥ 0 (write it like "{text}": 2)'))
        else:
            out[text] = float(weight)
    if not problems and sum(out.values()) <= 0:
        problems.append(((), 'no key has a weight above 0: callers could not choose (write it like {"1": 3, "9": 1})'))
    if problems:
        raise FieldProblems(problems)
    return out


MenuWeights = Annotated[dict[str, float], BeforeValidator(_check_menu_weights)]


class Callers(_Model):
    """Who calls: where from, what they answer, and how their calls fare before routing (screening, IVR)."""

    areas: list[CallerArea] | None = Field(None, min_length=1)  # none: the demo's US areas (docs/SIMULATION.md)
    answers: dict[AnswerKey, AnswerSpec] = {}
    # Shares of calls from a number on a blocklist / from an invalid number / without a number.
    blocked_rate: Rate = 0.0
    invalid_number_rate: Rate = 0.0
    anonymous_rate: Rate = 0.0
    # Share of calls after which the same caller calls the same campaign again, `repeat_after_s` later.
    repeat_rate: float = Field(0.0, ge=0, lt=1)
    repeat_after_s: Distribution | None = None  # none: the built-in default (docs/SIMULATION.md)
    invalid_input_rate: Rate = 0.0  # share of IVR prompts the caller answers with nothing (re-prompted)
    menus: dict[str, dict[str, MenuWeights]] = {}  # IVR flow id → menu node id → key → weight; absent: uniform
    # Time in the IVR: each prompt takes a draw (hearing it and answering); none: the IVR takes no time.
    ivr_prompt_s: Distribution | None = None
    ivr_hangup_rate: Rate = 0.0  # share of IVR prompts at which the caller hangs up (rejected abandoned)

    @property
    def ivr_timed(self) -> bool:
        """Whether callers spend time in the IVR or hang up there (else the flow is walked the moment a call arrives)."""
        return self.ivr_prompt_s is not None or self.ivr_hangup_rate > 0


class CampaignTraffic(_Model):
    calls_per_hour: float = Field(gt=0)
    hourly_profile: HourlyProfile | None = None  # none: the traffic's profile
    answers: dict[AnswerKey, AnswerSpec] = {}  # added to (and overriding) callers.answers for this campaign


class Traffic(_Model):
    calls_per_hour: float = Field(60.0, gt=0)  # per campaign, when `campaigns` is not given
    campaigns: dict[str, CampaignTraffic] | None = Field(None, min_length=1)  # none: every campaign at calls_per_hour
    hourly_profile: HourlyProfile | None = None  # none: the same rate around the clock
    callers: Callers = Callers()


class BuyerBehavior(_Model):
    """How a simulated buyer behaves. Unset fields come from `buyers.defaults`, then the built-in defaults.

    Ping and post fields apply to RTB buyers only: the bidder answers for a static buyer at once with
    its price and accepts its posts, so the simulator does the same.
    """

    bid: Distribution | None = None  # RTB: the amount bid (rounded to cents)
    latency_ms: Distribution | None = None  # RTB: answer time of a ping or post (past its timeout: no bid)
    decline_rate: Rate | None = None  # RTB: share of pings declined
    available_rate: Rate | None = None  # RTB: share of bids reporting free capacity (availability tiers)
    post_reject_rate: Rate | None = None  # RTB: share of ping_post posts rejected
    answer_rate: Rate | None = None  # share of offers (bridged calls) the buyer answers; else no answer after ring_s
    ring_s: Distribution | None = None  # how long an unanswered offer rings before it is re-routed
    conversion_rate: Rate | None = None  # share of answered calls that last billable_after_s (billable sales)
    hangup_rate: Rate | None = None  # share of answered calls the buyer hangs up before billable_after_s (re-routed)
    talk_time_s: Distribution | None = None  # length of a billable call (at least billable_after_s)


class AgentBehavior(_Model):
    """How a simulated agent behaves; unset fields come from `agents.defaults`, then the built-in defaults."""

    handle_time_s: Distribution | None = None
    answer_rate: Rate | None = None  # share of offered calls the agent answers; else re-offered after ring_s
    ring_s: Distribution | None = None


class QueueBehavior(_Model):
    """How callers behave in a queue; unset fields come from `queues.defaults`."""

    patience_s: Distribution | None = None  # the caller hangs up after waiting this long; none: waits up to max_wait_s


def _check_start(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError(f'{_show(v)} is not a date and time (write it like "2025-03-03T09:00:00", local to `timezone`)')


class Simulation(_Model):
    start: Annotated[datetime, BeforeValidator(_check_start)] = datetime(2025, 3, 3, 9, 0)  # a Monday
    timezone: str = "America/New_York"  # of `start` (when it has no offset) and of the hourly profiles
    traffic: Traffic = Traffic()
    buyers: dict[str, BuyerBehavior] = {}  # buyer id (or `defaults`) → behavior
    agents: dict[str, AgentBehavior] = {}  # agent id (or `defaults`) → behavior
    queues: dict[str, QueueBehavior] = {}  # queue id (or `defaults`) → caller behavior

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: Any) -> Any:
        return _check_timezone(v)

    @field_validator("start", mode="before")
    @classmethod
    def _date_only(cls, v: Any) -> Any:
        if isinstance(v, date) and not isinstance(v, datetime):
            return datetime(v.year, v.month, v.day)
        return v

    def start_at(self) -> datetime:
        """The virtual clock's start, timezone-aware."""
        return self.start if self.start.tzinfo is not None else self.start.replace(tzinfo=ZoneInfo(self.timezone))


def simulation_reference_problems(data: Mapping[str, Any], ids: Mapping[str, set[Any]]) -> list[tuple[FieldPath, str]]:
    """Ids named in `simulation:` must exist in the configuration (`defaults` is the entry for all)."""
    sim = data.get("simulation")
    if not isinstance(sim, Mapping):
        return []
    problems: list[tuple[FieldPath, str]] = []
    traffic = sim.get("traffic")
    campaigns = traffic.get("campaigns") if isinstance(traffic, Mapping) else None
    if isinstance(campaigns, Mapping):
        known = ids["campaigns"]
        for cid in campaigns:
            if cid not in known:
                problems.append(
                    (
                        ("simulation", "traffic", "campaigns", cid),
                        f"unknown campaign {cid!r}{_did_you_mean(cid, known)} (define it under campaigns, or remove it from the traffic)",
                    )
                )
    callers = traffic.get("callers") if isinstance(traffic, Mapping) else None
    if isinstance(callers, Mapping):
        # Checked on the raw data, so the sum is reported with the other problems of the section.
        shares = [callers.get(k, 0) for k in ("blocked_rate", "invalid_number_rate", "anonymous_rate")]
        if all(_is_number(x) and 0 <= float(x) <= 1 for x in shares) and sum(map(float, shares)) > 1 + 1e-9:
            problems.append(
                (
                    ("simulation", "traffic", "callers", "blocked_rate" if "blocked_rate" in callers else "invalid_number_rate"),
                    (
                        f"blocked_rate + invalid_number_rate + anonymous_rate is {sum(map(float, shares)):g}, more than every call "
                        "(keep their sum at 1 or less)"
                    ),
                )
            )
        menus = callers.get("menus")
        if isinstance(menus, Mapping):
            problems.extend(_menu_reference_problems(data, menus))
    for section in ("buyers", "agents", "queues"):
        entries = sim.get(section)
        if not isinstance(entries, Mapping):
            continue
        known = ids[section]
        for ident in entries:
            if ident != "defaults" and ident not in known:
                problems.append(
                    (
                        ("simulation", section, ident),
                        (
                            f"unknown {_SECTION_NOUN[section]} {ident!r}{_did_you_mean(ident, known | {'defaults'})} "
                            f"(define it under {section}, use `defaults` for all of them, or remove it)"
                        ),
                    )
                )
    return problems


def _menu_reference_problems(data: Mapping[str, Any], menus: Mapping[Any, Any]) -> list[tuple[FieldPath, str]]:
    """`callers.menus` names flows, their menu nodes and those menus' keys."""
    flows = {f["id"]: f for _, f in _items(data, "ivr_flows") if isinstance(f.get("id"), str)}
    at = ("simulation", "traffic", "callers", "menus")
    problems: list[tuple[FieldPath, str]] = []
    for flow_id, nodes_weights in menus.items():
        flow = flows.get(flow_id)
        if flow is None:
            known = {str(f) for f in flows}
            problems.append(
                (
                    (*at, flow_id),
                    f"unknown IVR flow {flow_id!r}{_did_you_mean(flow_id, known)} (define it under ivr_flows, or remove it)",
                )
            )
            continue
        nodes = flow.get("nodes") if isinstance(flow.get("nodes"), Mapping) else {}
        if not isinstance(nodes_weights, Mapping):
            continue  # a shape problem pydantic reports
        menu_ids = [n for n, node in nodes.items() if isinstance(node, Mapping) and node.get("type") == "menu"]
        for node_id, weights in nodes_weights.items():
            node = nodes.get(node_id)
            menus_named = f"name one of its menus: {', '.join(map(str, menu_ids))}" if menu_ids else "it has no menu: remove it"
            if not isinstance(node, Mapping):
                problems.append(
                    (
                        (*at, flow_id, node_id),
                        f"flow {flow_id} has no node {node_id!r}{_did_you_mean(node_id, [str(m) for m in menu_ids])} ({menus_named})",
                    )
                )
                continue
            kind = node.get("type")
            if kind != "menu":
                fix = (
                    "callers choose their language by the language answer: model answers.language instead"
                    if kind == "set_language"
                    else menus_named
                )
                problems.append(((*at, flow_id, node_id), f"node {node_id!r} is a {kind} node, not a menu ({fix})"))
                continue
            options = node.get("options")
            keys = {str(k) for k in options} if isinstance(options, Mapping) else set()
            if isinstance(weights, Mapping):
                for key in weights:
                    if str(key) not in keys and str(key) in DTMF_KEYS:
                        problems.append(
                            (
                                (*at, flow_id, node_id, key),
                                f"menu {node_id} has no option {str(key)!r} (use its keys: {', '.join(sorted(keys))})",
                            )
                        )
    return problems


class RoutingConfig(_Model):
    version: Literal[1] = 1
    publishers: list[Publisher] = []
    buyers: list[Buyer] = []
    campaigns: list[Campaign] = []
    queues: list[Queue] = []
    agents: list[Agent] = []
    ivr_flows: list[IvrFlow] = []
    blocklist: Blocklist = Blocklist()  # global: applies to every campaign
    simulation: Simulation | None = None  # the offline model of `switchboard simulate` (docs/SIMULATION.md)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        if isinstance(v, bool) or v != 1:
            raise ValueError(f"version {v!r} is not supported (set `version: 1`)")
        return v

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> RoutingConfig:
        # load_config checks references on the raw data (to report them with shape errors); skip the second pass.
        if info.context and info.context.get("references_checked"):
            return self
        problems = reference_problems(self.model_dump())
        if problems:
            raise FieldProblems(problems)
        return self

    # Lookups used by every service.
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


# ---------------------------------------------------------------- problems and errors


@dataclass(frozen=True)
class Problem:
    """One configuration problem; `str()` is the line users see: `file:line: path: message (fix)`."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}"


class ConfigError(ValueError):
    """Invalid configuration: `problems` holds one `file:line: field: message (fix)` line each; `details` the same as `Problem`s."""

    def __init__(self, problems: list[str] | list[Problem]) -> None:
        self.details = [p for p in problems if isinstance(p, Problem)]
        self.problems = [str(p) for p in problems]
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in self.problems))


# ---------------------------------------------------------------- YAML reading with positions


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats remember their text (see ExactFloat)."""


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    f = ExactFloat(value)
    f.text = str(node.value).replace("_", "")
    return f


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)

_Key = tuple[str, ...]  # a field path with every part as text, for position lookups


def _key(path: Iterable[str | int]) -> _Key:
    return tuple(str(p) for p in path)


@dataclass
class _Source:
    """Where each field of the merged configuration was written."""

    files: list[str]
    lines: dict[_Key, tuple[str, int]]

    def locate(self, path: FieldPath) -> tuple[str, int | None]:
        key = _key(path)
        for n in range(len(key), 0, -1):
            if key[:n] in self.lines:
                return self.lines[key[:n]]
        return (self.files[0] if self.files else "", None)

    def render(self, path: FieldPath) -> str:
        f, line = self.locate(path)
        return f"{f}:{line}" if line else f


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _record(node: yaml.Node, prefix: _Key, file: str, lines: dict[_Key, tuple[str, int]], problems: list[Problem]) -> None:
    """Map every field path below `node` to its line; report duplicate keys, which YAML would silently drop."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            name = str(k.value)
            if name == "<<":  # a merge key: its fields keep their own positions
                continue
            path = (*prefix, name)
            if name in seen:
                problems.append(
                    Problem(
                        file,
                        _line(k),
                        format_path(path),
                        f"duplicate key {name!r}, also at line {seen[name]} (YAML keeps only the last one: merge them into one)",
                    )
                )
            seen[name] = _line(k)
            lines[path] = (file, _line(k))
            _record(v, path, file, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, str(i))
            lines[path] = (file, _line(item))
            _record(item, path, file, lines, problems)


# `${NAME}` or `${NAME:-default}`; `$${` writes a literal `${`. Names as in a shell.
_ENV_REF = re.compile(r"\$(\$)(?=\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
_YAML_STR = "tag:yaml.org,2002:str"


def _interpolate(
    node: yaml.Node, prefix: _Key, file: str, env: Mapping[str, str], problems: list[Problem], seen: set[int] | None = None
) -> None:
    """Substitute environment variables in every string value below `node`, in place, before construction.

    Working on the YAML nodes keeps each problem at its own line. Only scalars that
    YAML already resolved as text are touched, so the result stays text (`"${PORT}"`
    becomes "9100", not 9100); keys are never substituted. A node shared through a
    YAML alias is substituted once (`seen`), so `$${` escapes are not undone.
    """
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _interpolate(v, (*prefix, str(k.value)), file, env, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _interpolate(item, (*prefix, str(i)), file, env, problems, seen)
    elif isinstance(node, yaml.ScalarNode) and node.tag == _YAML_STR and "$" in node.value:

        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name, default = m.group(2), m.group(3)
            if name is None:
                problems.append(
                    Problem(
                        file,
                        _line(node),
                        format_path(prefix),
                        "malformed variable reference `${` (write ${NAME} or ${NAME:-default}; $${ for a literal ${)",
                    )
                )
                return m.group(0)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                Problem(
                    file,
                    _line(node),
                    format_path(prefix),
                    f"environment variable {name} is not set (set it, or give a default: ${{{name}:-value}})",
                )
            )
            return m.group(0)

        node.value = _ENV_REF.sub(sub, node.value)


def _read(
    file: Path, problems: list[Problem], lines: dict[_Key, tuple[str, int]], env: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Parse one file into its top-level mapping, recording field positions in `lines`; None after reporting why not."""
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(name, None, "(file)", f"cannot be read: {exc} (check the path and that it is UTF-8 text)"))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.append(
                Problem(name, 1, "(file)", "empty file (add `version: 1` and at least one section, or remove the file)")
            )
            return None
        local: dict[_Key, tuple[str, int]] = {}
        dup: list[Problem] = []
        _record(node, (), name, local, dup)
        _interpolate(node, (), name, os.environ if env is None else env, dup)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = "; ".join(x for x in (exc.context, exc.problem) if x)
        near = f" near line {line}" if line else ""
        problems.append(
            Problem(name, line, "(yaml)", f"not valid YAML: {what} (check the indentation, colons and quoting{near})")
        )
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(name, None, "(yaml)", f"not valid YAML: {exc} (check the indentation, colons and quoting)"))
        return None
    finally:
        loader.dispose()
    problems.extend(dup)
    if data is None:
        problems.append(
            Problem(name, _line(node), "(file)", "empty file (add `version: 1` and at least one section, or remove the file)")
        )
        return None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(
            Problem(
                name,
                _line(node),
                "(top level)",
                "the top level must be a mapping (start with `version: 1`, then sections such as buyers: and campaigns:)",
            )
        )
        return None
    lines.update(local)
    return data


def _merge(files: list[Path], problems: list[Problem], env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], _Source]:
    """Concatenate the list sections of every file; other top-level keys may be set in one file only."""
    merged: dict[str, Any] = {}
    source = _Source([str(f) for f in files], {})
    set_in: dict[str, str] = {}
    for f in files:
        local: dict[_Key, tuple[str, int]] = {}
        data = _read(f, problems, local, env)
        if data is None:
            continue
        name = str(f)
        for key, value in data.items():
            key = str(key)
            line = local.get((key,), (name, None))[1]
            if key in _LIST_SECTIONS:
                if value is None:
                    continue  # `buyers:` with every entry commented out
                if not isinstance(value, list):
                    problems.append(
                        Problem(
                            name,
                            line,
                            key,
                            f"expected a list, got {_show(value)} (write one `- id: ...` entry per item under {key}:)",
                        )
                    )
                    continue
                offset = len(merged.setdefault(key, []))
                merged[key].extend(value)
                # re-key this file's positions from its own list indexes to the merged ones
                for path, pos in local.items():
                    if path[0] == key and len(path) > 1:
                        source.lines[(key, str(int(path[1]) + offset), *path[2:])] = pos
                source.lines.setdefault((key,), (name, line or 0))
            elif key not in RoutingConfig.model_fields:
                problems.append(Problem(name, line, key, _unknown_field(key, list(RoutingConfig.model_fields))))
            elif key == "version":
                if isinstance(value, bool) or value != 1:
                    problems.append(Problem(name, line, "version", f"version {value!r} is not supported (set `version: 1`)"))
            elif key in set_in and merged.get(key) != value:
                problems.append(Problem(name, line, key, f"already set in {set_in[key]} (set {key} in one file only)"))
            else:
                merged[key] = value
                set_in[key] = f"{name}:{line}"
                for path, pos in local.items():
                    if path[0] == key:
                        source.lines[path] = pos
    return merged, source


# ---------------------------------------------------------------- pydantic errors → problems


def _unwrap(t: Any) -> list[Any]:
    """The concrete types behind Annotated / Optional / Union."""
    origin = typing.get_origin(t)
    if origin is Annotated:
        return _unwrap(typing.get_args(t)[0])
    if origin in (Union, types.UnionType):
        return [c for a in typing.get_args(t) if a is not type(None) for c in _unwrap(a)]
    return [t]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _child_type(t: Any, part: str | int) -> Any:
    for c in _unwrap(t):
        if _is_model(c) and part in c.model_fields:
            return c.model_fields[part].annotation
        origin = typing.get_origin(c)
        if origin is list and isinstance(part, int):
            return typing.get_args(c)[0]
        if origin is dict:
            return typing.get_args(c)[1]
    for c in _unwrap(t):  # a discriminator tag such as "static" selects the union member
        if _is_model(c) and "type" in c.model_fields and part in typing.get_args(c.model_fields["type"].annotation):
            return c
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at pydantic location `loc` (for 'did you mean')."""
    t: Any = RoutingConfig
    for part in loc:
        t = _child_type(t, part)
        if t is None:
            return []
    return [f for c in _unwrap(t) if _is_model(c) for f in c.model_fields]


def _user_path(loc: tuple[Any, ...], data: Any) -> FieldPath:
    """Drop what pydantic adds to a location but the user never wrote (union tags, '[key]')."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if (isinstance(cur, Mapping) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            out.append(part)
            cur = cur[part]
        elif part == "[key]":
            continue
        elif i == len(loc) - 1:
            out.append(part)  # a missing (or extra) field
            cur = None
        # else: a union tag such as "static"
    return tuple(out)


def _show(v: Any) -> str:
    if isinstance(v, float) and not hasattr(v, "text") and v.is_integer():
        v = int(v)  # pydantic's bound 1.0 reads better as 1
    text = repr(v) if isinstance(v, str) else str(getattr(v, "text", None) or v)
    if isinstance(v, Mapping):
        text = "a mapping"
    elif isinstance(v, list):
        text = "a list"
    elif v is None:
        text = "nothing"
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_field(name: str, fields: list[str]) -> str:
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]}? (rename it to {close[0]})"
    return f"unknown field (remove it; fields here: {', '.join(fields)})" if fields else "unknown field (remove it)"


_EXAMPLES = {
    "id": "a-unique-id",
    "destination": '"+18005550100"',
    "bid": "{type: static, price: 40.00}",
    "price": "40.00",
    "type": "static",
    "url": '"http://127.0.0.1:9100/ping"',
    "numbers": '["+18885550123"]',
    "publisher": "<publisher id>",
    "routing": "{tiers: [{strategy: price, buyers: [<buyer id>]}]}",
    "tiers": "[{strategy: price, buyers: [<buyer id>]}]",
    "strategy": "price",
    "timezone": "America/New_York",
    "hours": '{mon-fri: "08:00-20:00"}',
    "queues": "[<queue id>]",
}


def _friendly(err: Mapping[str, Any], path: FieldPath) -> str:
    """pydantic's error as `message (fix)` in the language of the config file."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    name = str(path[-1]) if path else "value"
    if kind == "missing":
        return f"required field is missing (add `{name}: {_EXAMPLES.get(name, '...')}`)"
    if kind == "extra_forbidden":
        return _unknown_field(name, _fields_at(tuple(err["loc"][:-1])))
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", ""))) or re.findall(r"\b\w+\b", str(ctx.get("expected", "")))
        what = "strategy" if name == "strategy" else name
        return f"unknown {what} {_show(given)}{_did_you_mean(given, allowed)} (use one of: {', '.join(allowed)})"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return (
            f"unknown {name} type {ctx.get('tag')!r}{_did_you_mean(ctx.get('tag'), tags)} (use type: {' or type: '.join(tags)})"
        )
    if kind == "union_tag_not_found":
        return f"{name} needs a type (add `type: static` with a price, or `type: rtb` with a url)"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        ctx = {k: _show(v) if isinstance(v, (int, float)) else v for k, v in ctx.items()}
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}, got {_show(given)} (set {name} above {ctx['gt']})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {_show(given)} (set {name} to {ctx['ge']} or more)"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {_show(given)} (set {name} to {ctx['le']} or less)"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}, got {_show(given)} (set {name} below {ctx['lt']})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {_show(given)} (write it like 5)"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {_show(given)} (write it like 0.5)"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_show(given)} (write true or false)"
    if kind == "string_type":
        return f'expected text, got {_show(given)} (put it in quotes, e.g. "{_show(given)}")'
    if kind == "list_type":
        return f"expected a list, got {_show(given)} (write it as [a, b] or one `- item` per line)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_show(given)} (write `field: value` lines under {name})"
    if kind == "too_short":
        return f"must not be empty (list at least {ctx.get('min_length', 1)} entry under {name})"
    if kind == "value_error":
        msg = str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
        return msg if msg.endswith(")") else f"{msg} (see {DOCS})"
    return f"{err['msg']} (see {DOCS})"


def pydantic_problems(exc: ValidationError, data: Any) -> list[tuple[FieldPath, str]]:
    """Every pydantic error as (user path, message with fix); validators' FieldProblems are expanded."""
    out: list[tuple[FieldPath, str]] = []
    for err in exc.errors():
        path = _user_path(tuple(err["loc"]), data)
        error = (err.get("ctx") or {}).get("error")
        if err["type"] == "value_error" and isinstance(error, FieldProblems):
            out.extend((path + sub, msg) for sub, msg in error.items)
        elif err["type"] == "union_tag_invalid":  # point at the `type:` line, where the wrong tag is written
            out.append(((*path, "type"), _friendly(err, path)))
        else:
            out.append((path, _friendly(err, path)))
    return out


# ---------------------------------------------------------------- loading


def _files(path: Path) -> list[Path] | Problem:
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix in (".yaml", ".yml") and not f.name.startswith(".") and f.is_file())
        if not files:
            return Problem(str(path), None, "(directory)", "no *.yaml or *.yml files here (add one, or pass a file)")
        return files
    if path.is_file():
        return [path]
    return Problem(str(path), None, "(file)", "no such file or directory (pass a YAML file or a directory of them)")


def check_config(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[RoutingConfig | None, list[Problem]]:
    """Validate `path` and return (config, []) or (None, every problem in file and line order).

    `${NAME}` / `${NAME:-default}` in string values are read from `env` (default: os.environ).
    """
    path = Path(path)
    files = _files(path)
    if isinstance(files, Problem):
        return None, [files]
    problems: list[Problem] = []
    merged, source = _merge(files, problems, env)

    def add(items: Iterable[tuple[FieldPath, str]]) -> None:
        for p, msg in items:
            f, line = source.locate(p)
            problems.append(Problem(f, line, format_path(p), msg))

    config: RoutingConfig | None = None
    try:
        config = RoutingConfig.model_validate(merged, context={"references_checked": True})
    except ValidationError as exc:
        add(pydantic_problems(exc, merged))
    add(reference_problems(merged, source.render))
    if not problems:
        return config, []
    order = {f: i for i, f in enumerate(source.files)}
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (order.get(p.file, -1), p.line or 0))
    return None, unique


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """Load one YAML file or every *.yaml/*.yml file of a directory (list sections are concatenated in file-name order).

    `env` (default: os.environ) supplies the `${NAME}` variables of string values.
    """
    config, problems = check_config(path, env)
    if problems or config is None:
        raise ConfigError(problems)
    return config
