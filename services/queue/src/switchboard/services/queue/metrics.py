"""The queue's domain metrics (docs/OPERATIONS.md): waiting calls, agents by state, projected wait.

Set from the ACD state after every batch (QueueRunner), so they are what the state is, not a
running count that a restart would reset.

Projected wait of a call arriving now at a queue: 0 while an agent slot is free for it;
otherwise the calls ahead of it that no free slot takes, over the queue's agent slots, times
the queue's average handle time (an exponential average of the talk time of the calls its
agents finished, as call.ended reports it). Before any call finished there, the wait of the
oldest waiting call stands in (a lower bound).
"""

from __future__ import annotations

from prometheus_client import Gauge

from switchboard.core.acd import Acd

WAITING = Gauge("switchboard_queue_waiting_calls", "Calls waiting for an agent, per queue", ["queue"])
AGENTS = Gauge(
    "switchboard_agents",
    "Agents of a queue by state: available (a free call slot) or busy (every slot taken)",
    ["queue", "state"],
)
PROJECTED_WAIT = Gauge(
    "switchboard_queue_projected_wait_seconds", "Estimated wait of a call arriving now at the queue (module doc)", ["queue"]
)

HANDLE_TIME_WEIGHT = 0.2  # of the newest call in the average handle time: follows a shift within ~10 calls


def projected_wait(waiting: int, free_slots: int, slots: int, handle_time_s: float | None, oldest_wait_s: float) -> float:
    """Seconds a call arriving now would wait (module doc)."""
    ahead = waiting + 1 - free_slots  # the calls before it, and itself, that no free slot takes at once
    if ahead <= 0:
        return 0.0
    if handle_time_s is None:
        return oldest_wait_s
    return ahead * handle_time_s / max(1, slots)


class QueueGauges:
    """The average handle time per queue, and the gauges set from an Acd."""

    def __init__(self) -> None:
        self.handle_time_s: dict[str, float] = {}

    def finished(self, queue_id: str, talk_seconds: float) -> None:
        """A call of `queue_id` ended on an agent after `talk_seconds`."""
        known = self.handle_time_s.get(queue_id)
        self.handle_time_s[queue_id] = talk_seconds if known is None else known + HANDLE_TIME_WEIGHT * (talk_seconds - known)

    def show(self, acd: Acd, now: float) -> None:
        for queue_id in acd.queues:
            waiting = acd.waiting.get(queue_id, [])
            agents = acd.agents_of(queue_id)
            available = sum(1 for a in agents if a.has_capacity)
            free_slots = sum(a.agent.max_concurrent - len(a.active) for a in agents)
            slots = sum(a.agent.max_concurrent for a in agents)
            oldest = max((now - c.enqueued_at for c in waiting), default=0.0)
            WAITING.labels(queue_id).set(len(waiting))
            AGENTS.labels(queue_id, "available").set(available)
            AGENTS.labels(queue_id, "busy").set(len(agents) - available)
            PROJECTED_WAIT.labels(queue_id).set(
                projected_wait(len(waiting), max(0, free_slots), slots, self.handle_time_s.get(queue_id), oldest)
            )
