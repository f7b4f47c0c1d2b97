"""The demo driver stops cleanly: cancelling drive() cancels its calls in flight before the channel closes."""

from __future__ import annotations

import asyncio

import grpc

from switchboard.demo.driver import drive
from switchboard.demo.traffic import TrafficModel
from switchboard.platform.configfile import load_config
from switchboard.platform.settings import DEMO_CONFIG
from switchboard.v1 import call_control_pb2_grpc as cc_grpc


class Stalled(cc_grpc.CallControlServicer):
    """An edge whose StartCall never answers (a stuck ivr), counting the calls it holds."""

    def __init__(self) -> None:
        self.holding = 0
        self.release = asyncio.Event()

    async def StartCall(self, request, context):
        self.holding += 1
        await self.release.wait()
        raise AssertionError("not reached")


async def test_cancelled_drive_leaves_no_call_running():
    server = grpc.aio.server()
    edge = Stalled()
    cc_grpc.add_CallControlServicer_to_server(edge, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        before = asyncio.all_tasks()
        driving = asyncio.create_task(drive(f"127.0.0.1:{port}", TrafficModel(load_config(DEMO_CONFIG)), rate=200, count=1000))
        while edge.holding < 5:  # noqa: ASYNC110 — several calls are in flight (the fake edge's counter)
            await asyncio.sleep(0.01)
        driving.cancel()
        try:
            await driving
        except asyncio.CancelledError:
            pass
        calls = [t for t in asyncio.all_tasks() - before if "run_one" in getattr(t.get_coro(), "__qualname__", "")]
        assert not [t for t in calls if not t.done()]
    finally:
        await server.stop(0)
