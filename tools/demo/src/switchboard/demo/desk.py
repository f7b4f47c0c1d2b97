"""The demo's agents at their desks: they log in through AgentDesk, take the calls pushed to them,
wrap up with a disposition, take breaks and log out and in again (docs/ACD.md "Agents").

Only agents configured `login: desk` are driven (`login: always` agents need no desk). Each one
keeps a Work stream open (its push channel and its heartbeat). The edge side of a call (the
caller talking, ReportOutcome) is the driver's; an agent here only ends its wrap-up, after
`wrap_up_s` of demo time at most, with one of DISPOSITIONS. Now and then an agent goes not ready
("break") or logs out for a while, so the live view shows every state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter

import grpc

from switchboard.core.config import RoutingConfig
from switchboard.v1 import agent_desk_pb2 as ad
from switchboard.v1 import agent_desk_pb2_grpc as ad_grpc
from switchboard.v1 import events_pb2 as pb

DISPOSITIONS = ("sale", "no_sale", "follow_up", "wrong_number")
STATE_NAMES = {
    pb.AGENT_STATE_LOGGED_OUT: "logged out",
    pb.AGENT_STATE_READY: "ready",
    pb.AGENT_STATE_NOT_READY: "not ready",
    pb.AGENT_STATE_ON_CALL: "on call",
    pb.AGENT_STATE_WRAP_UP: "wrap-up",
}


class DemoAgents:
    def __init__(self, target: str, config: RoutingConfig, *, seed: int = 1, break_every_s: float = 20.0) -> None:
        self.target = target
        self.agent_ids = [a.id for a in config.agents if a.login == "desk"]
        self.rng = random.Random(seed)
        self.break_every_s = break_every_s
        self.states: dict[str, str] = dict.fromkeys(self.agent_ids, "logged out")
        self.offers: Counter[str] = Counter()  # agent id → calls pushed to it
        self.dispositions: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._wrapping: set[asyncio.Task[None]] = set()  # EndWrapUp calls under way (cancelled at the end)
        self.away: set[str] = set()  # logged out on purpose: the agent's loop does not log it back in

    async def run(self, stop: asyncio.Event) -> None:
        if not self.agent_ids:
            return
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = ad_grpc.AgentDeskStub(channel)
            tasks = [asyncio.create_task(self._agent(stub, agent_id, stop)) for agent_id in self.agent_ids]
            tasks.append(asyncio.create_task(self._breaks(stub, stop)))
            await stop.wait()
            for task in [*tasks, *self._wrapping]:
                task.cancel()
            await asyncio.gather(*tasks, *self._wrapping, return_exceptions=True)
            for agent_id in self.agent_ids:  # end of the shift
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.Logout(ad.AgentRequest(agent_id=agent_id))

    async def _agent(self, stub: ad_grpc.AgentDeskStub, agent_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if agent_id in self.away:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
                continue
            try:
                await stub.Login(ad.AgentLoginRequest(agent_id=agent_id, ready=True))
                async for push in stub.Work(ad.AgentRequest(agent_id=agent_id)):
                    if push.HasField("offer"):
                        self.offers[agent_id] += 1
                    elif push.HasField("status"):
                        self.states[agent_id] = STATE_NAMES.get(push.status.state, "?")
                        if push.status.state == pb.AGENT_STATE_WRAP_UP:
                            task = asyncio.create_task(self._wrap_up(stub, push.status))
                            self._wrapping.add(task)
                            task.add_done_callback(self._wrapping.discard)
            except grpc.aio.AioRpcError as exc:
                self.errors[exc.code().name] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)  # the queue is restarting: reconnect shortly

    async def _wrap_up(self, stub: ad_grpc.AgentDeskStub, status: ad.AgentStatus) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))  # writing notes
        disposition = self.rng.choice(DISPOSITIONS)
        try:
            await stub.EndWrapUp(ad.EndWrapUpRequest(agent_id=status.agent_id, call_id=status.call_id, disposition=disposition))
            self.dispositions[disposition] += 1
        except grpc.aio.AioRpcError as exc:  # the wrap-up already timed out (wrap_up_s): nothing to end
            self.errors[f"end_wrap_up {exc.code().name}"] += 1

    async def _breaks(self, stub: ad_grpc.AgentDeskStub, stop: asyncio.Event) -> None:
        """Every break_every_s one agent takes a short break, and every third time one logs out a while."""
        n = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.break_every_s)
            if stop.is_set():
                return
            n += 1
            agent_id = self.rng.choice(self.agent_ids)
            try:
                if n % 3 == 0:
                    self.away.add(agent_id)
                    try:
                        await stub.Logout(ad.AgentRequest(agent_id=agent_id))
                        await asyncio.sleep(self.break_every_s / 2)
                    finally:
                        self.away.discard(agent_id)  # its loop logs it in again
                else:
                    await stub.SetReady(ad.SetReadyRequest(agent_id=agent_id, ready=False, reason="break"))
                    await asyncio.sleep(self.break_every_s / 4)
                    await stub.SetReady(ad.SetReadyRequest(agent_id=agent_id, ready=True))
            except grpc.aio.AioRpcError as exc:
                self.errors[exc.code().name] += 1
