"""The router's Faust app: one agent, three source topics, state in two tables.

Topics consumed by the single agent `route` (dispatch on the message topic):
  ivr.completed     → start routing the call (core.engine.start_routing)
  bid.received      → fill the auction in flight; conclude when every pinged buyer answered
  router.deadlines  → an auction's deadline passed; conclude with the answers so far

Why the deadline topic: a Faust timer runs outside any stream event and cannot
write tables (changelog writes need the source partition of an event). The
timer only looks for expired auctions in the local table and sends a small
message keyed by call id to router.deadlines (same partition count, so it lands
on the partition that owns the call); the agent handles it like any other
event, so every table write happens in stream context and the events of one
call are processed one at a time.

Tables (keyed by call id, co-partitioned with the sources, changelog-backed):
  auctions: the call in flight: the ivr.completed event, engine progress,
            auction id, pinged buyers, answers so far, deadline.
  finished: call id → terminal kind; a redelivered ivr.completed is ignored,
            so each call gets exactly one terminal event.

Crash safety: terminal events are sent before the tables are updated, so a
crash in between repeats the event (at-least-once; consumers dedupe by call
id) rather than losing the call.
"""

from __future__ import annotations

import base64
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import faust
import structlog
from faust.types import EventT

from switchboard.core import engine
from switchboard.core.config import RoutingConfig
from switchboard.core.eligibility import CallFacts
from switchboard.platform import codec
from switchboard.platform.topics import (
    BID_RECEIVED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    DEAD_LETTER,
    IVR_COMPLETED,
    PING_REQUESTED,
)
from switchboard.services.router.settings import RouterSettings
from switchboard.services.router.transport import transport_class
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("router")

