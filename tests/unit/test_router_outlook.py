"""The router stamps call.queued with the queue's outlook (docs/ACD.md "Projected wait"): the place the call
takes and its projected wait, from the newest queue.summary of the queue; -1 before any summary."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.platform import ops
from switchboard.services.router.outlook import QueueOutlook, reader_failed
from switchboard.v1 import events_pb2 as pb
from tests.unit.test_router_overflow import _router, queued_call


def summary(queue_id: str, waiting: int, wait_s: int, at_s: int) -> pb.QueueSummary:
    return pb.QueueSummary(queue_id=queue_id, waiting=waiting, projected_wait_s=wait_s, occurred_at=Timestamp(seconds=at_s))


async def test_call_queued_carries_position_and_projected_wait_from_the_latest_summary() -> None:
    app, router = _router()
    first = await queued_call(app, router)
    assert (first.position, first.projected_wait_s) == (-1, -1)  # no summary of the queue read yet
    router.outlook.apply(summary("q", waiting=4, wait_s=95, at_s=100))
    router.outlook.apply(summary("q", waiting=9, wait_s=400, at_s=50))  # older (read again): ignored
    router.outlook.apply(summary("other", waiting=1, wait_s=5, at_s=200))
    app.topics["call.queued"].sent.clear()
    second = await queued_call(app, router)
    assert (second.position, second.projected_wait_s) == (5, 95)


def test_unknown_projected_wait_stays_unknown() -> None:
    outlook = QueueOutlook()
    outlook.apply(summary("q", waiting=0, wait_s=-1, at_s=1))
    assert outlook.stamp("q") == (1, -1)


async def test_a_failed_reader_is_logged_and_makes_the_worker_not_ready() -> None:
    async def broken() -> None:
        raise RuntimeError("no broker")

    task = asyncio.create_task(broken())
    with pytest.raises(RuntimeError):
        await task
    reader_failed(task)
    verdict = ops.health().ready()
    assert not verdict.ok and "queue.summary reader failed" in str(verdict)
    ops.health().clear("queue_outlook")
