"""Projected waits in the ACD (pure: time is passed in, no I/O). docs/ACD.md "Projected wait".

Two estimates, from the live state and two running estimates per queue:

- A waiting call's projected wait (`projected_wait_s`): with every agent slot of its queue
  busy, the call at place k of the service order is served at the k-th departure. While all c
  slots are busy, departures come at rate c/h (h the mean handle time; the exponential of the
  M/M/c model is memoryless, so time already talked does not count), and the wait to the k-th
  is k·h/c: the conditional wait of M/M/c given k−1 calls ahead. A free slot that could take
  the call means 0. Aging and later higher-priority arrivals can move a call back or forward:
  the estimate is for the order at `now`, refreshed when it is announced again.
- A queue's outlook for a call arriving now (`erlang_c`): from the arrival rate λ, h and c,
  the probability of waiting C(c, a) and the mean wait over all calls (ASA), Erlang C. It says
  what to expect before anyone waits; the simulator checks its queue model against it.

The running estimates (`QueueEstimates`): the arrival rate is an exponentially weighted rate
over `rate_window_s` (each arrival adds 1/window, the whole decays by e^(−Δt/window)), the
handle time an exponential average of the talk times of the calls the queue's agents finished
(weight `HANDLE_TIME_WEIGHT` for the newest: follows a shift within about 10 calls). Before any
call finished, a queue has no handle time and its waits are unknown (None): an announcement
then says the caller's place only.

Erlang C, λ arrivals per second (Poisson), μ = 1/h, c agents, offered load a = λ/μ,
utilisation ρ = a/c < 1, nobody abandons:
    P(wait) = C(c, a) = (a^c / c!) / (1 − ρ) / (Σ_{k<c} a^k / k! + (a^c / c!) / (1 − ρ))
    ASA     = C(c, a) / (c·μ − λ)       (mean wait over all calls)

Erlang A (M/M/c+M, `erlang_a`): the same queue where every waiting caller hangs up after an
exponential patience of mean 1/θ unless served first. Calls in the system form a birth–death
chain: births at λ, deaths at min(n, c)·μ + max(n − c, 0)·θ, stable at any load (impatience
empties the queue). Its stationary distribution π_n (π_n = π_{n−1}·λ / death(n), summed until
the terms vanish, then normalised) gives, by PASTA and Little's law:
    P(wait)    = Σ_{n≥c} π_n            (an arrival finds every agent busy)
    P(abandon) = θ·E[Lq] / λ            (the abandonment flow over the arrival flow)
    mean wait  = E[Lq] / λ              (over all calls, those who abandon included)
with E[Lq] = Σ_{n>c} (n − c)·π_n. Exact up to the truncation (terms below 1e-16 of the largest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HANDLE_TIME_WEIGHT = 0.2
RATE_WINDOW_S = 300.0


@dataclass(frozen=True)
class ErlangC:
    wait_probability: float
    avg_wait_s: float  # ASA over all calls (0 for those answered at once)


def erlang_c(arrivals_per_s: float, handle_time_s: float, agents: int) -> ErlangC:
    """Erlang C for λ = `arrivals_per_s`, h = `handle_time_s`, c = `agents` (module doc); ρ must be in (0, 1)."""
    a = arrivals_per_s * handle_time_s
    rho = a / agents if agents > 0 else math.inf
    if not 0 < rho < 1:
        raise ValueError(
            f"utilisation {rho:.3f} must be between 0 and 1 for a steady state (add agents or lower the arrival rate)"
        )
    # Terms a^k/k! built up iteratively (no overflow for realistic c).
    term, total = 1.0, 0.0
    for k in range(agents):
        total += term
        term *= a / (k + 1)
    tail = term / (1 - rho)  # (a^c / c!) / (1 − ρ)
    p_wait = tail / (total + tail)
    return ErlangC(p_wait, p_wait * handle_time_s / (agents - a))


@dataclass(frozen=True)
class ErlangA:
    wait_probability: float
    abandon_probability: float
    avg_wait_s: float  # over all calls: those answered at once (0), those who waited, those who hung up


def erlang_a(arrivals_per_s: float, handle_time_s: float, agents: int, patience_s: float) -> ErlangA:
    """Erlang A (M/M/c+M) for λ = `arrivals_per_s`, h = `handle_time_s`, c = `agents` and a mean
    patience of `patience_s` (module doc): the birth–death chain solved numerically."""
    if arrivals_per_s <= 0 or handle_time_s <= 0 or agents < 1 or patience_s <= 0:
        raise ValueError("Erlang A needs an arrival rate, a handle time, a patience above 0 and at least one agent")
    lam, mu, theta = arrivals_per_s, 1.0 / handle_time_s, 1.0 / patience_s
    # Unnormalised π_n relative to π_0 = 1. Past c the ratio λ/(cμ + kθ) falls to 0, so the tail ends.
    weights = [1.0]
    n = 0
    while True:
        n += 1
        death = min(n, agents) * mu + max(n - agents, 0) * theta
        nxt = weights[-1] * lam / death
        weights.append(nxt)
        if n > agents and nxt < 1e-16 * max(weights):
            break
    total = math.fsum(weights)
    p_wait = math.fsum(weights[agents:]) / total
    queue_length = math.fsum((k - agents) * w for k, w in enumerate(weights) if k > agents) / total
    return ErlangA(p_wait, theta * queue_length / lam, queue_length / lam)


def projected_wait_s(position: int, slots: int, free_slots: int, handle_time_s: float | None) -> float | None:
    """The wait of the call at 1-based `position` of its queue's service order (module doc).

    `slots`: the call slots of the queue's agents (Σ max_concurrent); `free_slots`: those free now.
    0 when a free slot could take it; None when the queue has no slots or no handle time yet.
    """
    ahead_of_free = position - max(0, free_slots)
    if ahead_of_free <= 0:
        return 0.0
    if slots <= 0 or handle_time_s is None:
        return None
    return ahead_of_free * handle_time_s / slots


@dataclass
class _Rate:
    value: float = 0.0  # arrivals per second
    at: float | None = None


@dataclass
class QueueEstimates:
    """Running arrival rates and handle times per queue (module doc); the owner feeds them as events happen."""

    rate_window_s: float = RATE_WINDOW_S
    handle_time_weight: float = HANDLE_TIME_WEIGHT
    _rates: dict[str, _Rate] = field(default_factory=dict)
    _handle: dict[str, float] = field(default_factory=dict)

    def arrived(self, queue_id: str, now: float) -> None:
        """A call reached `queue_id` at `now`."""
        rate = self._rates.setdefault(queue_id, _Rate())
        rate.value = self._decayed(rate, now) + 1.0 / self.rate_window_s
        rate.at = now

    def handled(self, queue_id: str, talk_seconds: float) -> None:
        """A call of `queue_id` ended on an agent after `talk_seconds` of talk."""
        known = self._handle.get(queue_id)
        talk = max(0.0, talk_seconds)
        self._handle[queue_id] = talk if known is None else known + self.handle_time_weight * (talk - known)

    def arrival_rate(self, queue_id: str, now: float) -> float:
        """Calls per second reaching `queue_id`, weighted to the last rate_window_s."""
        rate = self._rates.get(queue_id)
        return 0.0 if rate is None else self._decayed(rate, now)

    def handle_time_s(self, queue_id: str) -> float | None:
        return self._handle.get(queue_id)

    def _decayed(self, rate: _Rate, now: float) -> float:
        if rate.at is None:
            return rate.value
        return rate.value * math.exp(-max(0.0, now - rate.at) / self.rate_window_s)

    def to_dict(self) -> dict[str, dict[str, float | None]]:
        """JSON-able, for the queue service's snapshot (a restart keeps its estimates)."""
        queues = set(self._rates) | set(self._handle)
        return {
            q: {
                "rate": self._rates[q].value if q in self._rates else 0.0,
                "rate_at": self._rates[q].at if q in self._rates else None,
                "handle_s": self._handle.get(q),
            }
            for q in sorted(queues)
        }

    def load(self, data: dict[str, dict[str, float | None]], time_shift: float = 0.0) -> None:
        for q, item in data.items():
            at = item.get("rate_at")
            self._rates[q] = _Rate(float(item.get("rate") or 0.0), None if at is None else at + time_shift)
            handle = item.get("handle_s")
            if handle is not None:
                self._handle[q] = float(handle)
