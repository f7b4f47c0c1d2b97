"""The discrete-event simulator: simulated calls through the routing core on a virtual clock.

One `Simulator` plays the outside world of the router, the bidder, the telephony edge and the
queue service for N simulated calls, and lets the core decide everything, exactly as the
services drive it:

  arrival            → what the ivr service does first (its CallDesk.start_call / submit_input):
                       core.caller.caller_facts of the caller's number; core.screening.screen
                       (blocked, invalid_number), then core.screening.duplicate against the
                       campaign's duplicate_window (only accepted calls open a window); for a
                       campaign with `ivr:` the flow (core.ivr start/current/answer, the caller
                       keying in what behavior.prompt_input says) and core.ivr.flow_end: qualified
                       → routing with the flow's answers, disqualified → rejected `disqualified`;
                       with `callers.ivr_prompt_s` / `ivr_hangup_rate` each prompt takes time and
                       the caller may hang up at it → rejected `abandoned` (core.ivr.hung_up_detail,
                       as the ivr service rejects a caller who left in the IVR)
  qualified          → core.engine.start_routing (the router on ivr.completed), when the flow ends:
                       the arrival plus the time spent in the IVR
  RequestBids        → each pinged buyer answers after its latency (static buyers at once with
                       their price, as the bidder does; RTB buyers drawn from their model, a no-bid
                       "timeout" past min(timeout_ms, routing deadline − margin)); answers reach
                       engine.can_conclude_early in arrival order; then engine.conclude_auction
  PostToBuyer        → engine.post_answered (static: accepted at once; RTB: drawn)
  RouteToBuyer       → the reservation (core.eligibility.caps_exclusion on the exact ledger, as the
                       router's bookkeeper; denied → engine.reservation_denied), then
                       InMemoryLedger.route; the buyer answers or not; when the call ends,
                       InMemoryLedger.end and, for a failed offer, engine.offer_failed
  HandToQueue        → core.acd.Acd.offer / release / offer_failed / expire (the queue service)
  RejectCall         → terminal

Virtual time: seconds since `simulation.start` as floats for the ACD, the matching datetimes for
the engine and the ledger. Never the wall clock. Events are ordered by (time, sequence number), so
equal times resolve in the order they were scheduled and a run is a pure function of
(configuration, calls, seed).

Random numbers: `random.Random` streams seeded from the seed and a stable name (never Python's
per-process string hash): for the whole run one for the arrivals, one for the callers (area, ZIP,
answers), one for their numbers and one for repeat calls (none depends on routing: they are drawn
in arrival order), and one per call and purpose for behaviour, e.g. "sunrise-rtb's answer to call
17's ping", "call 17's IVR inputs" or "call 17's IVR prompt times and hang-ups" (a stream apart
from the inputs: modelling IVR time does not change what callers answer). Two routing plans
simulated with the same seed therefore see the same calls, and a buyer asked about the same call
in both answers the same way (common random numbers, for `compare`).

Repeat callers: after each call, with `repeat_rate`, the same caller (same number, area and
answers) calls the same campaign again `repeat_after_s` later; first calls arrive at
calls_per_hour × (1 − repeat_rate), so that all calls together keep calls_per_hour.

Time in the IVR: the flow is walked when the call arrives (core.ivr is pure: no clock, nothing that
changes while the caller listens), drawing each prompt's time; the flow's end (routing, the
disqualification or the hang-up) happens at arrival + that time. Without IVR timing in the model it
happens at arrival, in the same event (no event scheduled, no draw: the run is what it was before).

Queue statuses and callbacks: a waiting call's statuses come from core.acd.Acd.statuses at the call's
announce times (arrival, then every announce_every_s), as the queue service's sweep; a caller offered a
callback accepts with `callback_accept_rate` (Acd.request_callback: virtual hold, patience no longer
counts), a callback placed is answered with `callback_answer_rate` (else, after the agent model's ring
time, Acd.callback_no_answer: retried, then callback_failed), Acd.expire_callbacks at callback_max_wait_s.
Callers never ask for a scheduled time.

Not simulated: unknown dialed numbers (every simulated call dials its campaign).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import json_format

from switchboard.core import agents as desk
from switchboard.core import engine, reasons
from switchboard.core import ivr as flows
from switchboard.core.acd import Acd, Assignment, WaitingCall, assignment_trace, call_priority, caller_needs, rejection_trace
from switchboard.core.call_end import meaning_of
from switchboard.core.caller import CallerFacts, caller_facts
from switchboard.core.config import IvrFlow, RoutingConfig, StaticBid, duration_seconds
from switchboard.core.eligibility import CallFacts, caps_exclusion
from switchboard.core.ledger import InMemoryLedger, buyer_timezone
from switchboard.core.screening import duplicate, duplicate_key, screen
from switchboard.core.waits import QueueEstimates
from switchboard.simulation import behavior
from switchboard.simulation.behavior import Model, draw, draw_money, prompt_input
from switchboard.simulation.results import Outcome, Tally
from switchboard.v1 import events_pb2 as pb

STALE = object()  # returned by a timer that found nothing to do (its call moved on)

# The bidder stops waiting for buyers this long before a ping's (or post's) deadline.
DEADLINE_MARGIN_MS: int = engine.DEADLINE_MARGIN_MS
# Flow steps shared between callers (Simulator._answer) at most; past it the cache starts over.
IVR_PATHS_MAX = 20_000


@dataclass(eq=False)
class Caller:
    """A simulated person: the same number, area and answers on every call they make."""

    campaign: behavior.Campaign  # the campaign they call (a repeat caller calls it again)
    number: str  # as the edge gives it: E.164, an invalid number, or "" (anonymous)
    facts: CallerFacts  # core.caller.caller_facts(number), as the ivr service derives them
    zip: str  # their ZIP, "" when their area has none: what they key in when asked, or what the edge knows
    answers: dict[str, str]  # what they answer (drawn once, from traffic answers)


@dataclass(eq=False)
class SimCall:
    index: int
    facts: CallFacts
    arrived: float
    caller: Caller | None = None
    repeat_of: int | None = None  # the index of the caller's previous call, for a repeat call
    streams: dict[str, random.Random] = field(default_factory=dict)
    progress: engine.Progress | None = None
    handoff: engine.HandToQueue | None = None  # the router's hand-off, when the call went to a queue
    queued_at: float | None = None
    waited: bool = False  # had to wait for an agent (no free agent when it arrived in the queue)
    first_wait: float | None = None  # queue arrival → first agent offer
    waiting: bool = False  # in a queue's waiting list now
    patience: float | None = None
    priority: int = 0  # in its queue (core.acd.call_priority), for the per-priority waits
    on_hold: bool = False  # accepted a callback: off the line (virtual hold), its patience no longer counts
    ivr_s: float | None = None  # time spent in the campaign's IVR flow (when callers.ivr_timed)
    walked_flow: bool = False  # went through the campaign's IVR flow (not screened out, the campaign has one)
    done: bool = False

    @property
    def call_id(self) -> str:
        return self.facts.call_id


class CallRecord:
    """A finished call for `on_call`: its facts, its outcome, and (built on demand) its decision trace."""

    def __init__(self, simulator: Simulator, call: SimCall, outcome: Outcome, assignment: Assignment | None) -> None:
        self.call = call
        self.outcome = outcome
        self._simulator = simulator
        self._assignment = assignment

    def trace(self) -> pb.DecisionTrace:
        return self._simulator.trace(self.call, self.outcome, self._assignment)

    def to_dict(self) -> dict[str, Any]:
        """One line of `--out`: the call's attributes, its outcome and its decision trace."""
        facts = self.call.facts
        line: dict[str, Any] = {
            "call": self.call.index,
            "call_id": facts.call_id,
            "arrived_at": self._simulator.dt(self.call.arrived).isoformat(),
            "decided_at": self._simulator.dt(self.outcome.at_s).isoformat(),
            # Time in the campaign's IVR flow: 0 when callers.ivr_prompt_s is unset; null without a flow walked.
            "ivr_s": round(self.call.ivr_s, 3) if self.call.ivr_s is not None else (0.0 if self.call.walked_flow else None),
        }
        return line | {
            "campaign_id": facts.campaign_id,
            "publisher_id": facts.publisher_id,
            "caller_number": self.call.caller.number if self.call.caller is not None else "",
            "repeat_of": self.call.repeat_of,
            "state": facts.state,
            "zip": facts.zip,
            "area_code": facts.area_code,
            "answers": dict(facts.answers),
            "outcome": self.outcome.to_dict(),
            "trace": json_format.MessageToDict(self.trace(), preserving_proto_field_name=True),
        }


