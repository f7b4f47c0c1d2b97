"""The queue's domain metrics (docs/OPERATIONS.md): waiting calls, agents by state, projected wait.

Set from the ACD state after every batch (QueueRunner), so they are what the state is, not a
running count that a restart would reset.

Projected wait of a call arriving now at a queue: core.waits' estimate for the place after the
last waiting call (0 while an agent slot is free for it, else k·h/c over the queue's agent slots,
h the queue's mean handle time from core.waits.QueueEstimates, the same the ACD's overflow reads).
Before any call finished there, the wait of the oldest waiting call stands in (a lower bound).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from switchboard.core import agents as desk
from switchboard.core.acd import Acd
from switchboard.core.waits import QueueEstimates, projected_wait_s
from switchboard.v1 import events_pb2 as pb

WAITING = Gauge("switchboard_queue_waiting_calls", "Calls waiting for an agent, per queue", ["queue"])
AGENTS = Gauge(
    "switchboard_agents",
    "Logged-in agents of a queue: available (takes a call now) or busy (every slot taken, wrap-up, not ready)",
    ["queue", "state"],
)
CALLBACKS = Counter(
    "switchboard_queue_callbacks",
    "Callbacks per queue by event: offered, accepted, placed (a try: call.routed), connected, failed, expired",
    ["queue", "event"],
)
STATUSES = Counter("switchboard_queue_statuses", "queue.status events published, per queue and kind", ["queue", "kind"])
AGENT_STATES = Gauge(
    "switchboard_agent_states", "Agents by state (core.agents: logged_out, ready, not_ready, on_call, wrap_up)", ["state"]
)
AGENT_EVENTS_PUBLISHED = Counter("switchboard_agent_events", "agent.events published, by the new state", ["state"])
PROJECTED_WAIT = Gauge(
    "switchboard_queue_projected_wait_seconds", "Estimated wait of a call arriving now at the queue (module doc)", ["queue"]
)


def projected_wait(waiting: int, free_slots: int, slots: int, handle_time_s: float | None, oldest_wait_s: float) -> float:
    """Seconds a call arriving now would wait (module doc)."""
    estimate = projected_wait_s(waiting + 1, slots, free_slots, handle_time_s)
    if estimate is None:
        return oldest_wait_s if waiting + 1 > free_slots else 0.0
    return estimate


class QueueGauges:
    """The gauges, set from an Acd and the queue's running estimates."""

    def __init__(self, estimates: QueueEstimates) -> None:
        self.estimates = estimates

    def show(self, acd: Acd, now: float) -> None:
        for state, count in desk.states_count(acd.agents.values()).items():
            AGENT_STATES.labels(state_label(state)).set(count)
        for queue_id in acd.queues:
            waiting = acd.waiting.get(queue_id, [])
            agents = acd.agents_of(queue_id)
            available = sum(1 for a in agents if a.has_capacity)
            slots, free_slots = acd.slots(queue_id)
            oldest = max((now - c.enqueued_at for c in waiting), default=0.0)
            WAITING.labels(queue_id).set(len(waiting))
            AGENTS.labels(queue_id, "available").set(available)
            # busy: logged in but taking no call now (calls at max_concurrent, wrap-up, not ready); logged-out
            # agents are neither (switchboard_agent_states counts them)
            AGENTS.labels(queue_id, "busy").set(sum(1 for a in agents if a.presence.logged_in) - available)
            PROJECTED_WAIT.labels(queue_id).set(
                projected_wait(len(waiting), free_slots, slots, self.estimates.handle_time_s(queue_id), oldest)
            )


def state_label(state: int) -> str:
    """AGENT_STATE_WRAP_UP → wrap_up."""
    return pb.AgentState.Name(state).removeprefix("AGENT_STATE_").lower()
