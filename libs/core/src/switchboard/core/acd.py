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
  when present, must be one of the agent's values for the key). The key
  `location` is also covered by the agent's `location`.
- Among free agents the queue `strategy` orders the candidates:
  * longest_idle: agents with no active call first; among them the one idle
    the longest (idle since its last call ended); never-used agents count as
    idle the longest, in config order.
  * round_robin: config order, starting after the agent this queue used last.
  * fewest_calls: fewest calls handled so far, ties in config order.
  * best_performer: highest `performance`, ties in config order.
- No free agent: the call waits in its queue. Whenever capacity frees up,
  waiting calls are served in priority order across queues, FIFO within a
  priority (oldest first); a waiting call that no free agent can serve does not
  block others that one can serve.
- Priority (`call_priority`): the first of the queue's `priority` rules whose
  `when` holds (campaigns, publishers, answers: all present must hold; answers
  with the operators of buyer filters) gives the call its priority; none holds:
  0. Higher is served first. With `priority_aging_s`, every priority_aging_s a
  call has waited adds 1 (`effective_priority`), so a low priority caller is
  served in the end however many higher priority callers keep coming. A call
  keeps its priority and its first arrival time when it goes back to waiting.
- Agent states (core.agents): an agent takes a new call only while logged in, ready and not in
  wrap-up (`login: always` agents are logged in and ready from the start); a call that ends
  (`release`) puts its agent in wrap-up for the queue's `wrap_up_s`. Every change of an agent's
  state is noted in `agent_changes` for the owner to publish (agent.events).
- A waiting call older than its queue's `max_wait_s` is abandoned. The wait
  counts from the call's first arrival in the queue, also for a call that went
  back to waiting after an agent did not take it, so its wait stays bounded.
- A call id is handled once: offering a known call id again (a redelivery)
  returns `duplicate` and changes nothing.

Re-offers (`offer_failed`): an agent did not take its call (no answer, declined,
busy, failed). Its slot is freed, the agent is remembered as tried for that call
(it is never offered the same call again: ringing the agent who just let it
ring would loop), and the call's attempt goes up by one. Then, in this order:
  * attempt above the call's `max_attempts` (the campaign's routing.max_attempts,
    when the caller knows it) → rejected `max_attempts`;
  * no untried agent of the queue covers the caller's needs at all (busy or
    not) → rejected `all_declined`: waiting would be for nobody;
  * a free untried matching agent → assigned at once (the next offer);
  * otherwise the call goes back to waiting in its place (its priority and
    first arrival; ahead of every first-time waiter of the same priority) until
    an untried matching agent frees up, or max_wait_s.
The freed slot then serves other waiting calls as in `release`. An outcome for
an older attempt than the call's current one (a redelivered or late report) is
ignored. Outcomes that end the call (answered, caller hang-up, agent hang-up)
go through `release`.

Overflow: a call whose campaign has tiers after the queue's (`can_overflow`, set by the owner
from `engine.has_later_tier`) goes back to routing instead of being rejected or waiting on:
  * at `offer`, when the queue has no agents or none covers the caller's needs (`overflow`
    with reason no_agents / no_matching_agent), and at a re-offer when every matching agent let
    it go (all_declined): buyers of the later tiers may still take it ("resell mismatched calls");
  * waiting, by `overflow(now, handle_time_s)`, called by the owner's sweep: a call that waited
    `overflow_after_s`, or whose projected wait (core.waits, over the agents that can take it)
    exceeds `overflow_when_projected_wait_s`.
An overflowed call is finished here (a later report about it is ignored); the owner publishes
call.overflowed and routing goes on from the next tier (engine.resume_after_queue). max_attempts
stays a rejection: the campaign's bound counts every offer, to agents and buyers alike. A call
that cannot overflow behaves as before: rejected, or waiting until max_wait_s.

Calls whose end never comes (`reap`): the edge should report the end of every
call it bridged to an agent, but an edge that crashes or loses the call never
will, and the agent would stay busy for ever. The ACD keeps when each call was
given to its agent; `reap(now, max_call_s)` frees the agents of calls given
`max_call_s` ago or more. The reaped call is finished (its call.routed to the
agent stands as its outcome; a report arriving later for it is ignored) and the
freed slots go to waiting calls as in `release`.

Hang-ups before the call reached the queue (`caller_left`): the caller left
while routing was pending (call.ended routing_pending), and that report can be
read before the call's call.queued (another topic: no order between them). A
hang-up for a call the ACD does not know (not live, not finished) is
remembered (the newest `remember_hung_up`, oldest dropped first;
`forget_hang_ups` drops those older than a time), and the call.queued, when it
comes, is rejected `abandoned` at once instead of ringing an agent for a
caller who is gone. For a waiting call it is the caller hang-up of `release`
(abandoned), for a call on an agent it frees the agent like `release`, and for
a finished call it changes nothing.

Persistence (`to_dict` / `from_dict`): the live state as plain JSON-able data,
so that the queue service can snapshot it and a restarted process goes on
where the last one stopped. Payloads are left out (the owner stores its own
reference to them and hands them back by call id); times are the caller's
clock values, and `time_shift` moves them to the clock of a new process.
The format is additive within STATE_VERSION 1: a state written before a field
existed loads with its default (a call on an agent without its assignment time
counts from when it is loaded, see `from_dict`; no remembered hang-ups), and
an older reader ignores the fields it does not know.

Decision traces (`assignment_trace`, `rejection_trace`): the router's trace of
a queued call, extended with one entry per agent considered and the queue's
notes. The queue service publishes them and the simulator reports them, so
both explain a queued call the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from switchboard.core import agents as desk
from switchboard.core import reasons
from switchboard.core.config import Agent, Queue, RoutingConfig
from switchboard.core.eligibility import condition_failure
from switchboard.core.waits import projected_wait_s
from switchboard.v1 import events_pb2 as pb

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "best_performer")


