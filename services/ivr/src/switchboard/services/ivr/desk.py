"""The calls of one ivr instance, whichever edge drives them (gRPC CallControl or the TwiML webhook).

`CallDesk` holds the per-call state and publishes the events; the gRPC
servicer (service.py) and the TwiML webhook (twiml.py) are thin adapters over
it. Its methods take and return the CallControl messages (call_control.proto)
and refuse bad requests with `CallError(code, message)`: the gRPC adapter
aborts with that status, the webhook answers with a spoken error.

Flow of one call (the table of outcomes is in service.py's module doc):
  start_call     → dialed number → campaign; caller facts (core.caller);
                   call.started; screening (core.screening): blocked,
                   invalid_number, duplicate (duplicate_window, state in
                   ivr.callers) → call.rejected at once. A campaign with an
                   IVR flow returns the flow's first prompt.
  submit_input   → the caller's digits/speech to the current prompt (core.ivr);
                   returns the next prompt or the end of the flow: qualified →
                   ivr.completed with the flow's answers; disqualified →
                   call.rejected `disqualified` (detail: the end's reason) with
                   the end node's prompt as the announcement.
  submit_answers → call data from the edge (its own IVR, CRM lookups); with
                   complete=true emits ivr.completed — refused for a campaign
                   that runs an IVR flow (the flow decides when it is complete).
  await_routing, report_outcome: see service.py.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import grpc
import structlog
from aiokafka.errors import KafkaError
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core import announce, reasons
from switchboard.core import ivr as flows
from switchboard.core.call_end import NOT_TAKEN, meaning_of
from switchboard.core.callbacks import CallbackTimeError, callback_time, local_text
from switchboard.core.caller import CallerFacts, caller_facts, normalize_number, normalize_zip
from switchboard.core.config import IvrFlow, IvrMenuNode, IvrSetLanguageNode, RoutingConfig
from switchboard.core.decisions import DecisionHeader
from switchboard.core.screening import duplicate, duplicate_key, screen
from switchboard.platform import codec
from switchboard.platform.kafka import EventBus
from switchboard.platform.logging import mask_text
from switchboard.platform.topics import (
    CALL_ENDED,
    CALL_REJECTED,
    CALL_STARTED,
    CALLBACK_REQUESTED,
    IVR_COMPLETED,
    LIVE_CALLS,
    CallEvent,
    TerminalEvent,
    Topic,
)
from switchboard.services.ivr.callers import CallerMemory
from switchboard.services.ivr.metrics import ANNOUNCEMENTS, CALLBACKS_REQUESTED, CALLS_STARTED, PLACEMENTS_SENT
from switchboard.services.ivr.settings import IvrSettings
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=CallEvent)

_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
MAX_ANSWER_KEY = 64
MAX_ANSWER_VALUE = 1024
MAX_INPUT = 1024

_EXPECTS = {
    "digits": cc.INPUT_KIND_DIGITS,
    "speech": cc.INPUT_KIND_SPEECH,
    "digits_or_speech": cc.INPUT_KIND_DIGITS_OR_SPEECH,
}
_INPUT_KINDS: dict[int, flows.InputKind] = {cc.INPUT_KIND_DIGITS: "digits", cc.INPUT_KIND_SPEECH: "speech"}


class CallError(Exception):
    """A request the desk refuses: `code` says how (the gRPC status), `message` what to fix."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def _first_set(events: list[asyncio.Event], timeout_s: float) -> None:
    """Wait until one of `events` is set, at most `timeout_s`."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class CallState:
    call_id: str
    dialed_number: str
    campaign_id: str
    publisher_id: str
    caller: CallerFacts
    started_at: Timestamp
    started_mono: float
    answers: dict[str, str] = field(default_factory=dict)
    completed: bool = False  # ivr.completed was published
    result: cc.RoutingResult | None = None  # the current decision; None while (re-)routing is pending
    decided: asyncio.Event = field(default_factory=asyncio.Event)  # set while `result` is not None
    no_offer: asyncio.Event = field(default_factory=_set_event)  # set while no ROUTED offer is outstanding
    reported_attempt: int = 0  # the highest offer an outcome was reported for: older call.routed are stale
    last_report: tuple[int, int] | None = None  # (outcome, connected_seconds) of the last ReportOutcome
    start_reject: str = ""  # the reason StartCall refused the call (reasons.EDGE_REASONS: unknown_number, blocked, ...)
    flow: IvrFlow | None = None  # the campaign's IVR flow, when it has one
    flow_state: flows.IvrState | None = None  # where the caller is in it
    flow_busy: bool = False  # a submit_input is publishing the flow's end: a concurrent one must not publish too
    # Durable state (ivr.calls, docs/IVR.md "Restarts and replicas"):
    version: int = 0  # of the last LiveCall written or read for this call; 0: never written
    saved_decision: tuple[int, int] | None = None  # (status, attempt) of the decision last written
    decision_from: dict[str, int] = field(default_factory=dict)  # "<topic>/<partition>" → offset a decision can come from
    pending_since: float = 0.0  # wall clock (epoch s) when decision_from was taken
    edge: str = ""  # which edge started the call: "twiml" (the webhook) or "" (gRPC CallControl)
    # The ACD (docs/ACD.md "What the caller hears"): the newest queue.status of the call, the event id of the
    # last one answered as WAITING (a caller never hears the same status twice), and whether a newer one waits.
    status: pb.QueueStatus | None = None
    status_said: str = ""
    status_new: asyncio.Event = field(default_factory=asyncio.Event)
    # Virtual hold: the caller accepted a callback and hung up; the queue keeps the place, the call stays live
    # (out of the TTL sweep) and `hold_instance` places its callbacks (WatchCallbacks, the CPaaS REST API).
    virtual_hold: bool = False
    hold_instance: str = ""
    hold_queue_id: str = ""

    def decide(self, result: cc.RoutingResult) -> bool:
        """Take a routing decision if it is newer than what the call has; False when it is stale or a repeat."""
        current = self.result
        if current is not None and current.status == cc.ROUTING_STATUS_REJECTED:
            return False  # rejected is final
        if result.status == cc.ROUTING_STATUS_ROUTED:
            if result.attempt <= self.reported_attempt:
                return False  # an offer the edge already reported on (redelivered or late)
            if current is not None and result.attempt <= current.attempt:
                return False  # the same offer again, or an older one
        else:
            result.attempt = max(self.reported_attempt, current.attempt if current else 0)  # offers so far
        self.result = result
        self.decided.set()
        if result.status == cc.ROUTING_STATUS_ROUTED:
            self.no_offer.clear()
        else:
            self.no_offer.set()
        return True

    def offer_done(self, attempt: int) -> None:
        """The edge reported a re-routable outcome for offer `attempt`: wait for a newer decision."""
        self.reported_attempt = max(self.reported_attempt, attempt)
        self.result = None
        self.decided.clear()
        self.no_offer.set()

    # -- the LiveCall record of ivr.calls ---------------------------------------------------------
    def record(self) -> pb.LiveCall:
        """This state as the LiveCall record written to ivr.calls (version as it is: the writer bumps it)."""
        rec = pb.LiveCall(
            event_id=codec.new_id(),
            call_id=self.call_id,
            occurred_at=codec.now_ts(),
            version=self.version,
            started_at=self.started_at,
            dialed_number=self.dialed_number,
            campaign_id=self.campaign_id,
            publisher_id=self.publisher_id,
            caller=caller_proto(self.caller),
            answers=self.answers,
            completed=self.completed,
            start_reject=self.start_reject,
            reported_attempt=self.reported_attempt,
            virtual_hold=self.virtual_hold,
            hold_instance=self.hold_instance,
            hold_queue_id=self.hold_queue_id,
            hold_edge=self.edge,
        )
        if self.flow_state is not None:
            rec.flow.CopyFrom(pb.LiveIvrFlow(**self.flow_state.to_dict()))
        if self.result is not None:
            r = self.result
            rec.decision.CopyFrom(
                pb.LiveDecision(
                    rejected=r.status == cc.ROUTING_STATUS_REJECTED,
                    kind=r.kind,
                    buyer_id=r.buyer_id,
                    agent_id=r.agent_id,
                    destination=r.destination,
                    price=r.price,
                    attempt=r.attempt,
                    billable_after_s=r.billable_after_s,
                    reason=r.reason,
                    announcement=r.announcement,
                    callback_attempt=r.callback_attempt,
                )
            )
        else:
            rec.decision_from.update(self.decision_from)
        if self.last_report is not None:
            rec.last_outcome, rec.last_connected_seconds = self.last_report  # type: ignore[assignment]
        return rec

    @staticmethod
    def from_record(rec: pb.LiveCall, flows_by_id: dict[str, IvrFlow]) -> CallState:
        """A call read back from ivr.calls (started on another instance, or here before a restart)."""
        facts = caller_facts(rec.caller.number)
        if rec.caller.zip:
            facts = facts.with_zip(rec.caller.zip)
        age_s = max(0.0, (datetime.now(UTC) - rec.started_at.ToDatetime(tzinfo=UTC)).total_seconds())
        call = CallState(
            call_id=rec.call_id,
            dialed_number=rec.dialed_number,
            campaign_id=rec.campaign_id,
            publisher_id=rec.publisher_id,
            caller=facts,
            started_at=rec.started_at,
            started_mono=time.monotonic() - age_s,  # the TTL counts from the call's start, not from the read
        )
        call.update_from(rec, flows_by_id)
        return call

    def update_from(self, rec: pb.LiveCall, flows_by_id: dict[str, IvrFlow]) -> None:
        """Take a newer record's state (in place: AwaitRouting waiters keep waiting on `decided`)."""
        local = self.result  # a decision this instance read that the writer may not have seen yet
        self.version = rec.version
        self.answers = dict(rec.answers)
        if rec.caller.zip and rec.caller.zip != self.caller.zip:
            self.caller = self.caller.with_zip(rec.caller.zip)
        self.completed = rec.completed
        self.start_reject = rec.start_reject
        self.reported_attempt = rec.reported_attempt
        self.last_report = (rec.last_outcome, rec.last_connected_seconds) if rec.last_outcome else None
        self.virtual_hold = rec.virtual_hold
        self.hold_instance = rec.hold_instance
        self.hold_queue_id = rec.hold_queue_id
        self.edge = rec.hold_edge
        if rec.HasField("flow"):
            self.flow = flows_by_id.get(rec.flow.flow_id)
            flow = rec.flow
            self.flow_state = flows.IvrState(
                flow_id=flow.flow_id,
                node=flow.node,
                language=flow.language,
                attempt=flow.attempt,
                answers=dict(flow.answers),
                steps=flow.steps,
                done=flow.done,
                qualified=flow.qualified,
                reason=flow.reason,
            )
            if self.flow is None:  # the config changed under the call: it can still be routed and ended
                self.flow_state = None
        self.decision_from = dict(rec.decision_from)
        self.pending_since = rec.occurred_at.ToNanoseconds() / 1e9  # written right after decision_from was taken
        self.result = None
        self.saved_decision = None
        if rec.HasField("decision"):
            d = rec.decision
            self.result = cc.RoutingResult(
                call_id=self.call_id,
                status=cc.ROUTING_STATUS_REJECTED if d.rejected else cc.ROUTING_STATUS_ROUTED,
                kind=d.kind,
                buyer_id=d.buyer_id,
                agent_id=d.agent_id,
                destination=d.destination,
                price=d.price,
                attempt=d.attempt,
                billable_after_s=d.billable_after_s,
                reason=d.reason,
                announcement=d.announcement,
                callback_attempt=d.callback_attempt,
            )
            self.saved_decision = (self.result.status, self.result.attempt)
        if self.result is not None:
            self.decided.set()
        else:
            self.decided.clear()
        if self.result is not None and self.result.status == cc.ROUTING_STATUS_ROUTED:
            self.no_offer.clear()
        else:
            self.no_offer.set()
        if local is not None:
            self.decide(local)


