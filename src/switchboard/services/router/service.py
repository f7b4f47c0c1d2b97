"""Run the router in the current event loop until `stop` is set (no faust CLI, no faust.Worker).

We drive the Faust app as a mode Service ourselves so that the process keeps
the platform lifecycle (SIGTERM → stop event → clean shutdown, readiness file).
`app.start()` returns once the first assignment's table recovery finished.
"""

from __future__ import annotations

import asyncio

import structlog

from switchboard.core.config import load_config
from switchboard.platform.lifecycle import mark_ready
from switchboard.services.router.app import create_app
from switchboard.services.router.settings import RouterSettings

log = structlog.get_logger("router")


async def run(settings: RouterSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    app, _ = create_app(settings, config)
    app.in_worker = True  # what faust.Worker sets: the app runs agents and owns partitions
    starting = asyncio.create_task(app.start())
    stopping = asyncio.create_task(stop.wait())
    try:
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
        if not starting.done():
            starting.cancel()
        await app.stop()
        log.info("router_stopped")


async def _wait_assigned(app, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    """Until the consumer owns partitions and no rebalance or recovery is under way."""
    while not stop.is_set():
        if app.consumer.assignment() and not app.rebalancing and app.tables.recovery.completed.is_set():
            return
        await asyncio.sleep(0.02)
