"""The ivr service: gRPC CallControl (and the TwiML webhook, twiml.py) for the telephony edge, events on Kafka.

Both edges drive the same calls through desk.CallDesk; IVR flows and screening are described there.

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

                   (The rule, shared with the router and the queue: core.call_end.)
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

Per-call state lives in memory and, on every change that matters, in the compacted
topic ivr.calls (livecalls.py, docs/IVR.md "Restarts and replicas"): every instance
reads it back before it reports ready and follows it, so a restart (even kill -9)
loses no live call and any instance can take any call's next request. To learn
routing results every instance reads call.routed and call.rejected itself,
without a consumer group (each instance sees every partition, from the latest
offset, or from where a recovered call's pending decision can be, positioned
before the instance reports ready). Undecodable messages there are skipped, not
dead-lettered: the group consumers of those topics already dead-letter them,
and N ivr instances would otherwise file N letters for one message.

The CallControl server serves TLS and checks a client credential (security.py,
docs/IVR.md "Securing the gRPC edge").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import grpc
import structlog
from aiokafka.errors import KafkaError

from switchboard.platform import codec, grpcsecurity, ops
from switchboard.platform.configfile import load_config
from switchboard.platform.follow import assign_all
from switchboard.platform.kafka import EventBus, ensure_topics, make_consumer, track_lag
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.metrics import EVENTS_CONSUMED, LagTracker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_REJECTED, CALL_ROUTED, LIVE_CALLS, QUEUE_STATUS, TerminalEvent, Topic
from switchboard.services.ivr import livecalls
from switchboard.services.ivr.callers import CallerMemory
from switchboard.services.ivr.desk import CallDesk, CallError
from switchboard.services.ivr.grpc_ops import add_ops_services, follow_readiness
from switchboard.services.ivr.outbound import OutboundCallbacks
from switchboard.services.ivr.security import edge_security
from switchboard.services.ivr.settings import IvrSettings
from switchboard.services.ivr.twiml import TwimlWebhook, check_settings
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

SERVICE = "ivr"

R = TypeVar("R")


class CallControlService(cc_grpc.CallControlServicer):
    """The CallControl RPCs: each one is the desk's method, its CallError turned into a gRPC status."""

    def __init__(self, desk: CallDesk) -> None:
        self.desk = desk

    @staticmethod
    async def _run(context: grpc.aio.ServicerContext, coro: Awaitable[R]) -> R:
        try:
            return await coro
        except CallError as exc:
            await context.abort(exc.code, exc.message)
            raise  # not reached: abort raises

    async def StartCall(self, request: cc.StartCallRequest, context: grpc.aio.ServicerContext) -> cc.StartCallResponse:
        return await self._run(context, self.desk.start_call(request))

    async def SubmitAnswers(
        self, request: cc.SubmitAnswersRequest, context: grpc.aio.ServicerContext
    ) -> cc.SubmitAnswersResponse:
        return await self._run(context, self.desk.submit_answers(request))

    async def NextPrompt(self, request: cc.NextPromptRequest, context: grpc.aio.ServicerContext) -> cc.IvrPrompt:
        return await self._run(context, self.desk.next_prompt(request.call_id))

    async def SubmitInput(self, request: cc.SubmitInputRequest, context: grpc.aio.ServicerContext) -> cc.IvrPrompt:
        return await self._run(context, self.desk.submit_input(request))

    async def AwaitRouting(self, request: cc.AwaitRoutingRequest, context: grpc.aio.ServicerContext) -> cc.RoutingResult:
        return await self._run(context, self.desk.await_routing(request))

    async def ReportOutcome(
        self, request: cc.ReportOutcomeRequest, context: grpc.aio.ServicerContext
    ) -> cc.ReportOutcomeResponse:
        return await self._run(context, self.desk.report_outcome(request))

    async def RequestCallback(
        self, request: cc.RequestCallbackRequest, context: grpc.aio.ServicerContext
    ) -> cc.RequestCallbackResponse:
        return await self._run(context, self.desk.request_callback(request))

    async def WatchCallbacks(
        self, request: cc.WatchCallbacksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cc.CallbackPlacement]:
        # Calls of the gRPC edge only: those of the TwiML webhook are placed through the CPaaS REST API.
        async for placement in self.desk.watch_callbacks(frozenset({""})):
            yield placement


