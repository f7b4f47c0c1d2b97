"""Analytics tables: event → row mapping of every typed table, DDL sanity, DSN handling."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.analytics import tables as tb
from switchboard.analytics.client import database_of, default_dsn, redact, split_dsn
from switchboard.platform import codec
from switchboard.platform.topics import ALL_TOPICS, BY_NAME
from switchboard.services.analytics.settings import AnalyticsSettings
from switchboard.v1 import events_pb2 as pb


def _ts(iso: str) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime.fromisoformat(iso))
    return t


T0 = "2025-03-01T12:00:00.000+00:00"
T1 = "2025-03-01T12:00:00.250+00:00"
T2 = "2025-03-01T12:00:01.500+00:00"


def _dt(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(UTC)


def _row(table: tb.Table, event) -> dict:
    got = tb.typed_row(table.topic.name, event)
    assert got is not None
    t, values = got
    assert t is table
    assert len(values) == len(table.columns), "row must have one value per column"
    return dict(zip(table.column_names, values, strict=True))


def _trace() -> pb.DecisionTrace:
    return pb.DecisionTrace(
        entries=[
            pb.TraceEntry(
                target_id="acme",
                kind=pb.TARGET_KIND_BUYER,
                eligible=True,
                bid_outcome=pb.BID_OUTCOME_BID,
                bid_amount="40.00",
                winner=True,
            ),
            pb.TraceEntry(target_id="cheap", kind=pb.TARGET_KIND_BUYER, excluded_by="filter:states", detail="TX not in [CA]"),
        ],
        winning_tier=0,
        notes=["tier 0 price"],
    )


def test_calls_started_row():
    ev = pb.CallStarted(
        event_id="e1",
        call_id="c1",
        occurred_at=_ts(T0),
        dialed_number="+18885550123",
        campaign_id="solar",
        publisher_id="pub",
        caller=pb.Caller(number="+13105550199", state="CA", zip="90001", area_code="310", timezone="America/Los_Angeles"),
    )
    r = _row(tb.CALLS_STARTED, ev)
    assert r == {
        "call_id": "c1",
        "event_id": "e1",
        "occurred_at": _dt(T0),
        "dialed_number": "+18885550123",
        "campaign_id": "solar",
        "publisher_id": "pub",
        "caller_number": "+13105550199",
        "caller_state": "CA",
        "caller_zip": "90001",
        "caller_area_code": "310",
        "caller_timezone": "America/Los_Angeles",
    }


def test_pings_row():
    ev = pb.PingRequested(
        event_id="e2",
        call_id="c1",
        occurred_at=_ts(T0),
        auction_id="a1",
        campaign_id="solar",
        publisher_id="pub",
        tier_index=1,
        attempt=2,
        strategy="price",
        buyer_ids=["b1", "b2"],
        deadline=_ts(T2),
        state="CA",
        zip="90001",
        area_code="310",
        answers={"homeowner": "yes"},
    )
    r = _row(tb.PINGS, ev)
    assert r["buyer_ids"] == ["b1", "b2"] and r["answers"] == {"homeowner": "yes"}
    assert r["deadline"] == _dt(T2) and r["tier_index"] == 1 and r["attempt"] == 2 and r["strategy"] == "price"
    assert _row(tb.PINGS, pb.PingRequested(event_id="e", call_id="c"))["deadline"] is None


@pytest.mark.parametrize(
    ("outcome", "amount", "label", "expected"),
    [
        (pb.BID_OUTCOME_BID, "37.5", "bid", Decimal("37.50")),
        (pb.BID_OUTCOME_DECLINE, "", "decline", None),
        (pb.BID_OUTCOME_NO_BID, "garbage", "no_bid", None),
        (7, "1e40", "7", None),  # unknown enum number from a newer producer; out-of-range money
    ],
)
def test_bids_row(outcome, amount, label, expected):
    ev = pb.BidReceived(
        event_id="e3",
        call_id="c1",
        occurred_at=_ts(T1),
        auction_id="a1",
        buyer_id="acme",
        outcome=outcome,
        amount=amount,
        reason="timeout",
        available=True,
        latency_ms=42,
    )
    r = _row(tb.BIDS, ev)
    assert r["outcome"] == label and r["amount"] == expected
    assert (r["auction_id"], r["buyer_id"], r["reason"], r["latency_ms"], r["available"]) == ("a1", "acme", "timeout", 42, True)


def test_calls_routed_row_with_latency_and_trace():
    ev = pb.CallRouted(
        event_id="e4",
        call_id="c1",
        occurred_at=_ts(T2),
        call_started_at=_ts(T0),
        routing_started_at=_ts(T1),
        campaign_id="solar",
        publisher_id="pub",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="acme",
        destination="+18005550100",
        price="40.005",
        tier_index=0,
        attempt=1,
        strategy="price",
        trace=_trace(),
        caller=pb.Caller(state="CA"),
    )
    r = _row(tb.CALLS_ROUTED, ev)
    assert r["kind"] == "buyer" and r["buyer_id"] == "acme" and r["agent_id"] == ""
    assert r["price"] == Decimal("40.01")  # rounded half-up to cents
    assert r["decision_latency_ms"] == 1250
    assert r["call_started_at"] == _dt(T0) and r["routing_started_at"] == _dt(T1) and r["occurred_at"] == _dt(T2)
    assert r["caller_state"] == "CA" and r["strategy"] == "price"
    trace = json.loads(r["trace"])
    assert trace["entries"][1]["excluded_by"] == "filter:states" and trace["notes"] == ["tier 0 price"]


def test_calls_routed_to_agent_without_routing_start():
    ev = pb.CallRouted(
        event_id="e5", call_id="c2", occurred_at=_ts(T2), kind=pb.TARGET_KIND_AGENT, agent_id="ann", queue_id="q", price="0"
    )
    r = _row(tb.CALLS_ROUTED, ev)
    assert r["kind"] == "agent" and r["agent_id"] == "ann" and r["queue_id"] == "q"
    assert r["price"] == Decimal("0.00")
    assert r["decision_latency_ms"] is None and r["routing_started_at"] is None
    assert r["trace"] == "{}"


def test_calls_rejected_row():
    ev = pb.CallRejected(
        event_id="e6",
        call_id="c3",
        occurred_at=_ts(T2),
        routing_started_at=_ts(T0),
        campaign_id="solar",
        publisher_id="pub",
        reason="no_bid",
        detail="all buyers declined",
        trace=_trace(),
    )
    r = _row(tb.CALLS_REJECTED, ev)
    assert (r["reason"], r["detail"], r["decision_latency_ms"]) == ("no_bid", "all buyers declined", 1500)
    assert r["call_started_at"] is None
    assert [e["target_id"] for e in json.loads(r["trace"])["entries"]] == ["acme", "cheap"]


def test_calls_ended_row():
    ev = pb.CallEnded(
        event_id="e7",
        call_id="c1",
        occurred_at=_ts(T2),
        outcome=pb.CALL_OUTCOME_CALLER_HANGUP,
        connected_seconds=95,
        buyer_id="acme",
    )
    r = _row(tb.CALLS_ENDED, ev)
    assert r == {
        "call_id": "c1",
        "event_id": "e7",
        "occurred_at": _dt(T2),
        "outcome": "caller_hangup",
        "connected_seconds": 95,
        "buyer_id": "acme",
        "agent_id": "",
        "attempt": 0,
    }


def test_cti_events_row():
    ev = pb.CtiEvent(
        event_id="e8",
        call_id="c1",
        occurred_at=_ts(T2),
        type=pb.CTI_EVENT_TYPE_CALL_ROUTED,
        campaign_id="solar",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id="acme",
        destination="+18005550100",
        price="40.00",
        caller=pb.Caller(state="AZ"),
    )
    r = _row(tb.CTI_EVENTS, ev)
    assert (r["type"], r["kind"], r["price"], r["outcome"], r["caller_state"]) == (
        "call_routed",
        "buyer",
        Decimal("40.00"),
        "unspecified",
        "AZ",
    )


def test_dead_letters_row_keeps_the_raw_value():
    ev = pb.DeadLetter(
        event_id="e9",
        occurred_at=_ts(T0),
        service="router",
        source_topic="call.started",
        source_partition=3,
        source_offset=17,
        key=b"c9",
        value=b"\xff\x00junk",
        reason="undecodable: boom",
    )
    r = _row(tb.DEAD_LETTERS, ev)
    assert r["call_id"] == "c9" and r["service"] == "router" and r["source_topic"] == "call.started"
    assert (r["source_partition"], r["source_offset"], r["reason"]) == (3, 17, "undecodable: boom")
    assert base64.b64decode(r["value_base64"]) == b"\xff\x00junk"


def test_event_row_for_every_topic():
    for topic in ALL_TOPICS:
        ev = topic.message(event_id=f"id-{topic.name}", occurred_at=_ts(T0))
        if "call_id" in topic.message.DESCRIPTOR.fields_by_name:
            ev.call_id = "c1"
        else:
            ev.key = b"c1"  # the dead letter: call id comes from the record key
        row = dict(zip(tb.EVENTS.column_names, tb.event_row(ev, tb.Delivery(topic.name, 2, 99, b"c1")), strict=True))
        assert row["topic"] == topic.name and row["event_id"] == f"id-{topic.name}" and row["call_id"] == "c1"
        assert (row["partition"], row["offset"], row["occurred_at"]) == (2, 99, _dt(T0))
        assert json.loads(row["payload"])["event_id"] == f"id-{topic.name}"
        assert codec.to_json(ev) == row["payload"]


def test_missing_occurred_at_maps_to_epoch():
    assert tb.event_row(pb.CallEnded(event_id="e", call_id="c"), tb.Delivery("call.ended", 0, 0))[3] == tb.EPOCH


def test_table_topic_mapping_is_driven_by_platform_topics():
    for name, (table, _fn) in tb.TYPED_TABLES.items():
        assert BY_NAME[name] is table.topic, name
    names = [t.name for t in tb.ALL_TABLES]
    assert len(names) == len(set(names))
    assert {
        "events",
        "calls_routed",
        "calls_rejected",
        "calls_started",
        "bids",
        "pings",
        "calls_ended",
        "cti_events",
        "agent_events",
        "call_dispositions",
        "dead_letters",
    } == set(names)
    # every mapped topic's message type is the one the topic carries
    for name, (table, fn) in tb.TYPED_TABLES.items():
        assert len(fn(BY_NAME[name].message())) == len(table.columns)


@pytest.mark.parametrize("table", tb.ALL_TABLES, ids=lambda t: t.name)
def test_ddl_sanity(table: tb.Table):
    ddl = table.ddl("analytics_db")
    assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS `analytics_db`.`{table.name}` (")
    assert "ENGINE = ReplacingMergeTree" in ddl
    assert table.order_by[-1] == "event_id", "dedupe key must end with the event id (at-least-once)"
    assert set(table.order_by) <= set(table.column_names)
    assert "occurred_at" in table.column_names  # the partition key
    for col, typ in table.columns:
        assert f"`{col}` {typ}" in ddl
    assert ddl.count("(") == ddl.count(")")
    assert "DateTime64(3, 'UTC')" in ddl


def test_ddl_statements_create_database_first():
    stmts = tb.ddl_statements("x")
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS `x`"
    assert len(stmts) == 1 + len(tb.ALL_TABLES) + len(tb.ALL_VIEWS)
    # tables are kept (IF NOT EXISTS); views hold no data and are replaced, so a changed one applies;
    # a view reads its tables, so every view comes after every table
    kinds = [" ".join(s.split()[:4]) for s in stmts[1:]]
    assert kinds == ["CREATE TABLE IF NOT"] * len(tb.ALL_TABLES) + ["CREATE OR REPLACE VIEW"] * len(tb.ALL_VIEWS)


def test_events_table_dedupes_on_topic_and_event_id():
    assert tb.EVENTS.order_by == ("topic", "event_id")


def test_dsn_parsing_and_defaults(tmp_path, monkeypatch):
    assert split_dsn("chdb:///data/ch") == ("chdb:///data/ch", None)
    assert split_dsn("chdb:///data/ch?database=sb2") == ("chdb:///data/ch", "sb2")
    assert split_dsn("chdb://memory/sb3") == ("chdb://memory", "sb3")
    assert split_dsn("http://u:p@127.0.0.1:8123/reports") == ("http://u:p@127.0.0.1:8123", "reports")
    assert database_of("https://127.0.0.1:8443") == "switchboard"
    assert database_of("chdb:///x", "explicit") == "explicit"
    assert redact("http://u:secret@127.0.0.1:8123/db") == "http://u:***@127.0.0.1:8123/db"
    with pytest.raises(ValueError, match="unsupported analytics DSN"):
        split_dsn("postgres://127.0.0.1/x")
    monkeypatch.chdir(tmp_path)
    assert default_dsn() == f"chdb://{tmp_path.resolve()}/var/chdb"
    monkeypatch.delenv("SWITCHBOARD_ANALYTICS_DSN", raising=False)
    assert AnalyticsSettings().dsn == f"chdb://{tmp_path.resolve()}/var/chdb"
    monkeypatch.setenv("SWITCHBOARD_ANALYTICS_DSN", "chdb:///elsewhere")
    monkeypatch.setenv("SWITCHBOARD_ANALYTICS_BATCH_ROWS", "7")
    s = AnalyticsSettings()
    assert (s.dsn, s.batch_rows, s.group_id, s.flush_interval_ms) == ("chdb:///elsewhere", 7, "analytics", 200)


def test_out_of_range_timestamps_never_reach_clickhouse():
    far = Timestamp(seconds=253402300000 - 1)  # year 9999: valid protobuf, beyond DateTime64
    ev = pb.CallRouted(event_id="e", call_id="c", occurred_at=far, routing_started_at=far, price="1")
    r = _row(tb.CALLS_ROUTED, ev)
    assert r["occurred_at"] == tb.EPOCH and r["routing_started_at"] is None


def test_agent_events_keep_the_disposition_an_agent_entered_at_wrap_up():
    ev = pb.AgentEvent(
        event_id="a1",
        agent_id="ana",
        state=pb.AGENT_STATE_READY,
        previous_state=pb.AGENT_STATE_WRAP_UP,
        call_id="c9",
        disposition="sale",
        note="annual plan",
        queue_ids=["sales"],
    )
    table, row = tb.typed_row("agent.events", ev)
    assert table.name == "agent_events"
    got = dict(zip(table.column_names, row, strict=True))
    assert (got["agent_id"], got["state"], got["previous_state"], got["call_id"], got["disposition"], got["note"]) == (
        "ana",
        "ready",
        "wrap_up",
        "c9",
        "sale",
        "annual plan",
    )
    assert got["queue_ids"] == ["sales"]


def test_call_dispositions_row_keeps_the_crm_code_note_fields_and_source():
    ev = pb.CallDisposition(
        event_id="d1",
        call_id="c9",
        occurred_at=_ts(T1),
        disposition="sale",
        note="signed on the call",
        fields={"policy": "P-123", "plan": "gold"},
        source="acme-crm",
    )
    r = _row(tb.CALL_DISPOSITIONS, ev)
    assert r == {
        "call_id": "c9",
        "event_id": "d1",
        "occurred_at": _dt(T1),
        "disposition": "sale",
        "note": "signed on the call",
        "fields": {"policy": "P-123", "plan": "gold"},
        "source": "acme-crm",
    }
    assert tb.CALL_DISPOSITIONS.order_by == ("call_id", "event_id"), "a redelivered disposition collapses"
    assert tb.TYPED_TABLES["call.dispositions"][0] is tb.CALL_DISPOSITIONS


def test_call_dispositions_row_of_an_empty_event():
    r = _row(tb.CALL_DISPOSITIONS, pb.CallDisposition())
    assert (r["occurred_at"], r["disposition"], r["fields"], r["source"]) == (tb.EPOCH, "", {}, "")


def test_dispositions_all_view_ddl_names_its_database_and_both_origins():
    ddl = tb.DISPOSITIONS_ALL.ddl("analytics_db")
    assert ddl.startswith("CREATE OR REPLACE VIEW `analytics_db`.`dispositions_all` AS")
    for table in ("agent_events", "call_dispositions", "calls_started"):
        assert f"`analytics_db`.{table}" in ddl
    assert "{db}" not in ddl and "`switchboard`" not in ddl
    assert ddl.count("(") == ddl.count(")")
