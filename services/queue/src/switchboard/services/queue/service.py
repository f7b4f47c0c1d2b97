"""The queue service: in-house ACD on Kafka (one instance; its group id names its state).

call.queued  → core.acd offers the call to its queue: a free agent → call.routed
               (kind AGENT, price "0", the trace extended with every agent
               considered); none free → the call waits (FIFO); the queue cannot
               serve it at all (unknown queue, no agents, no agent with the
               needed skills) → call.rejected.
call.ended   → routing_pending (the caller hung up before any decision reached the
               edge; attempt 0): a waiting call → call.rejected `abandoned`; a
               call on an agent → the agent's slot is freed and the call is
               rejected `abandoned` (the offer never connected); a finished call →
               nothing; a call not seen yet (its call.queued, on another topic,
               comes later) → the hang-up is remembered, and that call.queued is
               rejected `abandoned` at once ("the caller hung up before the queue
               got the call"), never offered to an agent. Remembered hang-ups are
               forgotten after hung_up_memory_s (most are of calls sold to buyers,
               whose call.queued never comes), at most HUNG_UP_LIMIT.
               Otherwise by outcome (core.call_end.meaning_of for an agent's offer;
               CallEnded.attempt says which offer it is about; a
               report about an older offer than the call's current one is
               ignored, so redeliveries change nothing):
               * NO_ANSWER, DECLINED, BUSY, FAILED: the agent did not take the
                 call. Its slot is freed and the call is offered on
                 (core.acd.Acd.offer_failed): the next free matching agent of
                 the same queue that has not been offered it → call.routed with
                 attempt+1; none free now → back to waiting at the head of the
                 queue; no untried matching agent at all → call.rejected
                 `all_declined`; more offers than the campaign's
                 routing.max_attempts → call.rejected `max_attempts`.
               * ANSWERED, CALLER_HANGUP, BUYER_HANGUP (for an agent: the agent
                 hung up): the call is over; the agent's slot is freed. A
                 CALLER_HANGUP with no connected seconds (the caller left while
                 the agent's phone rang) → also call.rejected `abandoned`, the
                 outcome, as the router does for a buyer's offer.
               Either way the freed slot goes to the oldest waiting call it can
               take (call.routed). A call that ends while still waiting (the
               caller hung up) → call.rejected `abandoned`.
a periodic sweep (sweep_interval_s) → waiting calls older than the queue's
               max_wait_s → call.rejected `abandoned`; calls given to an agent
               max_call_duration_s ago or more whose call.ended never came (the
               edge crashed or lost the call) → the agent is freed (warning
               `agent_call_reaped` with call id, agent, age; no event: the
               call.routed to the agent stands as the call's outcome, and a
               call.ended arriving later for it is ignored), and the freed slot
               goes to the oldest waiting call it can take (call.routed).

Durable state (DESIGN rule 4: a restart or a crash loses no call and books no
agent twice). The ACD state lives in memory and in snapshots on the compacted
topic queue.state (state.py): after a batch of input records, the service
writes ONE snapshot — the state, the input offsets it reflects, and the
decisions of the batch (the outbox) — and only then publishes those decisions.
At start it restores the newest snapshot, publishes its outbox again (the same
events, same event ids: ivr ignores a repeated offer or rejection, cti and
analytics dedupe by event id), and reads the inputs from the snapshot's
offsets, not from the group's committed ones (those are committed too, for lag
monitoring, and used only when there is no snapshot yet). An input read again
after a crash had its decision not published yet, so deciding it anew is safe.
Waiting calls keep their enqueue time across restarts (times in a snapshot
are moved to the new process's clock by the wall-clock time in between), so
max_wait_s counts from the call's first arrival; a call.queued read while
catching up after a restart counts from the time the router queued it. Calls
on agents keep their assignment time the same way (max_call_duration_s counts
from the offer; a call from a snapshot written before that time was kept
counts from the restart), and remembered hang-ups their time.

One instance only: it reads every partition itself (no consumer group
membership) and owns every agent, so a second instance with the same group id
would double-book agents and fork the state. Run `replicas: 1` with the
Recreate strategy (deploy/base/queue.yaml).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core import agents as desk
from switchboard.core import reasons
from switchboard.core.acd import (
    Abandoned,
    Acd,
    Assignment,
    CallbackExpired,
    QueueFigures,
    Status,
    WaitingCall,
    assignment_trace,
    call_priority,
    caller_needs,
    effective_priority,
    rejection_trace,
)
from switchboard.core.call_end import meaning_of
from switchboard.core.callbacks import CallbackTimeError, callback_time, local_text
from switchboard.core.config import RoutingConfig
from switchboard.core.decisions import Decision, DecisionHeader
from switchboard.core.engine import has_later_tier
from switchboard.core.waits import QueueEstimates
from switchboard.platform import codec, grpcsecurity
from switchboard.platform.configfile import load_config
from switchboard.platform.deadletters import fitted
from switchboard.platform.follow import Follower, MissingTopics
from switchboard.platform.kafka import make_consumer
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.metrics import DEAD_LETTERS, HANDLER_ERRORS, PROCESSING_SECONDS, reason_kind
from switchboard.platform.retry import StoppedWhileRetrying
from switchboard.platform.topics import (
    AGENT_EVENTS,
    CALL_ENDED,
    CALL_OVERFLOWED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALLBACK_REQUESTED,
    DEAD_LETTER,
    QUEUE_STATE,
    QUEUE_STATUS,
    QUEUE_SUMMARY,
    CallEvent,
    Topic,
)
from switchboard.services.queue.desk import AgentDesk, DeskCommands, Pushes, offer_of, status_of
from switchboard.services.queue.metrics import AGENT_EVENTS_PUBLISHED, CALLBACKS, STATUSES, QueueGauges, state_label
from switchboard.services.queue.security import desk_security
from switchboard.services.queue.settings import QueueSettings
from switchboard.services.queue.state import (
    DoneLog,
    StateError,
    StateStore,
    decode_acd,
    encode_acd,
)
from switchboard.v1 import agent_desk_pb2 as dpb
from switchboard.v1 import agent_desk_pb2_grpc as dgrpc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SERVICE = "queue"

M = TypeVar("M", bound=Message)
E = TypeVar("E", bound=CallEvent)


def agent_destination(agent_id: str, destination: str) -> str:
    return destination or f"agent:{agent_id}"


def _decision(message: type[Decision], queued: pb.CallQueued, **decision: Any) -> Decision:
    """The queue's decision event about `queued` (call.routed / call.rejected), stamped now."""
    return DecisionHeader.of_queued(queued).event(message, event_id=codec.new_id(), occurred_at=codec.now_ts(), **decision)


