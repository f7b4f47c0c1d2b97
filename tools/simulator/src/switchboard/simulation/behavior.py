"""The simulation model resolved for drawing: defaults filled in, distributions turned into draws.

`config.simulation` (core.config.Simulation) says what the user wrote; this module adds the
built-in defaults (docs/SIMULATION.md) and draws from the distributions with a given
`random.Random`, including what a simulated caller keys in at an IVR prompt (`prompt_input`).
No routing, screening or IVR decisions here: those are the core's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from typing import Any, TypeVar

from switchboard.core import ivr
from switchboard.core.config import (
    AgentBehavior,
    Blocklist,
    BuyerBehavior,
    CallerArea,
    ChoiceDist,
    ExponentialDist,
    FixedDist,
    IvrFlow,
    IvrMenuNode,
    IvrOption,
    IvrQuestionNode,
    IvrSetLanguageNode,
    LogNormalDist,
    NormalDist,
    QueueBehavior,
    RoutingConfig,
    Simulation,
    UniformDist,
    hourly_rates,
)
from switchboard.demo.traffic import AREAS

CENT = Decimal("0.01")
Dist = FixedDist | UniformDist | NormalDist | LogNormalDist | ExponentialDist
AnswerDist = Dist | ChoiceDist

# Built-in defaults (docs/SIMULATION.md): an RTB buyer without a model bids 10-50 within ~50 ms;
# every buyer answers and converts; agents talk 5 minutes on average; callers wait up to max_wait_s.
BUYER_DEFAULTS = BuyerBehavior(
    bid=UniformDist(type="uniform", min=10, max=50),
    latency_ms=LogNormalDist(type="lognormal", median=50, sigma=0.5),
    decline_rate=0.0,
    available_rate=1.0,
    post_reject_rate=0.0,
    answer_rate=1.0,
    ring_s=FixedDist(type="fixed", value=20),
    conversion_rate=1.0,
    hangup_rate=0.0,
    talk_time_s=LogNormalDist(type="lognormal", median=180, sigma=0.6),
)
AGENT_DEFAULTS = AgentBehavior(
    handle_time_s=ExponentialDist(type="exponential", mean=300),
    answer_rate=1.0,
    ring_s=FixedDist(type="fixed", value=15),
)
QUEUE_DEFAULTS = QueueBehavior(patience_s=None, callback_accept_rate=0.0, callback_answer_rate=1.0)
DEFAULT_AREAS = tuple(CallerArea(state=s, area_code=a, zip_prefix=z) for s, a, z in AREAS)
# A repeat caller calls again after a median of an hour, a few only the next day or later.
REPEAT_AFTER_DEFAULT = LogNormalDist(type="lognormal", median=3600, sigma=1.5)


def draw(dist: Dist, rng: random.Random) -> float:
    """One value of a distribution (every type is ≥ 0 by construction or clipping)."""
    if isinstance(dist, FixedDist):
        return dist.value
    if isinstance(dist, UniformDist):
        return rng.uniform(dist.min, dist.max)
    if isinstance(dist, NormalDist):
        x = max(dist.min, rng.gauss(dist.mean, dist.sd))
        return min(x, dist.max) if dist.max is not None else x
    if isinstance(dist, LogNormalDist):
        x = dist.median * math.exp(rng.gauss(0.0, dist.sigma))
        return min(x, dist.max) if dist.max is not None else x
    return rng.expovariate(1.0 / dist.mean)


def draw_money(dist: Dist, rng: random.Random) -> Decimal:
    return Decimal(repr(draw(dist, rng))).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class BuyerModel:
    """A buyer's behavior resolved (core.config.BuyerBehavior with every field filled in)."""

    bid: Dist
    latency_ms: Dist
    decline_rate: float
    available_rate: float
    post_reject_rate: float
    answer_rate: float
    ring_s: Dist
    conversion_rate: float
    hangup_rate: float
    talk_time_s: Dist


@dataclass(frozen=True)
class AgentModel:
    """An agent's behavior resolved (core.config.AgentBehavior with every field filled in)."""

    handle_time_s: Dist
    answer_rate: float
    ring_s: Dist


@dataclass(frozen=True)
class QueueModel:
    """How callers behave in a queue (core.config.QueueBehavior)."""

    patience_s: Dist | None  # none: the caller waits up to max_wait_s
    callback_accept_rate: float  # of callers offered a callback, those who accept it
    callback_answer_rate: float  # of callbacks placed, those the caller answers


R = TypeVar("R", BuyerModel, AgentModel, QueueModel)