@dataclass(eq=False)
class WaitingCall:
    call_id: str
    queue_id: str
    enqueued_at: float
    needs: Mapping[str, str] = field(default_factory=dict)
    payload: Any = None  # opaque to the ACD (the service keeps the source event here)
    seq: int = 0  # arrival order, breaks enqueued_at ties
    attempt: int = 1  # the offer number of the current / next offer of this call
    max_attempts: int | None = None  # offers allowed for the call in total (None: no bound but the queue's agents)
    tried: dict[str, str] = field(default_factory=dict)  # agent id → why it did not take this call
    requeued: bool = False  # back from an agent that did not take it: served before first-time waiters of its priority
    priority: int = 0  # from the queue's priority rules (call_priority); higher is served first
    can_overflow: bool = False  # the campaign has tiers after the queue's: overflow goes on to them (module doc)
    # Statuses and callbacks (module doc): per call, so that a restart keeps them.
    announce_at: float | None = None  # when the call's next queue.status WAITING is due (None: none)
    callback_offered: bool = False  # a callback was offered (once; later statuses say so too)
    callback: bool = False  # virtual hold: the caller accepted a callback and is off the line
    callback_since: float | None = None  # accepted (or its chosen time): callback_max_wait_s counts from it
    not_before: float | None = None  # not served before this time (a scheduled callback, a retry)
    callback_attempt: int = 0  # callback tries placed (call.routed with callback_attempt) so far
    callback_misses: int = 0  # tries the caller did not answer


@dataclass
class AgentState:
    agent: Agent
    index: int  # position in the config: the tie breaker everywhere
    active: set[str] = field(default_factory=set)
    idle_since: float | None = None  # None: never had a call
    handled: int = 0
    presence: desk.Presence = field(init=False)  # logged in, ready, wrap-up (core.agents)

    def __post_init__(self) -> None:
        self.presence = desk.Presence.initial(self.agent.login)
        desk.reset_shown(self)

    @property
    def has_capacity(self) -> bool:
        """Takes a new call now: logged in, ready, not in wrap-up (core.agents) and under max_concurrent."""
        return self.presence.takes_calls and len(self.active) < self.agent.max_concurrent


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
class Overflowed:
    """A call the queue gives back to routing (module doc, Overflow): `reason` says why."""

    call: WaitingCall
    queue: Queue
    at: float
    reason: str  # OVERFLOW_AFTER | OVERFLOW_PROJECTED | reasons.NO_AGENTS | NO_MATCHING_AGENT | ALL_DECLINED
    detail: str

    @property
    def waited_s(self) -> float:
        return max(0.0, self.at - self.call.enqueued_at)


OVERFLOW_AFTER = "overflow_after_s"
OVERFLOW_PROJECTED = "overflow_when_projected_wait_s"


@dataclass(frozen=True)
class Offer:
    status: Literal["assigned", "waiting", "duplicate", "rejected", "overflow"]
    assignment: Assignment | None = None
    position: int = 0  # 1-based place in the waiting list when waiting
    reason: str = ""  # when rejected: unknown_queue, no_agents, no_matching_agent
    detail: str = ""
    considered: tuple[Consideration, ...] = ()


@dataclass(frozen=True)
class Reoffer:
    """What `offer_failed` did with a call an agent did not take."""

    status: Literal["assigned", "waiting", "rejected", "ignored", "overflow"]
    call: WaitingCall | None = None
    agent_id: str | None = None  # the agent that did not take it (its slot is free now)
    assignment: Assignment | None = None  # when assigned: the next offer
    reason: str = ""  # rejected: max_attempts, all_declined; ignored: unknown_call, stale_attempt
    detail: str = ""
    considered: tuple[Consideration, ...] = ()
    others: tuple[Assignment, ...] = ()  # waiting calls that got the freed slot


@dataclass(frozen=True)
class Orphan:
    """A call of a restored state that the current configuration cannot hold (its queue or agent was removed)."""

    call: WaitingCall
    agent_id: str | None  # the agent the call was on; None: it was waiting
    reason: Literal["queue_removed", "agent_removed"]


@dataclass(frozen=True)
class Release:
    agent_id: str | None  # the agent whose slot was freed, None when the call was not on an agent
    abandoned: Abandoned | None  # the call was still waiting: the caller hung up
    assignments: tuple[Assignment, ...]  # waiting calls that got the freed capacity
    remembered: bool = False  # caller_left of a call not seen yet: its call.queued will be rejected "abandoned"


@dataclass(frozen=True)
class Reaped:
    """A call taken off its agent by `reap`: its end never came."""

    call: WaitingCall
    agent_id: str
    assigned_at: float
    at: float

    @property
    def age_s(self) -> float:
        return max(0.0, self.at - self.assigned_at)


@dataclass(frozen=True)
class Reap:
    reaped: tuple[Reaped, ...]  # oldest assignment first
    assignments: tuple[Assignment, ...]  # waiting calls that got the freed capacity


# -- statuses and callbacks (module doc, "Statuses and callbacks") ----------------------------------
@dataclass(frozen=True)
class Status:
    """Where a waiting call stands, for its queue.status (`statuses`)."""

    call: WaitingCall
    queue: Queue
    kind: Literal["waiting", "callback_offered"]
    position: int  # 1-based place in the queue's service order
    projected_wait_s: float | None  # None: unknown (no handle time learned yet)
    priority: int  # effective priority now
    waited_s: float
    waiting: int  # calls waiting in the queue (callbacks on virtual hold included)


@dataclass(frozen=True)
class CallbackAccepted:
    """What `request_callback` did: `accepted`, or why not (the call is not waiting here, or is on hold already)."""

    status: Literal["accepted", "not_waiting", "already"]
    call: WaitingCall | None = None


@dataclass(frozen=True)
class CallbackMissed:
    """What `callback_no_answer` did with a callback whose caller did not answer."""

    status: Literal["retry", "failed", "ignored"]
    call: WaitingCall | None = None
    agent_id: str | None = None  # the reserved agent, free again
    retry_at: float | None = None
    reason: str = ""  # ignored: unknown_call, not_callback, stale_attempt; failed: callback_failed
    detail: str = ""
    others: tuple[Assignment, ...] = ()  # waiting calls that got the freed slot


@dataclass(frozen=True)
class CallbackExpired:
    call: WaitingCall
    queue: Queue
    at: float
    detail: str


@dataclass(frozen=True)
class QueueFigures:
    """A queue's live figures (queue.summary); `projected_wait_s` for a call with no needs arriving now."""

    queue_id: str
    waiting: int
    callbacks_waiting: int
    agents_logged_in: int
    agents_ready: int
    slots: int
    busy_slots: int
    projected_wait_s: float | None
    longest_wait_s: float


