"""The AgentDesk gRPC service (agent_desk.proto) of the queue process. docs/ACD.md "Agents".

An RPC never touches the ACD itself: it puts a `Command` on `DeskCommands`, which the runner's
loop drains between batches (the one serialized decision path, DESIGN rule 4), and it answers
only once the snapshot holding its change is written (`Command.done`), so a kill -9 after an
acknowledged Login or disposition loses neither. Work streams get their pushes (`Pushes`) after
the snapshot and the publication of the decisions they show.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.core import agents as core_agents
from switchboard.core.acd import Acd, AgentState, Assignment
from switchboard.v1 import agent_desk_pb2 as dpb
from switchboard.v1 import agent_desk_pb2_grpc as dgrpc

log = structlog.get_logger()

# A command: (the ACD, now) → the assignments it made (the agents' next calls).
Apply = Callable[[Acd, float], list[Assignment] | None]


@dataclass
class Command:
    agent_id: str
    apply: Apply
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DeskCommands:
    """What the desk asks of the ACD, in arrival order (drained by QueueRunner between batches)."""

    def __init__(self) -> None:
        self.pending: list[Command] = []

    def submit(self, agent_id: str, apply: Apply) -> Command:
        command = Command(agent_id, apply)
        self.pending.append(command)
        return command

    def take(self) -> list[Command]:
        out, self.pending = self.pending, []
        return out


class Pushes:
    """The open Work streams by agent id; each gets its agent's status changes and offers."""

    def __init__(self) -> None:
        self.streams: dict[str, list[asyncio.Queue[dpb.AgentPush]]] = {}

    def open(self, agent_id: str) -> asyncio.Queue[dpb.AgentPush]:
        q: asyncio.Queue[dpb.AgentPush] = asyncio.Queue()
        self.streams.setdefault(agent_id, []).append(q)
        return q

    def close(self, agent_id: str, q: asyncio.Queue[dpb.AgentPush]) -> None:
        qs = self.streams.get(agent_id, [])
        if q in qs:
            qs.remove(q)

    def push(self, agent_id: str, message: dpb.AgentPush) -> None:
        for q in self.streams.get(agent_id, []):
            q.put_nowait(message)


def _ts(wall: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(wall * 1e9))
    return ts


def status_of(s: AgentState, now: float, wall: float) -> dpb.AgentStatus:
    """The agent's AgentStatus (times: ACD clock `now` ↔ wall clock `wall`)."""
    p = s.presence
    state = core_agents.state_of(s)
    shown = core_agents.current(s)
    out = dpb.AgentStatus(
        agent_id=s.agent.id,
        state=state,  # type: ignore[arg-type]
        reason=shown[1],
        call_id=shown[2],
        queue_ids=list(s.agent.queues),
        active_calls=len(s.active),
        performance=core_agents.performance(s),
    )
    if p.since is not None:
        out.since.CopyFrom(_ts(wall - (now - p.since)))
    if p.wrap_up is not None:
        out.wrap_up_until.CopyFrom(_ts(wall + (p.wrap_up.until - now)))
    return out


def offer_of(a: Assignment) -> dpb.AgentOffer:
    queued: Any = a.call.payload.event  # the call's call.queued (services.queue.service.Queued)
    return dpb.AgentOffer(
        call_id=a.call.call_id,
        queue_id=a.queue.id,
        campaign_id=queued.campaign_id,
        publisher_id=queued.publisher_id,
        answers=dict(queued.answers),
        caller_number=queued.caller.number,
        waited_s=int(a.waited_s),
        attempt=a.call.attempt,
        callback_attempt=a.call.callback_attempt if a.call.callback else 0,
        priority=a.call.priority,
    )


_CODES = {"not_found": grpc.StatusCode.NOT_FOUND, "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION}


class AgentDesk(dgrpc.AgentDeskServicer):
    def __init__(self, commands: DeskCommands, pushes: Pushes, status: Callable[[str], dpb.AgentStatus]) -> None:
        self.commands = commands
        self.pushes = pushes
        self.status = status  # the agent's status now (after its command applied)

    async def _run(self, agent_id: str, apply: Apply, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        command = self.commands.submit(agent_id, apply)
        try:
            await command.done
        except core_agents.DeskError as exc:
            await context.abort(_CODES[exc.code], str(exc))
        return self.status(agent_id)

    async def Login(self, request: dpb.AgentLoginRequest, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        return await self._run(
            request.agent_id, lambda acd, now: core_agents.login(acd, request.agent_id, now, ready=request.ready), context
        )

    async def Logout(self, request: dpb.AgentRequest, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        return await self._run(request.agent_id, lambda acd, now: core_agents.logout(acd, request.agent_id, now), context)

    async def SetReady(self, request: dpb.SetReadyRequest, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        return await self._run(
            request.agent_id,
            lambda acd, now: core_agents.set_ready(acd, request.agent_id, now, ready=request.ready, reason=request.reason),
            context,
        )

    async def EndWrapUp(self, request: dpb.EndWrapUpRequest, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        return await self._run(
            request.agent_id,
            lambda acd, now: core_agents.end_wrap_up(
                acd, request.agent_id, now, call_id=request.call_id, disposition=request.disposition, note_text=request.note
            ),
            context,
        )

    async def Heartbeat(self, request: dpb.AgentRequest, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        return await self._run(request.agent_id, lambda acd, now: core_agents.heartbeat(acd, request.agent_id, now), context)

    async def GetAgent(self, request: dpb.AgentRequest, context: grpc.aio.ServicerContext) -> dpb.AgentStatus:
        def check(acd: Acd, _now: float) -> None:
            core_agents.agent(acd, request.agent_id)  # NOT_FOUND for an unknown agent

        return await self._run(request.agent_id, check, context)

    async def Work(self, request: dpb.AgentRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[dpb.AgentPush]:
        agent_id = request.agent_id

        def opened(acd: Acd, now: float) -> None:
            core_agents.stream_opened(acd, agent_id, now)

        await self._run(agent_id, opened, context)
        q = self.pushes.open(agent_id)
        try:
            yield dpb.AgentPush(status=self.status(agent_id))
            while True:
                yield await q.get()
        finally:
            self.pushes.close(agent_id, q)
            # The heartbeat timer runs from the disconnect (core.agents.stream_closed).
            self.commands.submit(agent_id, lambda acd, now: core_agents.stream_closed(acd, agent_id, now))
