"""Answer each ping.requested with one bid.received per pinged buyer.

- Static buyers bid their pre-agreed price at once, without any network call.
- RTB buyers (`bid: {type: rtb, url, timeout_ms}`) are called concurrently over
  HTTP(S) or gRPC (rtb.Pinger). Each gets min(timeout_ms, deadline − now −
  deadline_margin_ms); nothing waits past the ping's deadline. Each answer is
  published as soon as it is in (parallel_first wants the first one early).
- A buyer the configuration does not know gets NO_BID "unknown_buyer".
- The floor (below_floor) is the router's decision, not ours.
- post.requested (ping_post's post to the auction winner) → one post.answered:
  a static buyer accepts at once without any network call; an RTB buyer gets an
  HTTP POST to its same `bid.url` with body "type": "post" (or the gRPC Post rpc),
  bounded by min(timeout_ms, post deadline − now − deadline_margin_ms). Any
  failure is a rejection with our reason (timeout, http_5xx, malformed, ...).

Each ping is answered in its own task, so a slow auction never delays the next
ping of the same partition past its own deadline. The offset is committed when
the task has started, not finished: after a crash, a redelivered ping would be
answered after its deadline anyway, and the router treats missing answers at
the deadline as no bid. On stop the tasks in flight finish (each is bounded by
its deadline) before the producer closes. Only undecodable pings are
dead-lettered (by platform.kafka.consume); nothing a buyer sends raises here.
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeAlias

import structlog
from aiokafka import ConsumerRecord

from switchboard.core import reasons
from switchboard.core.config import Buyer, RoutingConfig, RtbBid, StaticBid
from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import EventBus, consume
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.topics import (
    BID_RECEIVED,
    PING_REQUESTED,
    POST_ANSWERED,
    POST_REQUESTED,
    Topic,
)
from switchboard.services.bidder import protocol
from switchboard.services.bidder.metrics import BUYER_FAULTS, RTB_LATENCY, count_answer, is_fault
from switchboard.services.bidder.protocol import Answer
from switchboard.services.bidder.rtb import Pinger
from switchboard.services.bidder.settings import BidderSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("bidder")

# What the bidder answers: the router's pings (bids from a tier) and posts (the auction winner's accept).
Input: TypeAlias = pb.PingRequested | pb.PostRequested
INPUTS: tuple[Topic[Input], ...] = (PING_REQUESTED, POST_REQUESTED)


def static_answer(buyer: Buyer | None) -> Answer | None:
    """The answer that needs no network call (static or unknown buyer); None for an RTB buyer."""
    if buyer is None:
        return Answer.no_bid(reasons.UNKNOWN_BUYER)
    if isinstance(buyer.bid, StaticBid):
        return Answer(pb.BID_OUTCOME_BID, amount=f"{buyer.bid.price:.2f}", available=True)
    return None


def bid_event(ping: pb.PingRequested, buyer_id: str, answer: Answer, latency_s: float) -> pb.BidReceived:
    bid = pb.BidReceived(
        event_id=codec.new_id(),
        call_id=ping.call_id,
        auction_id=ping.auction_id,
        buyer_id=buyer_id,
        outcome=answer.outcome,
        amount=answer.amount,
        reason=answer.reason,
        available=answer.available,
        latency_ms=max(0, int(latency_s * 1000)),
    )
    bid.occurred_at.CopyFrom(codec.now_ts())
    return bid


def post_answered_event(post: pb.PostRequested, result: protocol.PostResult, latency_s: float) -> pb.PostAnswered:
    out = pb.PostAnswered(
        event_id=codec.new_id(),
        call_id=post.call_id,
        auction_id=post.auction_id,
        buyer_id=post.buyer_id,
        accepted=result.accepted,
        reason=result.reason,
        latency_ms=max(0, int(latency_s * 1000)),
        attempt=post.attempt,
    )
    out.occurred_at.CopyFrom(codec.now_ts())
    return out


def rtb_timeout_s(bid: RtbBid, ping: pb.PingRequested | pb.PostRequested, margin_ms: int, now: float | None = None) -> float:
    """min(timeout_ms, deadline − now − margin) in seconds (may be ≤ 0: no time left)."""
    timeout = bid.timeout_ms / 1000
    deadline = protocol.deadline_epoch(ping)
    if deadline is None:
        return timeout
    left = deadline - (time.time() if now is None else now) - margin_ms / 1000
    return min(timeout, left)


class Bidder:
    def __init__(self, settings: BidderSettings, config: RoutingConfig, bus: EventBus, pinger: Pinger) -> None:
        self.settings = settings
        self.buyers = {b.id: b for b in config.buyers}
        self.bus = bus
        self.pinger = pinger
        self.tasks: set[asyncio.Task] = set()
        self.slots = asyncio.Semaphore(settings.max_inflight_pings)

    async def handle(self, topic: Topic[Input], event: Input, record: ConsumerRecord) -> None:
        await self.slots.acquire()  # back-pressure on the consumer only when far too many pings are in flight
        if isinstance(event, pb.PostRequested):  # post.requested's message
            task = asyncio.create_task(self.answer_post(event))
        else:
            task = asyncio.create_task(self.answer_ping(event))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self.slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("ping_task_failed", error=repr(task.exception()))

    async def answer_ping(self, ping: pb.PingRequested) -> None:
        started = time.monotonic()
        jobs = [self._answer_one(ping, buyer_id, started) for buyer_id in dict.fromkeys(ping.buyer_ids)]
        await asyncio.gather(*jobs)
        log.debug("answered", call_id=ping.call_id, auction_id=ping.auction_id, buyers=len(jobs))

    async def _answer_one(self, ping: pb.PingRequested, buyer_id: str, started: float) -> None:
        buyer = self.buyers.get(buyer_id)
        result = static_answer(buyer)
        if result is None:
            assert buyer is not None and isinstance(buyer.bid, RtbBid)
            timeout = rtb_timeout_s(buyer.bid, ping, self.settings.deadline_margin_ms)
            asked = time.monotonic()
            result = await self.pinger.ping(protocol.shown_ping(ping, buyer), buyer_id, buyer.bid.url, timeout)
            RTB_LATENCY.labels(buyer_id).observe(time.monotonic() - asked)
            if result.outcome == pb.BID_OUTCOME_NO_BID:
                log.info(
                    "no_bid",
                    call_id=ping.call_id,
                    auction_id=ping.auction_id,
                    buyer_id=buyer_id,
                    reason=result.reason,
                    detail=result.detail,
                )
        count_answer(buyer_id, result.outcome, result.reason)
        event = bid_event(ping, buyer_id, result, time.monotonic() - started)
        try:
            await self.bus.publish(BID_RECEIVED, event)
        except Exception as exc:  # noqa: BLE001 — the broker, not a buyer: log; the router counts it as no answer at the deadline
            log.error("publish_failed", call_id=ping.call_id, buyer_id=buyer_id, error=f"{type(exc).__name__}: {exc}")

    async def answer_post(self, post: pb.PostRequested) -> None:
        started = time.monotonic()
        buyer = self.buyers.get(post.buyer_id)
        if buyer is None:
            result = protocol.PostResult.failed(reasons.UNKNOWN_BUYER)
        elif isinstance(buyer.bid, StaticBid):
            result = protocol.PostResult(True)  # a pre-agreed price: nothing to ask
        else:
            timeout = rtb_timeout_s(buyer.bid, post, self.settings.deadline_margin_ms)
            result = await self.pinger.post(protocol.shown_post(post, buyer), buyer.bid.url, timeout)
        if not result.accepted and is_fault(result.reason):
            BUYER_FAULTS.labels(post.buyer_id, result.reason).inc()
        log.info(
            "post_answered",
            call_id=post.call_id,
            auction_id=post.auction_id,
            buyer_id=post.buyer_id,
            attempt=post.attempt,
            accepted=result.accepted,
            reason=result.reason,
            detail=result.detail,
        )
        event = post_answered_event(post, result, time.monotonic() - started)
        try:
            await self.bus.publish(POST_ANSWERED, event)
        except Exception as exc:  # noqa: BLE001 — the router treats a missing answer as a timeout at the post deadline
            log.error("publish_failed", call_id=post.call_id, buyer_id=post.buyer_id, error=f"{type(exc).__name__}: {exc}")

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


async def run(settings: BidderSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    secrets = settings.buyer_secrets()
    rtb = [b.id for b in config.buyers if isinstance(b.bid, RtbBid)]
    log.info("starting", buyers=len(config.buyers), rtb_buyers=len(rtb), signed=sorted(b for b in rtb if b in secrets))
    bus = EventBus(settings.kafka, "bidder")
    pinger = Pinger(settings, secrets)
    await bus.start()
    await pinger.start()
    bidder = Bidder(settings, config, bus, pinger)
    try:
        await consume(
            bus,
            INPUTS,
            bidder.handle,
            settings.group_id,
            stop,
            on_ready=lambda: mark_ready("bidder", group=settings.group_id),
        )
    finally:
        await bidder.drain()
        await pinger.stop()
        await bus.stop()
