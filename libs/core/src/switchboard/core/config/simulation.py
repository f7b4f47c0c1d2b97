"""The `simulation:` section (docs/SIMULATION.md): the offline model `switchboard simulate` drives through the routing core.

Who calls and when, how buyers answer pings, posts and offers, how long agents talk, how long
callers wait. Every field has a default, so a configuration without `simulation:` still
simulates. `simulation_reference_problems` checks the ids it names against the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, field_validator, model_validator

from switchboard.core.config.conditions import AnswerKey
from switchboard.core.config.ivr import DTMF_KEYS
from switchboard.core.config.schedules import _check_timezone
from switchboard.core.config.types import (
    _SECTION_NOUN,
    AreaCode,
    FieldPath,
    FieldProblems,
    StateCode,
    ZipPrefix,
    _did_you_mean,
    _is_number,
    _items,
    _Model,
    _yaml_text,
    show_value,
)

# ---------------------------------------------------------------- distributions


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
                f"{show_value(v)} is negative (write a value of 0 or more, e.g. 300, or a distribution like {_DIST_EXAMPLE})"
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
            raise FieldProblems(
                [(("max",), f"max {show_value(high)} is below min {show_value(low)} (set max to {show_value(low)} or more)")]
            )
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
                f"expected a list of values, got {show_value(v)} (write it like [en, es], or {{yes: 2, no: 1}} for weights)"
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
                    (
                        (_yaml_text(value),),
                        f"weight {show_value(weight)} is not a number ≥ 0 (write it like {_yaml_text(value)}: 2)",
                    )
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


# ---------------------------------------------------------------- callers and traffic


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
            problems.append(((key,), f'rate {show_value(rate)} is not a number ≥ 0 (write it like "{text}": 1.0)'))
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
            problems.append(((key,), f'weight {show_value(weight)} is not a number ≥ 0 (write it like "{text}": 2)'))
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


# ---------------------------------------------------------------- behaviours


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
    # Callbacks (the queue's callback_offer_after_s): the share of callers offered one who accept it, and of
    # callers called back who answer (else CALLBACK_NO_ANSWER: retried as the queue says).
    callback_accept_rate: Rate | None = None
    callback_answer_rate: Rate | None = None


# ---------------------------------------------------------------- the section and its references


def _check_start(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError(f'{show_value(v)} is not a date and time (write it like "2025-03-03T09:00:00", local to `timezone`)')


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
        raw_nodes = flow.get("nodes")
        nodes: Mapping[Any, Any] = raw_nodes if isinstance(raw_nodes, Mapping) else {}
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
