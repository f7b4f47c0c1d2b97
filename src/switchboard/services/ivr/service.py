"""The ivr service: gRPC CallControl for the telephony edge, events on Kafka.

Flow of one call through this service:
  StartCall      → dialed number → campaign (routing config); caller facts from the
                   number (core.caller); publishes call.started. Unknown dialed
                   number: publishes call.rejected `unknown_number`, accepted=false.
  SubmitAnswers  → merges IVR answers (a `zip` answer also fills Caller.zip);
                   complete=true publishes ivr.completed, the router's input.
  AwaitRouting   → the routing result once call.routed / call.rejected for the call
                   arrives, or PENDING after timeout_ms (the edge asks again).
  ReportOutcome  → publishes call.ended (buyer/agent from the routing result) and
                   forgets the call.

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
    result: cc.RoutingResult | None = None
    decided: asyncio.Event = field(default_factory=asyncio.Event)

    def decide(self, result: cc.RoutingResult) -> None:
        if self.result is None:  # the first terminal event wins; redeliveries change nothing
            self.result = result
            self.decided.set()


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
        )
    assert isinstance(event, pb.CallRejected)
    return cc.RoutingResult(
        call_id=event.call_id,
        status=cc.ROUTING_STATUS_REJECTED,
        reason=event.reason,
        announcement=event.announcement,
    )


class CallControlService(cc_grpc.CallControlServicer):
    """The CallControl RPCs over the in-memory calls of this instance."""

    def __init__(self, settings: IvrSettings, config: RoutingConfig, bus: EventBus) -> None:
        self.settings = settings
        self.config = config
        self.bus = bus
        self.calls: dict[str, CallState] = {}

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
        """call.routed / call.rejected from the listener: resolve the call if it is ours."""
        call = self.calls.get(event.call_id)
        if call is not None:
            call.decide(result_from_event(event))
            log.info("routing_result", call_id=event.call_id, topic=topic.name)

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
            rejected = existing.result is not None and existing.result.status == cc.ROUTING_STATUS_REJECTED and not existing.campaign_id
            return cc.StartCallResponse(
                call_id=call_id,
                campaign_id=existing.campaign_id,
                accepted=not rejected,
                reject_reason=existing.result.reason if rejected and existing.result else "",
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
            self.calls[call_id] = call  # AwaitRouting answers REJECTED; ReportOutcome still closes it
            log.info("call_rejected", call_id=call_id, reason="unknown_number", dialed=dialed)
            return cc.StartCallResponse(call_id=call_id, accepted=False, reject_reason="unknown_number")
        started = pb.CallStarted(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=started_at,
            dialed_number=dialed,
            campaign_id=campaign.id,
            publisher_id=campaign.publisher,
            caller=caller_proto(facts),
        )
        await self._publish(CALL_STARTED, started, context)
        self.calls[call_id] = call
        log.info(
            "call_started", call_id=call_id, campaign=campaign.id, area_code=facts.area_code, state=facts.state, valid_caller=facts.valid
        )
        return cc.StartCallResponse(call_id=call_id, campaign_id=campaign.id, accepted=True)

    async def SubmitAnswers(self, request: cc.SubmitAnswersRequest, context: grpc.aio.ServicerContext) -> cc.SubmitAnswersResponse:
        call = await self._call(request.call_id, context)
        if not call.campaign_id:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"call {call.call_id} was rejected at start; nothing to qualify")
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
        if request.timeout_ms < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "timeout_ms must be >= 0 (0: server default)")
        call = await self._call(request.call_id, context)
        timeout_ms = min(request.timeout_ms or self.settings.await_timeout_ms, self.settings.max_await_timeout_ms)
        if call.result is None:
            try:
                await asyncio.wait_for(call.decided.wait(), timeout_ms / 1000)
            except TimeoutError:
                return cc.RoutingResult(call_id=call.call_id, status=cc.ROUTING_STATUS_PENDING)
        assert call.result is not None
        return call.result

    async def ReportOutcome(self, request: cc.ReportOutcomeRequest, context: grpc.aio.ServicerContext) -> cc.ReportOutcomeResponse:
        if request.outcome == pb.CALL_OUTCOME_UNSPECIFIED or request.outcome not in pb.CallOutcome.values():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "outcome is required (ANSWERED, NO_ANSWER, BUSY, FAILED, CALLER_HANGUP)")
        if request.connected_seconds < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "connected_seconds must be >= 0")
        call = await self._call(request.call_id, context)
        result = call.result
        ended = pb.CallEnded(
            event_id=codec.new_id(),
            call_id=call.call_id,
            occurred_at=codec.now_ts(),
            outcome=request.outcome,
            connected_seconds=request.connected_seconds,
            buyer_id=result.buyer_id if result else "",
            agent_id=result.agent_id if result else "",
        )
        await self._publish(CALL_ENDED, ended, context)
        self.calls.pop(call.call_id, None)
        log.info("call_ended", call_id=call.call_id, outcome=pb.CallOutcome.Name(request.outcome), seconds=request.connected_seconds)
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
