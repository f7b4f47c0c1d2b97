"""The queue service: in-house ACD on Kafka (consumer group "queue").

call.queued  → core.acd offers the call to its queue: a free agent → call.routed
               (kind AGENT, price "0", the trace extended with every agent
               considered); none free → the call waits (FIFO); the queue cannot
               serve it at all (unknown queue, no agents, no agent with the
               needed skills) → call.rejected.
call.ended   → by outcome (CallEnded.attempt says which offer it is about; a
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
                 hung up): the call is over; the agent's slot is freed.
               Either way the freed slot goes to the oldest waiting call it can
               take (call.routed). A call that ends while still waiting (the
               caller hung up) → call.rejected `abandoned`.
a periodic sweep (sweep_interval_s) → waiting calls older than the queue's
               max_wait_s → call.rejected `abandoned`.

Skeleton limits, on purpose: the ACD state (agents' active calls, waiting
lists, seen call ids) is in memory in this one process, so a restart forgets
waiting calls and busy agents, and two instances would each think they own all
agents. Issues #3/#6 make it durable (changelog-backed state) and partitioned.
Redeliveries while the process lives are deduplicated by call id in core.acd.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from aiokafka import ConsumerRecord
from google.protobuf.message import Message

from switchboard.core.acd import Abandoned, Acd, Assignment, WaitingCall, caller_needs
from switchboard.core.config import RoutingConfig, load_config
from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, consume
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.topics import CALL_ENDED, CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, Topic
from switchboard.services.queue.settings import QueueSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SERVICE = "queue"


def agent_destination(agent_id: str, destination: str) -> str:
    return destination or f"agent:{agent_id}"


def _decision_fields(queued: pb.CallQueued) -> dict:
    """What the queue's decision event (call.routed / call.rejected) carries over from the queued call."""
    return dict(
        event_id=codec.new_id(),
        call_id=queued.call_id,
        occurred_at=codec.now_ts(),
        call_started_at=queued.call_started_at,
        campaign_id=queued.campaign_id,
        publisher_id=queued.publisher_id,
        routing_started_at=queued.routing_started_at,
    )


def routed_event(assignment: Assignment, queued: pb.CallQueued) -> pb.CallRouted:
    """call.routed for an agent: the router's trace so far plus one entry per agent considered.

    The attempt is the call's current offer number (the router's hand-off
    attempt, +1 for every agent that did not take the call).
    """
    agent, queue, attempt = assignment.agent, assignment.queue, assignment.call.attempt
    trace = pb.DecisionTrace()
    trace.CopyFrom(queued.trace)
    for c in assignment.considered:
        winner = c.agent_id == agent.id
        trace.entries.append(
            pb.TraceEntry(
                target_id=c.agent_id,
                kind=pb.TARGET_KIND_AGENT,
                tier_index=queued.tier_index,
                attempt=attempt,
                eligible=c.eligible,
                excluded_by=c.excluded_by,
                detail=f"{queue.strategy}; waited {assignment.waited_s:.1f}s" if winner else c.detail,
                winner=winner,
            )
        )
    trace.winning_tier = queued.tier_index
    trace.winning_attempt = attempt
    for tried, why in assignment.call.tried.items():
        trace.notes.append(f"queue {queue.id}: agent {tried} did not take the call ({why})")
    trace.notes.append(f"queue {queue.id}: offer {attempt} to agent {agent.id} by {queue.strategy} after {assignment.waited_s:.1f}s")
    return pb.CallRouted(
        **_decision_fields(queued),
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
    )


def rejected_event(queued: pb.CallQueued, reason: str, detail: str, announcement: str) -> pb.CallRejected:
    trace = pb.DecisionTrace()
    trace.CopyFrom(queued.trace)
    trace.winning_tier = -1
    trace.notes.append(f"queue {queued.queue_id}: {reason} ({detail})")
    return pb.CallRejected(
        **_decision_fields(queued), reason=reason, detail=detail, announcement=announcement, trace=trace
    )


# Outcomes of an agent offer after which the call is offered to the next agent (the agent did not take it).
REOFFER_OUTCOMES = {
    pb.CALL_OUTCOME_NO_ANSWER: "no_answer",
    pb.CALL_OUTCOME_DECLINED: "declined",
    pb.CALL_OUTCOME_BUSY: "busy",
    pb.CALL_OUTCOME_FAILED: "failed",
}


