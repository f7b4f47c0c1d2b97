"""The router's metrics (docs/OPERATIONS.md): its decisions and revenue, Faust's events and the worker's health.

- `count_decision(event)`: switchboard_decisions_total{kind,reason} for each call.routed,
  call.queued and call.rejected the router publishes (the queue's agent offers are the queue's,
  not counted here), and switchboard_decision_latency_seconds from the call's routing start to its
  first decision (a re-offer after a failed one is not timed: its time includes the ringing).
- `REVENUE`: switchboard_revenue_dollars_total{campaign,buyer}, counted by the ledger agent
  (bookkeeper.py) when it books a billable sale, at the price the call was sold for.
- `RouterSensor`: a Faust sensor counting the generic per-topic metrics (consumed, published,
  processing time) and making the agents' progress a watched loop of /livez: an event in an
  agent for longer than the stall time is a stalled loop.
- `watch_worker`: readiness from the worker's consumer (partitions assigned, no rebalance, table
  recovery done) and the consumer lag per partition, every `every_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, cast

from faust.sensors import Sensor
from faust.tables.manager import TableManager
from faust.types import TP, AppT, EventT, Message, ProducerT, StreamT
from faust.types.tuples import PendingMessage, RecordMetadata
from prometheus_client import Counter, Histogram

from switchboard.core import reasons
from switchboard.platform import codec
from switchboard.platform.metrics import EVENTS_CONSUMED, EVENTS_PUBLISHED, PROCESSING_SECONDS, LagTracker
from switchboard.platform.ops import Health, Loop
from switchboard.v1 import events_pb2 as pb

DECISIONS = Counter(
    "switchboard_decisions",
    "Routing decisions by kind (routed|queued|rejected) and reason (the rejection's; empty for routed and queued)",
    ["kind", "reason"],
)
DECISION_LATENCY = Histogram(
    "switchboard_decision_latency_seconds",
    "From a call's routing start (its ivr.completed) to its first decision",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
REVENUE = Counter(
    "switchboard_revenue_dollars", "Price of the billable sales, per campaign and buyer (USD)", ["campaign", "buyer"]
)

ROUTE_LOOP = "router-agents"
RECOVERED = "recovered"
ASSIGNED = "assigned:router"


def count_decision(event: object, now: float | None = None) -> None:
    """Count a decision event the router published (module doc); other events are not decisions."""
    if isinstance(event, pb.CallRouted):
        kind, reason, first = "routed", "", event.attempt <= 1
    elif isinstance(event, pb.CallQueued):
        kind, reason, first = "queued", "", event.attempt <= 1
    elif isinstance(event, pb.CallRejected):
        # A caller's hang-up, or the end of a chain of failed offers, is no measure of deciding.
        kind, reason, first = "rejected", event.reason, event.reason not in (reasons.ABANDONED, reasons.MAX_ATTEMPTS)
    else:
        return
    DECISIONS.labels(kind, reason).inc()
    if first and event.HasField("routing_started_at"):
        started = codec.ts_to_datetime(event.routing_started_at).timestamp()
        DECISION_LATENCY.observe(max(0.0, (time.time() if now is None else now) - started))


class RouterSensor(Sensor):
    """Faust's sensor hooks → the generic metrics and the agents' liveness (module doc)."""

    def __init__(self, loop: Loop, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agents = loop

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        EVENTS_CONSUMED.labels(tp.topic).inc()

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT, event: EventT) -> dict | None:
        self.agents.enter()
        return {"started": time.perf_counter()}

    def on_stream_event_out(self, tp: TP, offset: int, stream: StreamT, event: EventT, state: dict | None = None) -> None:
        self.agents.leave()
        if state is not None:
            PROCESSING_SECONDS.labels(tp.topic).observe(time.perf_counter() - state["started"])

    def on_send_initiated(self, producer: ProducerT, topic: str, message: PendingMessage, keysize: int, valsize: int) -> Any:
        return topic

    def on_send_completed(self, producer: ProducerT, state: Any, metadata: RecordMetadata) -> None:
        EVENTS_PUBLISHED.labels(metadata.topic).inc()


def install_sensor(app: AppT, health: Health) -> RouterSensor:
    sensor = RouterSensor(health.loop(ROUTE_LOOP, idle_is_alive=True))
    app.sensors.add(sensor)
    return sensor


async def watch_worker(app: Any, health: Health, stop: asyncio.Event, every_s: float = 0.5) -> None:
    """Readiness checks `assigned:router` and `recovered`, and the lag per partition, until `stop` (module doc)."""
    tables = cast(TableManager, app.tables)  # its interface does not name the Recovery service
    lag = LagTracker(every_s=1.0)
    health.set(ASSIGNED, False, "joining the group")
    health.set(RECOVERED, False, "recovering the tables")
    try:
        while not stop.is_set():
            try:
                assignment = app.consumer.assignment()
            except Exception:  # noqa: BLE001 — the consumer is not started yet (Faust raises ConsumerNotStarted)
                assignment = set()
            if not assignment:
                health.set(ASSIGNED, False, "no partitions")
            elif app.rebalancing:
                health.set(ASSIGNED, False, "rebalancing")
            else:
                health.set(ASSIGNED, True)
            recovered = tables.recovery.completed.is_set()
            health.set(RECOVERED, recovered, "" if recovered else "recovering the tables")
            if lag.due():
                lag.show(_lags(app, assignment))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
    finally:
        lag.show(())


def _lags(app: Any, assignment: set[TP]) -> list[tuple[str, int, int]]:
    """High-water mark - (last offset the app read + 1) for the partitions the app has read from."""
    out: list[tuple[str, int, int]] = []
    read = app.consumer._read_offset
    for tp in assignment:
        offset = read.get(tp)
        if offset is None:
            continue
        try:
            highwater = app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 — not fetched yet (or revoked meanwhile): skip this round
            continue
        if highwater is not None:
            out.append((tp.topic, tp.partition, highwater - (offset + 1)))
    return out
