"""The Prometheus metrics every consumer and producer shares (docs/OPERATIONS.md lists them all).

Objects of prometheus-client's default registry: defining them registers them, nothing is
served or connected here (platform.ops serves the registry). Domain metrics live in the
service that knows them (e.g. services/router/metrics.py); these are the generic ones,
counted in the shared paths (platform.kafka, platform.follow, the router's Faust sensor).
Every process also exports prometheus-client's default process and python collectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No `*_created` series: a timestamp per label set doubles what Prometheus stores and nothing here reads it.
disable_created_metrics()

EVENTS_CONSUMED = Counter("switchboard_events_consumed", "Records read from Kafka, per topic", ["topic"])
EVENTS_PUBLISHED = Counter("switchboard_events_published", "Records published to Kafka (acknowledged), per topic", ["topic"])
HANDLER_ERRORS = Counter(
    "switchboard_handler_errors", "Records whose handler raised (or that could not be decoded), per topic", ["topic"]
)
DEAD_LETTERS = Counter(
    "switchboard_dead_letters",
    "Records sent to the dead-letter topic, by the topic they came from and the kind of reason",
    ["topic", "reason"],
)
CONSUMER_LAG = Gauge(
    "switchboard_consumer_lag", "Records of a partition not read yet (high-water mark - position)", ["topic", "partition"]
)
PROCESSING_SECONDS = Histogram(
    "switchboard_processing_seconds",
    "Time to handle one consumed record, per topic",
    ["topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
READY = Gauge("switchboard_ready", "1 when /readyz answers 200, else 0")
LIVE = Gauge("switchboard_live", "1 when /livez answers 200, else 0")


def reason_kind(reason: str) -> str:
    """The bounded label of a dead-letter reason: its text up to the first ':' ("undecodable", "handler error").

    Why: the full reason names exception messages and offsets; as a label value it would make a
    new time series per letter.
    """
    return reason.split(":", 1)[0].strip() or "unknown"


class LagTracker:
    """Sets switchboard_consumer_lag for the partitions of one consumer, at most every `every_s` seconds.

    `lag_of(partitions)` answers {(topic, partition): lag} from what the client already knows
    (high-water marks come with every fetch answer), so updating costs no request.
    """

    def __init__(self, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._next = 0.0
        self._shown: set[tuple[str, int]] = set()

    def due(self) -> bool:
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.every_s
        return True

    def show(self, lags: Iterable[tuple[str, int, int]]) -> None:
        """Set the gauge for each (topic, partition, lag); partitions no longer reported are removed."""
        seen: set[tuple[str, int]] = set()
        for topic, partition, lag in lags:
            CONSUMER_LAG.labels(topic, str(partition)).set(max(0, lag))
            seen.add((topic, partition))
        for topic, partition in self._shown - seen:  # revoked: this process no longer reads it
            try:
                CONSUMER_LAG.remove(topic, str(partition))
            except KeyError:
                pass
        self._shown = seen
