"""What each router worker knows of the ACD queues: the latest queue.summary per queue.

The queue service writes a QueueSummary per queue (waiting calls, agents, projected wait for a
call arriving now) to the compacted queue.summary topic. Every worker reads it whole and follows
it (plain consumer, no group: `OutlookReader`, like the view) into a `QueueOutlook`, and stamps
each call.queued it publishes with the place the call takes (waiting + 1) and the projected wait
(docs/ACD.md "Projected wait"). It is an estimate for the record and the analyst: the queue's own
queue.status for the call, a moment later, is what the caller hears. The worker does not wait
for it to start routing (a queue service not running yet must not stop sales to buyers): until
a summary of the queue is read, both fields are -1.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError

from switchboard.platform import ops
from switchboard.platform.follow import Follower
from switchboard.platform.kafka import make_consumer
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import QUEUE_SUMMARY
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

UNKNOWN = -1


class QueueOutlook:
    """The newest QueueSummary per queue id (a later occurred_at wins: the topic may be read again)."""

    def __init__(self) -> None:
        self.summaries: dict[str, pb.QueueSummary] = {}

    def apply(self, summary: pb.QueueSummary) -> None:
        known = self.summaries.get(summary.queue_id)
        if known is not None and known.occurred_at.ToNanoseconds() > summary.occurred_at.ToNanoseconds():
            return
        self.summaries[summary.queue_id] = summary

    def stamp(self, queue_id: str) -> tuple[int, int]:
        """(position, projected_wait_s) for a call queued now at `queue_id`; (-1, -1) when no summary was read."""
        summary = self.summaries.get(queue_id)
        if summary is None:
            return UNKNOWN, UNKNOWN
        return summary.waiting + 1, summary.projected_wait_s


class OutlookReader:
    """Reads queue.summary into a QueueOutlook from the beginning, then follows it until cancelled.

    Its follow loop is watched by /livez like every follower (platform.follow) while it runs; a reader
    that fails is logged and turns /readyz false (`reader_failed`): the stamps would go stale unseen."""

    def __init__(self, kafka: KafkaSettings, outlook: QueueOutlook) -> None:
        self.kafka = kafka
        self.outlook = outlook

    async def run(self) -> None:
        consumer = make_consumer(self.kafka, None, "router-outlook")
        await consumer.start()

        async def apply(r: ConsumerRecord, catching_up: bool) -> None:
            if r.value is None:  # a tombstone: the queue was removed from the configuration
                self.outlook.summaries.pop((r.key or b"").decode(), None)
                return
            try:
                self.outlook.apply(pb.QueueSummary.FromString(r.value))
            except DecodeError as exc:
                # An estimate, not a decision: a bad record costs the stamp, not the call (no dead letter).
                log.warning("bad_queue_summary", partition=r.partition, offset=r.offset, error=str(exc))

        def caught_up() -> None:
            log.info("queue_outlook_caught_up", queues=len(self.outlook.summaries))

        try:
            follower = Follower(consumer, self.kafka, "router-outlook")
            await follower.start([QUEUE_SUMMARY.name])
            await follower.run(apply, asyncio.Event(), on_caught_up=caught_up)  # never set: runs until cancelled
        finally:
            await consumer.stop()


def reader_failed(task: asyncio.Task[None]) -> None:
    """Done callback of the reader's task: its error is logged, never lost with the task."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("queue_outlook_failed", error=repr(exc), exc_info=exc)
        ops.health().set("queue_outlook", False, f"the queue.summary reader failed: {exc!r}")
