"""Run the router in the current event loop until `stop` is set (no faust CLI, no faust.Worker).

We drive the Faust app as a mode Service ourselves so that the process keeps
the platform lifecycle (SIGTERM → stop event → clean shutdown, readiness file).
`app.start()` returns once the first assignment's table recovery finished.

Before the app starts, the worker checks that its input and internal topics have the
configured partition count (a call's events are joined by partition: a mismatch stops
it with the fix), creates the router-internal topics (ledger, replies, view; same
partition count as every topic) and reads the whole view
topic, so its first decisions already see the buyers' published state.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

import structlog
from faust.tables.manager import TableManager
from google.protobuf.message import Message

from switchboard.platform import ops
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import check_partition_counts, ensure_topics
from switchboard.platform.lifecycle import mark_ready
from switchboard.platform.topics import (
    BID_RECEIVED,
    CALL_ENDED,
    CALL_OVERFLOWED,
    IVR_COMPLETED,
    POST_ANSWERED,
    QUEUE_SUMMARY,
    Topic,
)
from switchboard.services.router.app import RouterApp, create_app
from switchboard.services.router.metrics import install_sensor, watch_worker
from switchboard.services.router.outlook import OutlookReader, reader_failed
from switchboard.services.router.settings import RouterSettings
from switchboard.services.router.view import ViewReader

log = structlog.get_logger("router")

ROUTER_INPUTS = (IVR_COMPLETED, BID_RECEIVED, CALL_ENDED, POST_ANSWERED, CALL_OVERFLOWED)  # keyed by call id, joined by partition


def internal_topics(settings: RouterSettings) -> list[Topic]:
    """The router's own topics: JSON values (protocol.py), not protobuf events, hence Message."""
    return [
        Topic(settings.deadlines_topic, Message, "expired auctions (router-internal)"),
        Topic(settings.internal_topic("ledger"), Message, "buyer ledger reservations and releases (router-internal)"),
        Topic(settings.internal_topic("replies"), Message, "buyer ledger answers (router-internal)"),
        # Only the newest BuyerLoad/TierState per key matters (one writer per key: the ledger agent),
        # so a starting worker reads little (docs/ROUTER.md, "Restart and rebalance").
        Topic(
            settings.internal_topic("view"), Message, "buyer ledger view: latest state per key (router-internal)", compacted=True
        ),
    ]


# The Faust tables of app.py and bookkeeper.py; tests/unit/test_k8s_topics.py builds the app and
# checks that these are exactly its tables.
TABLES = ("auctions", "finished", "loads", "tiers")


def changelog_topics(settings: RouterSettings) -> list[Topic]:
    """The tables' changelog topics, named as Faust names them; compacted as Faust creates them."""
    return [
        Topic(
            f"{settings.app_id}-{table}-changelog",
            Message,
            f"changelog of the Faust table {table} (router-internal)",
            compacted=True,
        )
        for table in TABLES
    ]


def router_topics(settings: RouterSettings) -> list[Topic]:
    """Every topic the router deployment of `settings` uses beyond the platform table."""
    return [*internal_topics(settings), *changelog_topics(settings)]


async def run(settings: RouterSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    await check_partition_counts(settings.kafka, [*(t.name for t in ROUTER_INPUTS), *(t.name for t in internal_topics(settings))])
    # queue.summary is the queue service's; created here too so that a router started first can follow it.
    await ensure_topics(settings.kafka, [*internal_topics(settings), QUEUE_SUMMARY])
    app, router = create_app(settings, config)
    health = ops.health()
    install_sensor(app, health)  # before the app starts: Faust's sensors see every event
    watching = asyncio.create_task(watch_worker(app, health, stop))
    reader = ViewReader(settings.kafka, settings.internal_topic("view"), router.view)
    reading = asyncio.create_task(reader.run())
    # Not awaited for readiness (outlook.py): the stamps are -1 until the first summaries are read.
    outlooking = asyncio.create_task(OutlookReader(settings.kafka, router.outlook).run())
    outlooking.add_done_callback(reader_failed)
    app.in_worker = True  # what faust.Worker sets: the app runs agents and owns partitions
    starting: asyncio.Task | None = None
    stopping = asyncio.create_task(stop.wait())
    try:
        caught_up = asyncio.create_task(reader.caught_up.wait())
        await asyncio.wait({caught_up, stopping, reading}, return_when=asyncio.FIRST_COMPLETED)
        caught_up.cancel()
        if reading.done():
            reading.result()  # the view reader failed: raise its error
        if stop.is_set():
            return
        starting = asyncio.create_task(app.start())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            await _wait_assigned(app, stop)
            if not stop.is_set():
                assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
                mark_ready("router", group=settings.app_id, partitions=len(assigned))
                log.info("router_ready", group=settings.app_id, partitions=len(assigned))
            await stop.wait()
    finally:
        stopping.cancel()
        if starting is not None:
            if not starting.done():
                starting.cancel()
            await app.stop()
        reading.cancel()
        outlooking.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reading
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await outlooking
        stop.set()
        await watching
        log.info("router_stopped")


async def _wait_assigned(app: RouterApp, stop: asyncio.Event) -> None:
    """Until the consumer owns partitions and no rebalance or recovery is under way."""
    # app.tables is typed by its interface, which does not name the Recovery service Faust's TableManager runs.
    tables = cast(TableManager, app.tables)
    while not stop.is_set():
        if app.consumer.assignment() and not app.rebalancing and tables.recovery.completed.is_set():
            return
        await asyncio.sleep(0.02)