def caller_proto(facts: CallerFacts) -> pb.Caller:
    return pb.Caller(number=facts.number, state=facts.state, zip=facts.zip, area_code=facts.area_code, timezone=facts.timezone)


def result_from_event(event: TerminalEvent) -> cc.RoutingResult:
    if isinstance(event, pb.CallRouted):
        return cc.RoutingResult(
            call_id=event.call_id,
            status=cc.ROUTING_STATUS_ROUTED,
            kind=event.kind,
            buyer_id=event.buyer_id,
            agent_id=event.agent_id,
            destination=event.destination,
            price=event.price,
            attempt=event.attempt or 1,  # producers that predate attempts made one offer
            billable_after_s=event.billable_after_s,
            callback_attempt=event.callback_attempt,
        )
    assert isinstance(event, pb.CallRejected)
    return cc.RoutingResult(
        call_id=event.call_id,
        status=cc.ROUTING_STATUS_REJECTED,
        reason=event.reason,
        announcement=event.announcement,
    )


def reroutable(result: cc.RoutingResult, outcome: pb.CallOutcome, connected_seconds: int, config: RoutingConfig) -> bool:
    """Whether `outcome` of the offer `result` leaves the call open for a next offer (core.call_end, service.py's table).

    The router and the queue decide with the same rule. A buyer this config does not know has no billable
    threshold here: its hang-up keeps the call open, and the router (which routed to it) answers with the
    next decision.
    """
    if result.kind == pb.TARGET_KIND_AGENT:
        return meaning_of(outcome, connected_seconds, None, to_agent=True).reroutable
    buyer = next((b for b in config.buyers if b.id == result.buyer_id), None)
    return meaning_of(outcome, connected_seconds, buyer.billable_after_s if buyer else None).reroutable