def call_priority(queue: Queue, campaign_id: str, publisher_id: str, answers: Mapping[str, str]) -> int:
    """The priority the queue's rules give a call: the first rule whose `when` holds, else 0 (module doc)."""
    for rule in queue.priority:
        when = rule.when
        if when.campaigns is not None and campaign_id not in when.campaigns:
            continue
        if when.publishers is not None and publisher_id not in when.publishers:
            continue
        if when.answers and any(condition_failure(k, *_only(c), answers) for k, c in when.answers.items()):
            continue
        return rule.priority
    return 0


def _only(condition: Mapping[str, Any]) -> tuple[str, Any]:
    ((op, arg),) = condition.items()  # validated: exactly one operator
    return op, arg


def effective_priority(call: WaitingCall, queue: Queue, now: float) -> int:
    """The call's priority raised by 1 for every `priority_aging_s` it has waited (its first arrival counts)."""
    if queue.priority_aging_s is None:
        return call.priority
    return call.priority + int(max(0.0, now - call.enqueued_at) // queue.priority_aging_s)


def caller_needs(queue: Queue, answers: Mapping[str, str]) -> dict[str, str]:
    """The caller's values for the queue's match keys (absent or empty answers impose nothing)."""
    return {k: str(answers[k]) for k in queue.match if answers.get(k) not in (None, "")}


def skill_gap(agent: Agent, needs: Mapping[str, str]) -> str | None:
    """The first match key the agent does not cover, or None when it covers all needs.

    `location` is the agent's own `location` (also any values under skills.location): a queue that
    matches on location gives a caller whose `location` answer / call data is set an agent there.
    """
    for key, value in needs.items():
        covered = {s.lower() for s in agent.skills.get(key, [])}
        if key == LOCATION and agent.location:
            covered.add(agent.location.lower())
        if value.lower() not in covered:
            return key
    return None


LOCATION = "location"  # the match key an agent's `location` answers (skill_gap)


def _held(call: WaitingCall, now: float) -> bool:
    """The call may not be served yet: a scheduled callback before its time, a callback retry before its delay."""
    return call.not_before is not None and now < call.not_before


class Acd:
    def __init__(
        self, queues: Iterable[Queue], agents: Iterable[Agent], *, remember: int = 100_000, remember_hung_up: int = 10_000
    ) -> None:
        self.queues: dict[str, Queue] = {q.id: q for q in queues}
        self.agents: dict[str, AgentState] = {a.id: AgentState(a, i) for i, a in enumerate(agents)}
        self.waiting: dict[str, list[WaitingCall]] = {q: [] for q in self.queues}
        self._on_agent: dict[str, str] = {}  # active call id → agent id
        self._active: dict[str, WaitingCall] = {}  # active call id → the call (its attempt, tried agents)
        # active call id → when it was given to its agent (None: unknown, from an older state; see reap)
        self._assigned_at: dict[str, float | None] = {}
        self._waiting_ids: dict[str, WaitingCall] = {}
        self._done: OrderedDict[str, None] = OrderedDict()  # finished call ids, bounded, for dedupe
        self._remember = remember
        # call id → when its caller's hang-up (routing pending) was read, for a call not seen yet; oldest first
        self._hung_up: OrderedDict[str, float] = OrderedDict()
        self._remember_hung_up = remember_hung_up
        self._rr_last: dict[str, int] = {}  # queue id → config index of the agent used last
        self._seq = 0
        self.finished = 0  # call ids finished so far (counts `_finish`): owners persist the newest ones
        self.orphans: list[Orphan] = []  # set by from_dict: calls the current configuration cannot hold
        self.agent_changes: list[desk.AgentChange] = []  # agent state changes not taken yet (core.agents.note)

    @classmethod
    def from_config(cls, config: RoutingConfig, **kw: Any) -> Acd:
        return cls(config.queues, config.agents, **kw)

    # -- queries -------------------------------------------------------------
    def knows(self, call_id: str) -> bool:
        return call_id in self._on_agent or call_id in self._waiting_ids or call_id in self._done

    def agent_of(self, call_id: str) -> str | None:
        return self._on_agent.get(call_id)

    def call_of(self, call_id: str) -> WaitingCall | None:
        """The live call (on an agent or waiting), None when unknown or finished."""
        return self._active.get(call_id) or self._waiting_ids.get(call_id)

    def assigned_at(self, call_id: str) -> float | None:
        """When the call on an agent was given to it (None: not on an agent, or the time is not known yet)."""
        return self._assigned_at.get(call_id)

    def hung_up_ids(self) -> list[str]:
        """Calls whose caller hung up before their call.queued came (remembered by caller_left), oldest first."""
        return list(self._hung_up)

    def agents_of(self, queue_id: str) -> list[AgentState]:
        return sorted((s for s in self.agents.values() if queue_id in s.agent.queues), key=lambda s: s.index)

    def live_calls(self) -> list[WaitingCall]:
        """Every call on an agent, then every waiting call."""
        return [*self._active.values(), *self._waiting_ids.values()]

    def in_service_order(self, now: float, queue_id: str | None = None) -> list[WaitingCall]:
        """The waiting calls (of `queue_id`, or of every queue) in the order dispatch serves them at `now`:
        higher effective priority first, then a call back from an agent, then the oldest first arrival."""
        calls = self._waiting_ids.values() if queue_id is None else self.waiting.get(queue_id, [])
        # A call held until later (a scheduled callback, a callback retry) is not served and holds nobody up.
        return sorted((c for c in calls if not _held(c, now)), key=lambda c: self._service_key(c, self.queues[c.queue_id], now))

    @staticmethod
    def _service_key(call: WaitingCall, queue: Queue, now: float) -> tuple[int, bool, float, int]:
        return (-effective_priority(call, queue, now), not call.requeued, call.enqueued_at, call.seq)

    def position(self, call_id: str, now: float) -> int:
        """The waiting call's 1-based place in its queue's service order at `now` (0: not waiting)."""
        call = self._waiting_ids.get(call_id)
        if call is None:
            return 0
        queue = self.queues[call.queue_id]
        key = self._service_key(call, queue, now)
        # The calls that rank before it, counted in one pass (no sort of the whole queue per question).
        return 1 + sum(
            1
            for c in self.waiting[call.queue_id]
            if c is not call and not _held(c, now) and self._service_key(c, queue, now) < key
        )

    def slots(self, queue_id: str, needs: Mapping[str, str] | None = None) -> tuple[int, int]:
        """(all, free) call slots of the queue's agents whose skills cover `needs` (every agent without)."""
        total = free = 0
        for s in self.agents_of(queue_id):
            if needs and skill_gap(s.agent, needs) is not None:
                continue
            if not s.presence.logged_in and not s.active:  # logged out: serves nobody (core.agents)
                continue
            total += s.agent.max_concurrent
            if s.presence.takes_calls:
                free += max(0, s.agent.max_concurrent - len(s.active))
        return total, free

    def projected_wait(self, call_id: str, now: float, handle_time_s: float | None) -> float | None:
        """The waiting call's projected wait at `now` (core.waits.projected_wait_s over the agents that can take it):
        None when it is not waiting or its queue has no handle time yet."""
        call = self._waiting_ids.get(call_id)
        if call is None:
            return None
        total, free = self.slots(call.queue_id, call.needs)
        return projected_wait_s(self.position(call_id, now), total, free, handle_time_s)

    def done_ids(self, last: int | None = None) -> list[str]:
        """The finished call ids remembered for dedupe, oldest first (only the `last` newest when given)."""
        if last is None:
            return list(self._done)
        newest = [cid for _, cid in zip(range(max(0, last)), reversed(self._done), strict=False)]
        return newest[::-1]

    # -- events --------------------------------------------------------------
    def offer(self, call: WaitingCall, now: float) -> Offer:
        """A call arrives for a queue: assign a free agent, or put it at the end of the waiting list."""
        if self.knows(call.call_id):
            return Offer("duplicate")
        if self._hung_up.pop(call.call_id, None) is not None:
            self._finish(call.call_id)
            return Offer("rejected", reason=reasons.ABANDONED, detail="the caller hung up before the queue got the call")
        queue = self.queues.get(call.queue_id)
        if queue is None:
            self._finish(call.call_id)
            return Offer("rejected", reason=reasons.UNKNOWN_QUEUE, detail=f"queue {call.queue_id!r} is not configured")
        members = self.agents_of(queue.id)
        if not members:
            self._finish(call.call_id)
            return Offer(
                "overflow" if call.can_overflow else "rejected",
                reason=reasons.NO_AGENTS,
                detail=f"queue {queue.id!r} has no agents configured",
            )
        if all(skill_gap(s.agent, call.needs) is not None for s in members):
            self._finish(call.call_id)
            needs = ", ".join(f"{k}={v}" for k, v in call.needs.items())
            return Offer(
                "overflow" if call.can_overflow else "rejected",
                reason=reasons.NO_MATCHING_AGENT,
                detail=f"no agent of queue {queue.id!r} covers {needs}",
            )
        self._seq += 1
        call.seq = self._seq
        agent, considered = self.pick(queue, call.needs)
        if agent is not None:
            return Offer("assigned", assignment=self._assign(call, agent, queue, now, considered), considered=considered)
        self.waiting[queue.id].append(call)
        self._waiting_ids[call.call_id] = call
        call.announce_at = now  # its first queue.status: WAITING (statuses)
        if not queue.priority and queue.priority_aging_s is None:
            # FIFO: the newest arrival is last. Counted, not ranked: a long queue takes each arrival in O(1).
            return Offer("waiting", position=len(self.waiting[queue.id]), considered=considered)
        return Offer("waiting", position=self.position(call.call_id, now), considered=considered)

    def release(self, call_id: str, now: float, *, connected: bool = True) -> Release:
        """A call ended: free its agent's slot and hand freed capacity to waiting calls.

        `connected` False: the call ended on its agent without ever being bridged (the caller hung up
        while it rang). It counts neither way for the agent's learned performance: the agent neither
        answered nor let it ring out.
        """
        agent_id = self._on_agent.pop(call_id, None)
        if agent_id is not None:
            call = self._active.pop(call_id, None)
            self._assigned_at.pop(call_id, None)
            queue = self.queues.get(call.queue_id) if call is not None else None
            if connected:
                desk.record_offer(self, agent_id, answered=True)  # the agent took the call (learned performance)
            desk.begin_wrap_up(self.agents[agent_id], call_id, queue.wrap_up_s if queue else 0, now)  # before the slot frees
            self._free(agent_id, call_id, now)
            self._finish(call_id)
            return Release(agent_id, None, tuple(self.dispatch(now)))
        waiting = self._waiting_ids.get(call_id)
        if waiting is not None:
            self._unwait(waiting)
            self._finish(call_id)
            return Release(None, Abandoned(waiting, self.queues[waiting.queue_id], now, "caller_hangup"), ())
        return Release(None, None, ())

    def caller_left(self, call_id: str, now: float) -> Release:
        """The caller hung up while routing was pending (call.ended routing_pending), maybe before the call got here.

        Live call: as `release` (waiting: abandoned by the caller; on an agent: the slot is freed).
        Finished call: nothing. Unknown call: the hang-up is remembered (`remembered`), and its
        offer, when it comes, is rejected "abandoned".
        """
        live = self.call_of(call_id)
        if live is not None and live.callback:
            # Virtual hold: the caller hung up on purpose; the callback's own outcome is reported by the edge.
            return Release(None, None, ())
        if live is not None:
            return self.release(call_id, now)
        if call_id in self._done:
            return Release(None, None, ())
        self._hung_up.setdefault(call_id, now)  # a redelivered hang-up keeps the first time
        while len(self._hung_up) > self._remember_hung_up:
            self._hung_up.popitem(last=False)
        return Release(None, None, (), remembered=True)

    def forget_hang_ups(self, now: float, keep_s: float) -> int:
        """Forget the remembered hang-ups read `keep_s` ago or more (their call.queued is not coming); return how many."""
        gone = [call_id for call_id, at in self._hung_up.items() if now - at >= keep_s]
        for call_id in gone:
            del self._hung_up[call_id]
        return len(gone)

    def reap(self, now: float, max_call_s: float) -> Reap:
        """Free the agents of calls given to them `max_call_s` ago or more (their end never came).

        The reaped calls are finished (a later report about them is ignored); the freed slots go
        to waiting calls. A call on an agent whose assignment time is unknown (restored from an
        older state without it) counts from the first reap that sees it.
        """
        stale: list[tuple[float, str]] = []
        for call_id, at in self._assigned_at.items():
            if at is None:
                self._assigned_at[call_id] = now
            elif now - at >= max_call_s:
                stale.append((at, call_id))
        reaped: list[Reaped] = []
        for at, call_id in sorted(stale):
            agent_id = self._on_agent.pop(call_id)
            call = self._active.pop(call_id)
            del self._assigned_at[call_id]
            self._free(agent_id, call_id, now)
            self._finish(call_id)
            reaped.append(Reaped(call, agent_id, at, now))
        return Reap(tuple(reaped), tuple(self.dispatch(now)) if reaped else ())

    def offer_failed(self, call_id: str, now: float, *, attempt: int = 0, why: str = "no_answer") -> Reoffer:
        """The agent of `call_id` did not take it (`why`: no_answer, declined, busy, failed): offer it on.

        `attempt` is the offer the report is about (0: the current one).
        """
        agent_id = self._on_agent.get(call_id)
        call = self._active.get(call_id)
        if agent_id is None or call is None:
            return Reoffer("ignored", reason="unknown_call", detail=f"call {call_id} is not on an agent")
        if attempt and attempt != call.attempt:
            return Reoffer(
                "ignored",
                call,
                reason="stale_attempt",
                detail=f"report about offer {attempt}, the call is at offer {call.attempt}",
            )
        del self._on_agent[call_id]
        del self._active[call_id]
        self._assigned_at.pop(call_id, None)
        desk.record_offer(self, agent_id, answered=False)
        self._free(agent_id, call_id, now)
        call.tried[agent_id] = f"{why} on offer {call.attempt}"
        call.attempt += 1
        queue = self.queues[call.queue_id]
        out = self._reoffer(call, queue, agent_id, now)
        return Reoffer(
            out.status, out.call, agent_id, out.assignment, out.reason, out.detail, out.considered, tuple(self.dispatch(now))
        )

    def _reoffer(self, call: WaitingCall, queue: Queue, failed_agent: str, now: float) -> Reoffer:
        if call.max_attempts is not None and call.attempt > call.max_attempts:
            self._finish(call.call_id)
            return Reoffer(
                "rejected",
                call,
                reason=reasons.MAX_ATTEMPTS,
                detail=f"{call.attempt - 1} offer(s) made, max_attempts is {call.max_attempts}",
            )
        untried = [s for s in self.agents_of(queue.id) if s.agent.id not in call.tried and skill_gap(s.agent, call.needs) is None]
        if not untried:
            self._finish(call.call_id)
            tried = ", ".join(f"{a} ({w})" for a, w in call.tried.items())
            return Reoffer(
                "overflow" if call.can_overflow else "rejected",
                call,
                reason=reasons.ALL_DECLINED,
                detail=f"every matching agent of queue {queue.id} was offered the call: {tried}",
            )
        agent, considered = self.pick(queue, call.needs, call.tried)
        if agent is not None:
            return Reoffer("assigned", call, assignment=self._assign(call, agent, queue, now, considered), considered=considered)
        call.requeued = True
        self.waiting[queue.id].insert(0, call)
        self._waiting_ids[call.call_id] = call
        if not call.callback:  # the caller is back on hold: tell it where it stands again
            call.announce_at = now
        return Reoffer("waiting", call, considered=considered)

    def expire(self, now: float) -> list[Abandoned]:
        """Remove and return the waiting calls that waited longer than their queue's max_wait_s."""
        out: list[Abandoned] = []
        for queue_id, calls in self.waiting.items():
            queue = self.queues[queue_id]
            # A callback's caller is not on the line: expire_callbacks bounds its wait instead.
            for call in [c for c in calls if not c.callback and now - c.enqueued_at >= queue.max_wait_s]:
                self._unwait(call)
                self._finish(call.call_id)
                out.append(Abandoned(call, queue, now, "max_wait"))
        return out

    def overflow(self, now: float, handle_time_s: Callable[[str], float | None] = lambda _q: None) -> list[Overflowed]:
        """Remove and return the waiting calls due to overflow (module doc): waited `overflow_after_s`, or a projected
        wait (`handle_time_s(queue_id)`: the queue's mean handle time, None unknown) above
        `overflow_when_projected_wait_s`. Only calls that can overflow; max_wait_s is `expire`'s."""
        out: list[Overflowed] = []
        for call in self.in_service_order(now):
            if not call.can_overflow or call.callback:  # a callback is a promise to call back, not to resell
                continue
            queue = self.queues[call.queue_id]
            waited = now - call.enqueued_at
            if queue.overflow_after_s is not None and waited >= queue.overflow_after_s:
                out.append(
                    Overflowed(
                        call, queue, now, OVERFLOW_AFTER, f"waited {waited:.0f}s, overflow_after_s is {queue.overflow_after_s}"
                    )
                )
                continue
            if queue.overflow_when_projected_wait_s is not None:
                projected = self.projected_wait(call.call_id, now, handle_time_s(queue.id))
                if projected is not None and projected > queue.overflow_when_projected_wait_s:
                    out.append(
                        Overflowed(
                            call,
                            queue,
                            now,
                            OVERFLOW_PROJECTED,
                            f"projected wait {projected:.0f}s, overflow_when_projected_wait_s is {queue.overflow_when_projected_wait_s}",
                        )
                    )
        for o in out:  # after the loop: removing calls moves the others' positions (and projections) forward
            self._unwait(o.call)
            self._finish(o.call.call_id)
        return out

    def dispatch(self, now: float) -> list[Assignment]:
        """Serve waiting calls in service order (`in_service_order`) while some free agent can take them."""
        out: list[Assignment] = []
        for call in self.in_service_order(now):
            queue = self.queues[call.queue_id]
            agent, considered = self.pick(queue, call.needs, call.tried)
            if agent is not None:
                self._unwait(call)
                out.append(self._assign(call, agent, queue, now, considered))
        return out

    # -- statuses and callbacks ----------------------------------------------
    def statuses(self, now: float, handle_time_s: Callable[[str], float | None] = lambda _q: None) -> list[Status]:
        """The queue.status events due at `now`, for the callers on hold (not the callbacks: off the line).

        A call is due a WAITING status when it starts waiting (again) and then every announce_every_s
        of its queue (0: only then). The first time its projected wait exceeds callback_offer_after_s
        it gets a CALLBACK_OFFERED status instead (once; the WAITING timer starts again from it).
        """
        out: list[Status] = []
        for queue_id, calls in self.waiting.items():
            if not calls:
                continue
            queue = self.queues[queue_id]
            offer_after = queue.callback_offer_after_s
            due = [c for c in calls if not c.callback and c.announce_at is not None and now >= c.announce_at]
            if not due and (offer_after is None or all(c.callback or c.callback_offered for c in calls)):
                continue  # nothing to say: no sort of the queue
            order = self.in_service_order(now, queue_id)
            for place, call in enumerate(order, start=1):
                if call.callback:
                    continue
                total, free = self.slots(queue_id, call.needs)  # the agents who can take it, as projected_wait
                projected = projected_wait_s(place, total, free, handle_time_s(queue_id))
                kind: Literal["waiting", "callback_offered"] | None = None
                if offer_after is not None and not call.callback_offered and projected is not None and projected > offer_after:
                    call.callback_offered = True
                    kind = "callback_offered"
                elif call.announce_at is not None and now >= call.announce_at:
                    kind = "waiting"
                if kind is None:
                    continue
                call.announce_at = now + queue.announce_every_s if queue.announce_every_s > 0 else None
                out.append(
                    Status(
                        call,
                        queue,
                        kind,
                        place,
                        projected,
                        effective_priority(call, queue, now),
                        max(0.0, now - call.enqueued_at),
                        len(calls),
                    )
                )
        return out

    def request_callback(self, call_id: str, now: float, at: float | None = None) -> CallbackAccepted:
        """The caller of a waiting call accepted a callback (at `at`, None: as soon as an agent is free).

        Virtual hold: the call keeps its place (priority, first arrival) and is not served before `at`;
        max_wait_s and overflow no longer apply, callback_max_wait_s counts from `at` (or now).
        """
        call = self._waiting_ids.get(call_id)
        if call is None:
            return CallbackAccepted("not_waiting")
        if call.callback:
            return CallbackAccepted("already", call)
        call.callback = True
        call.callback_since = now if at is None else max(now, at)
        call.not_before = None if at is None or at <= now else at
        call.announce_at = None
        return CallbackAccepted("accepted", call)

    def callback_no_answer(self, call_id: str, now: float, *, attempt: int = 0) -> CallbackMissed:
        """The caller did not answer the callback try of `call_id` (CALL_OUTCOME_CALLBACK_NO_ANSWER).

        The reserved agent is free (it is not to blame: it may take the call on the next try) and the
        call goes back to its place, not served before now + callback_retry_after_s; after
        callback_retries retries the call is finished (`failed`: call.rejected callback_failed).
        """
        agent_id = self._on_agent.get(call_id)
        call = self._active.get(call_id)
        if agent_id is None or call is None:
            return CallbackMissed("ignored", reason="unknown_call", detail=f"call {call_id} is not on an agent")
        if not call.callback:
            return CallbackMissed("ignored", call, reason="not_callback", detail=f"call {call_id} is not a callback")
        if attempt and attempt != call.attempt:
            return CallbackMissed(
                "ignored", call, reason="stale_attempt", detail=f"report about offer {attempt}, the call is at {call.attempt}"
            )
        del self._on_agent[call_id]
        del self._active[call_id]
        self._assigned_at.pop(call_id, None)
        self._free(agent_id, call_id, now)
        call.callback_misses += 1
        call.attempt += 1  # the next try is a new offer: a late report about this one is stale
        queue = self.queues[call.queue_id]
        if call.callback_misses > queue.callback_retries:
            self._finish(call_id)
            detail = f"the caller did not answer {call.callback_misses} callback(s) (callback_retries {queue.callback_retries})"
            return CallbackMissed(
                "failed", call, agent_id, reason=reasons.CALLBACK_FAILED, detail=detail, others=tuple(self.dispatch(now))
            )
        call.requeued = True  # its place: ahead of first-time waiters of its priority, as a re-offered call
        call.not_before = now + queue.callback_retry_after_s
        self.waiting[queue.id].insert(0, call)
        self._waiting_ids[call_id] = call
        return CallbackMissed("retry", call, agent_id, retry_at=call.not_before, others=tuple(self.dispatch(now)))

    def serve_due(self, now: float) -> list[Assignment]:
        """Calls held until now (a scheduled callback's time, a retry's delay) may be served: the owner's sweep calls
        this, as nothing else frees capacity for them. Dispatches only when some hold ended."""
        due = [c for c in self._waiting_ids.values() if c.not_before is not None and now >= c.not_before]
        for call in due:
            call.not_before = None
        return self.dispatch(now) if due else []

    def expire_callbacks(self, now: float) -> list[CallbackExpired]:
        """Remove and return the waiting callbacks not placed within callback_max_wait_s of acceptance (or of their time)."""
        out: list[CallbackExpired] = []
        for queue_id, calls in self.waiting.items():
            queue = self.queues[queue_id]
            for call in calls:
                since = call.callback_since
                if call.callback and since is not None and now - since >= queue.callback_max_wait_s:
                    detail = (
                        f"callback not placed within callback_max_wait_s {queue.callback_max_wait_s}s "
                        f"({call.callback_misses} unanswered tries)"
                    )
                    out.append(CallbackExpired(call, queue, now, detail))
        for e in out:
            self._unwait(e.call)
            self._finish(e.call.call_id)
        return out

    def figures(self, queue_id: str, now: float, handle_time_s: float | None) -> QueueFigures:
        """The queue's live figures for queue.summary (`projected_wait_s`: a call with no needs arriving now)."""
        calls = self.waiting.get(queue_id, [])
        total, free = self.slots(queue_id)
        agents = self.agents_of(queue_id)
        servable = sum(1 for c in calls if not _held(c, now))
        return QueueFigures(
            queue_id=queue_id,
            waiting=len(calls),
            callbacks_waiting=sum(1 for c in calls if c.callback),
            agents_logged_in=sum(1 for a in agents if a.presence.logged_in),
            # ready: logged in, ready and not wrapping up (whether on a call or not, as QueueSummary says)
            agents_ready=sum(1 for a in agents if a.presence.logged_in and a.presence.ready and a.presence.wrap_up is None),
            slots=total,
            busy_slots=total - free,
            projected_wait_s=projected_wait_s(servable + 1, total, free, handle_time_s),
            longest_wait_s=max((now - c.enqueued_at for c in calls), default=0.0),
        )

    # -- matching ------------------------------------------------------------
    def pick(
        self, queue: Queue, needs: Mapping[str, str], tried: Mapping[str, str] | None = None
    ) -> tuple[Agent | None, tuple[Consideration, ...]]:
        """The agent the queue's strategy picks among its free agents covering `needs` (not in `tried`), and the trace."""
        considered: list[Consideration] = []
        free: list[AgentState] = []
        tried = tried or {}
        for s in self.agents_of(queue.id):
            gap = skill_gap(s.agent, needs)
            if s.agent.id in tried:
                considered.append(Consideration(s.agent.id, False, "agent:tried", tried[s.agent.id]))
            elif gap is not None:
                considered.append(Consideration(s.agent.id, False, f"skill:{gap}", f"caller needs {gap}={needs[gap]}"))
            elif (why := desk.unavailable(s)) is not None:
                considered.append(Consideration(s.agent.id, False, why, desk.state_name(s)))
            elif not s.has_capacity:
                considered.append(
                    Consideration(s.agent.id, False, "agent:busy", f"{len(s.active)}/{s.agent.max_concurrent} calls")
                )
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
            return sorted(free, key=lambda s: (-desk.performance(s), s.index))
        # longest_idle: fully idle before partly busy; never used first; then idle since the earliest.
        return sorted(
            free,
            key=lambda s: (bool(s.active), s.idle_since is not None, s.idle_since or 0.0, s.index),
        )

    # -- bookkeeping ---------------------------------------------------------
    def _assign(
        self, call: WaitingCall, agent: Agent, queue: Queue, now: float, considered: tuple[Consideration, ...]
    ) -> Assignment:
        state = self.agents[agent.id]
        state.active.add(call.call_id)
        state.handled += 1
        if call.callback:
            call.callback_attempt += 1  # the edge places this try (call.routed callback_attempt)
        self._on_agent[call.call_id] = agent.id
        self._active[call.call_id] = call
        self._assigned_at[call.call_id] = now
        self._rr_last[queue.id] = state.index
        state.presence.call_id = call.call_id
        desk.note(self, state, now)
        return Assignment(call, agent, queue, now, considered)

    def _free(self, agent_id: str, call_id: str, now: float) -> None:
        state = self.agents[agent_id]
        state.active.discard(call_id)
        if not state.active:
            state.idle_since = now
        desk.note(self, state, now)

    def _unwait(self, call: WaitingCall) -> None:
        self._waiting_ids.pop(call.call_id, None)
        self.waiting[call.queue_id] = [c for c in self.waiting[call.queue_id] if c.call_id != call.call_id]

    def _finish(self, call_id: str) -> None:
        self.finished += 1
        self._done[call_id] = None
        self._done.move_to_end(call_id)
        while len(self._done) > self._remember:
            self._done.popitem(last=False)

    # -- persistence -----------------------------------------------------------
    def to_dict(self, *, done: bool = True, payload: Callable[[Any], Any] | None = None) -> dict[str, Any]:
        """The state as JSON-able data: agents, calls on agents, waiting lists, and (with `done`) the finished ids.

        Agents and queues are named by id, not config position, so the state survives a reordered
        configuration. Payloads are left out, unless `payload` turns one into JSON-able data (e.g.
        where the owner can find it again).
        """
        index_to_agent = {s.index: agent_id for agent_id, s in self.agents.items()}
        out: dict[str, Any] = {
            "version": STATE_VERSION,
            "seq": self._seq,
            "agents": {
                agent_id: {"idle_since": s.idle_since, "handled": s.handled, "desk": desk.presence_dict(s.presence)}
                for agent_id, s in self.agents.items()
            },
            "active": [
                {**_call_dict(call, payload), "agent_id": self._on_agent[call_id], "assigned_at": self._assigned_at.get(call_id)}
                for call_id, call in self._active.items()
            ],
            "waiting": {queue_id: [_call_dict(c, payload) for c in calls] for queue_id, calls in self.waiting.items() if calls},
            "round_robin_last": {queue_id: index_to_agent[i] for queue_id, i in self._rr_last.items() if i in index_to_agent},
            "hung_up": [[call_id, at] for call_id, at in self._hung_up.items()],
        }
        if done:
            out["done"] = list(self._done)
        return out

    @classmethod
    def from_dict(
        cls,
        queues: Iterable[Queue],
        agents: Iterable[Agent],
        data: Mapping[str, Any],
        *,
        payloads: Mapping[str, Any] | None = None,
        done: Iterable[str] = (),
        time_shift: float = 0.0,
        remember: int = 100_000,
        remember_hung_up: int = 10_000,
        now: float | None = None,
    ) -> Acd:
        """The ACD of the configuration (`queues`, `agents`) in the state `data` (from `to_dict`).

        A call's payload is `payloads[call_id]` when given, else what `to_dict(payload=...)` stored
        (None without); `done` adds finished call ids (oldest first, after those in `data`);
        `time_shift` is added to every time in `data`. `now` is the current time (new clock): a
        call on an agent whose assignment time `data` lacks (written before it was kept) counts
        from it, so `reap` frees it max_call_s after the upgrade, not at once; without `now`, from
        the first `reap`.
        Calls the configuration cannot hold any more (their queue or agent was removed) are
        not restored: they are listed in `orphans` and remembered as finished, and the owner
        decides what becomes of them.
        """
        version = data.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"ACD state version {version!r} is not supported (expected {STATE_VERSION})")
        acd = cls(queues, agents, remember=remember, remember_hung_up=remember_hung_up)
        payloads = payloads or {}
        acd._seq = int(data.get("seq", 0))
        for agent_id, st in data.get("agents", {}).items():
            state = acd.agents.get(agent_id)
            if state is not None:
                idle_since = st.get("idle_since")
                state.idle_since = None if idle_since is None else idle_since + time_shift
                state.handled = int(st.get("handled", 0))
                desk.presence_from(state, st.get("desk"), time_shift)
        for queue_id, agent_id in data.get("round_robin_last", {}).items():
            if queue_id in acd.queues and agent_id in acd.agents:
                acd._rr_last[queue_id] = acd.agents[agent_id].index
        orphans: list[Orphan] = []
        for item in data.get("active", []):
            call = _call_from(item, payloads, time_shift)
            agent_id = item["agent_id"]
            if agent_id not in acd.agents:
                orphans.append(Orphan(call, agent_id, "agent_removed"))
                continue
            acd.agents[agent_id].active.add(call.call_id)
            acd._on_agent[call.call_id] = agent_id
            acd._active[call.call_id] = call
            assigned_at = item.get("assigned_at")
            acd._assigned_at[call.call_id] = now if assigned_at is None else assigned_at + time_shift
        for queue_id, items in data.get("waiting", {}).items():
            for item in items:
                call = _call_from(item, payloads, time_shift)
                if queue_id not in acd.queues:
                    orphans.append(Orphan(call, None, "queue_removed"))
                    continue
                acd.waiting[queue_id].append(call)
                acd._waiting_ids[call.call_id] = call
        for call_id in [*data.get("done", []), *done, *(o.call.call_id for o in orphans)]:
            acd._done[call_id] = None
            acd._done.move_to_end(call_id)
        while len(acd._done) > acd._remember:
            acd._done.popitem(last=False)
        for call_id, at in data.get("hung_up", []):
            if call_id not in acd._done and acd.call_of(call_id) is None:
                acd._hung_up[call_id] = at + time_shift
        while len(acd._hung_up) > acd._remember_hung_up:
            acd._hung_up.popitem(last=False)
        acd.orphans = orphans
        for state in acd.agents.values():  # the restored states are published already: no change to announce
            desk.reset_shown(state)
        return acd


