"""The demo's outbound side of the edge: it places the callbacks the queue asks for (WatchCallbacks).

A real edge (a PBX adapter) dials `caller_number`, bridges an answered call to the reserved
agent's `destination` and reports how it went. The demo caller answers a callback with
probability `answer_rate`, talks for a while (scaled down like the inbound calls) and hangs up;
a callback not answered is reported CALL_OUTCOME_CALLBACK_NO_ANSWER, and the queue calls again
callback_retry_after_s later (or ends the call `callback_failed`). Counts go to DriveStats.callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import grpc

from switchboard.demo.driver import DriveStats
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb


class DemoCallbacks:
    def __init__(self, target: str, stats: DriveStats, *, answer_rate: float = 0.8, talk_s: float = 1.0, seed: int = 1) -> None:
        self.target = target
        self.stats = stats
        self.answer_rate = answer_rate
        self.talk_s = talk_s
        self.rng = random.Random(seed)
        self._calls: set[asyncio.Task[None]] = set()
        self._placed: set[tuple[str, int]] = set()  # (call id, offer): a placement re-sent on reconnect is one call

    async def run(self, stop: asyncio.Event) -> None:
        """Listen for placements until `stop`; reconnect when the stream breaks (an ivr restart)."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = cc_grpc.CallControlStub(channel)
            while not stop.is_set():
                stream = stub.WatchCallbacks(cc.WatchCallbacksRequest())
                stopping = asyncio.create_task(stop.wait())
                try:
                    reading = asyncio.create_task(self._read(stub, stream))
                    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not reading.done():
                        stream.cancel()
                        reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                        await reading
                finally:
                    stopping.cancel()
                if not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)  # the edge is restarting: try again shortly
            for task in list(self._calls):
                task.cancel()
            await asyncio.gather(*self._calls, return_exceptions=True)

    async def _read(self, stub: cc_grpc.CallControlStub, stream: grpc.aio.UnaryStreamCall) -> None:
        async for placement in stream:
            key = (placement.call_id, placement.attempt)
            if key in self._placed:
                continue
            self._placed.add(key)
            task = asyncio.create_task(self._place(stub, placement))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _place(self, stub: cc_grpc.CallControlStub, placement: cc.CallbackPlacement) -> None:
        self.stats.callbacks["placed"] += 1
        try:
            if self.rng.random() < self.answer_rate:
                self.stats.callbacks["connected"] += 1
                await asyncio.sleep(self.talk_s)
                outcome, seconds = pb.CALL_OUTCOME_ANSWERED, max(1, round(self.talk_s * 100))
            else:
                self.stats.callbacks["no_answer"] += 1
                outcome, seconds = pb.CALL_OUTCOME_CALLBACK_NO_ANSWER, 0
            await stub.ReportOutcome(
                cc.ReportOutcomeRequest(call_id=placement.call_id, outcome=outcome, connected_seconds=seconds)
            )
        except grpc.aio.AioRpcError as exc:
            self.stats.errors[f"callback {exc.code().name}"] += 1