def routed_event(assignment: Assignment, queued: pb.CallQueued) -> pb.CallRouted:
    """call.routed for an agent, explained by core.acd.assignment_trace."""
    agent, queue, attempt = assignment.agent, assignment.queue, assignment.call.attempt
    trace = assignment_trace(queued.trace, queued.tier_index, assignment)
    return _decision(
        pb.CallRouted,
        queued,
        kind=pb.TARGET_KIND_AGENT,
        agent_id=agent.id,
        queue_id=queue.id,
        destination=agent_destination(agent.id, agent.destination),
        price="0",
        tier_index=queued.tier_index,
        attempt=attempt,
        strategy="queue",
        trace=trace,
        caller=queued.caller,
        answers=queued.answers,
        # A callback: the edge dials the caller (ivr WatchCallbacks) and bridges it to this agent.
        callback_attempt=assignment.call.callback_attempt if assignment.call.callback else 0,
    )


def rejected_event(queued: pb.CallQueued, reason: str, detail: str, announcement: str) -> pb.CallRejected:
    trace = rejection_trace(queued.trace, queued.queue_id, reason, detail)
    return _decision(pb.CallRejected, queued, reason=reason, detail=detail, announcement=announcement, trace=trace)


# What the queue reads: the calls the router queues, how their offers to agents ended, and the callbacks
# callers accepted (ivr).
Input: TypeAlias = pb.CallQueued | pb.CallEnded | pb.CallbackRequested
INPUTS: tuple[Topic[Input], ...] = (CALL_QUEUED, CALL_ENDED, CALLBACK_REQUESTED)
_INPUT_BY_NAME: dict[str, Topic[Input]] = {t.name: t for t in INPUTS}
_STATUS_KINDS = {"waiting": pb.QUEUE_STATUS_KIND_WAITING, "callback_offered": pb.QUEUE_STATUS_KIND_CALLBACK_OFFERED}


class InvalidInput(ValueError):
    """An input event the queue cannot act on (e.g. a callback time that is no time): dead-lettered with the reason."""


def _wait_s(projected: float | None) -> int:
    """A projected wait as queue.status / queue.summary carry it: whole seconds rounded up, -1 unknown."""
    return -1 if projected is None else math.ceil(projected)


# Decisions held back for one snapshot at most: a snapshot must stay well below Kafka's 1 MB record limit.
OUTBOX_LIMIT_BYTES = 256 * 1024
# Hang-ups remembered for calls not seen yet, at most: they are in every snapshot (~20 bytes each
# compressed: 10 000 ≈ 200 KB), and hung_up_memory_s keeps them far fewer in normal operation.
HUNG_UP_LIMIT = 10_000


