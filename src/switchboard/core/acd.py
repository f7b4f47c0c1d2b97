"""In-house ACD: queue/agent matching (pure: no I/O, time is passed in).

`Acd` holds the live state of the queues and agents of a `RoutingConfig`:
which agent handles which calls, since when each agent is idle, and the FIFO
waiting list of every queue. The queue service feeds it events (offer a call,
release a call, expire waiters) with the current time and publishes what it
returns; the simulator can drive the same object with simulated time.

Rules
- An agent is free for a queue when it is configured for that queue, has fewer
  active calls than `max_concurrent`, and its skills cover the caller's needs
  (for every key of the queue's `match`, the caller's answer under that key,
  when present, must be one of the agent's values for the key).
- Among free agents the queue `strategy` orders the candidates:
  * longest_idle: agents with no active call first; among them the one idle
    the longest (idle since its last call ended); never-used agents count as
    idle the longest, in config order.
  * round_robin: config order, starting after the agent this queue used last.
  * fewest_calls: fewest calls handled so far, ties in config order.
  * best_performer: highest `performance`, ties in config order.
- No free agent: the call waits in its queue (FIFO). Whenever capacity frees
  up, waiting calls are served oldest first across queues; a waiting call that
  no free agent can serve does not block younger calls that one can serve.
- A waiting call older than its queue's `max_wait_s` is abandoned.
- A call id is handled once: offering a known call id again (a redelivery)
  returns `duplicate` and changes nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from switchboard.core.config import Agent, Queue, RoutingConfig

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "best_performer")


@dataclass(eq=False)
class WaitingCall:
    call_id: str
    queue_id: str
    enqueued_at: float
    needs: Mapping[str, str] = field(default_factory=dict)
    payload: Any = None  # opaque to the ACD (the service keeps the source event here)
    seq: int = 0  # arrival order, breaks enqueued_at ties


@dataclass
class AgentState:
    agent: Agent
    index: int  # position in the config: the tie breaker everywhere
    active: set[str] = field(default_factory=set)
    idle_since: float | None = None  # None: never had a call
    handled: int = 0

    @property
    def has_capacity(self) -> bool:
        return len(self.active) < self.agent.max_concurrent


@dataclass(frozen=True)
class Consideration:
    """One agent looked at for a call: why it was or was not eligible (for the decision trace)."""

    agent_id: str
    eligible: bool
    excluded_by: str = ""  # "agent:busy", "skill:<key>"
    detail: str = ""


@dataclass(frozen=True)
class Assignment:
    call: WaitingCall
    agent: Agent
    queue: Queue
    assigned_at: float
    considered: tuple[Consideration, ...]

    @property
    def waited_s(self) -> float:
        return max(0.0, self.assigned_at - self.call.enqueued_at)


@dataclass(frozen=True)
class Abandoned:
    call: WaitingCall
    queue: Queue
    at: float
    why: Literal["max_wait", "caller_hangup"]

    @property
    def waited_s(self) -> float:
        return max(0.0, self.at - self.call.enqueued_at)


@dataclass(frozen=True)
class Offer:
    status: Literal["assigned", "waiting", "duplicate", "rejected"]
    assignment: Assignment | None = None
    position: int = 0  # 1-based place in the waiting list when waiting
    reason: str = ""  # when rejected: unknown_queue, no_agents, no_matching_agent
    detail: str = ""
    considered: tuple[Consideration, ...] = ()


@dataclass(frozen=True)
class Release:
    agent_id: str | None  # the agent whose slot was freed, None when the call was not on an agent
    abandoned: Abandoned | None  # the call was still waiting: the caller hung up
    assignments: tuple[Assignment, ...]  # waiting calls that got the freed capacity


def caller_needs(queue: Queue, answers: Mapping[str, str]) -> dict[str, str]:
    """The caller's values for the queue's match keys (absent or empty answers impose nothing)."""
    return {k: str(answers[k]) for k in queue.match if answers.get(k) not in (None, "")}


def skill_gap(agent: Agent, needs: Mapping[str, str]) -> str | None:
    """The first match key the agent does not cover, or None when it covers all needs."""
    for key, value in needs.items():
        if value.lower() not in {s.lower() for s in agent.skills.get(key, [])}:
            return key
    return None


class Acd:
    def __init__(self, queues: Iterable[Queue], agents: Iterable[Agent], *, remember: int = 100_000) -> None:
        self.queues: dict[str, Queue] = {q.id: q for q in queues}
        self.agents: dict[str, AgentState] = {a.id: AgentState(a, i) for i, a in enumerate(agents)}
        self.waiting: dict[str, list[WaitingCall]] = {q: [] for q in self.queues}
        self._on_agent: dict[str, str] = {}  # active call id → agent id
        self._waiting_ids: dict[str, WaitingCall] = {}
        self._done: OrderedDict[str, None] = OrderedDict()  # finished call ids, bounded, for dedupe
        self._remember = remember
        self._rr_last: dict[str, int] = {}  # queue id → config index of the agent used last
        self._seq = 0

    @classmethod
    def from_config(cls, config: RoutingConfig, **kw: Any) -> Acd:
        return cls(config.queues, config.agents, **kw)

    # -- queries -------------------------------------------------------------
    def knows(self, call_id: str) -> bool:
        return call_id in self._on_agent or call_id in self._waiting_ids or call_id in self._done

    def agent_of(self, call_id: str) -> str | None:
        return self._on_agent.get(call_id)

    def agents_of(self, queue_id: str) -> list[AgentState]:
        return sorted((s for s in self.agents.values() if queue_id in s.agent.queues), key=lambda s: s.index)

    # -- events --------------------------------------------------------------
    def offer(self, call: WaitingCall, now: float) -> Offer:
        """A call arrives for a queue: assign a free agent, or put it at the end of the waiting list."""
        if self.knows(call.call_id):
            return Offer("duplicate")
        queue = self.queues.get(call.queue_id)
        if queue is None:
            self._finish(call.call_id)
            return Offer("rejected", reason="unknown_queue", detail=f"queue {call.queue_id!r} is not configured")
        members = self.agents_of(queue.id)
        if not members:
            self._finish(call.call_id)
            return Offer("rejected", reason="no_agents", detail=f"queue {queue.id!r} has no agents configured")
        if all(skill_gap(s.agent, call.needs) is not None for s in members):
            self._finish(call.call_id)
            needs = ", ".join(f"{k}={v}" for k, v in call.needs.items())
            return Offer("rejected", reason="no_matching_agent", detail=f"no agent of queue {queue.id!r} covers {needs}")
        self._seq += 1
        call.seq = self._seq
        agent, considered = self.pick(queue, call.needs)
        if agent is not None:
            return Offer("assigned", assignment=self._assign(call, agent, queue, now, considered), considered=considered)
        self.waiting[queue.id].append(call)
        self._waiting_ids[call.call_id] = call
        return Offer("waiting", position=len(self.waiting[queue.id]), considered=considered)

    def release(self, call_id: str, now: float) -> Release:
        """A call ended: free its agent's slot and hand freed capacity to waiting calls."""
        agent_id = self._on_agent.pop(call_id, None)
        if agent_id is not None:
            state = self.agents[agent_id]
            state.active.discard(call_id)
            if not state.active:
                state.idle_since = now
            self._finish(call_id)
            return Release(agent_id, None, tuple(self.dispatch(now)))
        waiting = self._waiting_ids.get(call_id)
        if waiting is not None:
            self._unwait(waiting)
            self._finish(call_id)
            return Release(None, Abandoned(waiting, self.queues[waiting.queue_id], now, "caller_hangup"), ())
        return Release(None, None, ())

    def expire(self, now: float) -> list[Abandoned]:
        """Remove and return the waiting calls that waited longer than their queue's max_wait_s."""
        out: list[Abandoned] = []
        for queue_id, calls in self.waiting.items():
            queue = self.queues[queue_id]
            for call in [c for c in calls if now - c.enqueued_at >= queue.max_wait_s]:
                self._unwait(call)
                self._finish(call.call_id)
                out.append(Abandoned(call, queue, now, "max_wait"))
        return out

    def dispatch(self, now: float) -> list[Assignment]:
        """Serve waiting calls oldest first while some free agent can take them."""
        out: list[Assignment] = []
        for call in sorted(self._waiting_ids.values(), key=lambda c: (c.enqueued_at, c.seq)):
            queue = self.queues[call.queue_id]
            agent, considered = self.pick(queue, call.needs)
            if agent is not None:
                self._unwait(call)
                out.append(self._assign(call, agent, queue, now, considered))
        return out

    # -- matching ------------------------------------------------------------
    def pick(self, queue: Queue, needs: Mapping[str, str]) -> tuple[Agent | None, tuple[Consideration, ...]]:
        """The agent the queue's strategy picks among its free agents covering `needs`, and the trace."""
        considered: list[Consideration] = []
        free: list[AgentState] = []
        for s in self.agents_of(queue.id):
            gap = skill_gap(s.agent, needs)
            if gap is not None:
                considered.append(Consideration(s.agent.id, False, f"skill:{gap}", f"caller needs {gap}={needs[gap]}"))
            elif not s.has_capacity:
                considered.append(Consideration(s.agent.id, False, "agent:busy", f"{len(s.active)}/{s.agent.max_concurrent} calls"))
            else:
                considered.append(Consideration(s.agent.id, True))
                free.append(s)
        if not free:
            return None, tuple(considered)
        return self._order(queue, free)[0].agent, tuple(considered)

    def _order(self, queue: Queue, free: list[AgentState]) -> list[AgentState]:
        if queue.strategy == "round_robin":
            last = self._rr_last.get(queue.id, -1)
            return sorted(free, key=lambda s: (s.index <= last, s.index))
        if queue.strategy == "fewest_calls":
            return sorted(free, key=lambda s: (s.handled, s.index))
        if queue.strategy == "best_performer":
            return sorted(free, key=lambda s: (-s.agent.performance, s.index))
        # longest_idle: fully idle before partly busy; never used first; then idle since the earliest.
        return sorted(
            free,
            key=lambda s: (bool(s.active), s.idle_since is not None, s.idle_since or 0.0, s.index),
        )

    # -- bookkeeping ---------------------------------------------------------
    def _assign(self, call: WaitingCall, agent: Agent, queue: Queue, now: float, considered: tuple[Consideration, ...]) -> Assignment:
        state = self.agents[agent.id]
        state.active.add(call.call_id)
        state.handled += 1
        self._on_agent[call.call_id] = agent.id
        self._rr_last[queue.id] = state.index
        return Assignment(call, agent, queue, now, considered)

    def _unwait(self, call: WaitingCall) -> None:
        self._waiting_ids.pop(call.call_id, None)
        self.waiting[call.queue_id] = [c for c in self.waiting[call.queue_id] if c.call_id != call.call_id]

    def _finish(self, call_id: str) -> None:
        self._done[call_id] = None
        self._done.move_to_end(call_id)
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
