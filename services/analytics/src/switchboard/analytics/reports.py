"""Report queries over the analytics tables, shared by `switchboard run` and `switchboard analytics query`.

Every function takes a clickhouse-connect client (see `open_client`) and is
blocking: call it from a thread in async code. Results are plain dicts / lists
of dicts (JSON-friendly; money stays Decimal). Counts are exact despite
at-least-once delivery: calls are counted with uniqExact(call_id) and per-event
aggregates read the tables with FINAL.

`since` (an aware datetime) limits a report to events that occurred at or after
it, e.g. the start of one `switchboard run`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from switchboard.analytics.client import database_of, default_dsn, open_client, redact, split_dsn
from switchboard.analytics.tables import DEFAULT_DATABASE, quote_ident

__all__ = [
    "database_of",
    "decision_latency",
    "default_dsn",
    "dispositions",
    "events_per_topic",
    "open_client",
    "redact",
    "rejected_by_reason",
    "revenue_by_buyer",
    "run_sql",
    "split_dsn",
    "summary",
    "totals",
]


def _db(client: Any, database: str | None) -> str:
    if database:
        return database
    current = getattr(client, "database", None)
    return current if current and current != "default" else DEFAULT_DATABASE


def _where(since: datetime | None) -> tuple[str, dict]:
    if since is None:
        return "", {}
    return "WHERE occurred_at >= {since:DateTime64(3, 'UTC')}", {"since": since}


def _rows(client: Any, sql: str, params: dict) -> list[dict]:
    result = client.query(sql, parameters=params or None)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def totals(client: Any, since: datetime | None = None, database: str | None = None) -> dict[str, int]:
    """Distinct calls started, routed (an offer taken, never rejected) and rejected; undecided = the rest.

    A call offered and re-routed until nobody was left counts as rejected, not routed.
    """
    db = quote_ident(_db(client, database))
    where, params = _where(since)
    sql = f"""
        SELECT
            (SELECT uniqExact(call_id) FROM {db}.calls_started {where}) AS started,
            (SELECT uniqExact(call_id) FROM {db}.calls_routed
               {where + " AND" if where else "WHERE"} call_id NOT IN (SELECT call_id FROM {db}.calls_rejected)) AS routed,
            (SELECT uniqExact(call_id) FROM {db}.calls_rejected {where}) AS rejected
    """
    row = _rows(client, sql, params)[0]
    out = {k: int(v) for k, v in row.items()}
    out["undecided"] = max(0, out["started"] - out["routed"] - out["rejected"])
    return out


def rejected_by_reason(client: Any, since: datetime | None = None, database: str | None = None) -> list[dict]:
    db = quote_ident(_db(client, database))
    where, params = _where(since)
    sql = f"""
        SELECT reason, uniqExact(call_id) AS calls
        FROM {db}.calls_rejected FINAL {where}
        GROUP BY reason ORDER BY calls DESC, reason
    """
    return [{"reason": r["reason"], "calls": int(r["calls"])} for r in _rows(client, sql, params)]


def revenue_by_buyer(client: Any, since: datetime | None = None, database: str | None = None) -> list[dict]:
    """Per buyer: calls offered, billable sales and revenue (USD, Decimal).

    An offer (a calls_routed row) is a sale when the calls_ended row of the same call and
    attempt says the buyer answered and stayed connected for billable_after_s; re-routed,
    unanswered and short calls are offers without revenue.
    """
    db = quote_ident(_db(client, database))
    where, params = _where(since)
    cond = f"{where} AND kind = 'buyer'" if where else "WHERE kind = 'buyer'"
    sql = f"""
        SELECT r.buyer_id AS buyer_id,
               uniqExact(r.call_id) AS offered,
               countIf(e.call_id != '' AND e.outcome IN ('answered', 'buyer_hangup', 'caller_hangup')
                       AND e.connected_seconds >= r.billable_after_s) AS sales,
               sumIf(ifNull(r.price, toDecimal64(0, 2)),
                     e.call_id != '' AND e.outcome IN ('answered', 'buyer_hangup', 'caller_hangup')
                     AND e.connected_seconds >= r.billable_after_s) AS revenue
        FROM (SELECT call_id, attempt, buyer_id, price, billable_after_s FROM {db}.calls_routed FINAL {cond}) AS r
        LEFT JOIN (SELECT call_id, attempt, outcome, connected_seconds FROM {db}.calls_ended FINAL) AS e
            ON r.call_id = e.call_id AND r.attempt = e.attempt
        GROUP BY buyer_id ORDER BY revenue DESC, buyer_id
    """
    return [
        {
            "buyer_id": r["buyer_id"],
            "offered": int(r["offered"]),
            "sales": int(r["sales"]),
            "revenue": Decimal(r["revenue"]).quantize(Decimal("0.01")),
        }
        for r in _rows(client, sql, params)
    ]


def decision_latency(client: Any, since: datetime | None = None, database: str | None = None) -> dict[str, Any]:
    """p50/p99 of decision latency (routing start → sold or rejected by the ping tree).

    Calls given to agents and calls abandoned in a queue are left out: their time
    is dominated by the wait for a free agent, which is queue wait, not decision time.
    """
    db = quote_ident(_db(client, database))
    where, params = _where(since)
    cond = f"{where} AND decision_latency_ms IS NOT NULL" if where else "WHERE decision_latency_ms IS NOT NULL"
    sql = f"""
        SELECT count() AS decisions, quantilesExact(0.5, 0.99)(ms) AS q, max(ms) AS max_ms
        FROM (
            SELECT decision_latency_ms AS ms FROM {db}.calls_routed FINAL {cond} AND kind != 'agent'
            UNION ALL
            SELECT decision_latency_ms AS ms FROM {db}.calls_rejected FINAL {cond} AND reason != 'abandoned'
        )
    """
    row = _rows(client, sql, params)[0]
    n = int(row["decisions"])
    if n == 0:
        return {"decisions": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    p50, p99 = row["q"]
    return {"decisions": n, "p50_ms": float(p50), "p99_ms": float(p99), "max_ms": int(row["max_ms"])}


def events_per_topic(client: Any, since: datetime | None = None, database: str | None = None) -> list[dict]:
    db = quote_ident(_db(client, database))
    where, params = _where(since)
    sql = f"""
        SELECT topic, count() AS events
        FROM {db}.events FINAL {where}
        GROUP BY topic ORDER BY topic
    """
    return [{"topic": r["topic"], "events": int(r["events"])} for r in _rows(client, sql, params)]


def dispositions(client: Any, since: datetime | None = None, database: str | None = None) -> list[dict]:
    """Per campaign × disposition code: the calls agents and CRMs gave that code (view `dispositions_all`).

    `agent` and `crm` count distinct calls of each origin, `calls` distinct calls of either (a call an
    agent and its CRM both dispositioned the same counts once there). A call the sink has no
    calls_started row for has campaign_id "".
    """
    db = quote_ident(_db(client, database))
    where, params = _where(since)
    sql = f"""
        SELECT campaign_id, disposition,
               uniqExact(call_id) AS calls,
               uniqExactIf(call_id, origin = 'agent') AS agent,
               uniqExactIf(call_id, origin = 'crm') AS crm
        FROM {db}.dispositions_all {where}
        GROUP BY campaign_id, disposition ORDER BY campaign_id, calls DESC, disposition
    """
    return [
        {
            "campaign_id": r["campaign_id"],
            "disposition": r["disposition"],
            "calls": int(r["calls"]),
            "agent": int(r["agent"]),
            "crm": int(r["crm"]),
        }
        for r in _rows(client, sql, params)
    ]


def summary(client: Any, since: datetime | None = None, database: str | None = None) -> dict[str, Any]:
    """Every report above in one dict (what `switchboard run` prints at the end)."""
    return {
        "totals": totals(client, since, database),
        "rejected_by_reason": rejected_by_reason(client, since, database),
        "revenue_by_buyer": revenue_by_buyer(client, since, database),
        "decision_latency": decision_latency(client, since, database),
        "dispositions": dispositions(client, since, database),
        "events_per_topic": events_per_topic(client, since, database),
    }


def run_sql(client: Any, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
    """An analyst's ad-hoc query: (column names, rows)."""
    result = client.query(sql, parameters=parameters)
    return list(result.column_names), [tuple(r) for r in result.result_rows]