def _seconds(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


@dataclass(frozen=True)
class Queued:
    """A call's payload in the ACD: its call.queued event, and where that record is (snapshots point there)."""

    event: pb.CallQueued
    partition: int = -1  # -1: unknown (the record was gone when the state was restored)
    offset: int = -1


DeskApply: TypeAlias = Callable[[Acd, float], "list[Assignment] | None"]


class QueueService:
    """The decisions, without I/O: events in → ACD state changed → events appended to `outbox`.

    QueueRunner publishes the outbox, after writing the snapshot that contains it.
    """

    def __init__(
        self,
        settings: QueueSettings,
        config: RoutingConfig,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = config
        self.acd = Acd.from_config(config, remember=settings.remember_finished, remember_hung_up=HUNG_UP_LIMIT)
        self.clock = clock  # ACD times: monotonic within a process
        self.wall = wall  # for times that cross processes (snapshots, event timestamps)
        self.max_attempts = {c.id: c.routing.max_attempts for c in config.campaigns}
        self.estimates = QueueEstimates()  # arrival rates and handle times: projected waits (core.waits)
        self.outbox: list[pb.QueueOutboxRecord] = []
        self.outbox_bytes = 0
        self.gauges = QueueGauges(self.estimates)
        # queue id → (the figures last published, when the next announce tick publishes them anyway).
        # Not in the snapshot: after a restart every queue's summary is published afresh.
        self._summaries: dict[str, tuple[tuple[object, ...], float]] = {}
        # For the desk's Work streams (services.queue.desk), taken after the snapshot holding them is written.
        self.offered: list[Assignment] = []
        self.agents_changed: set[str] = set()

    # -- output ----------------------------------------------------------------------------------
    def emit(self, topic: Topic[E], event: E, key: bytes | None = None) -> None:
        self._append(topic, event, key if key is not None else event.call_id.encode())

    def _append(self, topic: Topic[M], event: M, key: bytes) -> None:
        if not isinstance(event, topic.message):
            raise TypeError(f"{topic.name} carries {topic.message.__name__}, not {type(event).__name__}")
        value = codec.encode(event)
        self.outbox.append(pb.QueueOutboxRecord(topic=topic.name, key=key, value=value))
        self.outbox_bytes += len(value) + len(key)

    def take_outbox(self) -> list[pb.QueueOutboxRecord]:
        out, self.outbox, self.outbox_bytes = self.outbox, [], 0
        return out

    def dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        # Fitted now: the outbox is part of the next snapshot, which must stay under the record limit too.
        letter = fitted(codec.dead_letter(SERVICE, record, reason), self.settings.kafka.max_record_bytes)
        self._append(DEAD_LETTER, letter, record.key or b"")
        DEAD_LETTERS.labels(record.topic, reason_kind(reason)).inc()
        log.warning("dead_lettered", topic=record.topic, partition=record.partition, offset=record.offset, reason=reason)

    # -- input -----------------------------------------------------------------------------------
    def handle(self, event: Input, partition: int = -1, offset: int = -1, *, catching_up: bool = False) -> None:
        try:
            if isinstance(event, pb.CallQueued):
                self.on_queued(event, Queued(event, partition, offset), catching_up=catching_up)
            elif isinstance(event, pb.CallbackRequested):
                self.on_callback_requested(event)
            else:
                self.on_ended(event)
        finally:
            # Also after a refused input: the changes already made to the ACD are its state now.
            self.publish_agent_changes()

    def apply_desk(self, apply: DeskApply) -> desk.DeskError | None:
        """An AgentDesk command (services.queue.desk): applied to the ACD, its calls routed; its refusal returned."""
        try:
            for assignment in apply(self.acd, self.clock()) or []:
                self._route(assignment)
        except desk.DeskError as exc:
            return exc
        finally:
            self.publish_agent_changes()
        return None

    def publish_agent_changes(self) -> None:
        """The ACD's agent state changes (core.agents) as agent.events, keyed by agent id, in the outbox."""
        changes, self.acd.agent_changes = self.acd.agent_changes, []
        for c in changes:
            self._append(
                AGENT_EVENTS,
                pb.AgentEvent(
                    event_id=codec.new_id(),
                    occurred_at=codec.now_ts(),
                    agent_id=c.agent_id,
                    state=c.state,  # type: ignore[arg-type]
                    previous_state=c.previous_state,  # type: ignore[arg-type]
                    reason=c.reason,
                    call_id=c.call_id,
                    disposition=c.disposition,
                    note=c.note,
                    queue_ids=c.queue_ids,
                ),
                c.agent_id.encode(),
            )
            AGENT_EVENTS_PUBLISHED.labels(state_label(c.state)).inc()
            self.agents_changed.add(c.agent_id)
            log.info("agent_state", agent=c.agent_id, state=state_label(c.state), reason=c.reason, call_id=c.call_id)

    def on_queued(self, ev: pb.CallQueued, source: Queued | None = None, *, catching_up: bool = False) -> None:
        now = self.clock()
        enqueued_at = now
        if catching_up and ev.HasField("occurred_at"):
            # Read after a restart (again, or queued while the service was down): the caller has
            # been waiting since the router queued the call, and max_wait_s counts from then.
            enqueued_at = now - max(0.0, self.wall() - _seconds(ev.occurred_at))
        queue = self.acd.queues.get(ev.queue_id)
        needs = caller_needs(queue, ev.answers) if queue else {}
        call = WaitingCall(
            ev.call_id,
            ev.queue_id,
            enqueued_at,
            needs,
            payload=source or Queued(ev),
            attempt=ev.attempt or 1,
            max_attempts=self.max_attempts.get(ev.campaign_id),
            priority=call_priority(queue, ev.campaign_id, ev.publisher_id, ev.answers) if queue else 0,
            can_overflow=has_later_tier(self.config, ev.campaign_id, ev.tier_index),
        )
        if queue is not None:
            self.estimates.arrived(queue.id, now)
        offer = self.acd.offer(call, now)
        if offer.status == "assigned":
            assert offer.assignment is not None
            self._route(offer.assignment)
        elif offer.status == "waiting":
            log.info("call_waiting", call_id=ev.call_id, queue=ev.queue_id, position=offer.position, priority=call.priority)
        elif offer.status == "duplicate":
            log.info("duplicate_ignored", call_id=ev.call_id, queue=ev.queue_id)
        elif offer.status == "overflow":
            self._overflow(call, offer.reason, offer.detail, now)
        elif offer.reason == reasons.ABANDONED:  # the caller's hang-up (routing_pending) was read first
            self.emit(CALL_REJECTED, rejected_event(ev, offer.reason, offer.detail, self.settings.abandoned_announcement))
            log.info("call_abandoned", call_id=ev.call_id, queue=ev.queue_id, why="hung_up_before_queued")
        else:
            self.emit(CALL_REJECTED, rejected_event(ev, offer.reason, offer.detail, self.settings.rejected_announcement))
            log.info("call_rejected", call_id=ev.call_id, queue=ev.queue_id, reason=offer.reason)

    def on_ended(self, ev: pb.CallEnded) -> None:
        if ev.routing_pending:
            self._caller_left(ev)
            return
        current = self.acd.call_of(ev.call_id)
        if current is not None and current.callback:
            if ev.outcome == pb.CALL_OUTCOME_CALLBACK_NO_ANSWER:
                self._callback_missed(ev)
                return
            if self.acd.agent_of(ev.call_id) is None:
                # On virtual hold, not being placed: the report is about an earlier leg (a redelivery).
                log.info("outcome_ignored", call_id=ev.call_id, outcome=ev.outcome, reason="callback_on_hold")
                return
        end = meaning_of(ev.outcome, ev.connected_seconds, None, to_agent=True)
        if end.failure is not None:  # the agent did not take the call: offered on
            self._offer_failed(ev, end.failure)
            return
        if current is not None and ev.attempt and ev.attempt < current.attempt:
            log.info("stale_outcome_ignored", call_id=ev.call_id, attempt=ev.attempt, current=current.attempt)
            return
        # A caller who hung up while the agent's phone rang was never bridged: not an answer by the agent.
        connected = ev.outcome == pb.CALL_OUTCOME_ANSWERED or ev.connected_seconds > 0
        release = self.acd.release(ev.call_id, self.clock(), connected=connected)
        if release.agent_id:
            log.info("agent_released", call_id=ev.call_id, agent=release.agent_id)
            if end.answered and current is not None:
                self.estimates.handled(current.queue_id, ev.connected_seconds)
                if current.callback:
                    CALLBACKS.labels(current.queue_id, "connected").inc()
            if end.abandoned and current is not None:
                self._hung_up_on_offer(current, release.agent_id)
        if release.abandoned:
            self._abandon(release.abandoned)
        for assignment in release.assignments:
            self._route(assignment)

    def _hung_up_on_offer(self, call: WaitingCall, agent_id: str) -> None:
        """The caller left while the agent's phone rang (or before the offer reached the edge): the offer
        never connected, so the call's outcome is call.rejected abandoned, as for a buyer's offer (router)."""
        detail = f"the caller hung up during offer {call.attempt} to agent {agent_id}"
        self.emit(CALL_REJECTED, rejected_event(call.payload.event, reasons.ABANDONED, detail, ""))
        log.info("call_rejected", call_id=call.call_id, queue=call.queue_id, reason=reasons.ABANDONED, detail=detail)

    def _caller_left(self, ev: pb.CallEnded) -> None:
        current = self.acd.call_of(ev.call_id)
        release = self.acd.caller_left(ev.call_id, self.clock())
        if release.remembered:
            # Not here yet: mostly a call the router is selling to buyers, sometimes one whose call.queued comes next.
            log.info("hang_up_before_queued_remembered", call_id=ev.call_id)
        elif release.agent_id:
            log.info("agent_released", call_id=ev.call_id, agent=release.agent_id, why="caller_left")
            if current is not None:
                self._hung_up_on_offer(current, release.agent_id)
        elif release.abandoned is None:
            log.info("outcome_ignored", call_id=ev.call_id, outcome="caller_left", reason="finished")
        if release.abandoned:
            self._abandon(release.abandoned)
        for assignment in release.assignments:
            self._route(assignment)

    def _offer_failed(self, ev: pb.CallEnded, why: str) -> None:
        r = self.acd.offer_failed(ev.call_id, self.clock(), attempt=ev.attempt, why=why)
        if r.status == "ignored":
            # Not on an agent here: a redelivery, a report about an older offer, a call waiting
            # in a queue (nothing was offered) or a buyer call (the router's business).
            log.info("outcome_ignored", call_id=ev.call_id, outcome=why, attempt=ev.attempt, reason=r.reason)
            return
        log.info(
            "agent_did_not_take_call",
            call_id=ev.call_id,
            agent=r.agent_id,
            outcome=why,
            next_attempt=r.call.attempt if r.call else 0,
        )
        if r.status == "assigned":
            assert r.assignment is not None
            self._route(r.assignment)
        elif r.status == "waiting":
            log.info(
                "call_requeued",
                call_id=ev.call_id,
                queue=r.call.queue_id if r.call else "",
                attempt=r.call.attempt if r.call else 0,
            )
        elif r.status == "rejected":
            assert r.call is not None
            self.emit(
                CALL_REJECTED, rejected_event(r.call.payload.event, r.reason, r.detail, self.settings.rejected_announcement)
            )
            log.info("call_rejected", call_id=ev.call_id, reason=r.reason)
        elif r.status == "overflow":
            assert r.call is not None
            self._overflow(r.call, r.reason, r.detail, self.clock())
        for assignment in r.others:
            self._route(assignment)

    # -- statuses and callbacks (docs/ACD.md, Announcements and Callbacks) -------------------------
    def on_callback_requested(self, ev: pb.CallbackRequested) -> None:
        """The caller accepted a callback: virtual hold (core.acd.Acd.request_callback), CALLBACK_ACCEPTED."""
        now = self.clock()
        live = self.acd.call_of(ev.call_id)
        queue = self.acd.queues.get(live.queue_id if live is not None else ev.queue_id)
        due: datetime | None = None
        if queue is not None:
            # Read from when the caller chose (not when it is read: a redelivery resolves the same).
            chosen_at = ev.occurred_at.ToDatetime(tzinfo=UTC) if ev.HasField("occurred_at") else self._wall_dt()
            try:
                due = callback_time(ev.at_local, queue.timezone, chosen_at)
            except CallbackTimeError as exc:
                raise InvalidInput(str(exc)) from None
        at = None if due is None else now + (due.timestamp() - self.wall())
        result = self.acd.request_callback(ev.call_id, now, at)
        if result.status != "accepted" or result.call is None:
            # Served, ended or overflowed meanwhile, never here, or a redelivered request.
            log.info("callback_request_ignored", call_id=ev.call_id, queue=ev.queue_id, reason=result.status)
            return
        assert queue is not None
        call = result.call
        CALLBACKS.labels(queue.id, "accepted").inc()
        status = pb.QueueStatus(
            event_id=codec.new_id(),
            call_id=call.call_id,
            occurred_at=codec.now_ts(),
            queue_id=queue.id,
            kind=pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED,
            position=self.acd.position(call.call_id, now),
            projected_wait_s=_wait_s(self.acd.projected_wait(call.call_id, now, self.estimates.handle_time_s(queue.id))),
            priority=effective_priority(call, queue, now),
            waited_s=int(max(0.0, now - call.enqueued_at)),
            waiting=len(self.acd.waiting[queue.id]),
            callback_offered=call.callback_offered,
        )
        if due is not None:
            status.callback_at.FromDatetime(due)
        self.emit(QUEUE_STATUS, status)
        STATUSES.labels(queue.id, "callback_accepted").inc()
        log.info("callback_accepted", call_id=call.call_id, queue=queue.id, at_local=local_text(due, queue.timezone))

    def _wall_dt(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def _callback_missed(self, ev: pb.CallEnded) -> None:
        r = self.acd.callback_no_answer(ev.call_id, self.clock(), attempt=ev.attempt)
        if r.status == "ignored":
            log.info("outcome_ignored", call_id=ev.call_id, outcome="callback_no_answer", reason=r.reason)
            return
        assert r.call is not None
        log.info(
            "callback_not_answered",
            call_id=ev.call_id,
            agent=r.agent_id,
            misses=r.call.callback_misses,
            retry_in_s=None if r.retry_at is None else round(r.retry_at - self.clock(), 1),
        )
        if r.status == "failed":
            CALLBACKS.labels(r.call.queue_id, "failed").inc()
            self.emit(CALL_REJECTED, rejected_event(r.call.payload.event, r.reason, r.detail, ""))
            log.info("call_rejected", call_id=ev.call_id, queue=r.call.queue_id, reason=r.reason)
        for assignment in r.others:
            self._route(assignment)

    def _callback_expired(self, e: CallbackExpired) -> None:
        CALLBACKS.labels(e.queue.id, "expired").inc()
        self.emit(CALL_REJECTED, rejected_event(e.call.payload.event, reasons.CALLBACK_EXPIRED, e.detail, ""))
        log.info("call_rejected", call_id=e.call.call_id, queue=e.queue.id, reason=reasons.CALLBACK_EXPIRED)

    def announce(self) -> None:
        """Publish the queue.status events due now and the queue.summary of every queue whose figures changed
        or whose announce tick came (announce_every_s; 0: on changes only)."""
        now = self.clock()
        for st in self.acd.statuses(now, self.estimates.handle_time_s):
            self._status(st)
        for queue_id, queue in self.acd.queues.items():
            figures = self.acd.figures(queue_id, now, self.estimates.handle_time_s(queue_id))
            # longest_wait_s grows every second: a change of it alone waits for the tick.
            key = astuple(replace(figures, projected_wait_s=_wait_s(figures.projected_wait_s), longest_wait_s=0.0))
            last = self._summaries.get(queue_id)
            if last is not None and last[0] == key and now < last[1]:
                continue
            tick = now + queue.announce_every_s if queue.announce_every_s > 0 else math.inf
            self._summaries[queue_id] = (key, tick)
            self._summary(figures)

    def _status(self, st: Status) -> None:
        if st.kind == "callback_offered":
            CALLBACKS.labels(st.queue.id, "offered").inc()
        STATUSES.labels(st.queue.id, st.kind).inc()
        self.emit(
            QUEUE_STATUS,
            pb.QueueStatus(
                event_id=codec.new_id(),
                call_id=st.call.call_id,
                occurred_at=codec.now_ts(),
                queue_id=st.queue.id,
                kind=_STATUS_KINDS[st.kind],
                position=st.position,
                projected_wait_s=_wait_s(st.projected_wait_s),
                priority=st.priority,
                waited_s=int(st.waited_s),
                waiting=st.waiting,
                callback_offered=st.call.callback_offered,
            ),
        )

    def _summary(self, f: QueueFigures) -> None:
        rate = self.estimates.arrival_rate(f.queue_id, self.clock())
        self._append(
            QUEUE_SUMMARY,
            pb.QueueSummary(
                event_id=codec.new_id(),
                occurred_at=codec.now_ts(),
                queue_id=f.queue_id,
                waiting=f.waiting,
                callbacks_waiting=f.callbacks_waiting,
                agents_logged_in=f.agents_logged_in,
                agents_ready=f.agents_ready,
                slots=f.slots,
                busy_slots=f.busy_slots,
                handle_time_s=self.estimates.handle_time_s(f.queue_id) or 0.0,
                arrival_rate_per_s=rate,
                projected_wait_s=_wait_s(f.projected_wait_s),
                longest_wait_s=int(f.longest_wait_s),
            ),
            f.queue_id.encode(),
        )

    def sweep(self) -> None:
        now = self.clock()
        # Overflow before expire: a call due for both goes on to buyers rather than being abandoned.
        for o in self.acd.overflow(now, self.estimates.handle_time_s):
            self._overflow(o.call, o.reason, o.detail, now)
        for abandoned in self.acd.expire(now):
            self._abandon(abandoned)
        for expired in self.acd.expire_callbacks(now):
            self._callback_expired(expired)
        for assignment in self.acd.serve_due(now):  # callbacks whose time or retry delay came
            self._route(assignment)
        for assignment in desk.end_due_wrap_ups(self.acd, now):  # wrap_up_s passed: the agents take waiting calls
            self._route(assignment)
        for agent_id in desk.heartbeat_logouts(self.acd, now, self.settings.agent_heartbeat_s):
            log.warning("agent_heartbeat_logout", agent=agent_id, agent_heartbeat_s=self.settings.agent_heartbeat_s)
        # After expire: a call past its max_wait_s is abandoned, not given the reaped agent's slot.
        reap = self.acd.reap(now, self.settings.max_call_duration_s)
        for r in reap.reaped:
            log.warning(
                "agent_call_reaped",
                call_id=r.call.call_id,
                agent=r.agent_id,
                queue=r.call.queue_id,
                attempt=r.call.attempt,
                age_s=round(r.age_s, 1),
                max_call_duration_s=self.settings.max_call_duration_s,
            )
        for assignment in reap.assignments:
            self._route(assignment)
        forgotten = self.acd.forget_hang_ups(now, self.settings.hung_up_memory_s)
        if forgotten:
            log.debug("hang_ups_forgotten", count=forgotten)
        self.publish_agent_changes()

    def _route(self, assignment: Assignment) -> None:
        self.emit(CALL_ROUTED, routed_event(assignment, assignment.call.payload.event))
        self.offered.append(assignment)
        if assignment.call.callback:
            CALLBACKS.labels(assignment.queue.id, "placed").inc()
        log.info(
            "call_routed",
            call_id=assignment.call.call_id,
            queue=assignment.queue.id,
            agent=assignment.agent.id,
            attempt=assignment.call.attempt,
            waited_s=round(assignment.waited_s, 3),
        )

    def _overflow(self, call: WaitingCall, reason: str, detail: str, now: float) -> None:
        """The call goes back to routing: call.overflowed, and the router walks the tiers after the queue's."""
        queued = call.payload.event
        waited = max(0.0, now - call.enqueued_at)
        trace = pb.DecisionTrace()
        trace.CopyFrom(queued.trace)
        for tried, why in call.tried.items():
            trace.notes.append(f"queue {call.queue_id}: agent {tried} did not take the call ({why})")
        trace.notes.append(f"queue {call.queue_id}: overflowed after {waited:.1f}s: {reason} ({detail})")
        self.emit(
            CALL_OVERFLOWED,
            pb.CallOverflowed(
                event_id=codec.new_id(),
                call_id=call.call_id,
                occurred_at=codec.now_ts(),
                queued=queued,
                attempt=call.attempt,
                reason=reason,
                detail=detail,
                trace=trace,
            ),
        )
        log.info("call_overflowed", call_id=call.call_id, queue=call.queue_id, reason=reason, waited_s=round(waited, 1))

    def _abandon(self, abandoned: Abandoned) -> None:
        queue = abandoned.queue
        if abandoned.why == "max_wait":
            detail = f"waited {abandoned.waited_s:.1f}s in queue {queue.id} (max_wait_s {queue.max_wait_s})"
        else:
            detail = f"the caller hung up after {abandoned.waited_s:.1f}s in queue {queue.id}"
        self.emit(
            CALL_REJECTED,
            rejected_event(abandoned.call.payload.event, reasons.ABANDONED, detail, self.settings.abandoned_announcement),
        )
        log.info("call_abandoned", call_id=abandoned.call.call_id, queue=queue.id, why=abandoned.why)

    # -- restart ---------------------------------------------------------------------------------
    def adopt(self, acd: Acd, events: dict[str, pb.CallQueued]) -> list[str]:
        """Take over a restored ACD, with its calls' call.queued `events` by call id; return the orphans' ids.

        Waiting calls of a queue that is no longer configured are rejected (`unknown_queue`): they
        would wait for nobody. A call on an agent that is no longer configured keeps its offer (the
        agent has it); a later outcome of it is ignored.
        """
        self.acd = acd
        desk.start_timers(acd, self.clock())  # heartbeat timers run from the restart (core.agents)
        for call in [*acd.live_calls(), *(o.call for o in acd.orphans)]:
            ref = call.payload if isinstance(call.payload, list) else [-1, -1]
            event = events.get(call.call_id)
            if event is None:  # its call.queued is gone (retention): decide with the ids alone
                log.error("queued_event_missing", call_id=call.call_id, queue=call.queue_id, partition=ref[0], offset=ref[1])
                event = pb.CallQueued(event_id=codec.new_id(), call_id=call.call_id, queue_id=call.queue_id)
                ref = [-1, -1]
            call.payload = Queued(event, ref[0], ref[1])
        for orphan in acd.orphans:
            if orphan.reason == "queue_removed":
                detail = f"queue {orphan.call.queue_id!r} was removed from the configuration while the call waited"
                self.emit(
                    CALL_REJECTED,
                    rejected_event(orphan.call.payload.event, reasons.UNKNOWN_QUEUE, detail, self.settings.rejected_announcement),
                )
                log.warning("waiting_call_of_removed_queue_rejected", call_id=orphan.call.call_id, queue=orphan.call.queue_id)
            else:
                log.warning("call_of_removed_agent_forgotten", call_id=orphan.call.call_id, agent=orphan.agent_id)
        return [o.call.call_id for o in acd.orphans]


class QueueRunner:
    """The Kafka side of the queue service: restore, consume, sweep, snapshot, publish (module docstring)."""

    def __init__(self, settings: QueueSettings, config: RoutingConfig, stop: asyncio.Event | None = None) -> None:
        self.settings = settings
        self.stop_event = stop  # ends the retries of a failing publish (the snapshot keeps the outbox)
        self.service = QueueService(settings, config)
        self.clock = self.service.clock
        self.store = StateStore(settings.kafka, settings.group_id, SERVICE)
        self.consumer: AIOKafkaConsumer | None = None
        self.follower: Follower | None = None  # reads every input partition (caught up after a restart, then on)
        self.positions: dict[TopicPartition, int] = {}  # next offset to handle, per input partition
        self.done = DoneLog(keep=settings.remember_finished)
        self.seq = 0  # snapshot number
        self.restored = False
        self._snapshot_positions: dict[TopicPartition, int] = {}
        self._snapshot_at = self._commit_at = self._sweep_at = 0.0
        self.stats = {"snapshots": 0, "last_bytes": 0, "max_bytes": 0, "max_ms": 0.0, "total_ms": 0.0}
        self.commands = DeskCommands()  # AgentDesk RPCs, applied between batches (services.queue.desk)
        self.pushes = Pushes()

    async def start(self) -> None:
        await self.store.start()
        snapshot = await self.store.latest()
        if snapshot is not None:
            await self._restore(snapshot)
        self.consumer = consumer = make_consumer(self.settings.kafka, self.settings.group_id, SERVICE)
        await consumer.start()
        stored = {TopicPartition(o.topic, o.partition): o.offset for o in snapshot.offsets} if snapshot else {}

        async def seek(tp: TopicPartition) -> None:
            if tp in stored:
                consumer.seek(tp, stored[tp])
                return
            committed = None if snapshot else await consumer.committed(tp)  # first start of this version
            if committed is not None:
                consumer.seek(tp, committed)
            else:
                await consumer.seek_to_beginning(tp)

        # Assigned, not subscribed: this one instance reads every partition (see the module docstring).
        # The group id is for the offsets committed for lag monitoring only.
        self.follower = follower = Follower(consumer, self.settings.kafka, SERVICE)
        try:
            self.positions = await follower.start([t.name for t in INPUTS], seek)
        except MissingTopics as exc:
            raise StateError(str(exc)) from exc
        if snapshot is not None:
            # Decisions of the last snapshot may not have been published before the stop: publish them
            # (again) before the next snapshot replaces the outbox.
            await self.store.publish(snapshot.outbox, self.stop_event)
        now = self.clock()
        self._sweep_at = now + self.settings.sweep_interval_s
        await self.flush(force=True)
        log.info(
            "queue_started",
            restored=self.restored,
            snapshot_seq=self.seq,
            live_calls=len(self.service.acd.live_calls()),
            catching_up=sum(max(0, end - self.positions[tp]) for tp, end in follower.behind.items()),
            partition=self.store.partition,
        )

    async def _restore(self, snapshot: pb.QueueState) -> None:
        segments = [(QUEUE_STATE.name, seg.partition, seg.offset) for seg in snapshot.done_segments]
        segment_records = await self.store.read_records(segments)
        done: list[str] = []
        for seg, ref in zip(snapshot.done_segments, segments, strict=True):
            record = segment_records.get(ref)
            if record is None or record.value is None:
                log.warning("done_segment_missing", segment=seg.number, partition=seg.partition, offset=seg.offset)
                continue
            done.extend(codec.decode(QUEUE_STATE, record.value).finished_call_ids)
        done.extend(snapshot.finished_call_ids)
        # Times in the snapshot are on the old process's monotonic clock: move them by the wall-clock time since.
        time_shift = (self.clock() - snapshot.clock) - (self.service.wall() - _seconds(snapshot.occurred_at))
        config = self.service.config
        acd = Acd.from_dict(
            config.queues,
            config.agents,
            decode_acd(snapshot.acd),
            done=done,
            time_shift=time_shift,
            remember=self.settings.remember_finished,
            remember_hung_up=HUNG_UP_LIMIT,
            now=self.clock(),  # calls on agents from a snapshot without their assignment time count from now
        )
        # Payloads: the calls' call.queued records, where the snapshot says they are.
        refs = {}
        for call in [*acd.live_calls(), *(o.call for o in acd.orphans)]:
            if isinstance(call.payload, list) and len(call.payload) == 2:
                refs[call.call_id] = (CALL_QUEUED.name, int(call.payload[0]), int(call.payload[1]))
        records = await self.store.read_records(refs.values())
        events: dict[str, pb.CallQueued] = {}
        for call_id, ref in refs.items():
            record = records.get(ref)
            try:
                event = codec.decode(CALL_QUEUED, record.value) if record is not None else None
            except codec.UndecodableEvent:
                event = None
            if event is not None and event.call_id == call_id:
                events[call_id] = event
        orphans = self.service.adopt(acd, events)
        self.done = DoneLog(
            keep=self.done.keep,
            segment_size=self.done.segment_size,
            sealed=list(snapshot.done_segments),
            tail=[*snapshot.finished_call_ids, *orphans],
            counted=acd.finished,
        )
        self.seq = snapshot.seq
        self.restored = True
        log.info(
            "queue_state_restored",
            snapshot_seq=snapshot.seq,
            waiting=sum(len(w) for w in acd.waiting.values()),
            live_calls=len(acd.live_calls()),
            payloads_missing=len(acd.live_calls()) + len(acd.orphans) - len(events),
            finished_ids=len(done),
            outbox=len(snapshot.outbox),
            time_shift_s=round(time_shift, 3),
        )

    async def loop(self, stop: asyncio.Event) -> None:
        follower = self.follower
        assert follower is not None
        wait_ms = int(min(100.0, self.settings.sweep_interval_s * 1000))

        async def on_record(record: ConsumerRecord, catching_up: bool) -> None:
            with PROCESSING_SECONDS.labels(record.topic).time():
                self._handle(record, catching_up=catching_up)
            self.positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if self.service.outbox_bytes >= OUTBOX_LIMIT_BYTES:
                await self.flush()

        async def after_batch() -> None:
            now = self.clock()
            # Not while catching up: a call.ended still unread may have served a call before its max_wait_s.
            if follower.caught_up and now >= self._sweep_at:
                self.service.sweep()
                self._sweep_at = now + self.settings.sweep_interval_s
            if follower.caught_up:  # statuses of a state still catching up would tell callers stale places
                self.service.announce()
            commands = self.commands.take() if follower.caught_up else []
            refusals = [self.service.apply_desk(c.apply) for c in commands]
            await self.flush(force=bool(commands))  # a command is answered once the snapshot holding it is written
            for command, refusal in zip(commands, refusals, strict=True):
                if not command.done.done():
                    if refusal is None:
                        command.done.set_result(None)
                    else:
                        command.done.set_exception(refusal)
            self._push()
            self.service.gauges.show(self.service.acd, now)

        await follower.run(
            on_record,
            stop,
            on_caught_up=lambda: log.info("caught_up"),
            after_batch=after_batch,
            timeout_ms=wait_ms,
            max_records=500,
        )

    def status(self, agent_id: str) -> dpb.AgentStatus:
        return status_of(self.service.acd.agents[agent_id], self.clock(), self.service.wall())

    def _push(self) -> None:
        """The Work streams' pushes: published decisions only (after flush): status changes, then offers."""
        service = self.service
        changed, service.agents_changed = service.agents_changed, set()
        offered, service.offered = service.offered, []
        for agent_id in sorted(changed):
            if agent_id in service.acd.agents:
                self.pushes.push(agent_id, dpb.AgentPush(status=self.status(agent_id)))
        for a in offered:
            self.pushes.push(a.agent.id, dpb.AgentPush(offer=offer_of(a)))

    def _handle(self, record: ConsumerRecord, *, catching_up: bool) -> None:
        topic = _INPUT_BY_NAME[record.topic]
        try:
            event = codec.decode(topic, record.value)
        except codec.UndecodableEvent as exc:
            HANDLER_ERRORS.labels(record.topic).inc()
            self.service.dead_letter(record, f"undecodable: {exc}")
            return
        try:
            self.service.handle(event, record.partition, record.offset, catching_up=catching_up)
        except InvalidInput as exc:
            HANDLER_ERRORS.labels(record.topic).inc()
            self.service.dead_letter(record, f"invalid: {exc}")
        except Exception as exc:  # bad input never kills a consumer: dead-letter and go on
            HANDLER_ERRORS.labels(record.topic).inc()
            log.exception("handler_failed", topic=record.topic, offset=record.offset, call_id=event.call_id)
            self.service.dead_letter(record, f"handler error: {type(exc).__name__}: {exc}")

    async def flush(self, *, force: bool = False) -> None:
        """Snapshot the state (with the offsets it reflects and the pending decisions), then publish the decisions.

        Only when there is something to publish, when `force`, or at most every snapshot_interval_s
        while inputs were handled without a decision.
        """
        service = self.service
        now = self.clock()
        moved = self.positions != self._snapshot_positions
        if not (force or service.outbox or (moved and now - self._snapshot_at >= self.settings.snapshot_interval_s)):
            return
        started, wall = time.perf_counter(), service.wall()  # `now` and `wall` name the same instant
        self.done.take(service.acd)
        for ids in self.done.full_segments():
            self.done.sealed.append(await self.store.write_segment(self.done.next_number(), ids))
        dropped = self.done.trim()
        outbox = service.take_outbox()
        self.seq += 1
        state = pb.QueueState(
            event_id=codec.new_id(),
            occurred_at=_timestamp(wall),
            instance=self.settings.group_id,
            seq=self.seq,
            clock=now,
            offsets=[
                pb.QueueInputOffset(topic=tp.topic, partition=tp.partition, offset=o) for tp, o in sorted(self.positions.items())
            ],
            acd=encode_acd(service.acd),
            finished_call_ids=self.done.tail,
            done_segments=self.done.sealed,
            outbox=outbox,
        )
        size = await self.store.write_snapshot(state)
        written_ms = (time.perf_counter() - started) * 1000
        self._snapshot_positions = dict(self.positions)
        self._snapshot_at = now
        await self.store.publish(outbox, self.stop_event)
        for segment in dropped:
            await self.store.drop_segment(segment)
        st = self.stats
        st["snapshots"] += 1
        st["last_bytes"], st["max_bytes"] = size, max(st["max_bytes"], size)
        st["max_ms"], st["total_ms"] = max(st["max_ms"], written_ms), st["total_ms"] + written_ms
        log.debug("snapshot_written", seq=self.seq, bytes=size, ms=round(written_ms, 2), decisions=len(outbox))
        if force or now - self._commit_at >= self.settings.snapshot_interval_s:
            await self._commit()

    async def _commit(self) -> None:
        """Commit the snapshot's offsets to the consumer group: for lag monitoring only (restarts use the snapshot)."""
        if self.consumer is None or not self._snapshot_positions:
            return
        self._commit_at = self.clock()
        try:
            await self.consumer.commit(dict(self._snapshot_positions))
        except KafkaError as exc:
            log.warning("offset_commit_failed", error=str(exc))

    async def stop(self) -> None:
        try:
            if self.consumer is not None:
                await self.consumer.stop()
        finally:
            self.consumer = None
            await self.store.stop()


async def run(settings: QueueSettings, stop: asyncio.Event) -> None:
    desk = desk_security(settings)
    desk_tokens = grpcsecurity.checked_tokens(desk)  # before connecting anywhere: no AgentDesk open to strangers
    config = load_config(settings.config)
    runner = QueueRunner(settings, config, stop)
    server = grpcsecurity.server(desk_tokens)  # the client credential check
    dgrpc.add_AgentDeskServicer_to_server(AgentDesk(runner.commands, runner.pushes, runner.status), server)
    try:
        await runner.start()
        desk_port = grpcsecurity.add_port(server, desk)  # TLS when configured
        await server.start()
        mark_ready(SERVICE, queues=len(config.queues), agents=len(config.agents), restored=runner.restored, desk_port=desk_port)
        await runner.loop(stop)
        await runner.flush(force=True)  # the last snapshot: the next start reads nothing again
    except StoppedWhileRetrying as exc:
        # The last snapshot holds the decisions not published yet: the next start publishes them.
        log.error("stopped_with_decisions_unpublished", error=str(exc))
    finally:
        await server.stop(grace=1.0)
        await runner.stop()
        st = runner.stats
        log.info(
            "queue_stopped",
            snapshots=st["snapshots"],
            snapshot_max_bytes=st["max_bytes"],
            snapshot_max_ms=round(st["max_ms"], 2),
            snapshot_mean_ms=round(st["total_ms"] / st["snapshots"], 2) if st["snapshots"] else 0,
        )