SERVICE = "router"
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class RouterApp(faust.App):
    """faust.App whose consumer honours KafkaSettings.fetch_max_wait_ms (see transport.py)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return transport_class(self._fetch_max_wait_ms)(self.conf.broker_consumer, self)


def _ts_from_ms(ms: int) -> Any:
    ts = codec.now_ts()
    ts.FromMilliseconds(ms)
    return ts


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Router:
    """The adapter: decode → core.engine → publish + table updates. One instance per app."""

    def __init__(self, app: RouterApp, config: RoutingConfig, settings: RouterSettings) -> None:
        self.app = app
        self.config = config
        partitions = settings.kafka.partitions
        # JSON keys and values: the changelog decodes back to the same str keys and dict values on recovery.
        schema = faust.Schema(key_serializer="json", value_serializer="json")
        self.auctions = app.Table("auctions", partitions=partitions, schema=schema)
        self.finished = app.Table("finished", partitions=partitions, schema=schema)
        self.source = app.topic(
            IVR_COMPLETED.name, BID_RECEIVED.name, settings.deadlines_topic, partitions=partitions, internal=True, **_RAW
        )
        self.deadlines = app.topic(settings.deadlines_topic, partitions=partitions, internal=True, **_RAW)
        self.out = {t.name: app.topic(t.name, **_RAW) for t in (PING_REQUESTED, CALL_ROUTED, CALL_REJECTED, CALL_QUEUED, DEAD_LETTER)}
        self.deadlines_topic = settings.deadlines_topic
        # (call_id, auction_id) already signalled by the timer; pruned as auctions end.
        self._signalled: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ stream side

    async def process(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                await self.handle(event)
            except Exception as exc:  # Faust would ack and drop the message: dead-letter it and go on
                log.exception("handler_failed", topic=event.message.topic, offset=event.message.offset)
                await self.dead_letter(event, f"handler error: {type(exc).__name__}: {exc}")

    async def handle(self, event: EventT) -> None:
        topic = event.message.topic
        value = event.value
        if topic == self.deadlines_topic:
            call_id = (event.key or b"").decode()
            await self.on_deadline(call_id, (value or b"").decode())
            return
        try:
            msg = codec.decode(topic, value)
        except codec.UndecodableEvent as exc:
            await self.dead_letter(event, f"undecodable: {exc}")
            return
        if topic == IVR_COMPLETED.name:
            await self.on_ivr_completed(msg)  # type: ignore[arg-type]
        elif topic == BID_RECEIVED.name:
            await self.on_bid(msg)  # type: ignore[arg-type]

    async def on_ivr_completed(self, ivr: pb.IvrCompleted) -> None:
        call_id = ivr.call_id
        if call_id in self.finished or call_id in self.auctions:
            log.info("duplicate_ivr_completed", call_id=call_id)
            return
        facts = CallFacts(
            call_id=call_id,
            campaign_id=ivr.campaign_id,
            publisher_id=ivr.publisher_id,
            state=ivr.caller.state,
            zip=ivr.caller.zip,
            area_code=ivr.caller.area_code,
            answers=dict(ivr.answers),
        )
        now = _now()
        started_ms = ivr.occurred_at.ToMilliseconds() if ivr.HasField("occurred_at") else int(now.timestamp() * 1000)
        ctx = {"ivr": base64.b64encode(codec.encode(ivr)).decode(), "routing_started_ms": started_ms}
        await self.apply(call_id, ctx, engine.start_routing(self.config, facts, now))

    async def on_bid(self, bid: pb.BidReceived) -> None:
        auction = self.auctions.get(bid.call_id)
        if auction is None or auction["auction_id"] != bid.auction_id or bid.buyer_id not in auction["pinged"]:
            log.info("stale_bid", call_id=bid.call_id, auction_id=bid.auction_id, buyer_id=bid.buyer_id)
            return
        if bid.buyer_id in auction["answers"]:
            return  # a redelivered answer: the first one counts
        answer = engine.BidAnswer.from_pb(bid)
        auction["answers"][bid.buyer_id] = {
            "outcome": answer.outcome,
            "amount": None if answer.amount is None else str(answer.amount),
            "reason": answer.reason,
            "latency_ms": answer.latency_ms,
            "available": answer.available,
        }
        if engine.auction_complete(auction["pinged"], auction["answers"]):
            await self.conclude(bid.call_id, auction)
        else:
            self.auctions[bid.call_id] = auction  # write back: the changelog records the new answer

    async def on_deadline(self, call_id: str, auction_id: str) -> None:
        auction = self.auctions.get(call_id)
        if auction is None or auction["auction_id"] != auction_id:
            return  # concluded already
        await self.conclude(call_id, auction)

    async def conclude(self, call_id: str, auction: dict) -> None:
        answers = {
            buyer_id: engine.BidAnswer(
                buyer_id,
                a["outcome"],
                None if a["amount"] is None else Decimal(a["amount"]),
                a["reason"],
                a["latency_ms"],
                a["available"],
            )
            for buyer_id, a in auction["answers"].items()
        }
        progress = engine.Progress.from_dict(auction["progress"])
        step = engine.conclude_auction(self.config, progress, auction["pinged"], answers, _now())
        await self.apply(call_id, auction["ctx"], step)

    async def apply(self, call_id: str, ctx: dict, step: engine.Step) -> None:
        """Carry out the engine's action: ping, or one terminal event then bookkeeping."""
        action, progress = step.action, step.progress
        ivr = pb.IvrCompleted.FromString(base64.b64decode(ctx["ivr"]))
        started = _ts_from_ms(ctx["routing_started_ms"])
        if isinstance(action, engine.RequestBids):
            auction_id = codec.new_id()
            facts = progress.call
            ping = pb.PingRequested(
                event_id=codec.new_id(),
                call_id=call_id,
                occurred_at=codec.now_ts(),
                auction_id=auction_id,
                campaign_id=facts.campaign_id,
                publisher_id=facts.publisher_id,
                tier_index=action.tier_index,
                attempt=action.attempt,
                strategy=action.strategy,
                buyer_ids=list(action.buyer_ids),
                deadline=_ts_from_ms(int(action.deadline.timestamp() * 1000)),
                state=facts.state,
                zip=facts.zip,
                area_code=facts.area_code,
                answers=dict(facts.answers),
            )  # never the caller number
            self.auctions[call_id] = {
                "ctx": ctx,
                "progress": progress.to_dict(),
                "auction_id": auction_id,
                "pinged": list(action.buyer_ids),
                "answers": {},
                "deadline_ms": int(action.deadline.timestamp() * 1000),
            }
            await self.send(PING_REQUESTED.name, call_id, ping)
            return
        common = {
            "event_id": codec.new_id(),
            "call_id": call_id,
            "occurred_at": codec.now_ts(),
            "call_started_at": ivr.call_started_at,
            "campaign_id": ivr.campaign_id,
            "publisher_id": self.publisher_of(ivr),
            "routing_started_at": started,
            "trace": progress.trace,
        }
        if isinstance(action, engine.RouteToBuyer):
            out: Any = pb.CallRouted(
                **common,
                kind=pb.TARGET_KIND_BUYER,
                buyer_id=action.buyer_id,
                destination=action.destination,
                price=f"{action.price:.2f}",
                tier_index=action.tier_index,
                attempt=action.attempt,
                strategy=action.strategy,
                caller=ivr.caller,
                answers=dict(ivr.answers),
            )
            topic, kind = CALL_ROUTED.name, "routed"
            log.info("call_routed", call_id=call_id, buyer_id=action.buyer_id, price=out.price, tier=action.tier_index)
        elif isinstance(action, engine.HandToQueue):
            out = pb.CallQueued(
                **common,
                queue_id=action.queue_id,
                caller=ivr.caller,
                answers=dict(ivr.answers),
                tier_index=action.tier_index,
                attempt=action.attempt,
            )
            topic, kind = CALL_QUEUED.name, "queued"
            log.info("call_queued", call_id=call_id, queue_id=action.queue_id)
        else:
            out = pb.CallRejected(**common, reason=action.reason, detail=action.detail, announcement=action.announcement)
            topic, kind = CALL_REJECTED.name, "rejected"
            log.info("call_rejected", call_id=call_id, reason=action.reason, detail=action.detail)
        await self.send(topic, call_id, out)
        self.finished[call_id] = kind
        if call_id in self.auctions:
            del self.auctions[call_id]

    def publisher_of(self, ivr: pb.IvrCompleted) -> str:
        """The event's publisher, or its campaign's when the event names none."""
        if ivr.publisher_id:
            return ivr.publisher_id
        campaign = next((c for c in self.config.campaigns if c.id == ivr.campaign_id), None)
        return campaign.publisher if campaign else ""

    async def send(self, topic: str, call_id: str, event: Any) -> None:
        await self.out[topic].send(key=call_id.encode(), value=codec.encode(event))

    async def dead_letter(self, event: EventT, reason: str) -> None:
        m = event.message
        letter = codec.dead_letter(SERVICE, m, reason)
        await self.out[DEAD_LETTER.name].send(key=m.key, value=codec.encode(letter))
        log.warning("dead_lettered", topic=m.topic, partition=m.partition, offset=m.offset, reason=reason)

    # ------------------------------------------------------------ timer side (no table writes here)

    async def signal_expired(self) -> None:
        now_ms = int(time.time() * 1000)
        live: set[tuple[str, str]] = set()
        for call_id, auction in list(self.auctions.items()):
            key = (call_id, auction["auction_id"])
            live.add(key)
            if auction["deadline_ms"] <= now_ms and key not in self._signalled:
                self._signalled.add(key)
                await self.deadlines.send(key=call_id.encode(), value=auction["auction_id"].encode())
        self._signalled &= live


def create_app(settings: RouterSettings, config: RoutingConfig) -> tuple[RouterApp, Router]:
    """Build the Faust app (nothing connects until it is started)."""
    kafka = settings.kafka
    data_dir = settings.data_dir or tempfile.mkdtemp(prefix="switchboard-router-")
    app = RouterApp(
        settings.app_id,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        broker=[f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(",") if hp.strip()],
        store="memory://",  # state lives in the changelog topics; recovered on restart
        datadir=str(data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_rebalance_timeout=kafka.rebalance_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        producer_linger=kafka.linger_ms / 1000,
        consumer_auto_offset_reset="earliest",
        web_enabled=bool(settings.web_port),
        web_host="127.0.0.1",
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
    )
    router = Router(app, config, settings)
    app.agent(router.source, name="route")(router.process)
    app.timer(settings.deadline_tick_ms / 1000, name="deadlines")(router.signal_expired)
    return app, router
