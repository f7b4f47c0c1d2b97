"""Rich tables for `switchboard simulate` (human output; `--json` prints the same numbers as JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:,.1f}{unit}"


def _usd(x: str | None) -> str:
    return "-" if x is None else f"${float(x):,.2f}"


def result_tables(r: dict[str, Any], title: str = "") -> Group:
    """The tables of one run (the dict of Tally.to_dict())."""
    clock = r["clock"]
    out = r["outcomes"]
    summary = Table(title=title or f"Simulation: {r['calls']:,} calls, seed {r['seed']}", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("", justify="right")
    summary.add_row("simulated time", f"{clock['start'][:16]} + {clock['simulated_hours']:,.1f} h")
    summary.add_row("revenue (billable sales)", _usd(r["revenue"]))
    summary.add_row("revenue per call", _usd(r["revenue_per_call"]))
    summary.add_row("fill rate (connected to a buyer)", _pct(r["fill_rate"]))
    summary.add_row("billable sales", f"{r['billable_sales']:,} ({_pct(r['billable_rate'])})")
    summary.add_row("average winning bid", _usd(r["avg_winning_bid"]))
    summary.add_row("handled by agents", f"{out['agent']:,}")
    summary.add_row("rejected", f"{out['rejected']:,}")
    summary.add_row("repeat calls (same caller, same campaign)", f"{r['repeat_calls']:,}")
    parts: list[Any] = [summary]

    buyers = Table(title="Buyers")
    for col in ("buyer", "offers", "posts", "connected", "billable", "revenue", "avg price"):
        buyers.add_column(col, justify="left" if col == "buyer" else "right")
    for bid, b in r["buyers"].items():
        buyers.add_row(
            bid,
            f"{b['offers']:,}",
            f"{b['posts']:,}",
            f"{b['connected']:,}",
            f"{b['billable']:,}",
            _usd(b["revenue"]),
            _usd(b["avg_price"]),
        )
    parts.append(buyers)

    campaigns = Table(title="Campaigns")
    for col in ("campaign", "calls", "connected", "agent", "rejected", "fill rate", "revenue"):
        campaigns.add_column(col, justify="left" if col == "campaign" else "right")
    for cid, c in r["campaigns"].items():
        campaigns.add_row(
            cid,
            f"{c['calls']:,}",
            f"{c['connected']:,}",
            f"{c['agent']:,}",
            f"{c['rejected']:,}",
            _pct(c["fill_rate"]),
            _usd(c["revenue"]),
        )
    parts.append(campaigns)

    if r["ivr"]:
        flows = Table(title="IVR flows")
        for col in ("flow", "calls", "qualified", "disqualified", "re-prompts", "hung up", "avg time"):
            flows.add_column(col, justify="left" if col == "flow" else "right")
        for fid, f in r["ivr"].items():
            flows.add_row(
                fid,
                f"{f['calls']:,}",
                f"{f['qualified']:,}",
                f"{f['disqualified']:,}",
                f"{f['reprompts']:,}",
                f"{f['hung_up']:,}",
                _num(f["avg_ivr_s"], " s"),
            )
            for reason, n in f["disqualified_by"].items():
                flows.add_row(f"  ended {reason}", "", "", f"{n:,}", "", "", "")
        parts.append(flows)

    if r["rejects_by_reason"] or r["offer_failures"]:
        rejects = Table(title="Rejected calls and failed offers")
        rejects.add_column("what")
        rejects.add_column("reason")
        rejects.add_column("count", justify="right")
        for reason, n in r["rejects_by_reason"].items():
            rejects.add_row("call rejected", reason, f"{n:,}")
        for reason, n in r["offer_failures"].items():
            rejects.add_row("offer failed (re-routed)", reason, f"{n:,}")
        parts.append(rejects)

    if r["queues"]:
        queues = Table(title="Queues")
        for col in ("queue", "calls", "answered", "P(wait)", "ASA", "max wait", "abandoned", "handle"):
            queues.add_column(col, justify="left" if col == "queue" else "right")
        for qid, q in r["queues"].items():
            queues.add_row(
                qid,
                f"{q['calls']:,}",
                f"{q['answered']:,}",
                _pct(q["wait_probability"]),
                _num(q["avg_wait_s"], " s"),
                _num(q["max_wait_s"], " s"),
                f"{q['abandoned']:,} ({_pct(q['abandon_rate'])})",
                _num(q["avg_handle_s"], " s"),
            )
        parts.append(queues)
    return Group(*parts)


def comparison_table(c: dict[str, Any]) -> Table:
    """B − A with the 95% confidence interval (the dict of Comparison.to_dict())."""
    a, b, d = c["a"], c["b"], c["difference_b_minus_a"]
    seeds = f"seeds {c['seeds'][0]}..{c['seeds'][-1]}"
    table = Table(
        title=f"B − A, {c['runs']} paired runs of {c['calls']:,} calls ({seeds})", caption=f"A = {a['config']}\nB = {b['config']}"
    )
    for col in ("", "A", "B", "B − A", "95% CI", "sig."):
        table.add_column(col, justify="left" if not col else "right")
    rev, fill = d["revenue"], d["fill_rate"]
    table.add_row(
        "revenue/run",
        _usd(a["revenue_mean"]),
        _usd(b["revenue_mean"]),
        _signed_usd(rev["mean"]),
        f"{_signed_usd(rev['ci95'][0])} … {_signed_usd(rev['ci95'][1])}",
        "yes" if rev["significant"] else "no",
    )
    table.add_row(
        "fill rate",
        _pct(a["fill_rate_mean"]),
        _pct(b["fill_rate_mean"]),
        _pp(fill["mean"]),
        f"{_pp(fill['ci95'][0])[:-3]} … {_pp(fill['ci95'][1])}",
        "yes" if fill["significant"] else "no",
    )
    return table


def _signed_usd(x: str) -> str:
    v = float(x)
    return f"{'+' if v >= 0 else '−'}${abs(v):,.2f}"


def _pp(x: float) -> str:
    return f"{'+' if x >= 0 else '−'}{abs(100 * x):.2f} pp"
