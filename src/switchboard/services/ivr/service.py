"""The ivr service: gRPC CallControl for the telephony edge, events on Kafka.

Flow of one call through this service:
  StartCall      → dialed number → campaign (routing config); caller facts from the
                   number (core.caller); publishes call.started. Unknown dialed
                   number: publishes call.rejected `unknown_number`, accepted=false.
                   A caller screened out by core.screening (blocklists,
                   invalid number): publishes call.started, then call.rejected
                   `blocked` / `invalid_number` with an announcement; accepted=false.
  SubmitAnswers  → merges IVR answers (a `zip` answer also fills Caller.zip);
                   complete=true publishes ivr.completed, the router's input.
  AwaitRouting   → the CURRENT routing decision of the call: ROUTED with the
                   offer's `attempt` (1 for the first offer) once a call.routed
                   arrives, REJECTED once a call.rejected arrives, or PENDING
                   after timeout_ms (the edge asks again). A later offer (higher
                   attempt) replaces an earlier one; a rejection replaces any offer.
  ReportOutcome  → how the bridged offer went; publishes call.ended with the
                   buyer/agent and `attempt` of the current offer. Then:

   outcome        | offer to a buyer                        | offer to an agent
   ---------------+-----------------------------------------+-------------------------
   ANSWERED       | ends the call (the caller talked, then   | ends the call
                  | hung up)                                 |
   CALLER_HANGUP  | ends the call                            | ends the call
   NO_ANSWER,     | re-routable: the router offers the call  | re-routable: the queue
   BUSY, FAILED,  | to the next buyer (call.routed with      | offers it to the next
   DECLINED       | attempt+1), queues it or rejects it      | agent (attempt+1), re-
                  | (e.g. max_attempts)                      | queues or rejects it
   BUYER_HANGUP   | re-routable when connected_seconds is    | ends the call (the
                  | below the buyer's billable_after_s,      | agent hung up)
                  | otherwise ends the call                  |

                   Re-routable: the call stays open here; the current result is
                   cleared, and AwaitRouting waits for the next decision: a
                   call.routed with a HIGHER attempt than the one reported on
                   (a redelivered or late call.routed of an older offer is never
                   returned again) or a call.rejected. Ends the call: the call
                   is forgotten (NOT_FOUND afterwards). A call that was rejected
                   (or never routed) is forgotten on any outcome; its call.ended
                   has attempt 0 (it is about no offer) — so is the call.ended of
                   a caller who hangs up while a re-route is still pending.
                   Idempotent: repeating the last ReportOutcome of a call (same
                   outcome and seconds; the edge retries when a response is
                   lost) answers OK and publishes nothing again, also after the
                   call was forgotten (a bounded memory of ended calls). With
                   no offer outstanding (routing pending, e.g. between a
                   re-routable report and the next offer, or rejected), a
                   re-routable outcome is refused with FAILED_PRECONDITION:
                   nothing was ringing.

Per-call state lives in memory on the instance that took StartCall: the edge
must keep talking to the same instance for one call (gRPC session affinity).
To learn routing results every instance reads call.routed and call.rejected
itself, without a consumer group (each instance sees every partition, from
the latest offset, positioned before the instance reports ready) and keeps
only the results of its own calls. Undecodable messages there are skipped, not
dead-lettered: the group consumers of those topics already dead-letter them,
and N ivr instances would otherwise file N letters for one message.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core.caller import CallerFacts, caller_facts, normalize_number, normalize_zip
from switchboard.core.config import RoutingConfig, load_config
from switchboard.core.screening import BLOCKED, INVALID_NUMBER, screen
from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, make_consumer
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ENDED, CALL_REJECTED, CALL_ROUTED, CALL_STARTED, IVR_COMPLETED, Topic
from switchboard.services.ivr.settings import IvrSettings
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SERVICE = "ivr"
_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
MAX_ANSWER_KEY = 64
MAX_ANSWER_VALUE = 1024


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
    reported_attempt: int = 0  # the highest offer an outcome was reported for: older call.routed are stale
    last_report: tuple[int, int] | None = None  # (outcome, connected_seconds) of the last ReportOutcome
    start_reject: str = ""  # the reason StartCall refused the call (unknown_number, blocked, invalid_number)

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
        return True

    def offer_done(self, attempt: int) -> None:
        """The edge reported a re-routable outcome for offer `attempt`: wait for a newer decision."""
        self.reported_attempt = max(self.reported_attempt, attempt)
        self.result = None
        self.decided.clear()


def caller_proto(facts: CallerFacts) -> pb.Caller:
    return pb.Caller(number=facts.number, state=facts.state, zip=facts.zip, area_code=facts.area_code, timezone=facts.timezone)


def result_from_event(event: Message) -> cc.RoutingResult:
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
        )
    assert isinstance(event, pb.CallRejected)
    return cc.RoutingResult(
        call_id=event.call_id,
        status=cc.ROUTING_STATUS_REJECTED,
        reason=event.reason,
        announcement=event.announcement,
    )


# Outcomes after which the offer failed but the call goes on (the router or the queue makes the next offer).
REROUTABLE = frozenset({pb.CALL_OUTCOME_NO_ANSWER, pb.CALL_OUTCOME_BUSY, pb.CALL_OUTCOME_FAILED, pb.CALL_OUTCOME_DECLINED})


def reroutable(result: cc.RoutingResult, outcome: int, connected_seconds: int, config: RoutingConfig) -> bool:
    """Whether `outcome` of the offer `result` leaves the call open for a next offer (see the module table)."""
    if outcome in REROUTABLE:
        return True
    if outcome == pb.CALL_OUTCOME_BUYER_HANGUP and result.kind != pb.TARGET_KIND_AGENT:
        # The router decides with the same rule; a buyer this config does not know has no billable threshold
        # here, and the router (which routed to it) will answer with the next decision.
        buyer = next((b for b in config.buyers if b.id == result.buyer_id), None)
        return buyer is None or connected_seconds < buyer.billable_after_s
    return False


class CallControlService(cc_grpc.CallControlServicer):
    """The CallControl RPCs over the in-memory calls of this instance."""

    def __init__(self, settings: IvrSettings, config: RoutingConfig, bus: EventBus) -> None:
        self.settings = settings
        self.config = config
        self.bus = bus
        self.calls: dict[str, CallState] = {}
        # Calls forgotten after their final ReportOutcome → that report, so a retry of it is answered OK.
        self.ended: OrderedDict[str, tuple[int, int]] = OrderedDict()

    # -- helpers -------------------------------------------------------------
    async def _call(self, call_id: str, context: grpc.aio.ServicerContext) -> CallState:
        if not call_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "call_id is required")
        call = self.calls.get(call_id)
        if call is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown call id {call_id!r}: not started on this ivr instance, or already ended",
            )
        return call  # type: ignore[return-value]

    async def _publish(self, topic: Topic, event: Message, context: grpc.aio.ServicerContext) -> None:
        try:
            await self.bus.publish(topic, event)
        except KafkaError as exc:
            log.error("publish_failed", topic=topic.name, call_id=event.call_id, error=str(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"could not publish {topic.name}: {exc}; retry")

    def on_terminal(self, topic: Topic, event: Message) -> None:
        """call.routed / call.rejected from the listener: the call's new decision if it is ours and not stale."""
        call = self.calls.get(event.call_id)
        if call is not None:
            result = result_from_event(event)
            if call.decide(result):
                log.info("routing_result", call_id=event.call_id, topic=topic.name, attempt=result.attempt)
            else:
                log.info("routing_result_ignored", call_id=event.call_id, topic=topic.name, attempt=result.attempt)

    def _forget(self, call: CallState, report: tuple[int, int]) -> None:
        self.calls.pop(call.call_id, None)
        self.ended[call.call_id] = report
        self.ended.move_to_end(call.call_id)
        while len(self.ended) > self.settings.ended_memory:
            self.ended.popitem(last=False)

    def sweep(self, now_mono: float) -> int:
        """Forget calls never reported as ended within call_ttl_s (the edge lost them)."""
        stale = [cid for cid, c in self.calls.items() if now_mono - c.started_mono > self.settings.call_ttl_s]
        for cid in stale:
            del self.calls[cid]
        if stale:
            log.warning("calls_expired", count=len(stale))
        return len(stale)

    # -- RPCs ----------------------------------------------------------------
    async def StartCall(self, request: cc.StartCallRequest, context: grpc.aio.ServicerContext) -> cc.StartCallResponse:
        dialed = request.dialed_number.strip()
        if not dialed:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "dialed_number is required (the tracking number the caller dialed)")
        if request.call_id and not _CALL_ID.match(request.call_id):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "call_id: 1-128 characters of letters, digits and . _ : @ - (or empty to get one)"
            )
        call_id = request.call_id or codec.new_id()
        existing = self.calls.get(call_id)
        if existing is not None:  # the edge retried StartCall: answer the same, publish nothing again
            return cc.StartCallResponse(
                call_id=call_id,
                campaign_id=existing.campaign_id,
                accepted=not existing.start_reject,
                reject_reason=existing.start_reject,
            )
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
        )
        if campaign is None:
            rejected = pb.CallRejected(
                event_id=codec.new_id(),
                call_id=call_id,
                occurred_at=started_at,
                call_started_at=started_at,
                reason="unknown_number",
                detail=f"{dialed} is not a tracking number of any campaign",
                announcement=self.settings.unknown_number_announcement,
            )
            await self._publish(CALL_REJECTED, rejected, context)
            call.decide(result_from_event(rejected))
            call.start_reject = "unknown_number"
            self.calls[call_id] = call  # AwaitRouting answers REJECTED; ReportOutcome still closes it
            log.info("call_rejected", call_id=call_id, reason="unknown_number", dialed=dialed)
            return cc.StartCallResponse(call_id=call_id, accepted=False, reject_reason="unknown_number")
        rejection = screen(self.config, campaign, facts)
        started = pb.CallStarted(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=started_at,
            dialed_number=dialed,
            campaign_id=campaign.id,
            publisher_id=campaign.publisher,
            caller=caller_proto(facts),
        )
        await self._publish(CALL_STARTED, started, context)  # also for a screened-out call: analytics counts it
        if rejection is not None:
            announcements = {BLOCKED: self.settings.blocked_announcement, INVALID_NUMBER: self.settings.invalid_number_announcement}
            rejected = pb.CallRejected(
                event_id=codec.new_id(),
                call_id=call_id,
                occurred_at=codec.now_ts(),
                call_started_at=started_at,
                campaign_id=campaign.id,
                publisher_id=campaign.publisher,
                reason=rejection.reason,
                detail=rejection.detail,
                announcement=announcements.get(rejection.reason, self.settings.blocked_announcement),
            )
            await self._publish(CALL_REJECTED, rejected, context)
            call.decide(result_from_event(rejected))
            call.start_reject = rejection.reason
            self.calls[call_id] = call  # AwaitRouting answers REJECTED; ReportOutcome still closes it
            log.info("call_rejected", call_id=call_id, campaign=campaign.id, reason=rejection.reason, detail=rejection.detail)
            return cc.StartCallResponse(call_id=call_id, campaign_id=campaign.id, accepted=False, reject_reason=rejection.reason)
        self.calls[call_id] = call
        log.info(
            "call_started", call_id=call_id, campaign=campaign.id, area_code=facts.area_code, state=facts.state, valid_caller=facts.valid
        )
        return cc.StartCallResponse(call_id=call_id, campaign_id=campaign.id, accepted=True)

    async def SubmitAnswers(self, request: cc.SubmitAnswersRequest, context: grpc.aio.ServicerContext) -> cc.SubmitAnswersResponse:
        call = await self._call(request.call_id, context)
        if call.start_reject:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"call {call.call_id} was rejected at start ({call.start_reject}); nothing to qualify"
            )
        if call.completed:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"call {call.call_id}: answers already completed")
        answers: dict[str, str] = {}
        for key, value in request.answers.items():
            k = key.strip()
            if not k or len(k) > MAX_ANSWER_KEY:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"answer key {key!r}: 1-{MAX_ANSWER_KEY} characters")
            if len(value) > MAX_ANSWER_VALUE:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"answer {k!r}: at most {MAX_ANSWER_VALUE} characters")
            answers[k] = value.strip()
        if "zip" in answers:
            zip_code = normalize_zip(answers["zip"])
            if zip_code is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"answer 'zip' {answers['zip']!r}: a 5-digit US ZIP code such as 90210")
            answers["zip"] = zip_code  # type: ignore[assignment]
            call.caller = call.caller.with_zip(zip_code)  # type: ignore[arg-type]
        call.answers.update(answers)
        if request.complete:
            call.completed = True  # before the await: a concurrent SubmitAnswers must not publish twice
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
                await self._publish(IVR_COMPLETED, completed, context)
            except BaseException:
                call.completed = False
                raise
            log.info("ivr_completed", call_id=call.call_id, answers=len(call.answers))
        return cc.SubmitAnswersResponse(call_id=call.call_id)

    async def AwaitRouting(self, request: cc.AwaitRoutingRequest, context: grpc.aio.ServicerContext) -> cc.RoutingResult:
        """The current decision (ROUTED with its attempt, REJECTED), or PENDING with attempt = offers so far."""
        if request.timeout_ms < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "timeout_ms must be >= 0 (0: server default)")
        call = await self._call(request.call_id, context)
        timeout_ms = min(request.timeout_ms or self.settings.await_timeout_ms, self.settings.max_await_timeout_ms)
        if call.result is None:
            try:
                await asyncio.wait_for(call.decided.wait(), timeout_ms / 1000)
            except TimeoutError:
                pass
        result = call.result  # None again if a concurrent ReportOutcome ended the offer meanwhile
        if result is None:
            return cc.RoutingResult(call_id=call.call_id, status=cc.ROUTING_STATUS_PENDING, attempt=call.reported_attempt)
        return result

    async def ReportOutcome(self, request: cc.ReportOutcomeRequest, context: grpc.aio.ServicerContext) -> cc.ReportOutcomeResponse:
        """How the current offer went: publishes call.ended; re-routable outcomes keep the call open (module table)."""
        if request.outcome == pb.CALL_OUTCOME_UNSPECIFIED or request.outcome not in pb.CallOutcome.values():
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "outcome is required (ANSWERED, NO_ANSWER, BUSY, FAILED, CALLER_HANGUP, BUYER_HANGUP, DECLINED)",
            )
        if request.connected_seconds < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "connected_seconds must be >= 0")
        report = (request.outcome, request.connected_seconds)
        if request.call_id and request.call_id not in self.calls and self.ended.get(request.call_id) == report:
            return cc.ReportOutcomeResponse()  # a retry of the final report: already published
        call = await self._call(request.call_id, context)
        result = call.result
        if result is None and call.last_report == report:
            return cc.ReportOutcomeResponse()  # a retry of the re-routable report: already published
        offer = result if result is not None and result.status == cc.ROUTING_STATUS_ROUTED else None
        if offer is None and request.outcome in REROUTABLE:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"call {call.call_id}: no offer is outstanding ({'rejected' if result else 'routing pending'}); "
                "a re-routable outcome needs a ROUTED result: AwaitRouting first",
            )
        ended = pb.CallEnded(
            event_id=codec.new_id(),
            call_id=call.call_id,
            occurred_at=codec.now_ts(),
            outcome=request.outcome,
            connected_seconds=request.connected_seconds,
            buyer_id=offer.buyer_id if offer else "",
            agent_id=offer.agent_id if offer else "",
            attempt=offer.attempt if offer else 0,  # 0: about no offer (rejected, or caller left while pending)
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
            await self._publish(CALL_ENDED, ended, context)
        except BaseException:
            call.result, call.reported_attempt, call.last_report = saved[:3]
            if saved[3]:
                call.decided.set()
            self.ended.pop(call.call_id, None)
            self.calls[call.call_id] = call
            raise
        log.info(
            "call_ended" if not keep_open else "offer_ended",
            call_id=call.call_id,
            outcome=pb.CallOutcome.Name(request.outcome),
            seconds=request.connected_seconds,
            attempt=ended.attempt,
        )
        return cc.ReportOutcomeResponse()


async def listen_terminal(
    kafka: KafkaSettings,
    on_event: Callable[[Topic, Message], None],
    stop: asyncio.Event,
    ready: asyncio.Event,
) -> None:
    """Read call.routed and call.rejected from every partition, from the latest offset, until `stop`.

    `ready` is set once every partition has a resolved position: an event
    published after that is seen, so no AwaitRouting can miss its result.
    """
    topics = {t.name: t for t in (CALL_ROUTED, CALL_REJECTED)}
    consumer = make_consumer(kafka, None, f"{SERVICE}-routing-listener", auto_offset_reset="latest")
    await consumer.start()
    try:
        await consumer.topics()  # full metadata, so partitions_for_topic knows every topic
        tps = [TopicPartition(name, p) for name in topics for p in sorted(consumer.partitions_for_topic(name) or ())]
        missing = [name for name in topics if not any(tp.topic == name for tp in tps)]
        if missing:
            raise RuntimeError(f"topics {missing} do not exist; create them first (switchboard broker / ensure_topics)")
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolves the end offset now, not at the first fetch
        ready.set()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for records in batches.values():
                for record in records:
                    topic = topics[record.topic]
                    try:
                        event = codec.decode(topic, record.value)
                    except codec.UndecodableEvent as exc:
                        log.warning("skipped_undecodable", topic=record.topic, offset=record.offset, reason=str(exc))
                        continue
                    on_event(topic, event)
    finally:
        await consumer.stop()


async def _sweeper(service: CallControlService, stop: asyncio.Event) -> None:
    interval = min(60.0, service.settings.call_ttl_s / 4)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            service.sweep(time.monotonic())


async def _first(aws: list[Awaitable[object]]) -> None:
    """Wait until the first of `aws` finishes; re-raise its error."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    for t in done:
        t.result()


async def run(settings: IvrSettings, stop: asyncio.Event) -> None:
    """Serve CallControl until `stop` is set; then stop the server (with grace), the listener and the producer."""
    config = load_config(settings.config)
    bus = EventBus(settings.kafka, SERVICE)
    await bus.start()
    service = CallControlService(settings, config, bus)
    listener_ready = asyncio.Event()
    listener = asyncio.create_task(listen_terminal(settings.kafka, service.on_terminal, stop, listener_ready))
    server: grpc.aio.Server | None = None
    sweeper: asyncio.Task | None = None
    try:
        # The listener must be positioned before any call can be started, or a fast result could be missed.
        await _first([listener_ready.wait(), asyncio.shield(listener)])
        server = grpc.aio.server()
        cc_grpc.add_CallControlServicer_to_server(service, server)
        port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        await server.start()
        sweeper = asyncio.create_task(_sweeper(service, stop))
        mark_ready(SERVICE, grpc_host=settings.grpc_host, grpc_port=port)
        log.info("ivr_ready", grpc=f"{settings.grpc_host}:{port}", campaigns=len(config.campaigns))
        await _first([stop.wait(), asyncio.shield(listener)])  # a dead listener is fatal: fail loudly
    finally:
        stop.set()
        if server is not None:
            await server.stop(settings.shutdown_grace_s)
        for task in (sweeper, listener):
            if task is not None:
                try:
                    await asyncio.wait_for(task, 5)
                except (TimeoutError, asyncio.CancelledError):
                    pass
                except Exception:  # already reported where it happened; shutdown goes on
                    log.exception("task_failed_during_shutdown")
        await bus.stop()
        log.info("ivr_stopped")
