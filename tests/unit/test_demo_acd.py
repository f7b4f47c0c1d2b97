"""The demo's ACD parts against scripted edges on real loopback gRPC servers: a waiting caller hears
announcements and accepts a callback; the callback edge places and reports callbacks once each; the
demo agents log in, keep a Work stream and end their wrap-ups with a disposition."""

from __future__ import annotations

import asyncio
import random

import grpc

from switchboard.core.config import RoutingConfig
from switchboard.demo.callbacks import DemoCallbacks
from switchboard.demo.desk import DISPOSITIONS, DemoAgents
from switchboard.demo.driver import DriveStats, one_call
from switchboard.demo.traffic import DemoCall
from switchboard.v1 import agent_desk_pb2 as ad
from switchboard.v1 import agent_desk_pb2_grpc as ad_grpc
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb


class WaitingEdge(cc_grpc.CallControlServicer):
    """Every call waits: two announcements, the second offering a callback; then one placement to watch."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        self.reports: list[tuple[str, int]] = []
        self.watchers = 0
        self.placement = cc.CallbackPlacement(call_id="c1", attempt=2, callback_attempt=1, announcement="Hello again")

    async def StartCall(self, request, context):
        return cc.StartCallResponse(call_id="c1", accepted=True)

    async def SubmitAnswers(self, request, context):
        return cc.SubmitAnswersResponse(call_id=request.call_id)

    async def AwaitRouting(self, request, context):
        offered = bool(self.reports) or len(self.requested) > 0
        n = getattr(self, "_n", 0) + 1
        self._n = n
        return cc.RoutingResult(
            call_id=request.call_id,
            status=cc.ROUTING_STATUS_WAITING,
            queue_position=3 - n,
            announcement=f"You are number {3 - n} in line.",
            callback_offered=n >= 2 and not offered,
        )

    async def RequestCallback(self, request, context):
        self.requested.append(request.call_id)
        return cc.RequestCallbackResponse(call_id=request.call_id, announcement="We will call you back.")

    async def WatchCallbacks(self, request, context):
        self.watchers += 1
        yield self.placement
        yield self.placement  # re-sent (as after a reconnect): placed once
        await asyncio.Event().wait()

    async def ReportOutcome(self, request, context):
        self.reports.append((request.call_id, request.outcome))
        return cc.ReportOutcomeResponse()


async def _serve(add, servicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_a_waiting_caller_hears_its_place_and_accepts_the_callback() -> None:
    edge = WaitingEdge()
    server, target = await _serve(cc_grpc.add_CallControlServicer_to_server, edge)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            heard: list[str] = []
            result = await one_call(
                cc_grpc.CallControlStub(channel),
                DemoCall("+13105550100", "+18885550123"),
                rng=random.Random(1),
                callback_accept_rate=1.0,
                on_announcement=heard.append,
            )
        assert result.status == "callback" and result.callback
        assert heard == ["You are number 2 in line.", "You are number 1 in line."] == result.announcements
        assert edge.requested == ["c1"] and edge.reports == []  # the caller hangs up without a report
    finally:
        await server.stop(0)


async def test_the_callback_edge_places_each_callback_once_and_reports_it() -> None:
    edge = WaitingEdge()
    server, target = await _serve(cc_grpc.add_CallControlServicer_to_server, edge)
    stats = DriveStats()
    stop = asyncio.Event()
    try:
        callbacks = DemoCallbacks(target, stats, answer_rate=0.0, talk_s=0.0)
        running = asyncio.create_task(callbacks.run(stop))
        while not edge.reports:  # noqa: ASYNC110 — the scripted edge's own record
            await asyncio.sleep(0.01)
        stop.set()
        await running
        assert edge.reports == [("c1", pb.CALL_OUTCOME_CALLBACK_NO_ANSWER)]
        assert (stats.callbacks["placed"], stats.callbacks["no_answer"], stats.callbacks["connected"]) == (1, 1, 0)
    finally:
        await server.stop(0)


class Desk(ad_grpc.AgentDeskServicer):
    """One agent: logged in, then its Work stream says it is in wrap-up after a call."""

    def __init__(self) -> None:
        self.logins: list[str] = []
        self.ended: list[tuple[str, str]] = []
        self.logouts: list[str] = []

    async def Login(self, request, context):
        self.logins.append(request.agent_id)
        return ad.AgentStatus(agent_id=request.agent_id, state=pb.AGENT_STATE_READY)

    async def Logout(self, request, context):
        self.logouts.append(request.agent_id)
        return ad.AgentStatus(agent_id=request.agent_id, state=pb.AGENT_STATE_LOGGED_OUT)

    async def EndWrapUp(self, request, context):
        self.ended.append((request.call_id, request.disposition))
        return ad.AgentStatus(agent_id=request.agent_id, state=pb.AGENT_STATE_READY)

    async def Work(self, request, context):
        yield ad.AgentPush(status=ad.AgentStatus(agent_id=request.agent_id, state=pb.AGENT_STATE_READY))
        yield ad.AgentPush(offer=ad.AgentOffer(call_id="c9", queue_id="q"))
        yield ad.AgentPush(status=ad.AgentStatus(agent_id=request.agent_id, state=pb.AGENT_STATE_WRAP_UP, call_id="c9"))
        await asyncio.Event().wait()


async def test_demo_agents_log_in_take_calls_and_end_their_wrap_up() -> None:
    config = RoutingConfig.model_validate(
        {
            "queues": [{"id": "q"}],
            "agents": [{"id": "ana", "queues": ["q"], "login": "desk"}, {"id": "cleo", "queues": ["q"]}],
        }
    )
    desk = Desk()
    server, target = await _serve(ad_grpc.add_AgentDeskServicer_to_server, desk)
    stop = asyncio.Event()
    try:
        agents = DemoAgents(target, config, break_every_s=3600)
        assert agents.agent_ids == ["ana"]  # `login: always` agents need no desk
        running = asyncio.create_task(agents.run(stop))
        while not desk.ended:  # noqa: ASYNC110 — the scripted desk's own record
            await asyncio.sleep(0.01)
        stop.set()
        await running
        ((call_id, disposition),) = desk.ended
        assert call_id == "c9" and disposition in DISPOSITIONS
        assert desk.logins == ["ana"] and desk.logouts == ["ana"] and agents.offers["ana"] == 1
    finally:
        await server.stop(0)