async def listen_terminal(
    kafka: KafkaSettings,
    on_event: Callable[[Topic[TerminalEvent], TerminalEvent], None],
    stop: asyncio.Event,
    ready: asyncio.Event,
    start_at: Mapping[str, int] | None = None,
    positions: dict[str, int] | None = None,
    on_status: Callable[[pb.QueueStatus], None] | None = None,
) -> None:
    """Read call.routed and call.rejected (and, with `on_status`, queue.status: what the waiting callers hear)
    from every partition, from the latest offset, until `stop`.

    `start_at` ("<topic>/<partition>" → offset) starts partitions earlier: where the decisions of the
    calls read back from ivr.calls can still be (CallDesk.decision_offsets). `positions` is kept at
    the next offset to read per partition. `ready` is set once every partition has a resolved
    position: an event published after that is seen, so no AwaitRouting can miss its result.
    """
    topics: dict[str, Topic[TerminalEvent]] = {t.name: t for t in (CALL_ROUTED, CALL_REJECTED)}
    consumer = make_consumer(kafka, None, f"{SERVICE}-routing-listener", auto_offset_reset="latest")
    positions = {} if positions is None else positions
    await consumer.start()
    try:
        # queue.status on the same consumer: a call's status is read in the same pass as its decisions, and a
        # restart re-reads it from the same positions (a caller waiting on another instance is known here too).
        tps = await assign_all(consumer, [*topics, *([QUEUE_STATUS.name] if on_status else [])])
        await consumer.seek_to_end(*tps)
        for tp in tps:
            end = await consumer.position(tp)  # resolves the end offset now, not at the first fetch
            earlier = (start_at or {}).get(f"{tp.topic}/{tp.partition}")
            if earlier is not None and earlier < end:
                consumer.seek(tp, max(earlier, 0))
                log.info("decisions_reread", topic=tp.topic, partition=tp.partition, records=end - earlier)
            positions[f"{tp.topic}/{tp.partition}"] = min(end, earlier) if earlier is not None else end
        ready.set()
        lag = LagTracker()
        with ops.health().watching(f"{SERVICE}-routing-listener") as loop:
            while not stop.is_set():
                loop.beat()
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                for records in batches.values():
                    for record in records:
                        EVENTS_CONSUMED.labels(record.topic).inc()
                        positions[f"{record.topic}/{record.partition}"] = record.offset + 1
                        if record.topic == QUEUE_STATUS.name:
                            try:
                                status = codec.decode(QUEUE_STATUS, record.value)
                            except codec.UndecodableEvent as exc:
                                log.warning("skipped_undecodable", topic=record.topic, offset=record.offset, reason=str(exc))
                                continue
                            if on_status is not None:
                                on_status(status)
                            continue
                        topic = topics[record.topic]
                        try:
                            event = codec.decode(topic, record.value)
                        except codec.UndecodableEvent as exc:
                            log.warning("skipped_undecodable", topic=record.topic, offset=record.offset, reason=str(exc))
                            continue
                        on_event(topic, event)
                await track_lag(consumer, lag)
    finally:
        await consumer.stop()


async def _sweeper(desk: CallDesk, bus: EventBus, stop: asyncio.Event) -> None:
    interval = min(60.0, desk.settings.call_ttl_s / 4)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            for call_id in desk.sweep(time.monotonic()):
                # Every instance expires the same calls; the tombstones are alike, one is enough for compaction.
                try:
                    await bus.tombstone(LIVE_CALLS, call_id)
                except KafkaError as exc:
                    log.warning("tombstone_failed", topic=LIVE_CALLS.name, call_id=call_id, error=str(exc))


