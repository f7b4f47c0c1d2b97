"""Everything the call side sends, and the header every decision event carries.

`Publisher` holds the outgoing topics: the platform events (ping.requested, post.requested,
call.routed, call.queued, call.rejected), the dead-letter topic (the ledger agent dead-letters
through it too), and <app>.ledger for the call side's reserve, release and bid messages. A unit of
its own: the handlers need nothing of the topics but these sends, and the decision header
(`decision`: call.routed, call.queued and call.rejected start with core.decisions' header) and the
publisher of a call are what the router's published events share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from faust.types import EventT, TopicT
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core.config import RoutingConfig
from switchboard.core.decisions import Decision, DecisionHeader
from switchboard.platform import codec
from switchboard.platform.deadletters import write_dead_letter
from switchboard.platform.metrics import DEAD_LETTERS, HANDLER_ERRORS, reason_kind
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import DEAD_LETTER
from switchboard.services.router import protocol
from switchboard.services.router.metrics import count_decision
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("router")

SERVICE = "router"


def ts_from_ms(ms: int) -> Timestamp:
    ts = codec.now_ts()
    ts.FromMilliseconds(ms)
    return ts


class Publisher:
    def __init__(self, config: RoutingConfig, out: Mapping[str, TopicT], ledger: TopicT, kafka: KafkaSettings) -> None:
        self.config = config
        self.kafka = kafka
        self.out = out  # topic name → faust topic (raw bytes)
        self.ledger = ledger

    async def send(self, topic: str, call_id: str, event: Message) -> None:
        await self.out[topic].send(key=call_id.encode(), value=codec.encode(event))
        count_decision(event)  # call.routed, call.queued, call.rejected: switchboard_decisions_total

    async def to_ledger(self, key: str, msg: protocol.Message) -> None:
        """A message for the ledger agent, keyed by buyer id (so one writer per buyer sees it)."""
        await self.ledger.send(key=key.encode(), value=protocol.encode(msg))

    async def dead_letter(self, event: EventT, reason: str) -> None:
        """Write the event's dead letter and wait until the broker has it, retrying failures (platform.deadletters).

        The agent holds the event meanwhile (Faust acks it, and so commits past it, only when the
        agent takes the next one), and a shutdown cancels the retries without acking it.
        """
        m = event.message
        topic = self.out[DEAD_LETTER.name]

        async def send(value: bytes, key: bytes | None) -> object:
            return await (await topic.send(key=key, value=value))  # the send, then its delivery

        letter = await write_dead_letter(send, codec.dead_letter(SERVICE, m, reason), self.kafka)
        DEAD_LETTERS.labels(m.topic, reason_kind(reason)).inc()
        HANDLER_ERRORS.labels(m.topic).inc()
        log.warning(
            "dead_lettered",
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            reason=reason,
            value_omitted_bytes=letter.value_omitted_bytes,
        )

    def decision(
        self, message: type[Decision], call_id: str, ivr: pb.IvrCompleted, routing_started_ms: int, **fields: Any
    ) -> Decision:
        """The decision event `message` (call.routed, call.queued, call.rejected) about `call_id`, stamped now:
        core.decisions' header, with the call's publisher and when its routing started, then its own `fields`."""
        header = DecisionHeader(
            call_id, ivr.campaign_id, self.publisher_of(ivr), ivr.call_started_at, ts_from_ms(routing_started_ms)
        )
        return header.event(message, event_id=codec.new_id(), occurred_at=codec.now_ts(), **fields)

    def publisher_of(self, ivr: pb.IvrCompleted) -> str:
        """The event's publisher, or its campaign's when the event names none."""
        if ivr.publisher_id:
            return ivr.publisher_id
        campaign = next((c for c in self.config.campaigns if c.id == ivr.campaign_id), None)
        return campaign.publisher if campaign else ""
