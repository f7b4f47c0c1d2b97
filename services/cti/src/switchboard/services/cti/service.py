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

Every CtiEvent carries the attempt (offer) it is about, and the caller's earlier calls (`history`,
newest first; history.py, core.history): cti also reads call.started, call.rejected and
agent.events to keep each caller's calls (start, offers, outcome, billable, rejection reason, the
agent's disposition) and writes each changed history to cti.history before it commits its input.

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
import contextlib
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeAlias, TypeVar

import structlog
from aiokafka import ConsumerRecord

from switchboard.core import history, sharing
from switchboard.core.config import Buyer
from switchboard.core.history import HistoryPolicy
from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import EventBus, consume, ensure_topics
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.retry import retrying
from switchboard.platform.topics import (
    AGENT_EVENTS,
    CALL_DISPOSITIONS,
    CALL_ENDED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALL_STARTED,
    CTI_EVENTS,
    CTI_HISTORY,
    Topic,
)
from switchboard.services.cti.api import CtiApi, api_tokens
from switchboard.services.cti.history import CallerHistories, now_utc
from switchboard.services.cti.history import load as load_histories
from switchboard.services.cti.history import write as write_history
from switchboard.services.cti.lookup import CrmLookups
from switchboard.services.cti.settings import CtiSettings
from switchboard.services.cti.webhooks import Webhooks, webhook_signers
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SERVICE = "cti"
_ID_NAMESPACE = uuid.UUID("6f1c2b1e-8f4a-4c55-9d1e-2a7c3b5e9f10")  # fixed: cti event ids must be stable

# What cti reads: the offers made (screen pops) and how they ended (wrap-ups); the calls' starts and
# rejections and the agents' dispositions for the caller history.
Input: TypeAlias = pb.CallRouted | pb.CallEnded | pb.CallStarted | pb.CallRejected | pb.AgentEvent | pb.CallDisposition
INPUTS: tuple[Topic[Input], ...] = (CALL_ROUTED, CALL_ENDED, CALL_STARTED, CALL_REJECTED, AGENT_EVENTS, CALL_DISPOSITIONS)


def cti_event_id(source_topic: str, source_event_id: str) -> str:
    return uuid.uuid5(_ID_NAMESPACE, f"{source_topic}/{source_event_id}").hex


def _attempt(ev: pb.CallRouted | pb.CallEnded) -> int:
    return ev.attempt or 1


def _context_key(call_id: str, attempt: int) -> str:
    return f"{call_id}#{attempt}"


# Events that change an entry the history must already have (the call is known by its start or offer).
Late: TypeAlias = pb.CallRejected | pb.AgentEvent | pb.CallDisposition