STATE_VERSION = 1


def _call_dict(call: WaitingCall, payload: Callable[[Any], Any] | None) -> dict[str, Any]:
    """A call as data; fields at their default are left out (snapshots of many waiting calls stay small)."""
    out: dict[str, Any] = {"call_id": call.call_id, "queue_id": call.queue_id, "enqueued_at": call.enqueued_at, "seq": call.seq}
    if payload is not None:
        out["payload"] = payload(call.payload)
    if call.needs:
        out["needs"] = dict(call.needs)
    if call.attempt != 1:
        out["attempt"] = call.attempt
    if call.max_attempts is not None:
        out["max_attempts"] = call.max_attempts
    if call.tried:
        out["tried"] = dict(call.tried)
    if call.requeued:
        out["requeued"] = True
    if call.priority:
        out["priority"] = call.priority
    if call.can_overflow:
        out["can_overflow"] = True
    for key in _CALLBACK_TIMES:
        if getattr(call, key) is not None:
            out[key] = getattr(call, key)
    for key in ("callback_offered", "callback"):
        if getattr(call, key):
            out[key] = True
    for key in ("callback_attempt", "callback_misses"):
        if getattr(call, key):
            out[key] = getattr(call, key)
    return out


# WaitingCall times of statuses and callbacks: in snapshots, moved by time_shift like enqueued_at.
_CALLBACK_TIMES = ("announce_at", "callback_since", "not_before")


