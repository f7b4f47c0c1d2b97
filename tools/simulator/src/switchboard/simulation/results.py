"""What a simulation run counts: per call an `Outcome`, over the run a `Tally` (→ `to_dict()`, the JSON of `--json`).

Definitions (docs/SIMULATION.md):
  fill_rate        calls connected to a buyer (an offer that stood: the buyer answered and the caller
                   talked) / calls
  revenue          the price of every billable sale (connected for billable_after_s or longer)
  avg_winning_bid  the mean price of the calls connected to a buyer
  queue wait       from the router's hand-off to the call's first agent offer; `wait_probability`
                   is the share of queued calls that found no free agent (Erlang C's P(wait)),
                   `avg_wait_s` the mean wait of the calls that reached an agent (ASA)
  ivr              per flow: calls that went through it, qualified, disqualified by the end's
                   reason, re-prompts (answers the flow refused and asked again), the calls hung up in
                   it and the mean time callers spent in it (avg_ivr_s, over all its calls; 0 when
                   callers.ivr_prompt_s is unset)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from switchboard.core import engine, reasons
from switchboard.core import ivr as flows
from switchboard.core.acd import Assignment
from switchboard.core.config import RoutingConfig

if TYPE_CHECKING:
    from switchboard.simulation.simulator import SimCall

ZERO = Decimal("0.00")


def _ratio(n: float, d: float) -> float | None:
    return round(n / d, 6) if d else None


def _money(d: Decimal) -> str:
    return f"{d:.2f}"


@dataclass
class Outcome:
    """How one simulated call ended: connected to a buyer, handled by an agent, or rejected."""

    kind: str  # "buyer" | "agent" | "rejected"
    attempt: int  # the offer that stood (buyer, agent) or the offers made (rejected)
    tier: int | None = None
    strategy: str | None = None
    buyer_id: str | None = None
    agent_id: str | None = None
    queue_id: str | None = None
    price: Decimal | None = None
    billable: bool = False
    connected_s: int | None = None
    wait_s: float | None = None
    handle_s: float | None = None
    reason: str = ""
    detail: str = ""
    why: str | None = None  # abandoned: "max_wait" or "caller_hangup"
    at_s: float = 0.0  # when it was decided (the buyer or agent answered, or the call was rejected), simulated seconds

    @classmethod
    def buyer(cls, action: engine.RouteToBuyer, seconds: int, billable: bool) -> Outcome:
        return cls(
            "buyer",
            action.attempt,
            action.tier_index,
            action.strategy,
            buyer_id=action.buyer_id,
            price=action.price,
            billable=billable,
            connected_s=seconds,
        )

    @classmethod
    def agent(cls, assignment: Assignment, handle_s: float) -> Outcome:
        call = assignment.call
        tier = call.payload.handoff.tier_index if call.payload.handoff is not None else None
        return cls(
            "agent",
            call.attempt,
            tier,
            "queue",
            agent_id=assignment.agent.id,
            queue_id=assignment.queue.id,
            price=ZERO,
            wait_s=assignment.waited_s,
            handle_s=handle_s,
        )

    @classmethod
    def rejected(
        cls,
        reason: str,
        detail: str,
        attempt: int,
        *,
        queue_id: str | None = None,
        wait_s: float | None = None,
        why: str | None = None,
    ) -> Outcome:
        return cls("rejected", attempt, queue_id=queue_id, reason=reason, detail=detail, wait_s=wait_s, why=why)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "buyer_id": self.buyer_id,
            "agent_id": self.agent_id,
            "queue_id": self.queue_id,
            "price": None if self.price is None else _money(self.price),
            "tier": self.tier,
            "attempt": self.attempt,
            "strategy": self.strategy,
            "billable": self.billable,
            "connected_s": self.connected_s,
            "wait_s": None if self.wait_s is None else round(self.wait_s, 3),
            "handle_s": None if self.handle_s is None else round(self.handle_s, 3),
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class _Buyer:
    offers: int = 0
    posts: int = 0
    connected: int = 0
    billable: int = 0
    revenue: Decimal = ZERO
    price_sum: Decimal = ZERO


@dataclass
class _Queue:
    calls: int = 0
    waited: int = 0
    reached_agent: int = 0
    wait_sum: float = 0.0
    wait_max: float = 0.0
    answered: int = 0
    handle_sum: float = 0.0
    agent_no_answer: int = 0
    overflowed: int = 0  # given back to routing: the campaign's later tiers (docs/ACD.md, Overflow)
    abandoned_max_wait: int = 0
    abandoned_hangup: int = 0
    abandoned_wait_sum: float = 0.0
    rejected: int = 0
    by_priority: dict[int, _PriorityWaits] = field(default_factory=dict)
    announcements: int = 0  # queue.status said to waiting callers
    callbacks: Counter = field(default_factory=Counter)  # offered, accepted, placed, connected, failed, expired

    def priority(self, p: int) -> _PriorityWaits:
        return self.by_priority.setdefault(p, _PriorityWaits())


@dataclass
class _PriorityWaits:
    """The waits of a queue's calls of one priority (the priority they arrived with, before aging)."""

    calls: int = 0
    reached_agent: int = 0
    wait_sum: float = 0.0
    wait_max: float = 0.0
    abandoned: int = 0