async def _first(aws: list[Awaitable[object]]) -> None:
    """Wait until the first of `aws` finishes; re-raise its error."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    for t in done:
        t.result()


async def run(settings: IvrSettings, stop: asyncio.Event) -> None:
    """Serve CallControl (and the TwiML webhook when enabled) until `stop` is set; then stop the servers (with
    grace), the listeners and the producer."""
    check_settings(settings)  # before connecting anywhere: a webhook without its auth token must not start
    edge = edge_security(settings)
    edge_tokens = grpcsecurity.checked_tokens(edge)  # nor a gRPC edge open to strangers
    config = load_config(settings.config)
    await ensure_topics(settings.kafka, [LIVE_CALLS])  # private to the ivr: created by its first instance
    bus = EventBus(settings.kafka, SERVICE)
    await bus.start()
    callers = CallerMemory.for_config(config)  # forgets callers past the longest duplicate_window
    desk = CallDesk(settings, config, bus, callers)
    positions: dict[str, int] = {}
    desk.positions = lambda: dict(positions)
    listener_ready = asyncio.Event()
    callers_loaded = asyncio.Event()
    calls_loaded = asyncio.Event()
    follower = asyncio.create_task(callers.follow(settings.kafka, stop, callers_loaded, f"{SERVICE}-callers"))
    live = asyncio.create_task(livecalls.follow(desk, settings.kafka, stop, calls_loaded, f"{SERVICE}-calls"))
    listener: asyncio.Task | None = None
    server: grpc.aio.Server | None = None
    webhook: TwimlWebhook | None = None
    sweeper: asyncio.Task | None = None
    outbound: asyncio.Task | None = None
    grpc_health: asyncio.Task | None = None
    try:
        # The live calls first: the listener starts where their pending decisions can be. The listener must be
        # positioned before any call can be started, or a fast result could be missed; the callers seen so far
        # must be loaded, or a restart would let duplicates in.
        await _first([calls_loaded.wait(), asyncio.shield(live), asyncio.shield(follower)])
        listener = asyncio.create_task(
            listen_terminal(
                settings.kafka, desk.on_terminal, stop, listener_ready, desk.decision_offsets(), positions, desk.on_queue_status
            )
        )
        for gate in (listener_ready, callers_loaded):
            await _first([gate.wait(), asyncio.shield(listener), asyncio.shield(follower), asyncio.shield(live)])
        server = grpcsecurity.server(edge_tokens)  # the client credential check
        cc_grpc.add_CallControlServicer_to_server(CallControlService(desk), server)
        grpc_health = asyncio.create_task(follow_readiness(add_ops_services(server), ops.health(), stop))
        port = grpcsecurity.add_port(server, edge)  # TLS when configured
        await server.start()
        ready: dict[str, object] = {"grpc_host": settings.grpc_host, "grpc_port": port, "grpc_tls": settings.grpc_tls}
        if settings.twiml_enabled:  # the same desk behind both edges
            webhook = TwimlWebhook(desk, settings)
            ready.update(twiml_host=settings.twiml_host, twiml_port=await webhook.start())
        if settings.outbound_enabled:  # TwiML callers called back through the CPaaS REST API
            outbound = asyncio.create_task(OutboundCallbacks(desk, settings).run(stop))
        sweeper = asyncio.create_task(_sweeper(desk, bus, stop))
        mark_ready(SERVICE, **ready)
        log.info(
            "ivr_ready",
            grpc=f"{settings.grpc_host}:{port}",
            twiml=f"{settings.twiml_host}:{ready['twiml_port']}" if webhook else "off",
            campaigns=len(config.campaigns),
            callers=len(callers.last_seen),
            live_calls=len(desk.calls),
        )
        # A dead listener (or outbound placer) is fatal: fail loudly.
        watched = [listener, follower, live, *([outbound] if outbound else [])]
        await _first([stop.wait(), *(asyncio.shield(t) for t in watched)])
    finally:
        stop.set()
        if webhook is not None:
            await webhook.stop()
        if server is not None:
            await server.stop(settings.shutdown_grace_s)
        for task in (sweeper, outbound, listener, follower, live, grpc_health):
            if task is not None:
                try:
                    await asyncio.wait_for(task, 5)
                except (TimeoutError, asyncio.CancelledError):
                    pass
                except Exception:  # already reported where it happened; shutdown goes on
                    log.exception("task_failed_during_shutdown")
        await bus.stop()
        log.info("ivr_stopped")
