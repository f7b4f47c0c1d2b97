"""The live terminal view of `switchboard run`: throughput, outcomes, revenue, decision latency, RTB buyers, CRM webhooks."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter

import httpx
import pydantic
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from switchboard.core.config import RoutingConfig
from switchboard.demo.crm import CrmCounts
from switchboard.demo.desk import DemoAgents
from switchboard.demo.driver import DriveStats


class RtbView:
    """What the RTB buyers did: pings and faults as the buyer simulator counted them (GET /stats),
    next to the offers and revenue the edge saw them win. Cheap: one small HTTP GET per second."""

    def __init__(self, cfg: RoutingConfig, buyersim_http: str | None, every_s: float = 1.0) -> None:
        self.transport = {
            b.id: ("gRPC" if b.bid.url.startswith("grpc://") else "HTTP") for b in cfg.buyers if b.bid.type == "rtb"
        }
        self.url = f"http://{buyersim_http}/stats" if buyersim_http else None
        self.every_s = every_s
        self.sim: dict[str, dict[str, int]] = {}
        self._last = 0.0

    async def refresh(self) -> None:
        if self.url is None or time.monotonic() - self._last < self.every_s:
            return
        self._last = time.monotonic()
        try:
            self.sim = await asyncio.to_thread(self._fetch, self.url)
        except (OSError, ValueError):
            pass  # the simulator is going away (shutdown); keep the last numbers

    def _fetch(self, url: str) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return json.loads(resp.read())

    def table(self, stats: DriveStats) -> Table:
        t = Table(title="RTB buyers live (pings and faults as the buyer simulator saw them)", expand=True)
        for col, right in (
            ("buyer", False),
            ("via", False),
            ("pings", True),
            ("answered", True),
            ("faults", False),
            ("offers won", True),
            ("billable", True),
            ("revenue", True),
        ):
            t.add_column(col, justify="right" if right else "left")
        won = stats.revenue_by_target()
        for buyer, via in sorted(self.transport.items()):
            s = self.sim.get(buyer, {})
            faults = Counter({k.removeprefix("fault:"): v for k, v in s.items() if k.startswith("fault:")})
            n, sales, money = won.get(buyer, (0, 0, 0))
            t.add_row(
                buyer,
                via,
                str(s.get("requests", 0)),
                str(s.get("answered", 0)),
                " ".join(f"{k}:{v}" for k, v in faults.most_common()) or "-",
                str(n),
                str(sales),
                f"${money:,.2f}",
            )
        return t


class CrmView:
    """What the demo CRM received (its GET /stats, once a second): cti's signed webhooks, verified and deduped."""

    def __init__(self, crm_http: str | None, every_s: float = 1.0) -> None:
        self.url = f"http://{crm_http}/stats" if crm_http else None
        self.every_s = every_s
        self.counts = CrmCounts()
        self._last = 0.0

    async def refresh(self) -> None:
        if self.url is None or time.monotonic() - self._last < self.every_s:
            return
        self._last = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=0.5) as client:
                resp = await client.get(self.url)
            self.counts = CrmCounts.model_validate_json(resp.raise_for_status().content)
        except (httpx.HTTPError, pydantic.ValidationError):
            pass  # the receiver is going away (shutdown); keep the last numbers

    def line(self) -> str:
        c = self.counts
        last = ""
        if c.last_pop is not None:
            n = c.last_pop.earlier
            last = f"; last: call {c.last_pop.call_id}: {n} earlier call{'s' if n != 1 else ''}"
        return (
            f"{c.deliveries} deliveries verified, {c.duplicates} duplicates, {c.bad_signatures} bad signatures, "
            f"{c.pops_with_history} repeat callers' pops with history{last}"
        )