CallSink = Callable[[CallRecord], None]


class Simulator:
    """Run `calls` simulated calls of one configuration. Use once: `Simulator(config, seed).run(calls)`."""

    def __init__(self, config: RoutingConfig, seed: int = 1, *, on_call: CallSink | None = None) -> None:
        self.config = config
        self.seed = seed
        self.model = Model(config)
        self.start = self.model.start
        self.zone = ZoneInfo(self.model.sim.timezone)
        self.ledger = InMemoryLedger()
        self.acd = Acd.from_config(config)
        # No desk here: `login: desk` agents are logged in and ready for the whole run (their shifts are not modelled).
        for a in config.agents:
            if a.login == "desk":
                desk.login(self.acd, a.id, 0.0, ready=True)
        self.estimates = QueueEstimates()  # handle times for projected waits, as the queue service keeps them
        self.tally = Tally(config, seed, self.start)
        self.on_call = on_call  # gets every call as it ends
        self.now = 0.0
        self._now_at, self._now_dt = 0.0, self.start
        self._events: list[tuple[float, int, Callable[..., object], tuple[Any, ...]]] = []
        self._seq = 0
        self._arrivals = random.Random(f"{seed}:arrivals")
        # Callers do not depend on routing: one stream, the n-th new caller gets the n-th draws in every plan.
        self._callers = random.Random(f"{seed}:callers")
        # New streams (a run without blocked/invalid/anonymous/repeat callers draws as before these existed).
        self._numbers = random.Random(f"{seed}:caller-numbers")
        self._exchange_offset = self._numbers.randrange(800)
        self._line_offset = self._numbers.randrange(10_000)
        self._new_callers: dict[str, int] = {}  # area code → new callers from it so far
        self._repeats = random.Random(f"{seed}:repeats")
        self._repeat_rate = self.model.callers.repeat_rate
        self.ivr_timed = self.model.callers.ivr_timed
        # What the ivr service keeps in ivr.callers: per campaign, duplicate_key → when that caller's last
        # accepted call started (oldest first; entries older than the window are dropped: they can no
        # longer make a duplicate).
        self._seen: dict[str, dict[str, tuple[float, datetime]]] = {c.id: {} for c in config.campaigns}
        self._windows = {c.id: duration_seconds(c.duplicate_window) for c in config.campaigns if c.duplicate_window}
        self._exchange_facts: dict[str, CallerFacts] = {}  # "+1NPANXX" → caller_facts of a number in it
        self._flow_starts: dict[str, flows.IvrStep] = {}
        self._flow_paths: dict[tuple[int, str, str], tuple[flows.IvrState, flows.IvrStep]] = {}
        self._flat = all(min(c.rates) == c.peak for c in self.model.campaigns)
        self._campaigns = {c.id: c for c in config.campaigns}
        self._queues = {q.id: q for q in config.queues}
        self._buyers = {b.id: b for b in config.buyers}
        self._calls = 0
        self._progress: Callable[[int], None] | None = None
        self._arrived = 0
        self._last_arrival = 0.0

    # ------------------------------------------------------------ the event loop

    def at(self, t: float, handler: Callable[..., object], *args: Any) -> None:
        """Run `handler(*args)` at time `t`; a handler returns STALE when it found nothing to do."""
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, handler, args))

    def dt(self, t: float | None = None) -> datetime:
        if t is None:  # the current time: asked several times per event, made once
            if self._now_at != self.now:
                self._now_dt, self._now_at = self.start + timedelta(seconds=self.now), self.now
            return self._now_dt
        return self.start + timedelta(seconds=t)

    def run(self, calls: int, progress: Callable[[int], None] | None = None) -> Tally:
        """Simulate `calls` arrivals and everything they cause, to the end; return the tally."""
        if calls < 1:
            raise ValueError("calls must be at least 1")
        self._calls = calls
        self._progress = progress
        self._next_arrival(0.0)
        events = self._events
        last = 0.0  # the time of the last event that did something (not a stale timer)
        while events:
            t, _, handler, args = heapq.heappop(events)
            self.now = t
            if handler(*args) is not STALE:
                last = t
            if self.acd.agent_changes:  # agent.events for the queue service to publish: nobody reads them here
                self.acd.agent_changes.clear()
        self.now = last
        self.tally.close(last, self._last_arrival)
        if progress is not None:
            progress(self._arrived)
        return self.tally

    def stream(self, call: SimCall, purpose: str) -> random.Random:
        rng = call.streams.get(purpose)
        if rng is None:
            rng = call.streams[purpose] = random.Random(f"{self.seed}:{call.index}:{purpose}")
        return rng

    # ------------------------------------------------------------ traffic

    def _next_arrival(self, t: float) -> None:
        """Thinning: candidates at the summed peak rate; a candidate of campaign c at local hour h stays with rate_c(h)/peak_c."""
        model, rng = self.model, self._arrivals
        while True:
            t += rng.expovariate(model.peak_rate_s)
            campaign = rng.choices(model.campaigns, cum_weights=model.peak_weights)[0]
            if self._flat:
                break
            rate = campaign.rates[(self.start + timedelta(seconds=t)).astimezone(self.zone).hour]
            if rate >= campaign.peak or rng.random() * campaign.peak < rate:
                break
        self.at(t, self._arrive, campaign)

    def _arrive(self, campaign: behavior.Campaign) -> object:
        """A first call: a new caller."""
        if self._arrived >= self._calls:
            return STALE  # repeat calls took the last places
        index = self._count_arrival()
        if index < self._calls:
            self._next_arrival(self.now)
        self._start_call(index, self._new_caller(campaign), None)
        return None

    def _repeat(self, caller: Caller, previous: int) -> object:
        """The same caller calls the same campaign again."""
        if self._arrived >= self._calls:
            return STALE
        self._start_call(self._count_arrival(), caller, previous)
        return None

    def _count_arrival(self) -> int:
        self._arrived += 1
        self._last_arrival = self.now
        if self._progress is not None and self._arrived % 1000 == 0:
            self._progress(self._arrived)
        return self._arrived

    def _new_caller(self, campaign: behavior.Campaign) -> Caller:
        rng = self._callers
        area = rng.choices(self.model.areas, cum_weights=self.model.area_weights)[0]
        zip_code = ""
        if area.zip_prefix:
            rest = 5 - len(area.zip_prefix)
            zip_code = area.zip_prefix + (f"{rng.randrange(10**rest):0{rest}d}" if rest else "")
        answers = {key: drawer(rng) for key, drawer in campaign.answers.items()}
        number = self._number(campaign, area.area_code)
        return Caller(campaign, number, self._caller_facts(number), zip_code, answers)

    def _caller_facts(self, number: str) -> CallerFacts:
        """core.caller.caller_facts(number), cached by area code and exchange for NANP numbers.

        NANP numbers are assigned by area code and exchange (NPA-NXX), and that is all phonenumbers'
        metadata tells apart: validity, state and time zone of +1 NPA NXX xxxx do not depend on the
        line, only the number does (tests/unit/test_simulation_callers.py checks it). Without the
        cache, deriving the facts of every new caller would cost as much as routing the call.
        """
        if len(number) != 12 or not number.startswith("+1") or not number[1:].isdigit():
            return caller_facts(number)
        facts = self._exchange_facts.get(number[:8])
        if facts is None:
            facts = self._exchange_facts[number[:8]] = caller_facts(number)
        return CallerFacts(**{**facts.__dict__, "number": number})

    def _number(self, campaign: behavior.Campaign, area_code: str) -> str:
        """The number a new caller calls from, as the edge would give it (the same draws whatever it becomes)."""
        rng, callers = self._numbers, self.model.callers
        kind = pick = 1.0
        if self.model.screened_rates:
            kind, pick = rng.random(), rng.random()
        local = self._local_number(area_code)
        if kind < callers.blocked_rate:
            if campaign.blocked:  # a number on the global or the campaign's blocklist
                what, entry = campaign.blocked[int(pick * len(campaign.blocked))]
                if what == "number":
                    return entry
                if what == "prefix":
                    return entry + local[-max(1, 12 - len(entry)) :]  # completed to +1 and 10 digits
                return f"+1{entry}{local}"
            # no blocklist applies to this campaign: an ordinary caller
        elif kind < callers.blocked_rate + callers.invalid_number_rate:
            return f"+1{100 + int(pick * 100)}{local}"  # area codes 1xx do not exist: not a valid number
        elif kind < callers.blocked_rate + callers.invalid_number_rate + callers.anonymous_rate:
            return ""  # withheld
        return f"+1{area_code}{local}"

    def _local_number(self, area_code: str) -> str:
        """Exchange and line of the k-th new caller of an area code: new callers never share a number.

        k → exchange block k // 10,000 (shifted), line k · 7919 mod 10,000 (shifted): a bijection on
        8,000,000 numbers per area code (exchanges 200-999). Consecutive callers share an exchange, so
        `_caller_facts` derives the facts of one exchange once per 10,000 callers.
        """
        k = self._new_callers.get(area_code, 0)
        self._new_callers[area_code] = k + 1
        exchange = 200 + (k // 10_000 + self._exchange_offset) % 800
        line = (k * 7_919 + self._line_offset) % 10_000
        return f"{exchange}{line:04d}"

    def _start_call(self, index: int, caller: Caller, repeat_of: int | None) -> None:
        """The ivr service's part of the call (its start_call, the flow), then routing."""
        campaign = self._campaigns[caller.campaign.id]
        known = caller.facts
        rejection = screen(self.config, campaign, known)
        key = duplicate_key(campaign, known)
        if key is not None:
            seen = self._seen[campaign.id]
            if rejection is None:
                last = seen.get(key)
                rejection = duplicate(campaign, known, last[1] if last is not None else None, self.dt())
            if rejection is None:  # only accepted calls open a window
                self._remember(seen, key, self._windows[campaign.id])
        # What the router knows: ivr.completed's caller and answers. A campaign without a flow is qualified by
        # the edge (SubmitAnswers: the drawn answers, the caller's ZIP); with one, by the flow (below).
        call_id = f"sim-{index:07d}"
        if rejection is None and campaign.ivr is None:
            facts = CallFacts(
                call_id, campaign.id, campaign.publisher, known.state, caller.zip, known.area_code, dict(caller.answers)
            )
        else:
            facts = CallFacts(call_id, campaign.id, campaign.publisher, known.state, "", known.area_code)
        call = SimCall(index, facts, self.now, caller, repeat_of)
        self.tally.arrived(call)
        if self._repeat_rate and self._arrived < self._calls and self._repeats.random() < self._repeat_rate:
            self.at(self.now + draw(self.model.repeat_after_s, self._repeats), self._repeat, caller, index)
        if rejection is not None:
            self._finish(call, Outcome.rejected(rejection.reason, rejection.detail, 0))
            return
        if campaign.ivr is not None:
            end = self._run_flow(call, self.model.flows[campaign.ivr])
            if call.ivr_s is not None:  # the caller is in the flow that long: it ends (routing, too) later
                self.at(self.now + call.ivr_s, self._flow_over, call, end)
            else:
                self._flow_over(call, end)
            return
        self.apply(call, engine.start_routing(self.config, call.facts, self.dt(), self.ledger))

    def _flow_over(self, call: SimCall, end: flows.IvrStep) -> None:
        """The caller left the flow: hung up at a prompt, disqualified, or qualified (→ routing, as on ivr.completed)."""
        facts = call.facts
        if isinstance(end, flows.Prompt):  # hung up: the ivr service rejects the call where the caller was
            answers = dict(end.state.answers)  # those given before hanging up
            call.facts = CallFacts(
                facts.call_id, facts.campaign_id, facts.publisher_id, facts.state, "", facts.area_code, answers
            )
            self._finish(call, Outcome.rejected(reasons.ABANDONED, flows.hung_up_detail(end.state), 0))
            return
        flow_end = flows.flow_end(end)
        call.facts = CallFacts(
            facts.call_id,
            facts.campaign_id,
            facts.publisher_id,
            facts.state,
            flow_end.zip or "",
            facts.area_code,
            flow_end.answers,
        )
        if not flow_end.qualified:
            self._finish(call, Outcome.rejected(reasons.DISQUALIFIED, flow_end.detail, 0))
            return
        self.apply(call, engine.start_routing(self.config, call.facts, self.dt(), self.ledger))

    def _answer(self, flow: IvrFlow, step: flows.Prompt, text: str, kind: flows.InputKind) -> flows.IvrStep:
        """core.ivr.answer, shared between callers: core.ivr is pure (the same state and input give the same
        step), so callers who answered alike so far reuse the steps (a tree of the flow's paths, keyed by
        the state object answered from; steps and their states are never modified)."""
        key = (id(step.state), text, kind)
        known = self._flow_paths.get(key)
        if known is not None and known[0] is step.state:
            return known[1]
        after = flows.answer(flow, step.state, text, kind)
        if len(self._flow_paths) >= IVR_PATHS_MAX:
            self._flow_paths.clear()  # a cache: the walk is the same without it
        self._flow_paths[key] = (step.state, after)  # holds the state, so its id stays its own
        return after

    def _remember(self, seen: dict[str, tuple[float, datetime]], key: str, window_s: int) -> None:
        seen.pop(key, None)  # re-inserted last: the dict stays oldest first
        seen[key] = (self.now, self.dt())
        for old in list(itertools.islice(seen, 8)):  # a few per call keep up with the arrivals
            if self.now - seen[old][0] < window_s:
                break
            del seen[old]

    def _run_flow(self, call: SimCall, flow: IvrFlow) -> flows.IvrStep:
        """The caller through the campaign's IVR flow, as the ivr service drives core.ivr.

        Returns the end: the Finished step, or the Prompt at which the caller hung up. With IVR timing
        modelled, `call.ivr_s` is the time spent in the flow: a draw of ivr_prompt_s per prompt asked
        (the one hung up at included), then a hang-up draw, from the call's "ivr-time" stream, never
        from its "ivr" stream of inputs, so callers answer alike with and without timing.
        """
        caller = call.caller
        assert caller is not None
        step = self._flow_starts.get(flow.id)
        if step is None:
            step = self._flow_starts[flow.id] = flows.current(flow, flows.start(flow))
        call.walked_flow = True
        reprompts = 0
        timed = self.ivr_timed
        prompt_s, hangup_rate = self.model.callers.ivr_prompt_s, self.model.callers.ivr_hangup_rate
        seconds = 0.0
        while isinstance(step, flows.Prompt):
            if timed:
                clock = self.stream(call, "ivr-time")
                if prompt_s is not None:
                    seconds += draw(prompt_s, clock)
                if hangup_rate and clock.random() < hangup_rate:
                    break
            text, kind = prompt_input(flow, step, caller.answers, caller.zip, self.model, lambda: self.stream(call, "ivr"))
            after = self._answer(flow, step, text, kind)
            if isinstance(after, flows.Prompt) and after.node == step.node and after.attempt > step.attempt:
                reprompts += 1
            step = after
        if timed:
            call.ivr_s = seconds
        self.tally.ivr_finished(flow.id, step, reprompts, call.ivr_s)
        return step

    # ------------------------------------------------------------ carrying out the engine's actions

    def apply(self, call: SimCall, step: engine.Step) -> None:
        call.progress = step.progress
        action = step.action
        if isinstance(action, engine.RequestBids):
            self._ping(call, action)
        elif isinstance(action, engine.PostToBuyer):
            self._post(call, action)
        elif isinstance(action, engine.RouteToBuyer):
            self._route(call, action)
        elif isinstance(action, engine.HandToQueue):
            self._to_queue(call, action)
        else:
            self._finish(call, Outcome.rejected(action.reason, action.detail, call.progress.offers_made))

    def _limit_ms(self, call: SimCall, timeout_ms: int) -> int:
        """How long the bidder waits for an RTB buyer: min(its timeout, the routing deadline − margin)."""
        routing = self._campaigns[call.facts.campaign_id].routing
        return min(timeout_ms, routing.timeout_ms - DEADLINE_MARGIN_MS)

    def _ping(self, call: SimCall, action: engine.RequestBids) -> None:
        arrivals: list[tuple[float, int, engine.BidAnswer]] = []
        for order, buyer_id in enumerate(action.buyer_ids):
            buyer = self._buyers[buyer_id]
            if isinstance(buyer.bid, StaticBid):  # the bidder answers at once with the static price
                arrivals.append((0.0, order, engine.BidAnswer(buyer_id, "bid", buyer.bid.price, available=True)))
                continue
            m = self.model.buyers[buyer_id]
            rng = self.stream(call, f"ping:{buyer_id}")
            # Always the same draws in the same order, whatever the outcome (common random numbers).
            latency = draw(m.latency_ms, rng)
            declined = rng.random() < m.decline_rate
            amount = draw_money(m.bid, rng)
            available = rng.random() < m.available_rate
            limit = max(0, self._limit_ms(call, buyer.bid.timeout_ms))
            if latency > limit:
                answer = engine.BidAnswer(buyer_id, "no_bid", reason="timeout", latency_ms=limit)
                latency = limit
            elif declined:
                answer = engine.BidAnswer(buyer_id, "decline", reason="declined", latency_ms=int(latency))
            else:
                answer = engine.BidAnswer(buyer_id, "bid", amount, latency_ms=int(latency), available=available)
            arrivals.append((latency, order, answer))
        arrivals.sort(key=lambda a: (a[0], a[1]))
        progress = call.progress
        assert progress is not None
        answers: dict[str, engine.BidAnswer] = {}
        concluded_ms = (action.deadline - self.dt()).total_seconds() * 1000
        for seq, (ms, _, answer) in enumerate(arrivals):
            answers[answer.buyer_id] = engine.BidAnswer(
                answer.buyer_id, answer.outcome, answer.amount, answer.reason, answer.latency_ms, answer.available, seq
            )
            if engine.can_conclude_early(progress, action.buyer_ids, answers):
                concluded_ms = min(concluded_ms, ms)
                break
        # Standing bids (RTB buyers in standing-price tiers): every bid placed, also those after an early close.
        bids = [(self.now + ms / 1000, a) for ms, _, a in arrivals if a.outcome == "bid" and a.amount is not None]
        self.at(self.now + concluded_ms / 1000, self._conclude, call, action, answers, bids)

    def _conclude(self, call: SimCall, action: engine.RequestBids, answers: dict[str, engine.BidAnswer], bids: list) -> None:
        for when, answer in bids:
            self.ledger.bid(answer.buyer_id, answer.amount, self.dt(when))
        assert call.progress is not None
        self.apply(call, engine.conclude_auction(self.config, call.progress, action.buyer_ids, answers, self.dt(), self.ledger))

    def _post(self, call: SimCall, action: engine.PostToBuyer) -> None:
        buyer = self._buyers[action.buyer_id]
        if isinstance(buyer.bid, StaticBid):  # the bidder accepts a static buyer's post at once
            self._post_answered(call, True, "")
            return
        m = self.model.buyers[buyer.id]
        rng = self.stream(call, f"post:{buyer.id}")
        latency = draw(m.latency_ms, rng)
        rejected = rng.random() < m.post_reject_rate
        limit = max(0, self._limit_ms(call, buyer.bid.timeout_ms))
        if latency > limit:
            self.at(self.now + limit / 1000, self._post_answered, call, False, "timeout")
        else:
            self.at(self.now + latency / 1000, self._post_answered, call, not rejected, "post rejected" if rejected else "")
        self.tally.posted(buyer.id)

    def _post_answered(self, call: SimCall, accepted: bool, reason: str) -> None:
        assert call.progress is not None
        if not accepted:
            self.tally.offer_failed("post_rejected")
        self.apply(call, engine.post_answered(self.config, call.progress, accepted, self.dt(), self.ledger, reason))

    def _route(self, call: SimCall, action: engine.RouteToBuyer) -> None:
        assert call.progress is not None
        buyer = self._buyers[action.buyer_id]
        now = self.dt()
        # The reservation, as the router's single-writer ledger checks it.
        denied = caps_exclusion(buyer.caps, self.ledger.buyer_load(buyer.id), now, buyer_timezone(buyer), action.price)
        if denied is not None:
            self.apply(call, engine.reservation_denied(self.config, call.progress, denied.rule, denied.detail, now, self.ledger))
            return
        self.ledger.route(call.call_id, action, now)
        self.tally.offered(buyer.id)
        m = self.model.buyers[buyer.id]
        rng = self.stream(call, f"offer:{buyer.id}")
        answered = rng.random() < m.answer_rate
        ring = draw(m.ring_s, rng)
        hangup = rng.random() < m.hangup_rate
        converted = rng.random() < m.conversion_rate
        talk = draw(m.talk_time_s, rng)
        short = int(rng.random() * buyer.billable_after_s)  # a call that ends before billable_after_s
        if not answered:
            self.at(self.now + ring, self._buyer_call_ended, call, action, pb.CALL_OUTCOME_NO_ANSWER, 0)
            return
        if hangup:
            self.at(self.now + short, self._buyer_call_ended, call, action, pb.CALL_OUTCOME_BUYER_HANGUP, short)
            return
        seconds = max(buyer.billable_after_s, round(talk)) if converted else short
        # The caller talked: the call is over whoever hangs up (billable or not); it holds the slot until it ends.
        billable = meaning_of(pb.CALL_OUTCOME_ANSWERED, seconds, buyer.billable_after_s).billable
        self._finish(call, Outcome.buyer(action, seconds, billable))
        self.at(self.now + seconds, self._buyer_call_ended, call, action, pb.CALL_OUTCOME_ANSWERED, seconds)

    def _buyer_call_ended(self, call: SimCall, action: engine.RouteToBuyer, outcome: pb.CallOutcome, seconds: int) -> None:
        """The edge's call.ended for an offer: release the slot, then re-route a failed offer (as the router does)."""
        buyer = self._buyers[action.buyer_id]
        end = meaning_of(outcome, seconds, buyer.billable_after_s)
        self.ledger.end(call.call_id, buyer, self.dt(), seconds, end.answered)
        if outcome == pb.CALL_OUTCOME_ANSWERED:
            return  # finished when the buyer answered (_route)
        failure = end.offer_outcome
        if failure is None:  # a buyer hang-up at or past billable_after_s: a sale after all
            self._finish(call, Outcome.buyer(action, seconds, end.billable))
            return
        self.tally.offer_failed(failure)
        assert call.progress is not None
        self.apply(call, engine.offer_failed(self.config, call.progress, failure, self.dt(), self.ledger))

    # ------------------------------------------------------------ the ACD (what the queue service does)

    def _to_queue(self, call: SimCall, action: engine.HandToQueue) -> None:
        queue = self.acd.queues.get(action.queue_id)
        needs = caller_needs(queue, call.facts.answers) if queue is not None else {}
        max_attempts = self._campaigns[call.facts.campaign_id].routing.max_attempts
        priority = call_priority(queue, call.facts.campaign_id, call.facts.publisher_id, call.facts.answers) if queue else 0
        can_overflow = engine.has_later_tier(self.config, call.facts.campaign_id, action.tier_index)
        waiting = WaitingCall(
            call.call_id,
            action.queue_id,
            self.now,
            needs,
            payload=call,
            attempt=action.attempt or 1,
            max_attempts=max_attempts,
            priority=priority,
            can_overflow=can_overflow,
        )
        call.handoff = action
        call.queued_at = self.now
        call.priority = priority
        self.tally.queued(action.queue_id, priority)
        self.estimates.arrived(action.queue_id, self.now)
        offer = self.acd.offer(waiting, self.now)
        if offer.status == "assigned":
            assert offer.assignment is not None
            self._agent_offer(offer.assignment)
        elif offer.status == "waiting":
            call.waited = True
            self._wait(call, waiting)
        elif offer.status == "overflow":
            self._overflow(call, waiting)
        else:
            self._finish(call, Outcome.rejected(offer.reason, offer.detail, action.attempt, queue_id=action.queue_id))

    def _wait(self, call: SimCall, waiting: WaitingCall) -> None:
        """The call is in the waiting list: its max_wait_s expiry and the caller's patience."""
        call.waiting = True
        queue = self._queues[waiting.queue_id]
        expires = waiting.enqueued_at + queue.max_wait_s
        while expires - waiting.enqueued_at < queue.max_wait_s:  # Acd.expire compares now − enqueued_at
            expires = math.nextafter(expires, math.inf)
        self.at(max(self.now, expires), self._expire, call)
        if waiting.can_overflow and queue.overflow_after_s is not None:
            self.at(max(self.now, waiting.enqueued_at + queue.overflow_after_s), self._overflow_due, call)
        if waiting.can_overflow and queue.overflow_when_projected_wait_s is not None:
            self._overflow_due(call)  # its projected wait on arrival (the service checks at every sweep too)
        if waiting.announce_at is not None:
            self.at(max(self.now, waiting.announce_at), self._announce, call)
        patience_dist = self.model.queues[queue.id].patience_s
        if patience_dist is not None:
            if call.patience is None:
                call.patience = draw(patience_dist, self.stream(call, "patience"))
            assert call.queued_at is not None
            self.at(max(self.now, call.queued_at + call.patience), self._caller_gave_up, call)

    def _expire(self, call: SimCall) -> object:
        if not call.waiting:
            return STALE  # the call got an agent or hung up before its max_wait_s
        for abandoned in self.acd.expire(self.now):
            gone: SimCall = abandoned.call.payload
            gone.waiting = False
            detail = f"waited {abandoned.waited_s:.1f}s in queue {abandoned.queue.id} (max_wait_s {abandoned.queue.max_wait_s})"
            self._finish(
                gone,
                Outcome.rejected(
                    reasons.ABANDONED,
                    detail,
                    abandoned.call.attempt,
                    queue_id=abandoned.queue.id,
                    wait_s=abandoned.waited_s,
                    why="max_wait",
                ),
            )
        return None

    def _overflow_due(self, call: SimCall) -> object:
        if not call.waiting:
            return STALE
        for due in self.acd.overflow(self.now, self.estimates.handle_time_s):
            self._overflow(due.call.payload, due.call)
        return None

    def _overflow(self, call: SimCall, waiting: WaitingCall) -> None:
        """The queue gave the call back: routing goes on from the tier after the queue's (engine.resume_after_queue)."""
        assert call.handoff is not None and call.progress is not None
        call.waiting = False
        self.tally.overflowed(waiting.queue_id)
        tier_index, trace = call.handoff.tier_index, call.progress.trace
        trace.notes.append(f"queue {waiting.queue_id}: overflowed after {self.now - waiting.enqueued_at:.1f}s")
        call.handoff = None  # out of the queue: what follows is routing's (the trace, the outcome)
        self.apply(
            call, engine.resume_after_queue(self.config, call.facts, tier_index, waiting.attempt, trace, self.dt(), self.ledger)
        )

    def _announce(self, call: SimCall) -> object:
        """The queue's statuses due now (Acd.statuses, as the queue service's sweep): announcements said, callbacks
        offered; a caller offered one accepts it with callback_accept_rate (Acd.request_callback: virtual hold)."""
        if not call.waiting or call.on_hold:
            return STALE
        for status in self.acd.statuses(self.now, self.estimates.handle_time_s):
            sc: SimCall = status.call.payload
            qid = status.queue.id
            self.tally.announced(qid)
            if status.kind == "callback_offered":
                self.tally.callback(qid, "offered")
                if self.stream(sc, "callback offer").random() < self.model.queues[qid].callback_accept_rate:
                    accepted = self.acd.request_callback(sc.call_id, self.now)
                    if accepted.status == "accepted":
                        sc.on_hold = True
                        self.tally.callback(qid, "accepted")
                        self.at(self.now + status.queue.callback_max_wait_s, self._callback_expiry, sc)
                        continue
            if status.call.announce_at is not None:
                self.at(max(self.now, status.call.announce_at), self._announce, sc)
        return None

    def _callback_expiry(self, call: SimCall) -> object:
        """callback_max_wait_s after an accepted callback (Acd.expire_callbacks): not placed by then → callback_expired."""
        if not call.waiting:
            return STALE
        for gone in self.acd.expire_callbacks(self.now):
            sc: SimCall = gone.call.payload
            sc.waiting = False
            self.tally.callback(gone.queue.id, "expired")
            self._finish(sc, Outcome.rejected(reasons.CALLBACK_EXPIRED, gone.detail, gone.call.attempt, queue_id=gone.queue.id))
        return None

    def _callback_try(self, assignment: Assignment) -> None:
        """The queue reserved an agent for a callback: the edge calls the caller, who answers with callback_answer_rate
        (then bridged to the reserved agent) or, after the ring time of the agent's model, not (CALLBACK_NO_ANSWER)."""
        call: SimCall = assignment.call.payload
        qid = assignment.queue.id
        self.tally.callback(qid, "placed")
        rng = self.stream(call, f"callback {assignment.call.callback_attempt}")
        m = self.model.agents[assignment.agent.id]
        if rng.random() >= self.model.queues[qid].callback_answer_rate:
            self.at(self.now + draw(m.ring_s, rng), self._callback_missed, call, assignment.call.attempt)
            return
        self.tally.callback(qid, "connected")
        call.waiting = False
        if call.first_wait is None:
            call.first_wait = assignment.waited_s
            self.tally.first_agent_offer(qid, call.waited, assignment.waited_s, call.priority)
        handle = draw(m.handle_time_s, rng)
        self._finish(call, Outcome.agent(assignment, handle), assignment)
        self.at(self.now + handle, self._agent_call_ended, call, handle)

    def _callback_missed(self, call: SimCall, attempt: int) -> None:
        missed = self.acd.callback_no_answer(call.call_id, self.now, attempt=attempt)
        if missed.status == "retry":
            assert missed.retry_at is not None
            self.at(missed.retry_at, self._holds_due)
        elif missed.status == "failed":
            assert missed.call is not None
            call.waiting = False
            self.tally.callback(missed.call.queue_id, "failed")
            self._finish(call, Outcome.rejected(missed.reason, missed.detail, attempt, queue_id=missed.call.queue_id))
        for assignment in missed.others:
            self._agent_offer(assignment)

    def _holds_due(self) -> None:
        """A retry's delay ended (Acd.serve_due, the queue service's sweep)."""
        for assignment in self.acd.serve_due(self.now):
            self._agent_offer(assignment)

    def _caller_gave_up(self, call: SimCall) -> object:
        if not call.waiting or call.on_hold:
            return STALE
        release = self.acd.release(call.call_id, self.now)
        call.waiting = False
        gone = release.abandoned
        if gone is not None:
            detail = f"the caller hung up after {gone.waited_s:.1f}s in queue {gone.queue.id}"
            self._finish(
                call,
                Outcome.rejected(
                    reasons.ABANDONED,
                    detail,
                    gone.call.attempt,
                    queue_id=gone.queue.id,
                    wait_s=gone.waited_s,
                    why="caller_hangup",
                ),
            )
        return None

    def _agent_offer(self, assignment: Assignment) -> None:
        if assignment.call.callback:
            self._callback_try(assignment)
            return
        call: SimCall = assignment.call.payload
        call.waiting = False
        if call.first_wait is None:
            call.first_wait = assignment.waited_s
            self.tally.first_agent_offer(assignment.queue.id, call.waited, assignment.waited_s, call.priority)
        m = self.model.agents[assignment.agent.id]
        rng = self.stream(call, f"agent:{assignment.agent.id}")
        answered = rng.random() < m.answer_rate
        ring = draw(m.ring_s, rng)
        handle = draw(m.handle_time_s, rng)
        if not answered:
            self.at(self.now + ring, self._agent_no_answer, call, assignment.call.attempt)
            return
        self._finish(call, Outcome.agent(assignment, handle), assignment)
        self.at(self.now + handle, self._agent_call_ended, call, handle)

    def _agent_call_ended(self, call: SimCall, handle_s: float) -> None:
        assert call.handoff is not None
        self.estimates.handled(call.handoff.queue_id, handle_s)
        for assignment in self.acd.release(call.call_id, self.now).assignments:
            self._agent_offer(assignment)
        wrap_up_s = self._queues[call.handoff.queue_id].wrap_up_s
        if wrap_up_s > 0:  # the agent is in wrap-up (core.agents): free again wrap_up_s later, as the service's sweep
            self.at(self.now + wrap_up_s, self._wrap_ups_due)

    def _wrap_ups_due(self) -> None:
        for assignment in desk.end_due_wrap_ups(self.acd, self.now):
            self._agent_offer(assignment)

    def _agent_no_answer(self, call: SimCall, attempt: int) -> None:
        assert call.handoff is not None
        self.tally.agent_no_answer(call.handoff.queue_id)
        r = self.acd.offer_failed(call.call_id, self.now, attempt=attempt, why="no_answer")
        if r.status == "assigned":
            assert r.assignment is not None
            self._agent_offer(r.assignment)
        elif r.status == "waiting":
            assert r.call is not None
            self._wait(call, r.call)
        elif r.status == "rejected":
            assert r.call is not None
            self._finish(call, Outcome.rejected(r.reason, r.detail, r.call.attempt - 1, queue_id=r.call.queue_id))
        elif r.status == "overflow":
            assert r.call is not None
            self._overflow(call, r.call)
        for assignment in r.others:
            self._agent_offer(assignment)

    # ------------------------------------------------------------ the end of a call

    def _finish(self, call: SimCall, outcome: Outcome, assignment: Assignment | None = None) -> None:
        assert not call.done, f"{call.call_id} got a second terminal outcome"
        call.done = True
        outcome.at_s = self.now
        if outcome.queue_id is not None and outcome.wait_s is None and call.first_wait is not None:
            outcome.wait_s = call.first_wait
        self.tally.finished(call, outcome)
        if self.on_call is not None:
            self.on_call(CallRecord(self, call, outcome, assignment))

    def trace(self, call: SimCall, outcome: Outcome, assignment: Assignment | None) -> pb.DecisionTrace:
        """The decision trace as the services publish it: the router's, extended by the queue service for queued calls."""
        if call.progress is None:
            return pb.DecisionTrace()  # rejected by the ivr service (screening, IVR) before routing: no routing decision
        trace = call.progress.trace
        if call.handoff is None:
            return trace
        if assignment is not None:
            return assignment_trace(trace, call.handoff.tier_index, assignment)
        return rejection_trace(trace, call.handoff.queue_id, outcome.reason, outcome.detail)


def simulate(
    config: RoutingConfig,
    calls: int,
    seed: int = 1,
    *,
    on_call: CallSink | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    return Simulator(config, seed, on_call=on_call).run(calls, progress)


__all__ = ["DEADLINE_MARGIN_MS", "CallRecord", "CallSink", "SimCall", "Simulator", "simulate"]
