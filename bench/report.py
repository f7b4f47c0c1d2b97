"""The results as one table (rich on the terminal, Markdown in results.md), each figure next to its ratio to the floor."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from bench.measure import (
    GROWTH_FACTOR,
    GROWTH_SLACK_MS,
    MIN_THROUGHPUT_SHARE,
    P99_BOUND_MS,
)


@dataclass
class Row:
    stage: str
    figure: str
    value: str
    vs_floor: str


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _ratio(x: float | None, floor: float | None) -> str:
    if not x or not floor:
        return "–"
    r = x / floor
    if r < 0.1:
        return f"1/{1 / r:,.0f}"  # e.g. a call costs the relay time of that many bare messages
    return f"{r:.2g}×" if r < 10 else f"{r:,.0f}×"


def _pair(a: float | None, b: float | None, unit: str, digits: int = 0) -> str:
    return f"{_n(a, digits)} / {_n(b, digits)} {unit}"


def _ratios(a: float | None, fa: float | None, b: float | None, fb: float | None) -> str:
    return f"{_ratio(a, fa)} / {_ratio(b, fb)}"


def rows(results: dict) -> list[Row]:
    out: list[Row] = []
    floor = results.get("floor") or {}
    f50, f99, frate = floor.get("hop_p50_ms"), floor.get("hop_p99_ms"), floor.get("msgs_per_s")
    if floor.get("status") == "ok":
        out += [
            Row("(a) floor: bare aiokafka relay", "hop latency p50 / p99", _pair(f50, f99, "ms", 1), "1× / 1×"),
            Row("(a) floor: bare aiokafka relay", "msgs/s (pipelined relay)", _n(frate), "1×"),
            Row(
                "(a) floor: bare aiokafka relay",
                "msgs/s (send_and_wait per record)",
                _n(floor.get("serial_msgs_per_s")),
                _ratio(floor.get("serial_msgs_per_s"), frate),
            ),
        ]
    else:
        out.append(Row("(a) floor: bare aiokafka relay", "–", _status(floor), "–"))
    for key, title in (("live_static", "(b) live stack, static buyers"), ("live_rtb", "(b) live stack, RTB buyers (simulated)")):
        live = results.get(key) or {}
        if live.get("status") != "ok":
            out.append(Row(title, "–", _status(live), "–"))
            continue
        at = live.get("at_offered_calls_per_s")
        kept = live.get("sustained_calls_per_s")
        limit = (
            f"limit between {_n(live['max_rate_kept_up'], 1)} and {_n(live['first_rate_not_kept_up'], 1)} offered"
            if live.get("limit_found")
            else "no limit within the ramp"
        )
        out.append(
            Row(
                title,
                f"sustained calls/s ({limit})",
                _n(kept, 1) if kept else f"none kept up (best {_n(live.get('best_measured_calls_per_s'), 1)})",
                _ratio(kept, frate),
            )
        )
        out.append(
            Row(
                title,
                f"decision latency p50 / p99 at {_n(at, 1)} calls/s",
                _pair(live.get("decision_p50_ms"), live.get("decision_p99_ms"), "ms"),
                _ratios(live.get("decision_p50_ms"), f50, live.get("decision_p99_ms"), f99),
            )
        )
        idle = live.get("idle_cpu_percent") or {}
        if idle:
            total = sum(idle.values())
            top = ", ".join(f"{n} {p:.0f}" for n, p in list(idle.items())[:3])
            out.append(Row(title, "CPU with no calls at all, % of a CPU (busiest)", f"{total:.0f} ({top})", "–"))
        if live.get("rtb_think_p50_ms") is not None:
            out.append(
                Row(
                    title,
                    "  of which buyer think time p50 / p99 (bid.received)",
                    _pair(live["rtb_think_p50_ms"], live["rtb_think_p99_ms"], "ms"),
                    _ratios(live["rtb_think_p50_ms"], f50, live["rtb_think_p99_ms"], f99),
                )
            )
    core = results.get("core") or {}
    if core.get("status") == "ok":
        out.append(
            Row(
                f"(c) routing core, {core['buyers']}-buyer campaign",
                "decisions/s (one process)",
                _n(core["decisions_per_s"]),
                _ratio(core["decisions_per_s"], frate),
            )
        )
        out.append(
            Row(
                f"(c) routing core, {core['buyers']}-buyer campaign",
                "time per decision p50 / p99",
                _pair(core["decision_p50_us"] / 1000, core["decision_p99_us"] / 1000, "ms", 2),
                _ratios(core["decision_p50_us"] / 1000, f50, core["decision_p99_us"] / 1000, f99),
            )
        )
    else:
        out.append(Row("(c) routing core", "–", _status(core), "–"))
    sim = results.get("simulator") or {}
    if sim.get("status") == "ok":
        out.append(
            Row(
                "(d) switchboard simulate, demo.yaml",
                f"calls/s ({sim['calls']:,} calls; start-up excluded)",
                _n(sim["calls_per_s"]),
                _ratio(sim["calls_per_s"], frate),
            )
        )
    else:
        out.append(Row("(d) switchboard simulate, demo.yaml", "calls/s", _status(sim), "–"))
    workers = results.get("workers") or {}
    if workers.get("status") == "ok":
        for key, title in (("one", "(e) 1 router worker"), ("two", "(e) 2 router workers")):
            r = workers.get(key)
            if not r:
                continue
            mark = "" if r["verdict"]["keeps_up"] else " (does not keep up)"
            out.append(
                Row(
                    f"{title} at {_n(workers['rate'], 1)} calls/s",
                    "sustained calls/s" + mark,
                    _n(r["calls_per_s"], 1),
                    _ratio(r["calls_per_s"], frate),
                )
            )
            out.append(
                Row(
                    f"{title} at {_n(workers['rate'], 1)} calls/s",
                    "decision latency p50 / p99",
                    _pair(r["decision_p50_ms"], r["decision_p99_ms"], "ms"),
                    _ratios(r["decision_p50_ms"], f50, r["decision_p99_ms"], f99),
                )
            )
    else:
        out.append(Row("(e) router workers", "–", _status(workers), "–"))
    return out


def _busiest(step: dict, top: int = 3) -> str:
    return ", ".join(f"{name} {pct:.0f}" for name, pct in list((step.get("cpu_percent") or {}).items())[:top]) or "–"


def _status(section: dict) -> str:
    if not section:
        return "not run"
    status = section.get("status", "not run")
    reason = section.get("reason") or section.get("error") or ""
    first = reason.strip().splitlines()[0] if reason.strip() else ""  # a table cell: the whole error is in results.json
    if len(first) > 160:
        first = first[:157] + "…"
    return f"{status}: {first}" if first else status


def rich_table(results: dict) -> Table:
    meta = results["meta"]
    table = Table(
        title=f"Switchboard bench ({'quick' if meta['quick'] else 'full'} run, {meta['duration_s']:.0f} s, {meta['cpus']} CPUs, load {meta['load_before']} → {meta['load_after']})"
    )
    table.add_column("stage")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("vs floor (a)", justify="right")
    for r in rows(results):
        table.add_row(r.stage, r.figure, r.value, r.vs_floor)
    return table


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        "# Switchboard bench results",
        "",
        (
            f"{'Quick' if meta['quick'] else 'Full'} run of `make bench` on {meta['when']}, commit {meta['commit']}: "
            f"{meta['duration_s']:.0f} s, {meta['cpus']} CPUs, 1-minute load average {meta['load_before']} before and {meta['load_after']} after "
            "(a load above the CPU count means other work competed for the CPUs: noisy figures). "
            "Generated by bench/run.py; raw figures in results.json."
        ),
        "",
        "| stage | figure | value | vs floor (a) |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [f"| {r.stage} | {r.figure.strip()} | {r.value.replace('|', '/')} | {r.vs_floor} |" for r in rows(results)]
    lines += [
        "",
        "Ratios: a latency is divided by the floor's hop latency of the same percentile (how many bare hops it costs);",
        "a rate by the floor's msgs/s (1/N: the stack decides one call in the time the bare relay passes on N messages).",
        "",
        "## Definitions",
        "",
        "- **Floor (a)**: one bare aiokafka consume→produce relay process on the same embedded broker (Tansu), group consumer with",
        "  the project's consumer settings, acks=all, commit per batch. Hop latency = relay produce time − source send time, at a",
        "  paced rate; msgs/s = the relay's output rate when flooded.",
        "- **Decision latency (b, e)**: from `call.started` (occurred_at, stamped by the edge at StartCall) to the call's first",
        "  decision event on the broker (`call.routed`, `call.rejected` or `call.queued`, its occurred_at), calls driven over gRPC",
        "  CallControl as `switchboard run` drives them (IVR answers submitted at once, every offer answered).",
        f"- **Keeps up**: a step of offered rate R keeps up when decisions/s ≥ {MIN_THROUGHPUT_SHARE:.0%} of R, every call it started",
        "  was decided before the drain deadline (backlog drained, no driver errors), the median latency of its last third of calls",
        f"  is ≤ {GROWTH_FACTOR:g} × that of its first third + {GROWTH_SLACK_MS:.0f} ms (latency not growing), and the step's p99 is",
        f"  ≤ {results['meta']['settings'].get('p99_bound_ms', P99_BOUND_MS):.0f} ms (the demo campaigns' auction timeout: beyond it calls wait in queues, not in auctions). Sustained calls/s is the",
        "  decision rate of the best step that kept up; the ramp stops at the first rate that does not keep up (in a full run, twice",
        "  in a row: one retry, so that one noisy step does not end it).",
        "- **Buyer think time**: `latency_ms` of the RTB buyers' `bid.received` events (the simulated buyers' answers as the bidder",
        "  timed them), part of the RTB decision latency.",
        "- **Routing core (c)**: core.engine start_routing → conclude_auction with core.ledger.InMemoryLedger, no I/O, one process.",
        "- **Simulator (d)**: `switchboard simulate` as a subprocess; calls/s from two runs of different sizes, so start-up is excluded.",
    ]
    for key, title in (("live_static", "static buyers"), ("live_rtb", "RTB buyers (simulated)")):
        live = results.get(key) or {}
        if not live.get("steps"):
            continue
        idle = ", ".join(f"{n} {p:.0f}" for n, p in (live.get("idle_cpu_percent") or {}).items())
        lines += [
            "",
            f"## Live ramp, {title}",
            "",
            f"Idle stack, no calls (% of a CPU): {idle or '–'}.",
            "",
            "| offered calls/s | started/s | decided/s | decided/started | decision p50 / p99 ms | RTB think p50 / p99 ms | busiest processes (% of a CPU) | verdict |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for s in live["steps"]:
            think = (
                _pair(s.get("rtb_think_p50_ms"), s.get("rtb_think_p99_ms"), "").strip()
                if s.get("rtb_think_p50_ms") is not None
                else "–"
            )
            retry = " (retry)" if s.get("retry") else ""
            lines.append(
                f"| {s['offered_calls_per_s']:g}{retry} | {s['started_per_s']:.1f} | {s['calls_per_s']:.1f} | {s['decided']}/{s['started']} | "
                f"{_n(s['decision_p50_ms'])} / {_n(s['decision_p99_ms'])} | {think} | {_busiest(s)} | {s['verdict']['why']} |"
            )
    workers = results.get("workers") or {}
    if workers.get("rate"):
        lines += ["", f"(e) rate: {workers['rate']:g} calls/s, {workers.get('rate_reason', '')}."]
        for key, title in (("one", "1 router worker"), ("two", "2 router workers")):
            if workers.get(key):
                lines.append(
                    f"- {title}: busiest processes (% of a CPU): {_busiest(workers[key], 4)}; {workers[key]['verdict']['why']}"
                )
    sim = results.get("simulator") or {}
    if sim.get("status") and sim["status"] != "ok":
        lines += ["", f"(d) simulator: {_status(sim)}."]
    return "\n".join(lines) + "\n"
