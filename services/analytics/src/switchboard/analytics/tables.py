"""The ClickHouse tables of the analytics sink: columns, DDL and event → row mapping.

This module is the one place that says which topic feeds which table
(`TYPED_TABLES`, keyed by `switchboard.platform.topics`). Every event of every
topic lands in the raw `events` table; the topics with a typed table also land
there, one row per event, with columns analysts can query directly.

Delivery is at-least-once, so every table is a ReplacingMergeTree whose sorting
key ends with the event id: a redelivered event is the same row and collapses
on merge; query with FINAL (or uniqExact / argMax) for exact counts.

Mapping functions are pure (protobuf message → tuple in column order) and never
raise on bad field values: an unparsable price becomes NULL, an unset or
out-of-range timestamp NULL (or the epoch for the required `occurred_at`), so a
batch ClickHouse rejects cannot be made by producers. Every table also has
`ingested_at` (DEFAULT now64(3)): when the sink wrote the row.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from google.protobuf.message import Message

from switchboard.platform import codec
from switchboard.platform import topics as T
from switchboard.v1 import events_pb2 as pb

DEFAULT_DATABASE = "switchboard"

TS = "DateTime64(3, 'UTC')"
NTS = f"Nullable({TS})"
MONEY = "Nullable(Decimal(12, 2))"
LC = "LowCardinality(String)"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS_MIN = datetime(1900, 1, 1, tzinfo=UTC)
_TS_MAX = datetime(2299, 12, 31, tzinfo=UTC)
_CENT = Decimal("0.01")
_MONEY_MAX = Decimal("9999999999.99")  # Decimal(12, 2)


@dataclass(frozen=True)
class Delivery:
    """Where a record came from: what the raw `events` row needs beyond the event."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type), in insert order
    order_by: tuple[str, ...]  # the ReplacingMergeTree dedupe key
    topic: T.Topic[T.Event] | None  # None: the raw table fed by every topic
    comment: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def column_types(self) -> list[str]:
        return [t for _, t in self.columns]

    def ddl(self, database: str = DEFAULT_DATABASE) -> str:
        cols = ",\n    ".join(f"{quote_ident(c)} {t}" for c, t in self.columns)
        extra = "    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)\n"
        comment = f"\nCOMMENT {sql_string(self.comment)}" if self.comment else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {quote_ident(database)}.{quote_ident(self.name)} (\n"
            f"    {cols},\n{extra})\n"
            f"ENGINE = ReplacingMergeTree\n"
            f"PARTITION BY toYYYYMM(occurred_at)\n"
            f"ORDER BY ({', '.join(quote_ident(c) for c in self.order_by)})"
            f"{comment}"
        )


def quote_ident(name: str) -> str:
    """Backtick-quote an identifier (`partition` and `offset` are keywords)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---------------------------------------------------------------- value helpers


def ts(msg: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset or outside DateTime64's range."""
    if not msg.HasField(field):
        return None
    value = codec.ts_to_datetime(getattr(msg, field))
    # DateTime64 holds 1900..2299: a row outside it must not make every retry of the batch fail.
    return value if _TS_MIN <= value <= _TS_MAX else None


def occurred(msg: Message) -> datetime:
    return ts(msg, "occurred_at") or EPOCH


def money(text: str) -> Decimal | None:
    """A decimal USD string as Decimal(12, 2); None when empty, unparsable or out of range."""
    if not text:
        return None
    try:
        value = Decimal(text).quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and abs(value) <= _MONEY_MAX else None