def _merge(model: type[R], *layers: object | None) -> R:
    """The first layer that sets a field wins (own entry, then `defaults`, then the built-in defaults).

    The built-in defaults set every field the model requires (only QueueModel.patience_s may stay None).
    """
    values: dict[str, Any] = {}
    for f in fields(model):
        for layer in layers:
            if layer is not None and getattr(layer, f.name) is not None:
                values[f.name] = getattr(layer, f.name)
                break
        else:
            values[f.name] = None
    return model(**values)


@dataclass(frozen=True)
class Campaign:
    """One campaign's arrival process: calls_per_hour × rates[local hour]."""

    id: str
    calls_per_hour: float
    rates: tuple[float, ...]  # 24 relative rates
    peak: float  # max(rates)
    answers: Mapping[str, Callable[[random.Random], str]]  # answer key → its drawer, in the order written
    blocked: tuple[
        tuple[str, str], ...
    ]  # ("number" | "prefix" | "area_code", entry) of the global blocklist, then the campaign's


class Model:
    """Everything the simulator draws from, resolved once per configuration."""

    def __init__(self, config: RoutingConfig) -> None:
        sim = config.simulation or Simulation()
        self.sim = sim
        self.start = sim.start_at()
        traffic = sim.traffic
        default_rates = hourly_rates(traffic.hourly_profile)
        # (campaign id, calls per hour, its hourly profile (None: the traffic's), its own answer specs)
        plan: list[tuple[str, float, Mapping[str, float] | None, Mapping[str, AnswerDist]]]
        if traffic.campaigns is None:
            plan = [(c.id, traffic.calls_per_hour, None, {}) for c in config.campaigns]
        else:
            plan = [(cid, t.calls_per_hour, t.hourly_profile, t.answers) for cid, t in traffic.campaigns.items()]
        callers = traffic.callers
        by_id = {c.id: c for c in config.campaigns}
        self.campaigns: list[Campaign] = []
        for cid, per_hour, profile, answers in plan:
            rates = tuple(hourly_rates(profile)) if profile is not None else tuple(default_rates)
            specs = {**callers.answers, **answers}
            blocked = _blocklist_entries(config.blocklist) + _blocklist_entries(by_id[cid].blocklist)
            self.campaigns.append(
                Campaign(cid, per_hour, rates, max(rates), {k: answer_drawer(v) for k, v in specs.items()}, blocked)
            )
        if not self.campaigns:
            raise ValueError("the configuration has no campaigns to send simulated calls to (add one under campaigns)")
        # Candidate arrivals at the peak rate of every campaign; thinning keeps each with rate/peak.
        self.peak_weights = list(accumulate(c.calls_per_hour * c.peak for c in self.campaigns))  # cumulative
        # First calls only: repeat calls come on top, so that all calls together keep calls_per_hour.
        self.peak_rate_s = self.peak_weights[-1] / 3600.0 * (1.0 - callers.repeat_rate)
        self.callers = callers
        # Screening draws only when some caller can be screened out (a run without them draws as before).
        self.screened_rates = callers.blocked_rate + callers.invalid_number_rate + callers.anonymous_rate > 0
        self.repeat_after_s = callers.repeat_after_s or REPEAT_AFTER_DEFAULT
        self.flows = {f.id: f for f in config.ivr_flows}
        self.menus = {
            (flow_id, node_id): (list(weights), list(accumulate(weights.values())))
            for flow_id, nodes in callers.menus.items()
            for node_id, weights in nodes.items()
        }
        areas: Sequence[CallerArea] = callers.areas or DEFAULT_AREAS
        self.areas = list(areas)
        self.area_weights = list(accumulate(a.weight for a in areas))  # cumulative
        buyers = sim.buyers
        self.buyers: dict[str, BuyerModel] = {
            b.id: _merge(BuyerModel, buyers.get(b.id), buyers.get("defaults"), BUYER_DEFAULTS) for b in config.buyers
        }
        agents = sim.agents
        self.agents: dict[str, AgentModel] = {
            a.id: _merge(AgentModel, agents.get(a.id), agents.get("defaults"), AGENT_DEFAULTS) for a in config.agents
        }
        queues = sim.queues
        self.queues: dict[str, QueueModel] = {
            q.id: _merge(QueueModel, queues.get(q.id), queues.get("defaults"), QUEUE_DEFAULTS) for q in config.queues
        }


