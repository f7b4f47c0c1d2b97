"""Schema + row mapping + report queries against real embedded chDB.

chDB hosts one engine per process and one process per data path: a pytest
process that opened path A cannot open path B while A's client is open (it can
after closing it). So that no test here depends on what another test left open
in the pytest process, every chDB access runs in a child process
(`python -c`), which also releases the path when it exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WRITE_AND_REPORT = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timedelta, timezone
    from google.protobuf.timestamp_pb2 import Timestamp
    from switchboard.analytics import tables as tb
    from switchboard.analytics.reports import open_client, summary
    from switchboard.v1 import events_pb2 as pb

    def ts(ms):
        t = Timestamp(); t.FromMilliseconds(1_740_830_400_000 + ms); return t

    dsn, phase = sys.argv[1], sys.argv[2]
    client = open_client(dsn)
    try:
        tb.ensure_schema(client, client.database)
        events = []
        if phase == "write":
            for i in range(4):
                events.append(("call.started", pb.CallStarted(event_id=f"s{i}", call_id=f"c{i}", occurred_at=ts(0), campaign_id="solar")))
            events.append(("call.routed", pb.CallRouted(event_id="r0", call_id="c0", occurred_at=ts(100), routing_started_at=ts(0),
                kind=pb.TARGET_KIND_BUYER, buyer_id="acme", price="40.00", attempt=1, billable_after_s=90)))
            events.append(("call.routed", pb.CallRouted(event_id="r1", call_id="c1", occurred_at=ts(300), routing_started_at=ts(0),
                kind=pb.TARGET_KIND_BUYER, buyer_id="acme", price="35.50", attempt=1, billable_after_s=90)))
            events.append(("call.routed", pb.CallRouted(event_id="r2", call_id="c2", occurred_at=ts(200), routing_started_at=ts(0),
                kind=pb.TARGET_KIND_AGENT, agent_id="ann", price="0")))
            events.append(("call.rejected", pb.CallRejected(event_id="x3", call_id="c3", occurred_at=ts(50), routing_started_at=ts(0), reason="no_bid")))
            events.append(("ping.requested", pb.PingRequested(event_id="p0", call_id="c0", occurred_at=ts(10), buyer_ids=["acme"], answers={"a": "b"})))
            events.append(("bid.received", pb.BidReceived(event_id="b0", call_id="c0", occurred_at=ts(20), buyer_id="acme",
                outcome=pb.BID_OUTCOME_BID, amount="40.00", available=True)))
            events.append(("call.ended", pb.CallEnded(event_id="n0", call_id="c0", occurred_at=ts(9000), outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=95, attempt=1)))
            # c1's caller leaves after 30 s: an offer taken, not a sale (billable after 90 s)
            events.append(("call.ended", pb.CallEnded(event_id="n1", call_id="c1", occurred_at=ts(9000), outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=30, attempt=1)))
            events.append(("cti.events", pb.CtiEvent(event_id="t0", call_id="c0", occurred_at=ts(110), price="40.00")))
            events.append(("deadletter", pb.DeadLetter(event_id="d0", occurred_at=ts(5), key=b"c9", value=b"\\xff", reason="undecodable")))
            events.append(("ivr.completed", pb.IvrCompleted(event_id="i0", call_id="c0", occurred_at=ts(1))))
            events = events + events[:5]  # redelivery of some events: same rows again, in a second insert
        rows = {}
        for n, (topic, ev) in enumerate(events):
            d = tb.Delivery(topic, 0, n)
            rows.setdefault(tb.EVENTS, []).append(tb.event_row(ev, d))
            typed = tb.typed_row(topic, ev)
            if typed:
                rows.setdefault(typed[0], []).append(typed[1])
        for table, table_rows in rows.items():
            half = len(table_rows) // 2
            tb.insert_rows(client, table, table_rows[:half], client.database)
            tb.insert_rows(client, table, table_rows[half:], client.database)
        out = {"summary": summary(client)}
        out["raw_events"] = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
        out["routed_final"] = client.query("SELECT count() FROM calls_routed FINAL").result_rows[0][0]
        out["ping"] = [list(r) for r in client.query("SELECT buyer_ids, answers['a'] FROM pings").result_rows]
        out["since_totals"] = summary(client, since=datetime.fromtimestamp(1_740_830_400.2, timezone.utc))["totals"]
        out["database"] = client.database
        print(json.dumps(out, default=str))
    finally:
        client.close()
    """
)


def _run(dsn: str, phase: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", WRITE_AND_REPORT, dsn, phase], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_schema_rows_and_reports_on_chdb(tmp_path: Path):
    dsn = f"chdb://{tmp_path / 'ch'}?database=reports_db"
    out = _run(dsn, "write")
    s = out["summary"]
    assert out["database"] == "reports_db"
    assert s["totals"] == {"started": 4, "routed": 3, "rejected": 1, "undecided": 0}
    assert s["rejected_by_reason"] == [{"reason": "no_bid", "calls": 1}]
    assert [(r["buyer_id"], r["offered"], r["sales"], Decimal(r["revenue"])) for r in s["revenue_by_buyer"]] == [
        ("acme", 2, 1, Decimal("40.00"))
    ]
    lat = s["decision_latency"]
    assert lat["decisions"] == 3 and lat["max_ms"] == 300  # the agent hand-off (c2) is queue wait, not a decision
    assert 50 <= lat["p50_ms"] <= 300 and lat["p99_ms"] <= 300
    per_topic = {r["topic"]: r["events"] for r in s["events_per_topic"]}
    assert per_topic == {
        "call.started": 4,
        "call.routed": 3,
        "call.rejected": 1,
        "ping.requested": 1,
        "bid.received": 1,
        "call.ended": 2,
        "cti.events": 1,
        "deadletter": 1,
        "ivr.completed": 1,
    }
    assert out["raw_events"] == 15 and out["routed_final"] == 3  # redelivered rows collapse under FINAL
    assert out["ping"] == [[["acme"], "b"]]
    # since: only events at or after t0+200 ms: c1 routed at +300, c2 at +200; nothing started after it
    assert out["since_totals"] == {"started": 0, "routed": 2, "rejected": 0, "undecided": 0}

    # Re-open the same path: the schema is created idempotently and the data is still there.
    again = _run(dsn, "read")
    assert again["summary"]["totals"] == s["totals"]
    assert again["raw_events"] == 15
