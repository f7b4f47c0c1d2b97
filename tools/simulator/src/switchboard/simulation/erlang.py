"""Erlang C: the M/M/c queue in steady state, to check the simulator's queue model against.

λ arrivals per second (Poisson), μ = 1 / mean handle time, c agents, offered load a = λ/μ,
utilisation ρ = a/c < 1, nobody abandons:
    P(wait) = C(c, a) = (a^c / c!) / (1 − ρ) / (Σ_{k<c} a^k / k! + (a^c / c!) / (1 − ρ))
    ASA     = C(c, a) / (c·μ − λ)       (mean wait over all calls)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErlangC:
    wait_probability: float
    avg_wait_s: float  # ASA over all calls (0 for those answered at once)


def erlang_c(arrivals_per_s: float, handle_time_s: float, agents: int) -> ErlangC:
    a = arrivals_per_s * handle_time_s
    rho = a / agents
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
