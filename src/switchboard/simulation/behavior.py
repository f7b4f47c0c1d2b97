"""The simulation model resolved for drawing: defaults filled in, distributions turned into draws.

`config.simulation` (core.config.Simulation) says what the user wrote; this module adds the
built-in defaults (docs/SIMULATION.md) and draws from the distributions with a given
`random.Random`. No routing decisions here: those are the core's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate

from switchboard.core.config import (
    AgentBehavior,
    BuyerBehavior,
    CallerArea,
    ChoiceDist,
    ExponentialDist,
    FixedDist,
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
QUEUE_DEFAULTS = QueueBehavior(patience_s=None)
DEFAULT_AREAS = tuple(CallerArea(state=s, area_code=a, zip_prefix=z) for s, a, z in AREAS)


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


def _merge(model: type, *layers: object | None) -> object:
    """The first layer that sets a field wins (own entry, then `defaults`, then the built-in defaults)."""
    values = {}
    for name in model.model_fields:  # type: ignore[attr-defined]
        for layer in layers:
            if layer is not None and getattr(layer, name) is not None:
                values[name] = getattr(layer, name)
                break
        else:
            values[name] = None
    return model.model_construct(**values)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Campaign:
    """One campaign's arrival process: calls_per_hour × rates[local hour]."""

    id: str
    calls_per_hour: float
    rates: tuple[float, ...]  # 24 relative rates
    peak: float  # max(rates)
    answers: Mapping[str, Callable[[random.Random], str]]  # answer key → its drawer, in the order written


class Model:
    """Everything the simulator draws from, resolved once per configuration."""

    def __init__(self, config: RoutingConfig) -> None:
        sim = config.simulation or Simulation()
        self.sim = sim
        self.start = sim.start_at()
        traffic = sim.traffic
        default_rates = hourly_rates(traffic.hourly_profile)
        if traffic.campaigns is None:
            plan = [(c.id, traffic.calls_per_hour, None, {}) for c in config.campaigns]
        else:
            plan = [(cid, t.calls_per_hour, t.hourly_profile, t.answers) for cid, t in traffic.campaigns.items()]
        self.campaigns: list[Campaign] = []
        for cid, per_hour, profile, answers in plan:
            rates = tuple(hourly_rates(profile)) if profile is not None else tuple(default_rates)
            specs = {**traffic.callers.answers, **answers}
            self.campaigns.append(Campaign(cid, per_hour, rates, max(rates), {k: answer_drawer(v) for k, v in specs.items()}))
        if not self.campaigns:
            raise ValueError("the configuration has no campaigns to send simulated calls to (add one under campaigns)")
        # Candidate arrivals at the peak rate of every campaign; thinning keeps each with rate/peak.
        self.peak_weights = list(accumulate(c.calls_per_hour * c.peak for c in self.campaigns))  # cumulative
        self.peak_rate_s = self.peak_weights[-1] / 3600.0
        areas: Sequence[CallerArea] = traffic.callers.areas or DEFAULT_AREAS
        self.areas = list(areas)
        self.area_weights = list(accumulate(a.weight for a in areas))  # cumulative
        buyers = sim.buyers
        self.buyers: dict[str, BuyerBehavior] = {
            b.id: _merge(BuyerBehavior, buyers.get(b.id), buyers.get("defaults"), BUYER_DEFAULTS)  # type: ignore[misc]
            for b in config.buyers
        }
        agents = sim.agents
        self.agents: dict[str, AgentBehavior] = {
            a.id: _merge(AgentBehavior, agents.get(a.id), agents.get("defaults"), AGENT_DEFAULTS)  # type: ignore[misc]
            for a in config.agents
        }
        queues = sim.queues
        self.queues: dict[str, QueueBehavior] = {
            q.id: _merge(QueueBehavior, queues.get(q.id), queues.get("defaults"), QUEUE_DEFAULTS)  # type: ignore[misc]
            for q in config.queues
        }


def answer_drawer(spec: Dist | ChoiceDist) -> Callable[[random.Random], str]:
    """Draws an IVR answer as the IVR records it: text. Numbers are drawn and rounded to whole numbers."""
    if isinstance(spec, ChoiceDist):
        values = list(spec.weights)
        cumulative = list(accumulate(spec.weights.values()))
        return lambda rng: rng.choices(values, cum_weights=cumulative)[0]
    return lambda rng: str(round(draw(spec, rng)))