def answer_drawer(spec: AnswerDist) -> Callable[[random.Random], str]:
    """Draws an IVR answer as the IVR records it: text. Numbers are drawn and rounded to whole numbers."""
    if isinstance(spec, ChoiceDist):
        values = list(spec.weights)
        cumulative = list(accumulate(spec.weights.values()))
        return lambda rng: rng.choices(values, cum_weights=cumulative)[0]
    return lambda rng: str(round(draw(spec, rng)))


def _blocklist_entries(blocklist: Blocklist) -> tuple[tuple[str, str], ...]:
    return (
        *(("number", n) for n in blocklist.numbers),
        *(("prefix", p) for p in blocklist.prefixes),
        *(("area_code", a) for a in blocklist.area_codes),
    )


# ---------------------------------------------------------------- a simulated caller at an IVR prompt

_SPOKEN_KEYS = {"*": "star", "#": "pound"}  # how a caller says a key to a speech-only prompt
YES_NO_KEYS = {"yes": "1", "no": "2"}  # a yes/no question's keypad (core.ivr.yes_no)
NO_INPUT: tuple[str, ivr.InputKind] = (
    "",
    "digits",
)  # nothing pressed: every prompt refuses it, so the flow re-prompts (or gives up)


def _key_input(node: IvrMenuNode | IvrSetLanguageNode, key: str) -> tuple[str, ivr.InputKind]:
    if node.input == "speech":
        return _SPOKEN_KEYS.get(key, key), "speech"
    return key, "digits"


def language_key(node: IvrSetLanguageNode, wanted: str | None, default: str) -> str:
    """The option of the caller's language (or of its base language: es-MX ↔ es), else of the flow's, else the first."""
    langs = {key: option if isinstance(option, str) else option.language for key, option in node.options.items()}
    for lang in (wanted, default):
        if not lang:
            continue
        for key, offered in langs.items():
            if offered == lang:
                return key
        base = lang.split("-")[0]
        for key, offered in langs.items():
            if offered.split("-")[0] == base:
                return key
    return next(iter(langs))


def _fallback_answer(node: IvrQuestionNode, rng: random.Random) -> str | None:
    """An answer for a question nobody modelled: one of what its validation plainly allows, else none."""
    rule = node.validation
    if rule is None:
        return None
    if rule.yes_no:
        return rng.choice(("yes", "no"))
    if rule.choices:
        return rng.choice(rule.choices)
    if rule.min is not None and rule.max is not None and rule.pattern is None:
        low, high = math.ceil(rule.min), math.floor(rule.max)
        return str(rng.randint(low, high)) if low <= high else None
    return None


def prompt_input(
    flow: IvrFlow,
    step: ivr.Prompt,
    answers: Mapping[str, str],
    zip_code: str,
    model: Model,
    rng: Callable[[], random.Random],
) -> tuple[str, ivr.InputKind]:
    """What a simulated caller keys in (or says) at `step`: (input, kind) for core.ivr.answer.

    The caller answers from what was drawn for them (`answers`, their ZIP): a question with
    answer_key k → their answer k (yes/no as 1/2 on the keypad); set_language → the key of their
    language; a menu → the option whose value is their answer to the menu's answer_key, else by
    `callers.menus`, else uniformly. With `invalid_input_rate`, a prompt gets nothing instead.
    `rng()` is the call's IVR stream (made only when something is drawn).
    """
    callers = model.callers
    if callers.invalid_input_rate and rng().random() < callers.invalid_input_rate:
        return NO_INPUT
    node = flow.nodes[step.node]
    if isinstance(node, IvrSetLanguageNode):
        return _key_input(node, language_key(node, answers.get("language"), flow.language))
    if isinstance(node, IvrMenuNode):
        wanted = answers.get(node.answer_key) if node.answer_key else None
        if wanted is not None:
            for key, option in node.options.items():
                if (option.value if isinstance(option, IvrOption) and option.value is not None else key) == wanted:
                    return _key_input(node, key)
        weighted = model.menus.get((flow.id, step.node))
        if weighted is not None:
            keys, cumulative = weighted
            return _key_input(node, rng().choices(keys, cum_weights=cumulative)[0])
        return _key_input(node, rng().choice(list(node.options)))
    assert isinstance(node, IvrQuestionNode)
    value = answers.get(node.answer_key)
    if value is None and node.answer_key == "zip" and zip_code:
        value = zip_code
    if value is None:
        value = _fallback_answer(node, rng())
        if value is None:
            return NO_INPUT  # the caller has no answer to give
    if node.validation is not None and node.validation.yes_no and node.input != "speech":
        return YES_NO_KEYS.get(value, value), "digits"
    if node.input == "speech" or (node.input == "digits_or_speech" and not value.isdigit()):
        return value, "speech"
    return value, "digits"