def enum_label(enum: Any, value: int) -> str:
    """BID_OUTCOME_NO_BID → "no_bid"; an unknown number (newer producer) → its digits."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    prefix = enum.DESCRIPTOR.name
    # TargetKind → TARGET_KIND_
    snake = "".join("_" + ch if ch.isupper() and i else ch for i, ch in enumerate(prefix)).upper() + "_"
    return name.removeprefix(snake).lower()


def latency_ms(msg: T.TerminalEvent) -> int | None:
    """Decision latency: from routing start (ivr.completed) to the decision event."""
    start = ts(msg, "routing_started_at")
    if start is None or not msg.HasField("occurred_at"):
        return None
    return codec.ts_ms(msg.occurred_at) - codec.ts_ms(msg.routing_started_at)


def trace_json(msg: T.TerminalEvent) -> str:
    return codec.to_json(msg.trace) if msg.HasField("trace") else "{}"


# ---------------------------------------------------------------- tables

EVENTS = Table(
    "events",
    (
        ("topic", LC),
        ("event_id", "String"),
        ("call_id", "String"),
        ("occurred_at", TS),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("payload", "String"),
    ),
    ("topic", "event_id"),
    None,
    "every event of every topic; payload is the protobuf as JSON",
)

_IDS = (("call_id", "String"), ("event_id", "String"), ("occurred_at", TS))
_CALLER = (("caller_state", LC), ("caller_zip", "String"), ("caller_area_code", LC))
_KEY = ("call_id", "event_id")
# What a routing decision (call.routed, call.rejected) says about the call it decides.
_DECISION = (("call_started_at", NTS), ("routing_started_at", NTS), ("campaign_id", LC), ("publisher_id", LC))

CALLS_STARTED = Table(
    "calls_started",
    (
        *_IDS,
        ("dialed_number", "String"),
        ("campaign_id", LC),
        ("publisher_id", LC),
        ("caller_number", "String"),
        *_CALLER,
        ("caller_timezone", LC),
    ),
    _KEY,
    T.CALL_STARTED,
)

PINGS = Table(
    "pings",
    (
        *_IDS,
        ("auction_id", "String"),
        ("campaign_id", LC),
        ("publisher_id", LC),
        ("tier_index", "Int32"),
        ("attempt", "Int32"),
        ("strategy", LC),
        ("buyer_ids", "Array(String)"),
        ("deadline", NTS),
        ("state", LC),
        ("zip", "String"),
        ("area_code", LC),
        ("answers", "Map(String, String)"),
    ),
    _KEY,
    T.PING_REQUESTED,
)

BIDS = Table(
    "bids",
    (
        *_IDS,
        ("auction_id", "String"),
        ("buyer_id", LC),
        ("outcome", LC),
        ("amount", MONEY),
        ("reason", LC),
        ("latency_ms", "Int32"),
        ("available", "Bool"),
    ),
    _KEY,
    T.BID_RECEIVED,
)

CALLS_ROUTED = Table(
    "calls_routed",
    _IDS
    + _DECISION
    + (
        ("kind", LC),
        ("buyer_id", LC),
        ("agent_id", LC),
        ("queue_id", LC),
        ("destination", "String"),
        ("price", MONEY),
        ("tier_index", "Int32"),
        ("attempt", "Int32"),
        ("strategy", LC),
        ("decision_latency_ms", "Nullable(Int64)"),
        ("caller_state", LC),
        ("trace", "String"),
        ("billable_after_s", "Int32"),
    ),
    _KEY,
    T.CALL_ROUTED,
    "one offer (attempt) to a buyer (kind=buyer) or an agent (kind=agent); a sale once its calls_ended row "
    "of the same attempt is answered for billable_after_s; trace is JSON",
)

CALLS_REJECTED = Table(
    "calls_rejected",
    _IDS
    + _DECISION
    + (
        ("reason", LC),
        ("detail", "String"),
        ("decision_latency_ms", "Nullable(Int64)"),
        ("trace", "String"),
    ),
    _KEY,
    T.CALL_REJECTED,
    "terminal: nobody takes the call; trace is JSON",
)

CALLS_ENDED = Table(
    "calls_ended",
    (*_IDS, ("outcome", LC), ("connected_seconds", "Int32"), ("buyer_id", LC), ("agent_id", LC), ("attempt", "Int32")),
    _KEY,
    T.CALL_ENDED,
)

CTI_EVENTS = Table(
    "cti_events",
    (
        *_IDS,
        ("type", LC),
        ("campaign_id", LC),
        ("publisher_id", LC),
        ("kind", LC),
        ("buyer_id", LC),
        ("agent_id", LC),
        ("destination", "String"),
        ("price", MONEY),
        ("outcome", LC),
        ("connected_seconds", "Int32"),
        ("caller_state", LC),
    ),
    _KEY,
    T.CTI_EVENTS,
)

# An agent's state changes (queue); the dispositions agents enter at wrap-up are the rows leaving
# WRAP_UP with a `disposition` (docs/ACD.md, docs/CTI.md "Dispositions").
AGENT_EVENTS = Table(
    "agent_events",
    (
        ("agent_id", LC),
        ("event_id", "String"),
        ("occurred_at", TS),
        ("state", LC),
        ("previous_state", LC),
        ("reason", LC),
        ("call_id", "String"),
        ("disposition", LC),
        ("note", "String"),
        ("queue_ids", "Array(LowCardinality(String))"),
    ),
    ("agent_id", "event_id"),
    T.AGENT_EVENTS,
)

# A CRM's disposition written back through cti's HTTP API (docs/CTI.md "Dispositions"). The call's
# campaign / publisher are not in the event and the sink keeps no per-call state, so they are joined
# at query time (the `dispositions_all` view) rather than here.
CALL_DISPOSITIONS = Table(
    "call_dispositions",
    (
        *_IDS,
        ("disposition", LC),
        ("note", "String"),
        ("fields", "Map(String, String)"),
        ("source", LC),
    ),
    _KEY,
    T.CALL_DISPOSITIONS,
    "a CRM's disposition of a call (cti POST /v1/calls/{call_id}/disposition); source is the API token's name",
)

DEAD_LETTERS = Table(
    "dead_letters",
    (
        ("event_id", "String"),
        ("occurred_at", TS),
        ("call_id", "String"),
        ("service", LC),
        ("source_topic", LC),
        ("source_partition", "Int32"),
        ("source_offset", "Int64"),
        ("reason", "String"),
        ("value_base64", "String"),
    ),
    ("source_topic", "event_id"),
    T.DEAD_LETTER,
    "messages a consumer could not decode or handle; call_id is the record key",
)


# ---------------------------------------------------------------- row mapping


def _ids(e: T.CallEvent) -> tuple:
    """The `_IDS` columns of a typed row."""
    return (e.call_id, e.event_id, occurred(e))


def _decision(e: T.TerminalEvent) -> tuple:
    """The `_DECISION` columns of a typed row."""
    return (ts(e, "call_started_at"), ts(e, "routing_started_at"), e.campaign_id, e.publisher_id)


def _caller(c: pb.Caller) -> tuple:
    return (c.state, c.zip, c.area_code)


def _calls_started(e: pb.CallStarted) -> tuple:
    return (*_ids(e), e.dialed_number, e.campaign_id, e.publisher_id, e.caller.number, *_caller(e.caller), e.caller.timezone)


def _pings(e: pb.PingRequested) -> tuple:
    return (
        *_ids(e),
        e.auction_id,
        e.campaign_id,
        e.publisher_id,
        e.tier_index,
        e.attempt,
        e.strategy,
        list(e.buyer_ids),
        ts(e, "deadline"),
        e.state,
        e.zip,
        e.area_code,
        dict(e.answers),
    )


def _bids(e: pb.BidReceived) -> tuple:
    return (
        *_ids(e),
        e.auction_id,
        e.buyer_id,
        enum_label(pb.BidOutcome, e.outcome),
        money(e.amount),
        e.reason,
        e.latency_ms,
        e.available,
    )


def _calls_routed(e: pb.CallRouted) -> tuple:
    return (
        _ids(e)
        + _decision(e)
        + (
            enum_label(pb.TargetKind, e.kind),
            e.buyer_id,
            e.agent_id,
            e.queue_id,
            e.destination,
            money(e.price),
            e.tier_index,
            e.attempt,
            e.strategy,
            latency_ms(e),
            e.caller.state,
            trace_json(e),
            e.billable_after_s,
        )
    )


def _calls_rejected(e: pb.CallRejected) -> tuple:
    return (
        _ids(e)
        + _decision(e)
        + (
            e.reason,
            e.detail,
            latency_ms(e),
            trace_json(e),
        )
    )


def _calls_ended(e: pb.CallEnded) -> tuple:
    return (*_ids(e), enum_label(pb.CallOutcome, e.outcome), e.connected_seconds, e.buyer_id, e.agent_id, e.attempt)


def _cti_events(e: pb.CtiEvent) -> tuple:
    return (
        *_ids(e),
        enum_label(pb.CtiEventType, e.type),
        e.campaign_id,
        e.publisher_id,
        enum_label(pb.TargetKind, e.kind),
        e.buyer_id,
        e.agent_id,
        e.destination,
        money(e.price),
        enum_label(pb.CallOutcome, e.outcome),
        e.connected_seconds,
        e.caller.state,
    )


def _agent_events(e: pb.AgentEvent) -> tuple:
    return (
        e.agent_id,
        e.event_id,
        occurred(e),
        enum_label(pb.AgentState, e.state),
        enum_label(pb.AgentState, e.previous_state),
        e.reason,
        e.call_id,
        e.disposition,
        e.note,
        list(e.queue_ids),
    )


def _call_dispositions(e: pb.CallDisposition) -> tuple:
    return (*_ids(e), e.disposition, e.note, dict(e.fields), e.source)


def dead_letter_row(e: pb.DeadLetter) -> tuple:
    """The `dead_letters` row of a dead letter."""
    return (
        e.event_id,
        occurred(e),
        e.key.decode("utf-8", "replace"),
        e.service,
        e.source_topic,
        e.source_partition,
        e.source_offset,
        e.reason,
        base64.b64encode(e.value).decode("ascii"),
    )


RowFn = Callable[[Any], tuple]

# The one table ↔ topic mapping. Topics missing here (ivr.completed,
# call.queued, and any topic added later) land in `events` only.
TYPED_TABLES: dict[str, tuple[Table, RowFn]] = {
    t.topic.name: (t, fn)
    for t, fn in (
        (CALLS_STARTED, _calls_started),
        (PINGS, _pings),
        (BIDS, _bids),
        (CALLS_ROUTED, _calls_routed),
        (CALLS_REJECTED, _calls_rejected),
        (CALLS_ENDED, _calls_ended),
        (CTI_EVENTS, _cti_events),
        (AGENT_EVENTS, _agent_events),
        (CALL_DISPOSITIONS, _call_dispositions),
        (DEAD_LETTERS, dead_letter_row),
    )
    if t.topic is not None  # each of these has its topic (only EVENTS has none)
}

ALL_TABLES: tuple[Table, ...] = (EVENTS, *(t for t, _ in TYPED_TABLES.values()))


@dataclass(frozen=True)
class View:
    """A plain (non-materialized) view over the tables: computed at query time, it holds no data, so
    every schema apply replaces it (CREATE OR REPLACE) and a changed definition reaches existing
    databases without a backfill."""

    name: str
    select: str  # the SELECT, with {db} for the quoted database name
    comment: str = ""

    def ddl(self, database: str = DEFAULT_DATABASE) -> str:
        db = quote_ident(database)
        comment = f"\nCOMMENT {sql_string(self.comment)}" if self.comment else ""
        return f"CREATE OR REPLACE VIEW {db}.{quote_ident(self.name)} AS\n{self.select.format(db=db)}{comment}"


# Every disposition of a call, an agent's (at wrap-up) and a CRM's (written back), in one shape, with the
# call's campaign and publisher from calls_started. FINAL on each table so a redelivered event counts once;
# a call with several dispositions (agent then CRM, or a CRM correcting itself) has one row each.
DISPOSITIONS_ALL = View(
    "dispositions_all",
    """SELECT d.call_id AS call_id, d.event_id AS event_id, d.occurred_at AS occurred_at, d.origin AS origin,
       d.disposition AS disposition, d.note AS note, d.agent_id AS agent_id, d.source AS source,
       s.campaign_id AS campaign_id, s.publisher_id AS publisher_id