def _fold(h: pb.CallerHistory, event: Late) -> None:
    if isinstance(event, pb.CallRejected):
        history.on_rejected(h, event)
    elif isinstance(event, pb.CallDisposition):  # a CRM's write-back (api.py)
        history.on_crm_disposition(h, event)
    else:
        history.on_disposition(h, event.call_id, event.disposition, event.note)


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
        strategy=ev.strategy,
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
    def __init__(
        self,
        settings: CtiSettings,
        bus: EventBus,
        stop: asyncio.Event | None = None,
        histories: CallerHistories | None = None,
        clock: Callable[[], datetime] = now_utc,
        lookups: CrmLookups | None = None,
        buyers: Mapping[str, Buyer] | None = None,
    ) -> None:
        self.bus = bus
        self.stop = stop  # ends the retries of a failing publish (StoppedWhileRetrying: the input is not committed)
        self.context: _Bounded[pb.CtiEvent] = _Bounded(settings.context_capacity)
        self.seen: _Bounded[None] = _Bounded(settings.dedupe_capacity)
        self.histories = histories or CallerHistories(HistoryPolicy(settings.history_retention_days, settings.history_max_calls))
        self.clock = clock
        self.lookups = lookups  # screen pop enrichment from the CRMs (lookup.py)
        self.buyers = buyers or {}  # what each buyer may see (core.sharing): unknown buyers see the least
        # Rejections and dispositions read before their call's start or offer (_history_only), by call id.
        self.early: OrderedDict[str, list[Late]] = OrderedDict()
        self.early_capacity = settings.context_capacity

    async def handle(self, topic: Topic[Input], event: Input, record: ConsumerRecord) -> None:
        source = f"{topic.name}/{event.event_id}"
        if source in self.seen:
            log.info("duplicate_ignored", topic=topic.name, event_id=event.event_id)
            return
        # The topic's message type: call.routed carries CallRouted, call.ended CallEnded, ...
        if isinstance(event, pb.CallRouted | pb.CallEnded):
            await self._cti_event(event, record)
        else:
            await self._history_only(event)
        self.seen.put(source, None)

    async def _history_only(self, event: pb.CallStarted | Late) -> None:
        """Events that make no CTI event of their own: they only change the caller's history."""
        if isinstance(event, pb.CallStarted):
            if not event.caller.number:
                return  # an anonymous caller has no history
            number = event.caller.number
            history.on_started(self.histories.of(number), event)
            self._noted(event.call_id, number)
            await self._write(number)
            return
        if isinstance(event, pb.AgentEvent) and not (
            # An agent leaving wrap-up with a disposition (docs/ACD.md): the disposition of that call.
            event.disposition and event.call_id and event.previous_state == pb.AGENT_STATE_WRAP_UP
        ):
            return
        found = self.histories.caller(event.call_id)
        if found is None:
            # The topics are not ordered against each other: this may come before the call's start or offer.
            # Held (bounded) until the call is seen; a call never seen (anonymous, or long expired) drops it.
            self.early.setdefault(event.call_id, []).append(event)
            self.early.move_to_end(event.call_id)
            while len(self.early) > self.early_capacity:
                self.early.popitem(last=False)
            log.info("held_until_call_seen", call_id=event.call_id, topic=type(event).__name__)
            return
        _fold(self.histories.of(found), event)
        await self._write(found)

    def _noted(self, call_id: str, number: str) -> None:
        """The call belongs to `number`: note it, and fold in what came for it before it was known."""
        self.histories.note_call(call_id, number)
        for event in self.early.pop(call_id, []):
            _fold(self.histories.of(number), event)

    async def _write(self, number: str) -> None:
        await write_history(self.bus, number, self.histories.keep(number, self.clock()), self.stop)

    async def sweep(self) -> None:
        """Forget the calls past history_retention_days of callers who have not called since."""
        gone, shrunk = self.histories.expired(self.clock())
        for number in gone:
            await write_history(self.bus, number, None, self.stop)
        for number in shrunk:
            await write_history(self.bus, number, self.histories.by_caller.get(number), self.stop)
        self.histories.forget_dropped()
        if gone or shrunk:
            log.info("caller_histories_expired", forgotten=len(gone), shortened=len(shrunk))

    async def _cti_event(self, event: pb.CallRouted | pb.CallEnded, record: ConsumerRecord) -> None:
        key = _context_key(event.call_id, _attempt(event))
        number: str | None
        if isinstance(event, pb.CallRouted):
            number = event.caller.number or None
            if number is not None:
                history.on_routed(self.histories.of(number), event)
                self._noted(event.call_id, number)
            out = screen_pop(event)
            if self.lookups is not None:
                await self.lookups.enrich(out)  # waits at most the lookups' deadline
            self.context.put(key, out)
        else:
            number = self.histories.caller(event.call_id)
            if number is not None and history.on_ended(self.histories.of(number), event) is None:
                number = None
            out = wrap_up(event, self.context.get(key))
        del out.history[:]
        if number is not None:
            kept = self.histories.keep(number, self.clock())
            out.history.extend(history.earlier(kept, event.call_id))
        # cti.events is read by CRMs and becomes their webhooks: only what the offer's target may see (core.sharing).
        sharing.redact(out, self.buyers)
        await retrying(
            lambda: self.bus.publish(CTI_EVENTS, out),
            "cti_event",
            stop=self.stop,
            retry_max_s=self.bus.kafka.retry_max_s,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        if number is not None:  # after the CTI event: a crash in between re-reads the input and writes it then
            await self._write(number)
        # Only once published: a permanently failed publish is dead-lettered by consume() with the context still here.
        if isinstance(event, pb.CallEnded):
            self.context.pop(key, None)
        log.info(
            "cti_event",
            call_id=event.call_id,
            type=pb.CtiEventType.Name(out.type),
            attempt=_attempt(event),
            earlier_calls=len(out.history),
        )


async def _sweeper(service: CtiService, every_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if not stop.is_set():
            await service.sweep()


async def run(settings: CtiSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    signers = webhook_signers(config.crm_endpoints, os.environ, str(settings.config))
    # Before connecting anywhere: an API without tokens refuses to start.
    api_clients = api_tokens(settings) if settings.api_enabled else None
    await ensure_topics(settings.kafka, [CTI_HISTORY])  # private to cti: created by it
    bus = EventBus(settings.kafka, SERVICE)
    await bus.start()
    lookups = CrmLookups(config, signers)
    service = CtiService(settings, bus, stop, lookups=lookups, buyers={b.id: b for b in config.buyers})
    api = (
        CtiApi(settings, api_clients, bus, lambda call_id: service.histories.caller(call_id) is not None)
        if api_clients is not None
        else None
    )
    sweeper: asyncio.Task[None] | None = None
    # CRM webhooks: their own consumers beside the screen pops (webhooks.py); ready once they read too.
    crm = Webhooks.start(config.crm_endpoints, signers, settings, bus, stop)
    try:
        # Every caller's past first: a screen pop must not miss the calls of before a restart.
        await load_histories(settings.kafka, service.histories, f"{SERVICE}-history")
        await service.sweep()
        sweeper = asyncio.create_task(_sweeper(service, settings.history_sweep_interval_s, stop))
        ready: dict[str, object] = {}
        if api is not None:
            ready["api_port"] = await api.start()
        await consume(
            bus,
            INPUTS,
            service.handle,
            settings.group_id,
            stop,
            on_ready=lambda: crm.when_started(lambda: mark_ready(SERVICE, **ready)),
        )
    finally:
        stop.set()
        try:
            if api is not None:
                await api.stop()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper  # an exception of the sweep itself is raised here, not swallowed
        finally:
            try:
                await crm.stop()  # raises the error of a delivery that failed
            finally:
                await lookups.close()
                await bus.stop()
                log.info("cti_stopped")
