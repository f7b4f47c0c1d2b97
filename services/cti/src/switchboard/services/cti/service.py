"""The cti service: turns routing and call-end events into CRM-facing cti.events (group "cti").

call.routed → CTI_EVENT_TYPE_CALL_ROUTED, the screen pop: caller, IVR answers,
              campaign, publisher, buyer or agent, destination, price. One per
              call.routed, so one per offer: a call re-routed after a no-answer
              pops again at the next buyer or agent (attempt 2, 3, ...).
call.ended  → CTI_EVENT_TYPE_CALL_ENDED: outcome and connected seconds, with the
              context of the routed event of the same offer (CallEnded.attempt)
              when this process saw it. One per call.ended, so one per failed
              offer too (NO_ANSWER of attempt 1, then the end of attempt 2).

The context of routed calls is kept per (call, attempt) in a bounded in-memory
map (oldest evicted first): the routed event of attempt 2 may be read before
the call.ended of attempt 1 (the topics are not ordered against each other),
and the wrap-up of attempt 1 must not carry attempt 2's buyer. A call.ended
whose routed event was never seen here (evicted, or read before call.routed)
still produces CALL_ENDED, with only what call.ended carries. Events without an
attempt (0, from producers that predate re-routing) count as attempt 1.

Every CtiEvent carries the attempt (offer) it is about.

A publish that fails for the broker's sake (down, timeout, not the leader) is
retried with backoff (platform.retry) while the input record is held: a broker
hiccup delays screen pops, it does not dead-letter them. Only input that cannot
make an event (undecodable, or an event the broker refuses for its size) is
dead-lettered.

Redeliveries: source event ids are remembered (bounded) and a repeat is
dropped. The CTI event id is derived from the source event id (uuid5), so that
even a repeat published after a restart carries the same id and CRMs can
dedupe on it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import OrderedDict
from typing import TypeAlias, TypeVar

import structlog
from aiokafka import ConsumerRecord

from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import EventBus, consume
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.retry import retrying
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED, CTI_EVENTS, Topic
from switchboard.services.cti.settings import CtiSettings
from switchboard.services.cti.webhooks import Webhooks, webhook_signers
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SERVICE = "cti"
_ID_NAMESPACE = uuid.UUID("6f1c2b1e-8f4a-4c55-9d1e-2a7c3b5e9f10")  # fixed: cti event ids must be stable

# What cti reads: the offers made (screen pops) and how they ended (wrap-ups).
Input: TypeAlias = pb.CallRouted | pb.CallEnded
INPUTS: tuple[Topic[Input], ...] = (CALL_ROUTED, CALL_ENDED)


def cti_event_id(source_topic: str, source_event_id: str) -> str:
    return uuid.uuid5(_ID_NAMESPACE, f"{source_topic}/{source_event_id}").hex


def _attempt(ev: Input) -> int:
    return ev.attempt or 1


def _context_key(call_id: str, attempt: int) -> str:
    return f"{call_id}#{attempt}"


def screen_pop(ev: pb.CallRouted) -> pb.CtiEvent:
    out = pb.CtiEvent(
        event_id=cti_event_id(CALL_ROUTED.name, ev.event_id),
        call_id=ev.call_id,
        occurred_at=codec.now_ts(),
        type=pb.CTI_EVENT_TYPE_CALL_ROUTED,
        campaign_id=ev.campaign_id,
        publisher_id=ev.publisher_id,
        caller=ev.caller,
        answers=ev.answers,
        kind=ev.kind,
        buyer_id=ev.buyer_id,
        agent_id=ev.agent_id,
        queue_id=ev.queue_id,
        destination=ev.destination,
        price=ev.price,
        attempt=_attempt(ev),
    )
    return out


def wrap_up(ev: pb.CallEnded, context: pb.CtiEvent | None) -> pb.CtiEvent:
    out = pb.CtiEvent()
    if context is not None:
        out.CopyFrom(context)
    out.event_id = cti_event_id(CALL_ENDED.name, ev.event_id)
    out.call_id = ev.call_id
    out.occurred_at.CopyFrom(codec.now_ts())
    out.type = pb.CTI_EVENT_TYPE_CALL_ENDED
    out.outcome = ev.outcome
    out.connected_seconds = ev.connected_seconds
    # call.ended names who was on the call; it wins over the routed context.
    if ev.buyer_id:
        out.buyer_id = ev.buyer_id
    if ev.agent_id:
        out.agent_id = ev.agent_id
    if not out.kind:
        out.kind = pb.TARGET_KIND_AGENT if ev.agent_id else pb.TARGET_KIND_BUYER if ev.buyer_id else pb.TARGET_KIND_UNSPECIFIED
    out.attempt = _attempt(ev)
    return out


V = TypeVar("V")


class _Bounded(OrderedDict[str, V]):
    """An insertion-ordered map that evicts its oldest entries past `capacity`."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: str, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


class CtiService:
    def __init__(self, settings: CtiSettings, bus: EventBus, stop: asyncio.Event | None = None) -> None:
        self.bus = bus
        self.stop = stop  # ends the retries of a failing publish (StoppedWhileRetrying: the input is not committed)
        self.context: _Bounded[pb.CtiEvent] = _Bounded(settings.context_capacity)
        self.seen: _Bounded[None] = _Bounded(settings.dedupe_capacity)

    async def handle(self, topic: Topic[Input], event: Input, record: ConsumerRecord) -> None:
        source = f"{topic.name}/{event.event_id}"
        if source in self.seen:
            log.info("duplicate_ignored", call_id=event.call_id, topic=topic.name, event_id=event.event_id)
            return
        key = _context_key(event.call_id, _attempt(event))
        # The topic's message type: call.routed carries CallRouted, call.ended CallEnded.
        if isinstance(event, pb.CallRouted):
            out = screen_pop(event)
            self.context.put(key, out)
        else:
            out = wrap_up(event, self.context.get(key))
        await retrying(
            lambda: self.bus.publish(CTI_EVENTS, out),
            "cti_event",
            stop=self.stop,
            retry_max_s=self.bus.kafka.retry_max_s,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        # Only once published: a permanently failed publish is dead-lettered by consume() with the context still here.
        self.seen.put(source, None)
        if isinstance(event, pb.CallEnded):
            self.context.pop(key, None)
        log.info("cti_event", call_id=event.call_id, type=pb.CtiEventType.Name(out.type), attempt=_attempt(event))


async def run(settings: CtiSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    signers = webhook_signers(config.crm_endpoints, os.environ, str(settings.config))
    bus = EventBus(settings.kafka, SERVICE)
    await bus.start()
    service = CtiService(settings, bus, stop)
    # CRM webhooks: their own consumers beside the screen pops (webhooks.py); ready once they read too.
    crm = Webhooks.start(config.crm_endpoints, signers, settings, bus, stop)
    try:
        await consume(
            bus, INPUTS, service.handle, settings.group_id, stop, on_ready=lambda: crm.when_started(lambda: mark_ready(SERVICE))
        )
    finally:
        stop.set()
        try:
            await crm.stop()
        finally:
            await bus.stop()
            log.info("cti_stopped")