def prompt_proto(call_id: str, flow: IvrFlow, step: flows.IvrStep) -> cc.IvrPrompt:
    """The CallControl form of a flow step: a question to gather, or the end of the flow."""
    if isinstance(step, flows.Finished):
        return cc.IvrPrompt(
            call_id=call_id,
            node=step.node,
            text=step.text,
            language=step.language,
            finished=True,
            qualified=step.qualified,
            reason=step.reason,
        )
    node = flow.nodes[step.node]
    choices: dict[str, str] = {}
    if isinstance(node, IvrMenuNode):
        choices = {key: option if isinstance(option, str) else option.next for key, option in node.options.items()}
    elif isinstance(node, IvrSetLanguageNode):
        choices = {key: option if isinstance(option, str) else option.language for key, option in node.options.items()}
    return cc.IvrPrompt(
        call_id=call_id,
        node=step.node,
        text=step.text,
        language=step.language,
        expects=_EXPECTS[step.expects],
        num_digits=step.num_digits or 0,
        attempt=step.attempt,
        answer_key=getattr(node, "answer_key", None) or "",
        choices=choices,
    )


class CallDesk:
    """The in-memory calls of this instance and the events they publish."""

    def __init__(self, settings: IvrSettings, config: RoutingConfig, bus: EventBus, callers: CallerMemory | None = None) -> None:
        self.settings = settings
        self.config = config
        self.bus = bus
        self.callers = callers or CallerMemory()
        self.flows = {f.id: f for f in config.ivr_flows}
        self.calls: dict[str, CallState] = {}
        # Calls forgotten after their final ReportOutcome → that report, so a retry of it is answered OK.
        self.ended: OrderedDict[str, tuple[int, int]] = OrderedDict()
        # Where the call.routed / call.rejected listener is ("<topic>/<partition>" → next offset); the service
        # sets it. A decision published after a call's ivr.completed lies at or after these positions.
        self.positions: Callable[[], dict[str, int]] = dict
        # Decisions for calls this instance does not know (yet): the call's ivr.calls record may arrive after
        # its call.routed (two topics, no order between them). Bounded like `ended`.
        self.unclaimed: OrderedDict[str, list[cc.RoutingResult]] = OrderedDict()
        self.queues = {q.id: q for q in config.queues}
        # Open WatchCallbacks streams (and in-process placers, e.g. the TwiML outbound caller): each gets
        # every callback due on a call this instance holds, for the edges it places (edge "" = gRPC).
        self.watchers: list[tuple[frozenset[str], asyncio.Queue[cc.CallbackPlacement]]] = []

    # -- helpers -------------------------------------------------------------
    def call(self, call_id: str) -> CallState:
        if not call_id:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "call_id is required")
        call = self.calls.get(call_id)
        if call is None:
            raise CallError(
                grpc.StatusCode.NOT_FOUND, f"unknown call id {call_id!r}: not started on this ivr instance, or already ended"
            )
        return call

    # -- what an edge adapter (twiml.py) may ask about a call -----------------
    def is_live(self, call_id: str) -> bool:
        """The call is on this instance and not reported as ended."""
        return call_id in self.calls

    def offer_outstanding(self, call_id: str) -> bool:
        """The call is live with an offer (ROUTED) no outcome was reported for yet: it may be ringing or bridged."""
        call = self.calls.get(call_id)
        return call is not None and not call.no_offer.is_set()

    async def until_no_offer(self, call_id: str, timeout_s: float) -> bool:
        """Wait at most `timeout_s` until the call's outstanding offer is reported (here, or on another instance
        through ivr.calls) or the call ended; whether it was."""
        call = self.calls.get(call_id)
        if call is None:
            return True
        try:
            await asyncio.wait_for(call.no_offer.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def has_ended(self, call_id: str) -> bool:
        """The call ended here recently (a retried request after its end is answered quietly)."""
        return call_id in self.ended

    def flow_steps(self, call_id: str) -> int:
        """Answers the call's IVR flow has taken so far (0 without a flow)."""
        state = self.call(call_id).flow_state
        return state.steps if state is not None else 0

    def answers_complete(self, call_id: str) -> bool:
        """ivr.completed was published for the call: routing has started."""
        return self.call(call_id).completed

    async def _publish(self, topic: Topic[E], event: E, key: str | None = None) -> None:
        try:
            await self.bus.publish(topic, event, key=key)
        except KafkaError as exc:
            log.error("publish_failed", topic=topic.name, call_id=event.call_id, error=str(exc))
            raise CallError(grpc.StatusCode.UNAVAILABLE, f"could not publish {topic.name}: {exc}; retry") from exc

    def on_terminal(self, topic: Topic[TerminalEvent], event: TerminalEvent) -> None:
        """call.routed / call.rejected from the listener: the call's new decision if it is live and not stale."""
        call = self.calls.get(event.call_id)
        result = result_from_event(event)
        if call is None:
            if event.call_id not in self.ended:
                self.unclaimed.setdefault(event.call_id, []).append(result)
                while len(self.unclaimed) > self.settings.ended_memory:
                    self.unclaimed.popitem(last=False)
            return
        if call.decide(result):
            log.info("routing_result", call_id=event.call_id, topic=topic.name, attempt=result.attempt)
            self._placement_due(call)
        else:
            log.info("routing_result_ignored", call_id=event.call_id, topic=topic.name, attempt=result.attempt)

    # -- ivr.calls: the durable copy of every live call (docs/IVR.md, "Restarts and replicas") -------------
    async def _save(self, call: CallState) -> None:
        """Write the call's state to ivr.calls, so a restarted or another instance can carry on with it."""
        call.version += 1
        if call.result is not None:
            call.saved_decision = (call.result.status, call.result.attempt)
        try:
            await self.bus.publish(LIVE_CALLS, call.record())
        except KafkaError as exc:
            call.version -= 1
            call.saved_decision = None
            log.error("publish_failed", topic=LIVE_CALLS.name, call_id=call.call_id, error=str(exc))
            raise CallError(grpc.StatusCode.UNAVAILABLE, f"could not publish {LIVE_CALLS.name}: {exc}; retry") from exc

    async def _save_end(self, call: CallState, report: tuple[int, int]) -> None:
        """The call is over: its final record (the report, for retries on other instances), then a tombstone.

        Not undone on failure: call.ended is out already. A restarted instance that still finds the call live
        publishes the same call.ended again on the edge's retry (same event id, consumers dedupe).
        """
        call.version += 1
        call.last_report = report
        rec = call.record()
        rec.ended = True
        try:
            await self.bus.publish(LIVE_CALLS, rec)
            await self.bus.tombstone(LIVE_CALLS, call.call_id)
        except KafkaError as exc:
            log.error("publish_failed", topic=LIVE_CALLS.name, call_id=call.call_id, error=str(exc))

    def on_live_call(self, call_id: str, rec: pb.LiveCall | None) -> None:
        """A record of ivr.calls (own or another instance's, at start or live): take it if it is newer."""
        call = self.calls.get(call_id)
        if rec is None:  # tombstone: ended (its final record came first) or expired
            if call is not None and call_id not in self.ended:
                self.calls.pop(call_id, None)
            return
        if call is not None and rec.version <= call.version:
            return  # our own write coming back, or an older one
        if rec.ended:
            self._forget_ended(call_id, (rec.last_outcome, rec.last_connected_seconds))
            return
        if call is None:
            if call_id in self.ended:
                return  # an older record of a call that ended
            call = CallState.from_record(rec, self.flows)
            if time.monotonic() - call.started_mono > self.settings.call_ttl_s:
                return  # expired while no instance ran; the sweep of a running one tombstones such calls
            self.calls[call_id] = call
        else:
            call.update_from(rec, self.flows)
        for result in self.unclaimed.pop(call_id, ()):
            call.decide(result)
        self._placement_due(call)

    def decision_offsets(self, now: float | None = None) -> dict[str, int]:
        """Per "<topic>/<partition>" the lowest offset from which a decision of a live call can still come.

        Calls pending longer than decision_reread_max_age_s do not count: re-reading hours of decisions for calls
        the edge lost would hold up the decisions of new calls after a restart.
        """
        oldest = (time.time() if now is None else now) - self.settings.decision_reread_max_age_s
        low: dict[str, int] = {}
        for call in self.calls.values():
            # A call on virtual hold counts whatever its age: its callback must not be lost to a restart.
            if call.result is None and call.completed and (call.pending_since >= oldest or call.virtual_hold):
                for tp, offset in call.decision_from.items():
                    low[tp] = min(offset, low.get(tp, offset))
        return low

    def _forget_ended(self, call_id: str, report: tuple[int, int]) -> None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            call.no_offer.set()
        self.unclaimed.pop(call_id, None)
        self.ended[call_id] = report
        self.ended.move_to_end(call_id)
        while len(self.ended) > self.settings.ended_memory:
            self.ended.popitem(last=False)

    def _forget(self, call: CallState, report: tuple[int, int]) -> None:
        self._forget_ended(call.call_id, report)

    def sweep(self, now_mono: float) -> list[str]:
        """Forget calls never reported as ended within call_ttl_s (the edge lost them); their ids."""
        stale = [
            cid
            for cid, c in self.calls.items()
            # A call on virtual hold is not idle: its caller waits for the callback (hours, or a chosen time).
            if now_mono - c.started_mono > self.settings.call_ttl_s and not c.virtual_hold
        ]
        for cid in stale:
            del self.calls[cid]
        if stale:
            log.warning("calls_expired", count=len(stale))
        # A call on virtual hold the queue ended (callback_failed, callback_expired, ...): nobody reports on it.
        closed = [
            cid
            for cid, c in self.calls.items()
            if c.virtual_hold and c.result is not None and c.result.status == cc.ROUTING_STATUS_REJECTED
        ]
        for cid in closed:
            self._forget_ended(cid, (pb.CALL_OUTCOME_UNSPECIFIED, 0))
        if closed:
            log.info("virtual_holds_closed", count=len(closed))
        return stale + closed

    def _set_zip(self, call: CallState, answers: dict[str, str]) -> None:
        """A `zip` answer also fills the caller's ZIP (buyer filters and pings use Caller.zip)."""
        if "zip" in answers:
            zip_code = normalize_zip(answers["zip"])
            if zip_code is None:
                raise CallError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"answer 'zip' {answers['zip']!r}: a 5-digit US ZIP code such as 90210"
                )
            answers["zip"] = zip_code
            call.caller = call.caller.with_zip(zip_code)

    async def _reject(self, call: CallState, reason: str, detail: str, announcement: str) -> cc.RoutingResult:
        header = DecisionHeader(call.call_id, call.campaign_id, call.publisher_id, call.started_at)  # routing never started
        rejected = header.event(
            pb.CallRejected,
            event_id=codec.new_id(),
            occurred_at=codec.now_ts(),
            reason=reason,
            detail=detail,
            announcement=announcement,
        )
        await self._publish(CALL_REJECTED, rejected)
        result = result_from_event(rejected)
        call.decide(result)
        # The event's detail names the caller's number (screening, duplicates): never a log line's (DESIGN).
        log.info("call_rejected", call_id=call.call_id, campaign=call.campaign_id, reason=reason, detail=mask_text(detail))
        return result

    async def _complete(self, call: CallState) -> None:
        """Publish ivr.completed: the router's input."""
        call.completed = True  # before the await: a concurrent request must not publish twice
        call.decision_from = self.positions()  # before ivr.completed: its decision comes after these offsets
        call.pending_since = time.time()
        completed = pb.IvrCompleted(
            event_id=codec.new_id(),
            call_id=call.call_id,
            occurred_at=codec.now_ts(),
            call_started_at=call.started_at,
            dialed_number=call.dialed_number,
            campaign_id=call.campaign_id,
            publisher_id=call.publisher_id,
            caller=caller_proto(call.caller),
            answers=call.answers,
            qualified=True,
        )
        try:
            await self._publish(IVR_COMPLETED, completed)
        except BaseException:
            call.completed = False
            raise
        log.info("ivr_completed", call_id=call.call_id, answers=len(call.answers))

    # -- the call ------------------------------------------------------------
    async def start_call(self, request: cc.StartCallRequest, edge: str = "") -> cc.StartCallResponse:
        dialed = request.dialed_number.strip()
        if not dialed:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "dialed_number is required (the tracking number the caller dialed)")
        if request.call_id and not _CALL_ID.match(request.call_id):
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "call_id: 1-128 characters of letters, digits and . _ : @ - (or empty to get one)",
            )
        call_id = request.call_id or codec.new_id()
        existing = self.calls.get(call_id)
        if existing is not None:  # the edge retried StartCall: answer the same, publish nothing again
            if existing.version == 0:  # ... but its state (if writing it failed the first time)
                await self._save(existing)
            return self._start_response(existing)
        campaign = self.config.campaign_for_number(dialed)
        if campaign is None:
            normalized = normalize_number(dialed)
            campaign = self.config.campaign_for_number(normalized) if normalized else None
        started_at = codec.now_ts()
        facts = caller_facts(request.caller_number)
        call = CallState(
            call_id=call_id,
            dialed_number=dialed,
            campaign_id=campaign.id if campaign else "",
            publisher_id=campaign.publisher if campaign else "",
            caller=facts,
            started_at=started_at,
            started_mono=time.monotonic(),
            edge=edge,
        )
        if campaign is None:
            call.start_reject = reasons.UNKNOWN_NUMBER
            await self._reject(
                call,
                reasons.UNKNOWN_NUMBER,
                f"{dialed} is not a tracking number of any campaign",
                self.settings.unknown_number_announcement,
            )
            self.calls[call_id] = call  # AwaitRouting answers REJECTED; ReportOutcome still closes it
            await self._save(call)
            return self._start_response(call)
        rejection = screen(self.config, campaign, facts)
        dup_key = duplicate_key(campaign, facts)
        if rejection is None and dup_key is not None:
            rejection = duplicate(campaign, facts, self.callers.get(dup_key), started_at.ToDatetime(tzinfo=UTC))
        started = pb.CallStarted(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=started_at,
            dialed_number=dialed,
            campaign_id=campaign.id,
            publisher_id=campaign.publisher,
            caller=caller_proto(facts),
        )
        await self._publish(CALL_STARTED, started)  # also for a screened-out call: analytics counts it
        CALLS_STARTED.labels(campaign.id).inc()
        if rejection is not None:
            announcements = {
                reasons.BLOCKED: self.settings.blocked_announcement,
                reasons.INVALID_NUMBER: self.settings.invalid_number_announcement,
                reasons.DUPLICATE: self.settings.duplicate_announcement,
            }
            call.start_reject = rejection.reason
            await self._reject(
                call, rejection.reason, rejection.detail, announcements.get(rejection.reason, self.settings.blocked_announcement)
            )
            self.calls[call_id] = call  # AwaitRouting answers REJECTED; ReportOutcome still closes it
            await self._save(call)
            return self._start_response(call)
        if dup_key is not None:
            # Only accepted calls open a window: a caller refused as a duplicate does not extend it.
            seen = pb.CallerSeen(
                event_id=codec.new_id(),
                call_id=call_id,
                occurred_at=started_at,
                campaign_id=campaign.id,
                caller_number=facts.number,
            )
            try:
                await self.callers.record(self.bus, dup_key, seen)
            except KafkaError as exc:
                raise CallError(grpc.StatusCode.UNAVAILABLE, f"could not publish ivr.callers: {exc}; retry") from exc
        if campaign.ivr is not None:
            call.flow = self.flows[campaign.ivr]  # config validation guarantees the flow exists
            call.flow_state = flows.start(call.flow)
        self.calls[call_id] = call
        log.info(
            "call_started",
            call_id=call_id,
            campaign=campaign.id,
            area_code=facts.area_code,
            state=facts.state,
            valid_caller=facts.valid,
        )
        if call.flow is not None and call.flow_state is not None and call.flow_state.done:  # a flow without questions
            finished = flows.current(call.flow, call.flow_state)
            assert isinstance(finished, flows.Finished)  # a done state is at its end: qualified at once
            await self._flow_finished(call, finished)
        await self._save(call)
        return self._start_response(call)

    def _start_response(self, call: CallState) -> cc.StartCallResponse:
        response = cc.StartCallResponse(
            call_id=call.call_id, campaign_id=call.campaign_id, accepted=not call.start_reject, reject_reason=call.start_reject
        )
        if call.start_reject and call.result is not None:
            response.announcement = call.result.announcement
        if call.flow is not None and call.flow_state is not None:
            response.ivr_flow = call.flow.id
            response.prompt.CopyFrom(prompt_proto(call.call_id, call.flow, flows.current(call.flow, call.flow_state)))
        return response

    def _flow_call(self, call_id: str) -> tuple[CallState, IvrFlow, flows.IvrState]:
        call = self.call(call_id)
        if call.start_reject:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id} was rejected at start ({call.start_reject}); nothing to ask",
            )
        if call.flow is None or call.flow_state is None:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"campaign {call.campaign_id} has no IVR flow (set `ivr:` on the campaign), so there is nothing to prompt; "
                "qualify the call with SubmitAnswers",
            )
        return call, call.flow, call.flow_state

    async def next_prompt(self, call_id: str) -> cc.IvrPrompt:
        call, flow, state = self._flow_call(call_id)
        return prompt_proto(call.call_id, flow, flows.current(flow, state))

    async def submit_input(self, request: cc.SubmitInputRequest) -> cc.IvrPrompt:
        call, flow, state = self._flow_call(request.call_id)
        kind = _INPUT_KINDS.get(request.kind)
        if kind is None:
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "kind is required: INPUT_KIND_DIGITS (DTMF keys) or INPUT_KIND_SPEECH (recognised text)",
            )
        if len(request.input) > MAX_INPUT:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"input: at most {MAX_INPUT} characters")
        if state.done or call.flow_busy:
            # A repeat after the end (the edge retried): the end again, nothing published twice.
            return prompt_proto(call.call_id, flow, flows.current(flow, state))
        if request.node and request.node != state.node:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id} is at node {state.node!r}, not {request.node!r}: NextPrompt for the current prompt",
            )
        step = flows.answer(flow, state, request.input, kind)
        if isinstance(step, flows.Finished):
            await self._flow_finished(call, step)
        else:
            call.flow_state = step.state
        await self._save(call)
        return prompt_proto(call.call_id, flow, step)

    async def _flow_finished(self, call: CallState, step: flows.Finished) -> None:
        """The flow ended: qualified → ivr.completed with its answers; disqualified → call.rejected (core.ivr.flow_end)."""
        end = flows.flow_end(step)
        call.flow_busy = True
        try:
            if end.qualified:
                saved = (dict(call.answers), call.caller)
                call.answers.update(end.answers)
                if end.zip is not None:
                    call.caller = call.caller.with_zip(end.zip)
                try:
                    await self._complete(call)
                except BaseException:
                    call.answers, call.caller = saved
                    raise
            else:
                call.answers.update(end.answers)
                await self._reject(call, reasons.DISQUALIFIED, end.detail, step.text or self.settings.disqualified_announcement)
            call.flow_state = step.state
        finally:
            call.flow_busy = False

    async def submit_answers(self, request: cc.SubmitAnswersRequest) -> cc.SubmitAnswersResponse:
        call = self.call(request.call_id)
        if call.start_reject:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id} was rejected at start ({call.start_reject}); nothing to qualify",
            )
        if call.completed:
            raise CallError(grpc.StatusCode.FAILED_PRECONDITION, f"call {call.call_id}: answers already completed")
        if request.complete and call.flow is not None:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"campaign {call.campaign_id} runs IVR flow {call.flow.id}: the call completes when the flow ends "
                "(answer its prompts with SubmitInput); SubmitAnswers without complete adds call data",
            )
        answers: dict[str, str] = {}
        for key, value in request.answers.items():
            k = key.strip()
            if not k or len(k) > MAX_ANSWER_KEY:
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"answer key {key!r}: 1-{MAX_ANSWER_KEY} characters")
            if len(value) > MAX_ANSWER_VALUE:
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"answer {k!r}: at most {MAX_ANSWER_VALUE} characters")
            answers[k] = value.strip()
        self._set_zip(call, answers)
        call.answers.update(answers)
        if request.complete:
            await self._complete(call)
        await self._save(call)
        return cc.SubmitAnswersResponse(call_id=call.call_id)

    async def await_routing(self, request: cc.AwaitRoutingRequest) -> cc.RoutingResult:
        """The current decision (ROUTED with its attempt, REJECTED), or PENDING with attempt = offers so far."""
        if request.timeout_ms < 0:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "timeout_ms must be >= 0 (0: server default)")
        call = self.call(request.call_id)
        timeout_ms = min(request.timeout_ms or self.settings.await_timeout_ms, self.settings.max_await_timeout_ms)
        if call.result is None and self._unsaid(call) is None:
            await _first_set([call.decided, call.status_new], timeout_ms / 1000)
        result = call.result  # None again if a concurrent ReportOutcome ended the offer meanwhile
        if result is None:
            # A decision wins over any status; else a status the caller has not heard yet is said (WAITING).
            st = self._unsaid(call)
            if st is not None:
                return self._waiting(call, st)
            return cc.RoutingResult(call_id=call.call_id, status=cc.ROUTING_STATUS_PENDING, attempt=call.reported_attempt)
        if call.saved_decision != (result.status, result.attempt) and self.calls.get(call.call_id) is call:
            # The edge is about to bridge (or hang up on) this decision: write it first, so an instance that
            # takes the call over (a restart, another replica) knows the offer the outcome is about.
            await self._save(call)
        return result

    async def report_outcome(self, request: cc.ReportOutcomeRequest) -> cc.ReportOutcomeResponse:
        """How the current offer went: publishes call.ended; re-routable outcomes keep the call open."""
        if request.outcome == pb.CALL_OUTCOME_UNSPECIFIED or request.outcome not in pb.CallOutcome.values():
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "outcome is required (ANSWERED, NO_ANSWER, BUSY, FAILED, CALLER_HANGUP, BUYER_HANGUP, DECLINED)",
            )
        if request.connected_seconds < 0:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "connected_seconds must be >= 0")
        report = (request.outcome, request.connected_seconds)
        positions = self.positions()  # before call.ended: a re-route's decision comes after these offsets
        if request.call_id and request.call_id not in self.calls and self.ended.get(request.call_id) == report:
            return cc.ReportOutcomeResponse()  # a retry of the final report: already published
        call = self.call(request.call_id)
        result = call.result
        if result is None and call.last_report == report:
            return cc.ReportOutcomeResponse()  # a retry of the re-routable report: already published
        offer = result if result is not None and result.status == cc.ROUTING_STATUS_ROUTED else None
        if request.outcome == pb.CALL_OUTCOME_CALLBACK_NO_ANSWER and (offer is None or offer.callback_attempt <= 0):
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id}: CALLBACK_NO_ANSWER is about a callback (a WatchCallbacks placement), "
                "and no callback is outstanding; report NO_ANSWER for an offer the agent or buyer did not take",
            )
        if call.virtual_hold and offer is None:
            # The caller's own leg ended after accepting the callback (a CPaaS status callback, an edge that
            # reports every hang-up): the call lives on in virtual hold, nothing to publish.
            return cc.ReportOutcomeResponse()
        # No outcome yet and nobody else will give one: the caller left in the IVR (before ivr.completed,
        # and no disqualification being published) → this instance rejects it "abandoned". After
        # ivr.completed and before a decision reached us, the router owns the call: routing_pending tells it.
        left_in_ivr = result is None and not call.completed and not call.flow_busy
        routing_pending = result is None and call.completed
        if offer is None and request.outcome in NOT_TAKEN:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id}: no offer is outstanding ({'rejected' if result else 'routing pending'}); "
                "a re-routable outcome needs a ROUTED result: AwaitRouting first",
            )
        attempt = offer.attempt if offer else 0
        ended = pb.CallEnded(
            # The same report of the same offer is the same event (a retry, maybe on another instance or after
            # a restart): the same id, so consumers that dedupe by event id count it once.
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"call.ended/{call.call_id}/{attempt}/{report[0]}/{report[1]}").hex,
            call_id=call.call_id,
            occurred_at=codec.now_ts(),
            outcome=request.outcome,
            connected_seconds=request.connected_seconds,
            buyer_id=offer.buyer_id if offer else "",
            agent_id=offer.agent_id if offer else "",
            attempt=attempt,  # 0: about no offer (rejected, or caller left while pending)
            routing_pending=routing_pending,
        )
        keep_open = offer is not None and reroutable(offer, request.outcome, request.connected_seconds, self.config)
        # State changes before the await, so a concurrent repeat sees them and publishes nothing; undone on failure.
        saved = (call.result, call.reported_attempt, call.last_report, call.decided.is_set())
        if keep_open:
            assert offer is not None
            call.offer_done(offer.attempt)
            call.last_report = report
        else:
            self._forget(call, report)
        try:
            if left_in_ivr:
                await self._reject(call, reasons.ABANDONED, flows.hung_up_detail(call.flow_state), "")
            await self._publish(CALL_ENDED, ended)
            if keep_open:
                call.decision_from, call.pending_since = positions, time.time()
                await self._save(call)
        except BaseException:
            call.result, call.reported_attempt, call.last_report = saved[:3]
            if saved[3]:
                call.decided.set()
            else:
                call.decided.clear()
            self.ended.pop(call.call_id, None)
            self.calls[call.call_id] = call
            raise
        if not keep_open:
            await self._save_end(call, report)
        log.info(
            "call_ended" if not keep_open else "offer_ended",
            call_id=call.call_id,
            outcome=pb.CallOutcome.Name(request.outcome),
            seconds=request.connected_seconds,
            attempt=ended.attempt,
        )
        return cc.ReportOutcomeResponse()

    # -- the ACD: waiting callers, callbacks (docs/ACD.md "What the caller hears") ------------------------
    def language_of(self, call: CallState) -> str:
        """The call's language: where its IVR flow is, else its `language` answer, else English."""
        if call.flow_state is not None and call.flow_state.language:
            return call.flow_state.language
        return call.answers.get("language") or (call.flow.language if call.flow is not None else "") or announce.DEFAULT_LANGUAGE

    def on_queue_status(self, event: pb.QueueStatus) -> None:
        """queue.status from the listener: the call's newest status (an older or repeated one is ignored)."""
        call = self.calls.get(event.call_id)
        if call is None:
            return
        current = call.status
        if current is not None and (
            event.event_id == current.event_id or event.occurred_at.ToNanoseconds() < current.occurred_at.ToNanoseconds()
        ):
            return
        call.status = event
        if event.kind != pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED and not call.virtual_hold:
            call.status_new.set()  # AwaitRouting answers WAITING with it

    def _unsaid(self, call: CallState) -> pb.QueueStatus | None:
        st = call.status
        if st is None or st.event_id == call.status_said or call.virtual_hold:
            return None
        if st.kind == pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED:
            return None
        return st

    def _waiting(self, call: CallState, st: pb.QueueStatus) -> cc.RoutingResult:
        """The WAITING result for status `st`: its announcement in the call's language (core.announce)."""
        call.status_said = st.event_id
        call.status_new.clear()
        queue = self.queues.get(st.queue_id)
        text = announce.waiting(queue, self.language_of(call), st.position, st.projected_wait_s, st.callback_offered)
        ANNOUNCEMENTS.labels(st.queue_id, "callback_offer" if st.callback_offered else "waiting").inc()
        return cc.RoutingResult(
            call_id=call.call_id,
            status=cc.ROUTING_STATUS_WAITING,
            attempt=call.reported_attempt,
            announcement=text,
            queue_position=st.position,
            projected_wait_s=st.projected_wait_s,
            callback_offered=st.callback_offered,
        )

    async def request_callback(self, request: cc.RequestCallbackRequest) -> cc.RequestCallbackResponse:
        """The caller accepted the offered callback: callback.requested, then virtual hold on this instance."""
        call = self.call(request.call_id)
        st = call.status
        if call.result is not None:
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id} is {cc.RoutingStatus.Name(call.result.status)}, not waiting: AwaitRouting for it",
            )
        queue_id = st.queue_id if st is not None else call.hold_queue_id
        if not call.virtual_hold and (st is None or not st.callback_offered):
            raise CallError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id}: no callback was offered (its latest queue status does not offer one); "
                "RequestCallback only after a WAITING result with callback_offered",
            )
        queue = self.queues.get(queue_id)
        timezone = queue.timezone if queue is not None else "UTC"
        try:
            due = callback_time(request.at_local, timezone, datetime.now(UTC))
        except CallbackTimeError as exc:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        at_local = local_text(due, timezone)
        requested = pb.CallbackRequested(
            # The same request for the same call is the same event (a retried RPC, maybe on another instance).
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"callback.requested/{call.call_id}/{at_local}").hex,
            call_id=call.call_id,
            occurred_at=codec.now_ts(),
            queue_id=queue_id,
            at_local=at_local,  # resolved to a date: the queue reads it as the same time whenever it arrives
        )
        await self._publish(CALLBACK_REQUESTED, requested)
        first = not call.virtual_hold
        if first:  # its callback comes after these offsets: where a restart reads call.routed again for it
            call.decision_from, call.pending_since = self.positions(), time.time()
        call.virtual_hold, call.hold_queue_id = True, queue_id
        call.hold_instance = call.hold_instance or self.settings.instance_id
        await self._save(call)
        if first:
            CALLBACKS_REQUESTED.labels(queue_id).inc()
        log.info("callback_requested", call_id=call.call_id, queue=queue_id, scheduled=bool(at_local))
        return cc.RequestCallbackResponse(
            call_id=call.call_id,
            announcement=announce.callback_accepted(queue, self.language_of(call), at_local),
            at_local=at_local,
        )

    def call_language(self, call_id: str) -> str:
        """The language a live call's announcements are said in (language_of)."""
        return self.language_of(self.call(call_id))

    def current_placement(self, call_id: str) -> cc.CallbackPlacement | None:
        """The callback this instance has to place for the live call `call_id` now, if any."""
        call = self.calls.get(call_id)
        return self.placement_for(call) if call is not None else None

    def placement_for(self, call: CallState) -> cc.CallbackPlacement | None:
        """The callback this instance has to place for `call` now (a callback offer not reported yet), or None."""
        r = call.result
        if (
            not call.virtual_hold
            or call.hold_instance != self.settings.instance_id
            or r is None
            or r.status != cc.ROUTING_STATUS_ROUTED
            or r.callback_attempt <= 0
        ):
            return None
        language = self.language_of(call)
        return cc.CallbackPlacement(
            call_id=call.call_id,
            caller_number=call.caller.number,
            dialed_number=call.dialed_number,
            destination=r.destination,
            agent_id=r.agent_id,
            attempt=r.attempt,
            callback_attempt=r.callback_attempt,
            language=language,
            announcement=announce.callback_answered(self.queues.get(call.hold_queue_id), language),
        )

    def _placement_due(self, call: CallState) -> None:
        placement = self.placement_for(call)
        if placement is None:
            return
        for edges, queue in self.watchers:
            if call.edge in edges:
                queue.put_nowait(placement)

    async def watch_callbacks(self, edges: frozenset[str] = frozenset({""})) -> AsyncIterator[cc.CallbackPlacement]:
        """Every callback due on calls this instance holds that started on `edges`: first those not reported
        yet, then each new one. Each is written to ivr.calls before it is given out (the outcome is about it)."""
        queue: asyncio.Queue[cc.CallbackPlacement] = asyncio.Queue()
        entry = (edges, queue)
        self.watchers.append(entry)
        sent: set[tuple[str, int]] = set()
        try:
            for call in list(self.calls.values()):
                if call.edge in edges and (p := self.placement_for(call)) is not None:
                    queue.put_nowait(p)
            while True:
                placement = await queue.get()
                held = self.calls.get(placement.call_id)
                if held is None or (current := self.placement_for(held)) is None or current.attempt != placement.attempt:
                    continue  # reported (or ended) meanwhile
                if (placement.call_id, placement.attempt) in sent:
                    continue
                if held.result is not None and held.saved_decision != (held.result.status, held.result.attempt):
                    await self._save(held)
                sent.add((placement.call_id, placement.attempt))
                PLACEMENTS_SENT.inc()
                log.info(
                    "callback_placement", call_id=placement.call_id, attempt=placement.attempt, try_=placement.callback_attempt
                )
                yield placement
        finally:
            self.watchers.remove(entry)
