"""Drives demo calls through the gRPC CallControl edge at a steady rate and records what happened."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import grpc

from switchboard.core import reasons
from switchboard.demo.traffic import DemoCall, TrafficModel
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb


@dataclass
class CallResult:
    call_id: str
    status: str  # routed | rejected | pending | abandoned | error
    buyer_id: str = ""
    agent_id: str = ""
    price: Decimal = Decimal("0")
    reason: str = ""
    decision_ms: float = 0.0  # answers submitted → first routing result, as the edge sees it
    attempts: list[str] = field(
        default_factory=list
    )  # every offer in order: buyer id or "agent:<id>"; the last one answered when routed
    billable: bool = False  # routed to a buyer and connected for its billable_after_s: a sale
    announcements: list[str] = field(default_factory=list)  # what the queue said while the caller waited (WAITING)
    callback: bool = False  # the caller accepted a callback and hung up (the callback edge takes it on)


@dataclass
class DriveStats:
    started_at: float = field(default_factory=time.monotonic)
    sent: int = 0
    results: list[CallResult] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    # The ACD side (docs/ACD.md): callbacks by stage (requested, placed, connected, no_answer) as the demo's
    # callback edge saw them, and the last thing the queue told a waiting caller.
    callbacks: Counter = field(default_factory=Counter)
    last_announcement: str = ""

    @property
    def waited(self) -> list[CallResult]:
        return [r for r in self.results if r.announcements]

    @property
    def overflowed_to_buyers(self) -> int:
        """Calls that waited in a queue and were then sold to a buyer (the queue overflowed them)."""
        return sum(1 for r in self.results if r.announcements and r.buyer_id)

    @property
    def routed(self) -> list[CallResult]:
        return [r for r in self.results if r.status == "routed"]

    def rejected_by_reason(self) -> Counter:
        return Counter(r.reason for r in self.results if r.status == "rejected")

    def revenue_by_target(self) -> dict[str, tuple[int, int, Decimal]]:
        """Taker → (calls taken, billable sales, revenue of those sales)."""
        out: dict[str, list] = defaultdict(lambda: [0, 0, Decimal("0")])
        for r in self.routed:
            key = r.buyer_id or f"agent:{r.agent_id}"
            out[key][0] += 1
            if r.billable:
                out[key][1] += 1
                out[key][2] += r.price
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}

    def latency_ms(self) -> tuple[float, float]:
        # Agent hand-offs wait for a free agent: that is queue wait, not decision time.
        lat = sorted(
            r.decision_ms
            for r in self.results
            if r.status in ("routed", "rejected") and r.decision_ms and not r.agent_id and r.reason != reasons.ABANDONED
        )
        if not lat:
            return (0.0, 0.0)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (statistics.median(lat), p99)

    def rate(self, window_s: float = 5.0) -> float:
        elapsed = time.monotonic() - self.started_at
        return len(self.results) / elapsed if elapsed > 0 else 0.0


def _target(res: cc.RoutingResult) -> str:
    return res.buyer_id or f"agent:{res.agent_id}"


_YES_NO_KEYS = {"yes": "1", "no": "2"}


def caller_input(prompt: cc.IvrPrompt, call: DemoCall, rng: random.Random) -> tuple[cc.InputKind, str]:
    """What the demo caller answers to an IVR prompt: (input kind, input), from the call's answers.

    Language menus: the key of the caller's language; questions: the answer the
    call carries for the prompt's answer key (yes/no as 1/2 on the keypad, or
    spoken now and then where the prompt takes speech); other menus: a key.
    """
    speech_ok = prompt.expects in (cc.INPUT_KIND_SPEECH, cc.INPUT_KIND_DIGITS_OR_SPEECH)
    digits_ok = prompt.expects != cc.INPUT_KIND_SPEECH
    if prompt.choices and not prompt.answer_key:
        wanted = call.answers.get("language", "")
        key = next((k for k, v in sorted(prompt.choices.items()) if v == wanted), sorted(prompt.choices)[0])
        return cc.INPUT_KIND_DIGITS, key
    value = call.answers.get(prompt.answer_key, "")
    if speech_ok and (not digits_ok or rng.random() < 0.3):
        return cc.INPUT_KIND_SPEECH, value
    return cc.INPUT_KIND_DIGITS, _YES_NO_KEYS.get(value, value)


async def run_ivr(stub: cc_grpc.CallControlStub, prompt: cc.IvrPrompt, call: DemoCall, rng: random.Random) -> cc.IvrPrompt:
    """Answer the campaign's IVR flow prompt by prompt until it ends; returns the end."""
    while not prompt.finished:
        kind, text = caller_input(prompt, call, rng)
        prompt = await stub.SubmitInput(cc.SubmitInputRequest(call_id=prompt.call_id, node=prompt.node, kind=kind, input=text))
    return prompt