def _shifted(value: Any, time_shift: float) -> float | None:
    return None if value is None else float(value) + time_shift


def _call_from(item: Mapping[str, Any], payloads: Mapping[str, Any], time_shift: float) -> WaitingCall:
    return WaitingCall(
        call_id=item["call_id"],
        queue_id=item["queue_id"],
        enqueued_at=item["enqueued_at"] + time_shift,
        needs=dict(item.get("needs", {})),
        payload=payloads[item["call_id"]] if item["call_id"] in payloads else item.get("payload"),
        seq=int(item.get("seq", 0)),
        attempt=int(item.get("attempt", 1)),
        max_attempts=item.get("max_attempts"),
        tried=dict(item.get("tried", {})),
        requeued=bool(item.get("requeued", False)),
        priority=int(item.get("priority", 0)),
        can_overflow=bool(item.get("can_overflow", False)),
        announce_at=_shifted(item.get("announce_at"), time_shift),
        callback_offered=bool(item.get("callback_offered", False)),
        callback=bool(item.get("callback", False)),
        callback_since=_shifted(item.get("callback_since"), time_shift),
        not_before=_shifted(item.get("not_before"), time_shift),
        callback_attempt=int(item.get("callback_attempt", 0)),
        callback_misses=int(item.get("callback_misses", 0)),
    )