def acd_table(stats: DriveStats, agents: DemoAgents | None) -> Table:
    """The in-house ACD as the edge and the agents' desks see it: waits announced, callbacks, overflow, agents."""
    acd = Table(title="In-house ACD (queues, callbacks, agents)", expand=True, show_header=False)
    acd.add_column("what")
    acd.add_column("value")
    waited = stats.waited
    acd.add_row("callers told their place and wait", f"{len(waited)} ({sum(len(r.announcements) for r in waited)} announcements)")
    acd.add_row("last announcement", stats.last_announcement or "-")
    cb = stats.callbacks
    acd.add_row(
        "callbacks",
        f"requested {cb['requested']}, placed {cb['placed']}, connected {cb['connected']}, not answered {cb['no_answer']}",
    )
    acd.add_row("overflowed to buyers", str(stats.overflowed_to_buyers))
    if agents is not None and agents.agent_ids:
        acd.add_row(
            "agents (AgentDesk)",
            ", ".join(f"{a}: {agents.states[a]} ({agents.offers[a]} calls)" for a in agents.agent_ids),
        )
        if agents.dispositions:
            acd.add_row("dispositions", ", ".join(f"{d} {n}" for d, n in agents.dispositions.most_common()))
    return acd


def render(
    stats: DriveStats,
    target_rate: float,
    dead: list[str] | None = None,
    rtb: RtbView | None = None,
    agents: DemoAgents | None = None,
    crm: CrmView | None = None,
) -> Group:
    elapsed = time.monotonic() - stats.started_at
    done = len(stats.results)
    routed = stats.routed
    p50, p99 = stats.latency_ms()
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[b]elapsed[/b] {elapsed:6.1f}s",
        f"[b]calls/s[/b] {stats.rate():5.1f} (target {target_rate:g})",
        f"[b]sent[/b] {stats.sent}",
        f"[b]finished[/b] {done}",
        f"[b]re-routed[/b] {sum(1 for r in stats.results if len(r.attempts) > 1)}",
        f"[b]decision p50/p99[/b] {p50:.0f}/{p99:.0f} ms (ping tree)",
    )

    outcomes = Table(title="Outcomes", expand=True)
    outcomes.add_column("outcome")
    outcomes.add_column("calls", justify="right")
    outcomes.add_column("share", justify="right")
    outcomes.add_row("[green]routed", str(len(routed)), f"{len(routed) / done:.0%}" if done else "-")
    for reason, n in stats.rejected_by_reason().most_common():
        outcomes.add_row(f"[red]rejected: {reason}", str(n), f"{n / done:.0%}")
    for code, n in stats.errors.most_common():
        outcomes.add_row(f"[yellow]edge error: {code}", str(n), f"{n / done:.0%}" if done else "-")

    revenue = Table(title="Revenue by buyer / agent", expand=True)
    revenue.add_column("taken by")
    revenue.add_column("calls", justify="right")
    revenue.add_column("billable", justify="right")
    revenue.add_column("revenue", justify="right")
    by_target = stats.revenue_by_target()
    total = sum((v[2] for v in by_target.values()), start=0)
    for who, (n, sales, money) in sorted(by_target.items(), key=lambda kv: (-kv[1][2], kv[0])):
        revenue.add_row(who, str(n), str(sales), f"${money:,.2f}")
    revenue.add_row("[b]total", str(len(routed)), str(sum(v[1] for v in by_target.values())), f"[b]${total:,.2f}")

    grid = Table.grid(expand=True)
    grid.add_row(outcomes, revenue)
    parts: list[RenderableType] = [Panel(head, title="Switchboard live — Ctrl-C to stop"), grid]
    if rtb is not None and rtb.transport:
        parts.append(rtb.table(stats))
    if stats.waited or stats.callbacks or (agents is not None and agents.agent_ids):
        parts.append(acd_table(stats, agents))
    if crm is not None and crm.url is not None:
        parts.append(Panel(crm.line(), title="CRM webhooks (the demo CRM, var/run/logs/crm.log)", title_align="left"))
    if dead:
        parts.append(Panel(f"[red]stopped unexpectedly: {', '.join(dead)} (see var/run/logs)"))
    return Group(*parts)