async def one_call(
    stub: cc_grpc.CallControlStub,
    call: DemoCall,
    report_outcome: bool = True,
    talk_scale: float = 0.01,
    *,
    answer_rate: float = 1.0,
    max_offers: int = 10,
    rng: random.Random | None = None,
    await_timeout_ms: int = 15000,
    callback_accept_rate: float = 0.0,
    on_announcement: Callable[[str], None] | None = None,
    agent_talk_scale: float | None = None,
) -> CallResult:
    """One call through the edge, as a telephony adapter would drive it.

    Each offer (ROUTED result) is answered with probability `answer_rate`; an
    unanswered offer is reported as NO_ANSWER and the next routing result is
    awaited (the router or queue re-routes), for at most `max_offers` offers;
    after that the simulated caller gives up (CALLER_HANGUP, status
    "abandoned"). The answered call is talked through and reported ANSWERED.
    With report_outcome=False nothing is reported and the first offer counts.

    A caller waiting in an ACD queue hears WAITING results (position and projected wait,
    `on_announcement`); offered a callback, it accepts with probability `callback_accept_rate`
    (RequestCallback) and hangs up without a report (status "callback": the demo's callback edge,
    callbacks.py, answers the call back).
    """
    rng = rng or random.Random()
    start = await stub.StartCall(cc.StartCallRequest(caller_number=call.caller_number, dialed_number=call.dialed_number))
    if not start.accepted:
        return CallResult(start.call_id, "rejected", reason=start.reject_reason)
    cid = start.call_id
    prompt = start.prompt
    if call.hangs_up_in_ivr:
        if start.ivr_flow and not prompt.finished:  # hears the first prompt, answers it, then leaves
            kind, text = caller_input(prompt, call, rng)
            prompt = await stub.SubmitInput(cc.SubmitInputRequest(call_id=cid, node=prompt.node, kind=kind, input=text))
        if not prompt.finished:
            await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
            return CallResult(cid, "rejected", reason=reasons.ABANDONED)
    if start.ivr_flow:
        await run_ivr(stub, prompt, call, rng)  # a qualified end publishes ivr.completed; disqualified rejects
    else:
        await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, answers=call.answers, complete=True))
    t0 = time.monotonic()
    decision_ms = 0.0
    attempts: list[str] = []
    heard: list[str] = []
    offered_callback = False
    while True:
        res = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=await_timeout_ms))
        if not decision_ms:
            decision_ms = (time.monotonic() - t0) * 1000
        if res.status == cc.ROUTING_STATUS_WAITING:
            heard.append(res.announcement)
            if on_announcement:
                on_announcement(res.announcement)
            if res.callback_offered and not offered_callback:
                offered_callback = True  # the caller decides once
                if rng.random() < callback_accept_rate:
                    await stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid))
                    return CallResult(
                        cid, "callback", decision_ms=decision_ms, attempts=attempts, announcements=heard, callback=True
                    )
            continue
        if res.status == cc.ROUTING_STATUS_PENDING and heard:
            continue  # waiting in a queue between announcements: the queue ends the wait (max_wait_s)
        if res.status == cc.ROUTING_STATUS_REJECTED:
            return CallResult(cid, "rejected", reason=res.reason, decision_ms=decision_ms, attempts=attempts, announcements=heard)
        if res.status != cc.ROUTING_STATUS_ROUTED:
            return CallResult(cid, "pending", reason="no decision in time", decision_ms=decision_ms, attempts=attempts)
        attempts.append(_target(res))
        routed = CallResult(
            cid,
            "routed",
            res.buyer_id,
            res.agent_id,
            Decimal(res.price or "0"),
            decision_ms=decision_ms,
            attempts=attempts,
            announcements=heard,
        )
        if not report_outcome:
            return routed
        if rng.random() < answer_rate:
            # The demo caller talks for a while (scaled down so the demo moves), then hangs up. With an
            # in-house agent it may talk longer (agent_talk_scale): a handful of agents is a scarce
            # resource only if their calls last, and the demo's queue should fill as a real one does.
            scale = talk_scale if agent_talk_scale is None or not res.agent_id else agent_talk_scale
            await asyncio.sleep(call.talk_seconds * scale)
            await stub.ReportOutcome(
                cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=call.talk_seconds)
            )
            routed.billable = bool(res.buyer_id) and call.talk_seconds >= res.billable_after_s
            return routed
        if len(attempts) >= max_offers:
            await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
            return CallResult(
                cid, "abandoned", reason=f"no answer after {len(attempts)} offers", decision_ms=decision_ms, attempts=attempts
            )
        await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_NO_ANSWER))


