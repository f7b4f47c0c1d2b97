"""Two routing plans on the same traffic: paired runs with common random numbers, and the difference with its 95% CI.

Run r simulates plan A and plan B with the same seed (seed + r). Both plans then get the same calls
(arrivals and callers come from streams that do not depend on routing), and a buyer asked about the
same call answers the same way in both, so the per-run difference measures the plans, not the luck
of the draw. The interval is the paired t interval over the runs (n − 1 degrees of freedom).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from switchboard.core.config import RoutingConfig, Simulation
from switchboard.simulation.results import Tally
from switchboard.simulation.simulator import Simulator
from switchboard.simulation.stats import Interval, paired_interval


@dataclass(frozen=True)
class Comparison:
    calls: int
    seeds: tuple[int, ...]
    a: tuple[Tally, ...]
    b: tuple[Tally, ...]
    revenue: Interval  # B − A, dollars per run
    fill_rate: Interval  # B − A, share of calls
    traffic_differs: bool  # the plans' simulation.traffic sections differ: not the same calls

    def to_dict(self, a_label: str = "A", b_label: str = "B") -> dict[str, Any]:
        def plan(label: str, runs: tuple[Tally, ...]) -> dict[str, Any]:
            return {
                "config": label,
                "revenue_mean": f"{sum(float(t.revenue) for t in runs) / len(runs):.2f}",
                "fill_rate_mean": round(sum(t.fill_rate for t in runs) / len(runs), 6),
                "revenue_by_run": [f"{t.revenue:.2f}" for t in runs],
                "fill_rate_by_run": [round(t.fill_rate, 6) for t in runs],
            }

        def diff(i: Interval, money: bool) -> dict[str, Any]:
            fmt = (lambda x: f"{x:.2f}") if money else (lambda x: round(x, 6))
            return {"mean": fmt(i.mean), "ci95": [fmt(i.low), fmt(i.high)], "sd": fmt(i.sd), "significant": i.excludes_zero}

        return {
            "calls": self.calls,
            "runs": len(self.seeds),
            "seeds": list(self.seeds),
            "a": plan(a_label, self.a),
            "b": plan(b_label, self.b),
            "difference_b_minus_a": {"revenue": diff(self.revenue, True), "fill_rate": diff(self.fill_rate, False)},
            "same_traffic": not self.traffic_differs,
        }


def compare(
    config_a: RoutingConfig,
    config_b: RoutingConfig,
    calls: int,
    runs: int,
    seed: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """`runs` paired runs of `calls` calls each; `progress(k)` after each of the 2·runs simulations."""
    if runs < 2:
        raise ValueError("--runs must be at least 2 for a confidence interval")
    seeds = tuple(seed + r for r in range(runs))
    a: list[Tally] = []
    b: list[Tally] = []
    for r, s in enumerate(seeds):
        a.append(Simulator(config_a, s).run(calls))
        if progress is not None:
            progress(2 * r + 1)
        b.append(Simulator(config_b, s).run(calls))
        if progress is not None:
            progress(2 * r + 2)
    revenue = paired_interval([float(y.revenue - x.revenue) for x, y in zip(a, b, strict=True)])
    fill = paired_interval([y.fill_rate - x.fill_rate for x, y in zip(a, b, strict=True)])
    traffic_a = (config_a.simulation or Simulation()).traffic
    traffic_b = (config_b.simulation or Simulation()).traffic
    differs = (
        traffic_a != traffic_b
        or (config_a.simulation or Simulation()).start_at() != (config_b.simulation or Simulation()).start_at()
    )
    return Comparison(calls, seeds, tuple(a), tuple(b), revenue, fill, differs)