FROM (
    SELECT call_id, event_id, occurred_at, 'agent' AS origin, disposition, note, agent_id, '' AS source
    FROM {db}.agent_events FINAL WHERE disposition != ''
    UNION ALL
    SELECT call_id, event_id, occurred_at, 'crm' AS origin, disposition, note, '' AS agent_id, source
    FROM {db}.call_dispositions FINAL
) AS d
LEFT JOIN (
    SELECT call_id, any(campaign_id) AS campaign_id, any(publisher_id) AS publisher_id
    FROM {db}.calls_started GROUP BY call_id
) AS s ON d.call_id = s.call_id""",
    "agent (agent_events leaving wrap-up) and CRM (call_dispositions) dispositions with the call's campaign",
)

ALL_VIEWS: tuple[View, ...] = (DISPOSITIONS_ALL,)


def event_call_id(event: Message, delivery: Delivery) -> str:
    """The call id of an event; a dead letter has none of its own: use the record key."""
    cid = getattr(event, "call_id", None)
    if cid is None and isinstance(event, pb.DeadLetter):
        return event.key.decode("utf-8", "replace")
    if cid is None:
        return (delivery.key or b"").decode("utf-8", "replace")
    return cid


def event_row(event: T.Event, delivery: Delivery) -> tuple:
    """The raw `events` row of any decoded event."""
    return (
        delivery.topic,
        event.event_id,
        event_call_id(event, delivery),
        occurred(event),
        delivery.partition,
        delivery.offset,
        codec.to_json(event),
    )


def typed_row(topic: str, event: T.Event) -> tuple[Table, tuple] | None:
    """The typed-table row of an event, or None when its topic has no typed table."""
    entry = TYPED_TABLES.get(topic)
    if entry is None:
        return None
    table, fn = entry
    return table, fn(event)


def ddl_statements(database: str = DEFAULT_DATABASE) -> list[str]:
    # Views after the tables they read: CREATE VIEW checks its SELECT against them.
    return (
        [f"CREATE DATABASE IF NOT EXISTS {quote_ident(database)}"]
        + [t.ddl(database) for t in ALL_TABLES]
        + [v.ddl(database) for v in ALL_VIEWS]
    )


def ensure_schema(client: Any, database: str = DEFAULT_DATABASE) -> None:
    """Create the database, every table and every view if missing (idempotent; blocking: call from a thread)."""
    for stmt in ddl_statements(database):
        client.command(stmt)


def insert_rows(client: Any, table: Table, rows: Sequence[tuple], database: str = DEFAULT_DATABASE) -> None:
    """Insert rows in column order (blocking). Types are passed so no DESCRIBE round trip is needed."""
    if rows:
        client.insert(
            table.name,
            list(rows),
            column_names=table.column_names,
            column_type_names=table.column_types,
            database=database,
        )