async def drive(
    target: str,
    model: TrafficModel,
    rate: float,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    stop: asyncio.Event | None = None,
    stats: DriveStats | None = None,
    on_result: Callable[[CallResult], None] | None = None,
    talk_scale: float = 0.01,
    answer_rate: float = 1.0,
    seed: int = 1,
    callback_accept_rate: float = 0.0,
    agent_talk_scale: float | None = None,
) -> DriveStats:
    """Start `rate` calls per second until `count` calls, `duration_s` or `stop`; wait for all to finish.

    Each offer is answered with probability `answer_rate`; an unanswered one is reported as
    NO_ANSWER and the call waits for its re-route.
    """
    rng = random.Random(seed)
    stats = stats or DriveStats()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s if duration_s else None
    pending: set[asyncio.Task] = set()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = cc_grpc.CallControlStub(channel)

        async def run_one(call: DemoCall) -> None:
            try:
                result = await one_call(
                    stub,
                    call,
                    talk_scale=talk_scale,
                    answer_rate=answer_rate,
                    rng=rng,
                    callback_accept_rate=callback_accept_rate,
                    on_announcement=heard,
                    agent_talk_scale=agent_talk_scale,
                )
                if result.callback:
                    stats.callbacks["requested"] += 1
            except grpc.aio.AioRpcError as exc:
                stats.errors[exc.code().name] += 1
                result = CallResult("", "error", reason=exc.code().name)
            stats.results.append(result)
            if on_result:
                on_result(result)

        def heard(text: str) -> None:
            stats.last_announcement = text

        interval = 1.0 / rate
        next_at = loop.time()
        try:
            while not stop.is_set():
                if count is not None and stats.sent >= count:
                    break
                if end is not None and loop.time() >= end:
                    break
                task = asyncio.create_task(run_one(model.next_call()))
                pending.add(task)
                task.add_done_callback(pending.discard)
                stats.sent += 1
                next_at += interval
                delay = next_at - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except TimeoutError:
                        pass
            if pending:
                await asyncio.gather(*pending)
        except asyncio.CancelledError:
            # Cancelled (Ctrl-C): the calls in flight go too, before their channel closes under them.
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
    return stats
