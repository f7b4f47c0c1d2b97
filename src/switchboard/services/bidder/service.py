"""Answer each ping.requested with one bid.received per pinged buyer.

Static buyers bid their pre-agreed price; RTB buyers get NO_BID with reason
"rtb_not_supported" until the HTTP/gRPC pinger lands (issue #4). A buyer the
configuration does not know gets NO_BID "unknown_buyer". A redelivered ping
answers again; the router keeps the first answer per buyer.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiokafka import ConsumerRecord
from google.protobuf.message import Message

from switchboard.core.config import RoutingConfig, StaticBid, load_config
from switchboard.platform import codec
from switchboard.platform.kafka import EventBus, consume
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.topics import BID_RECEIVED, PING_REQUESTED, Topic
from switchboard.services.bidder.settings import BidderSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("bidder")


def answer(config: RoutingConfig, ping: pb.PingRequested, buyer_id: str, started: float) -> pb.BidReceived:
    """The bid.received for one pinged buyer (no I/O for static buyers)."""
    bid = pb.BidReceived(
        event_id=codec.new_id(), call_id=ping.call_id, auction_id=ping.auction_id, buyer_id=buyer_id, available=True
    )
    buyer = next((b for b in config.buyers if b.id == buyer_id), None)
    if buyer is None:
        bid.outcome, bid.reason, bid.available = pb.BID_OUTCOME_NO_BID, "unknown_buyer", False
    elif isinstance(buyer.bid, StaticBid):
        bid.outcome, bid.amount = pb.BID_OUTCOME_BID, f"{buyer.bid.price:.2f}"
    else:
        bid.outcome, bid.reason, bid.available = pb.BID_OUTCOME_NO_BID, "rtb_not_supported", False
    bid.latency_ms = int((time.monotonic() - started) * 1000)
    bid.occurred_at.CopyFrom(codec.now_ts())
    return bid


async def run(settings: BidderSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    bus = EventBus(settings.kafka, "bidder")
    await bus.start()

    async def handle(topic: Topic, event: Message, record: ConsumerRecord) -> None:
        ping: pb.PingRequested = event  # type: ignore[assignment]
        started = time.monotonic()
        bids = [answer(config, ping, buyer_id, started) for buyer_id in ping.buyer_ids]
        await asyncio.gather(*(bus.publish(BID_RECEIVED, b) for b in bids))
        log.debug("answered", call_id=ping.call_id, auction_id=ping.auction_id, buyers=len(bids))

    try:
        await consume(
            bus,
            [PING_REQUESTED],
            handle,
            settings.group_id,
            stop,
            on_ready=lambda: mark_ready("bidder", group=settings.group_id),
        )
    finally:
        await bus.stop()