class QueueService:
    def __init__(self, settings: QueueSettings, config: RoutingConfig, bus: EventBus, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.bus = bus
        self.acd = Acd.from_config(config)
        self.clock = clock
        self.max_attempts = {c.id: c.routing.max_attempts for c in config.campaigns}

    async def handle(self, topic: Topic, event: Message, record: ConsumerRecord) -> None:
        if topic is CALL_QUEUED:
            await self.on_queued(event)  # type: ignore[arg-type]
        elif topic is CALL_ENDED:
            await self.on_ended(event)  # type: ignore[arg-type]

    async def on_queued(self, ev: pb.CallQueued) -> None:
        now = self.clock()
        queue = self.acd.queues.get(ev.queue_id)
        needs = caller_needs(queue, ev.answers) if queue else {}
        call = WaitingCall(
            ev.call_id, ev.queue_id, now, needs, payload=ev, attempt=ev.attempt or 1, max_attempts=self.max_attempts.get(ev.campaign_id)
        )
        offer = self.acd.offer(call, now)
        if offer.status == "assigned":
            assert offer.assignment is not None
            await self._route(offer.assignment)
        elif offer.status == "waiting":
            log.info("call_waiting", call_id=ev.call_id, queue=ev.queue_id, position=offer.position)
        elif offer.status == "duplicate":
            log.info("duplicate_ignored", call_id=ev.call_id, queue=ev.queue_id)
        else:
            await self.bus.publish(CALL_REJECTED, rejected_event(ev, offer.reason, offer.detail, self.settings.rejected_announcement))
            log.info("call_rejected", call_id=ev.call_id, queue=ev.queue_id, reason=offer.reason)

    async def on_ended(self, ev: pb.CallEnded) -> None:
        why = REOFFER_OUTCOMES.get(ev.outcome)
        if why is not None:
            await self._offer_failed(ev, why)
            return
        current = self.acd.call_of(ev.call_id)
        if current is not None and ev.attempt and ev.attempt < current.attempt:
            log.info("stale_outcome_ignored", call_id=ev.call_id, attempt=ev.attempt, current=current.attempt)
            return
        release = self.acd.release(ev.call_id, self.clock())
        if release.agent_id:
            log.info("agent_released", call_id=ev.call_id, agent=release.agent_id)
        if release.abandoned:
            await self._abandon(release.abandoned)
        for assignment in release.assignments:
            await self._route(assignment)

    async def _offer_failed(self, ev: pb.CallEnded, why: str) -> None:
        r = self.acd.offer_failed(ev.call_id, self.clock(), attempt=ev.attempt, why=why)
        if r.status == "ignored":
            # Not on an agent here: a redelivery, a report about an older offer, a call waiting
            # in a queue (nothing was offered) or a buyer call (the router's business).
            log.info("outcome_ignored", call_id=ev.call_id, outcome=why, attempt=ev.attempt, reason=r.reason)
            return
        log.info("agent_did_not_take_call", call_id=ev.call_id, agent=r.agent_id, outcome=why, next_attempt=r.call.attempt if r.call else 0)
        if r.status == "assigned":
            assert r.assignment is not None
            await self._route(r.assignment)
        elif r.status == "waiting":
            log.info("call_requeued", call_id=ev.call_id, queue=r.call.queue_id if r.call else "", attempt=r.call.attempt if r.call else 0)
        elif r.status == "rejected":
            assert r.call is not None
            event = rejected_event(r.call.payload, r.reason, r.detail, self.settings.rejected_announcement)
            await self.bus.publish(CALL_REJECTED, event)
            log.info("call_rejected", call_id=ev.call_id, reason=r.reason)
        for assignment in r.others:
            await self._route(assignment)

    async def sweep(self) -> None:
        for abandoned in self.acd.expire(self.clock()):
            await self._abandon(abandoned)

    async def _route(self, assignment: Assignment) -> None:
        await self.bus.publish(CALL_ROUTED, routed_event(assignment, assignment.call.payload))
        log.info(
            "call_routed",
            call_id=assignment.call.call_id,
            queue=assignment.queue.id,
            agent=assignment.agent.id,
            attempt=assignment.call.attempt,
            waited_s=round(assignment.waited_s, 3),
        )

    async def _abandon(self, abandoned: Abandoned) -> None:
        queue = abandoned.queue
        if abandoned.why == "max_wait":
            detail = f"waited {abandoned.waited_s:.1f}s in queue {queue.id} (max_wait_s {queue.max_wait_s})"
        else:
            detail = f"the caller hung up after {abandoned.waited_s:.1f}s in queue {queue.id}"
        event = rejected_event(abandoned.call.payload, "abandoned", detail, self.settings.abandoned_announcement)
        await self.bus.publish(CALL_REJECTED, event)
        log.info("call_abandoned", call_id=abandoned.call.call_id, queue=queue.id, why=abandoned.why)


async def _sweeper(service: QueueService, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            try:
                await service.sweep()
            except Exception:  # keep sweeping; the abandon event that failed is lost (in-memory skeleton)
                log.exception("sweep_failed")


async def run(settings: QueueSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    bus = EventBus(settings.kafka, SERVICE)
    await bus.start()
    service = QueueService(settings, config, bus)
    sweeper = asyncio.create_task(_sweeper(service, settings.sweep_interval_s, stop))
    try:
        await consume(
            bus,
            [CALL_QUEUED, CALL_ENDED],
            service.handle,
            settings.group_id,
            stop,
            on_ready=lambda: mark_ready(SERVICE, queues=len(config.queues), agents=len(config.agents)),
        )
    finally:
        stop.set()
        await sweeper
        await bus.stop()
        log.info("queue_stopped")
