"""The live terminal view of `switchboard run`: throughput, outcomes, revenue, decision latency."""

from __future__ import annotations

import time

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from switchboard.demo.driver import DriveStats


def render(stats: DriveStats, target_rate: float, dead: list[str] | None = None) -> Group:
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
    parts = [Panel(head, title="Switchboard live — Ctrl-C to stop"), grid]
    if dead:
        parts.append(Panel(f"[red]stopped unexpectedly: {', '.join(dead)} (see var/run/logs)"))
    return Group(*parts)