def assignment_trace(routed_so_far: pb.DecisionTrace, tier_index: int, assignment: Assignment) -> pb.DecisionTrace:
    """The trace of a call given to an agent: the router's trace so far plus one entry per agent considered.

    The attempt is the call's current offer number (the router's hand-off
    attempt, +1 for every agent that did not take the call).
    """
    agent, queue, attempt = assignment.agent, assignment.queue, assignment.call.attempt
    trace = pb.DecisionTrace()
    trace.CopyFrom(routed_so_far)
    for c in assignment.considered:
        winner = c.agent_id == agent.id
        trace.entries.append(
            pb.TraceEntry(
                target_id=c.agent_id,
                kind=pb.TARGET_KIND_AGENT,
                tier_index=tier_index,
                attempt=attempt,
                eligible=c.eligible,
                excluded_by=c.excluded_by,
                detail=f"{queue.strategy}; waited {assignment.waited_s:.1f}s" if winner else c.detail,
                winner=winner,
            )
        )
    trace.winning_tier = tier_index
    trace.winning_attempt = attempt
    for tried, why in assignment.call.tried.items():
        trace.notes.append(f"queue {queue.id}: agent {tried} did not take the call ({why})")
    trace.notes.append(
        f"queue {queue.id}: offer {attempt} to agent {agent.id} by {queue.strategy} after {assignment.waited_s:.1f}s"
    )
    return trace


def rejection_trace(routed_so_far: pb.DecisionTrace, queue_id: str, reason: str, detail: str) -> pb.DecisionTrace:
    """The trace of a queued call the queue gave up on (abandoned, max_attempts, all_declined, ...)."""
    trace = pb.DecisionTrace()
    trace.CopyFrom(routed_so_far)
    trace.winning_tier = -1
    trace.notes.append(f"queue {queue_id}: {reason} ({detail})")
    return trace
