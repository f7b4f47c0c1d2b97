"""Pure helpers: percentiles, rates from event timestamps, and the "keeps up" verdict of a live step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

# A live step keeps up when all of these hold:
MIN_THROUGHPUT_SHARE = 0.95  # decisions per second ≥ 95 % of the offered calls per second
# Latency not growing: the median of the step's last third of calls ≤ 2 × the median of its first third + 100 ms.
# (The median, not the p99: a growing backlog moves every call, while the p99 of a third — a few dozen calls —
# is one outlier, e.g. a pause of a process on a busy machine.)
GROWTH_FACTOR = 2.0
GROWTH_SLACK_MS = 100.0
P99_BOUND_MS = 2000.0  # p99 ≤ 2 s: the demo campaigns' auction timeout; beyond it calls wait in queues, not auctions
# ... and the backlog drained: every call the step started got its decision before the drain deadline.


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n·q/100), at least the first
    return float(ordered[int(min(rank, len(ordered))) - 1])


def rate_of(timestamps: Sequence[float], trim: float = 0.0) -> float:
    """Events per second of a stream of event times (seconds): (n-1) over the time they span.

    `trim` drops that share of the events at each end first, so that the jitter of the
    first and last few (e.g. one slow decision at the end of a step) does not move the rate.
    """
    ordered = sorted(timestamps)
    cut = int(len(ordered) * trim)
    if len(ordered) - 2 * cut >= 2:
        ordered = ordered[cut : len(ordered) - cut]
    if len(ordered) < 2:
        return 0.0
    span = ordered[-1] - ordered[0]
    return (len(ordered) - 1) / span if span > 0 else 0.0


@dataclass
class StepVerdict:
    keeps_up: bool
    throughput_ok: bool
    drained: bool
    latency_stable: bool
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(
    offered_rate: float,
    throughput: float,
    started: int,
    decided: int,
    errors: int,
    latencies_ms_in_start_order: Sequence[float],
    p99_bound_ms: float = P99_BOUND_MS,
) -> StepVerdict:
    """Whether a live step kept up with its offered rate (the thresholds above)."""
    throughput_ok = throughput >= MIN_THROUGHPUT_SHARE * offered_rate
    drained = errors == 0 and started > 0 and decided >= started
    third = len(latencies_ms_in_start_order) // 3
    if third >= 3:
        first = percentile(latencies_ms_in_start_order[:third], 50)
        last = percentile(latencies_ms_in_start_order[-third:], 50)
        latency_stable = last <= GROWTH_FACTOR * first + GROWTH_SLACK_MS
    else:
        first = last = 0.0
        latency_stable = drained  # too few calls to see a trend
    p99 = percentile(latencies_ms_in_start_order, 99)
    latency_bounded = p99 <= p99_bound_ms
    reasons = []
    if not throughput_ok:
        reasons.append(f"{throughput:.1f} decisions/s < {MIN_THROUGHPUT_SHARE:.0%} of {offered_rate:g} offered")
    if not drained:
        reasons.append(f"{decided}/{started} calls decided" + (f", {errors} driver errors" if errors else ""))
    if not latency_stable:
        reasons.append(f"median grew from {first:.0f} ms to {last:.0f} ms within the step")
    if not latency_bounded:
        reasons.append(f"p99 {p99:.0f} ms > {p99_bound_ms:.0f} ms")
    ok = throughput_ok and drained and latency_stable and latency_bounded
    return StepVerdict(ok, throughput_ok, drained, latency_stable and latency_bounded, "; ".join(reasons) or "keeps up")