@dataclass
class _Flow:
    calls: int = 0
    qualified: int = 0
    reprompts: int = 0
    ended_by: Counter[str] = field(default_factory=Counter)  # disqualified calls by the end's reason
    hung_up: int = 0  # callers who hung up in the flow (rejected abandoned)
    ivr_s: float = 0.0  # time callers spent in the flow, summed


@dataclass
class _Campaign:
    calls: int = 0
    connected: int = 0
    agent: int = 0
    rejected: int = 0
    billable: int = 0
    revenue: Decimal = ZERO


class Tally:
    """Counters of one run, in configuration order (deterministic output)."""

    def __init__(self, config: RoutingConfig, seed: int, start: datetime) -> None:
        self.seed = seed
        self.start = start
        self.calls = 0
        self.kinds: Counter[str] = Counter()
        self.revenue = ZERO
        self.billable = 0
        self.price_sum = ZERO
        self.buyers = {b.id: _Buyer() for b in config.buyers}
        self.campaigns = {c.id: _Campaign() for c in config.campaigns}
        self.queues = {q.id: _Queue() for q in config.queues}
        self.agents: dict[str, dict[str, float]] = {a.id: {"calls": 0, "handle_s": 0.0} for a in config.agents}
        self._agent_slots = {a.id: a.max_concurrent for a in config.agents}
        self.rejected: Counter[str] = Counter()
        self.offer_failures: Counter[str] = Counter()
        self.repeat_calls = 0
        self.flows = {f.id: _Flow() for f in config.ivr_flows}
        self.end_s = 0.0
        self.last_arrival_s = 0.0

    # -- what the simulator reports
    def arrived(self, call: SimCall) -> None:
        self.calls += 1
        self.campaigns[call.facts.campaign_id].calls += 1
        if call.repeat_of is not None:
            self.repeat_calls += 1

    def ivr_finished(self, flow_id: str, end: flows.IvrStep, reprompts: int, seconds: float | None) -> None:
        """A caller left the flow: `end` is its Finished step, or the Prompt they hung up at."""
        f = self.flows[flow_id]
        f.calls += 1
        f.reprompts += reprompts
        if seconds is not None:
            f.ivr_s += seconds
        if isinstance(end, flows.Prompt):
            f.hung_up += 1
        elif end.qualified:
            f.qualified += 1
        else:
            f.ended_by[end.reason or reasons.DISQUALIFIED] += 1

    def offered(self, buyer_id: str) -> None:
        self.buyers[buyer_id].offers += 1

    def posted(self, buyer_id: str) -> None:
        self.buyers[buyer_id].posts += 1

    def offer_failed(self, outcome: str) -> None:
        self.offer_failures[outcome] += 1

    def agent_no_answer(self, queue_id: str) -> None:
        self.queues[queue_id].agent_no_answer += 1

    def announced(self, queue_id: str) -> None:
        self.queues[queue_id].announcements += 1

    def callback(self, queue_id: str, what: str) -> None:
        self.queues[queue_id].callbacks[what] += 1

    def overflowed(self, queue_id: str) -> None:
        self.queues[queue_id].overflowed += 1

    def queued(self, queue_id: str, priority: int = 0) -> None:
        if queue_id in self.queues:
            self.queues[queue_id].calls += 1
            self.queues[queue_id].priority(priority).calls += 1

    def first_agent_offer(self, queue_id: str, waited: bool, wait_s: float, priority: int = 0) -> None:
        q = self.queues[queue_id]
        q.reached_agent += 1
        q.waited += waited
        q.wait_sum += wait_s
        q.wait_max = max(q.wait_max, wait_s)
        p = q.priority(priority)
        p.reached_agent += 1
        p.wait_sum += wait_s
        p.wait_max = max(p.wait_max, wait_s)

    def finished(self, call: SimCall, outcome: Outcome) -> None:
        self.kinds[outcome.kind] += 1
        campaign = self.campaigns[call.facts.campaign_id]
        if outcome.kind == "buyer":
            assert outcome.buyer_id is not None and outcome.price is not None
            b = self.buyers[outcome.buyer_id]
            b.connected += 1
            b.price_sum += outcome.price
            campaign.connected += 1
            self.price_sum += outcome.price
            if outcome.billable:
                b.billable += 1
                b.revenue += outcome.price
                campaign.billable += 1
                campaign.revenue += outcome.price
                self.billable += 1
                self.revenue += outcome.price
        elif outcome.kind == "agent":
            assert outcome.agent_id is not None and outcome.queue_id is not None
            campaign.agent += 1
            q = self.queues[outcome.queue_id]
            q.answered += 1
            q.handle_sum += outcome.handle_s or 0.0
            a = self.agents[outcome.agent_id]
            a["calls"] += 1
            a["handle_s"] += outcome.handle_s or 0.0
        else:
            campaign.rejected += 1
            self.rejected[outcome.reason] += 1
            if outcome.queue_id in self.queues:
                q = self.queues[outcome.queue_id]
                if outcome.why == "max_wait":
                    q.abandoned_max_wait += 1
                    q.priority(call.priority).abandoned += 1
                elif outcome.why == "caller_hangup":
                    q.abandoned_hangup += 1
                    q.priority(call.priority).abandoned += 1
                else:
                    q.rejected += 1
                if outcome.why is not None:
                    # an abandoned call that never reached an agent still waited: count it in P(wait)
                    if call.first_wait is None and call.waited:
                        q.waited += 1
                    q.abandoned_wait_sum += outcome.wait_s or 0.0

    def close(self, end_s: float, last_arrival_s: float) -> None:
        self.end_s = end_s
        self.last_arrival_s = last_arrival_s

    # -- results
    @property
    def connected(self) -> int:
        return self.kinds["buyer"]

    @property
    def fill_rate(self) -> float:
        return self.connected / self.calls if self.calls else 0.0

    def _flow_dict(self, f: _Flow) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": f.calls,
            "qualified": f.qualified,
            "disqualified": f.calls - f.qualified - f.hung_up,
            "disqualified_by": dict(sorted(f.ended_by.items(), key=lambda kv: (-kv[1], kv[0]))),
            "reprompts": f.reprompts,
        }
        out["hung_up"] = f.hung_up
        out["avg_ivr_s"] = _ratio(f.ivr_s, f.calls)  # 0 when callers.ivr_prompt_s is unset: the IVR takes no time
        return out

    def to_dict(self) -> dict[str, Any]:
        hours = self.last_arrival_s / 3600
        connected = self.connected
        queues: dict[str, Any] = {}
        for qid, q in self.queues.items():
            if not q.calls:
                continue
            abandoned = q.abandoned_max_wait + q.abandoned_hangup
            queues[qid] = {
                "calls": q.calls,
                "answered": q.answered,
                "waited": q.waited,
                "wait_probability": _ratio(q.waited, q.calls),
                "avg_wait_s": _ratio(q.wait_sum, q.reached_agent),
                "max_wait_s": round(q.wait_max, 3),
                "abandoned": abandoned,
                "abandon_rate": _ratio(abandoned, q.calls),
                "abandoned_by": {"max_wait": q.abandoned_max_wait, "caller_hangup": q.abandoned_hangup},
                "avg_wait_abandoned_s": _ratio(q.abandoned_wait_sum, abandoned),
                "rejected": q.rejected,
                "agent_no_answer": q.agent_no_answer,
                "overflowed": q.overflowed,
                "announcements": q.announcements,
                **{f"callbacks_{k}": q.callbacks[k] for k in ("offered", "accepted", "placed", "connected", "failed", "expired")},
                "avg_handle_s": _ratio(q.handle_sum, q.answered),
                # by the priority a call arrived with (str keys: JSON), highest first
                "waits_by_priority": {
                    str(p): {
                        "calls": w.calls,
                        "reached_agent": w.reached_agent,
                        "avg_wait_s": _ratio(w.wait_sum, w.reached_agent),
                        "max_wait_s": round(w.wait_max, 3),
                        "abandoned": w.abandoned,
                    }
                    for p, w in sorted(q.by_priority.items(), reverse=True)
                },
            }
        agents = {
            aid: {
                "calls": int(a["calls"]),
                "occupancy": _ratio(a["handle_s"], self.end_s * self._agent_slots[aid]),
            }
            for aid, a in self.agents.items()
            if a["calls"]
        }
        return {
            "calls": self.calls,
            "seed": self.seed,
            "clock": {
                "start": self.start.isoformat(),
                "last_arrival": (self.start + timedelta(seconds=self.last_arrival_s)).isoformat(),
                "end": (self.start + timedelta(seconds=self.end_s)).isoformat(),
                "simulated_hours": round(hours, 6),
                "calls_per_hour": _ratio(self.calls, hours),
            },
            "revenue": _money(self.revenue),
            "fill_rate": round(self.fill_rate, 6),
            "outcomes": {k: self.kinds[k] for k in ("buyer", "agent", "rejected")},
            "billable_sales": self.billable,
            "billable_rate": _ratio(self.billable, self.calls),
            "avg_winning_bid": _money(self.price_sum / connected) if connected else None,
            "revenue_per_call": _money(self.revenue / self.calls) if self.calls else None,
            "buyers": {
                bid: {
                    "offers": b.offers,
                    "posts": b.posts,
                    "connected": b.connected,
                    "billable": b.billable,
                    "revenue": _money(b.revenue),
                    "avg_price": _money(b.price_sum / b.connected) if b.connected else None,
                }
                for bid, b in self.buyers.items()
                if b.offers or b.posts
            },
            "campaigns": {
                cid: {
                    "calls": c.calls,
                    "connected": c.connected,
                    "agent": c.agent,
                    "rejected": c.rejected,
                    "billable": c.billable,
                    "revenue": _money(c.revenue),
                    "fill_rate": _ratio(c.connected, c.calls),
                }
                for cid, c in self.campaigns.items()
                if c.calls
            },
            "repeat_calls": self.repeat_calls,
            "ivr": {fid: self._flow_dict(f) for fid, f in self.flows.items() if f.calls},
            "rejects_by_reason": dict(sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
            "offer_failures": dict(sorted(self.offer_failures.items(), key=lambda kv: (-kv[1], kv[0]))),
            "queues": queues,
            "agents": agents,
        }
