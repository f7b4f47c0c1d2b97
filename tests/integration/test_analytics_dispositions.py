"""CRM dispositions in ClickHouse: call.dispositions → the typed `call_dispositions` table through the
real sink (real broker in, embedded chDB out), the `dispositions_all` view that puts them beside the
agents' dispositions, and `migrate` adding both to a database made before they existed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from switchboard.analytics import tables
from switchboard.platform import codec
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import AGENT_EVENTS, CALL_DISPOSITIONS, CALL_STARTED
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_analytics_sink import chdb_query, sink_process, wait_committed
from tests.support import publish_raw

pytestmark = pytest.mark.integration

REPORT = textwrap.dedent(
    """
    import json, sys
    from switchboard.analytics.reports import dispositions, open_client
    client = open_client(sys.argv[1])
    try:
        print(json.dumps([r for r in dispositions(client) if r["campaign_id"].startswith(sys.argv[2])]))
    finally:
        client.close()
    """
)


def dispositions_report(dsn: str, campaign_prefix: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", REPORT, dsn, campaign_prefix], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_crm_dispositions_land_typed_once_and_report_with_the_agents(kafka: KafkaSettings, tmp_path: Path):
    run = codec.new_id()[:12]
    dsn = f"chdb://{tmp_path / 'ch'}"
    group = f"analytics-test-{run}"
    campaign = f"{run}-solar"
    c1, c2, c3 = (f"{run}-c{i}" for i in (1, 2, 3))

    def started(cid: str) -> tuple[str, bytes, bytes]:
        ev = pb.CallStarted(event_id=codec.new_id(), call_id=cid, occurred_at=codec.now_ts(), campaign_id=campaign)
        return (CALL_STARTED.name, cid.encode(), codec.encode(ev))

    def crm(cid: str, code: str, **kw: object) -> tuple[str, bytes, bytes]:
        ev = pb.CallDisposition(event_id=codec.new_id(), call_id=cid, occurred_at=codec.now_ts(), disposition=code, **kw)
        return (CALL_DISPOSITIONS.name, cid.encode(), codec.encode(ev))

    # Ann's wrap-up of c1 (agent.events is keyed by agent) and a state change without a disposition.
    wrap = pb.AgentEvent(
        event_id=codec.new_id(),
        occurred_at=codec.now_ts(),
        agent_id=f"{run}-ann",
        call_id=c1,
        state=pb.AGENT_STATE_READY,
        previous_state=pb.AGENT_STATE_WRAP_UP,
        disposition="sale",
        note="agent note",
    )
    ready = pb.AgentEvent(event_id=codec.new_id(), occurred_at=codec.now_ts(), agent_id=f"{run}-ann", state=pb.AGENT_STATE_READY)
    sale = crm(c1, "sale", note="signed", fields={"policy": "P-1", "plan": "gold"}, source="acme-crm")
    items = [
        started(c1),
        started(c2),
        (AGENT_EVENTS.name, wrap.agent_id.encode(), codec.encode(wrap)),
        (AGENT_EVENTS.name, ready.agent_id.encode(), codec.encode(ready)),
        sale,
        sale,  # at-least-once: cti's write-back delivered twice is one disposition
        crm(c2, "no_sale", source="acme-crm"),
        crm(c3, "callback", source="acme-crm"),  # a call the sink saw no start of: no campaign
    ]
    sink = sink_process(kafka, dsn, group, tmp_path, tmp_path / "sink.log")
    try:
        sink.wait_ready()
        asyncio.run(wait_committed(kafka, group, asyncio.run(publish_raw(kafka, items))))
        assert sink.stop() == 0, sink.logs()
    finally:
        sink.kill()

    ids = "('" + "', '".join((c1, c2, c3)) + "')"
    res = chdb_query(
        dsn,
        f"SELECT call_id, disposition, note, fields['policy'], fields['plan'], source FROM call_dispositions FINAL "
        f"WHERE call_id IN {ids} ORDER BY call_id",
        f"SELECT count() FROM call_dispositions WHERE call_id = '{c1}'",  # no FINAL: the duplicate may not be merged yet
        f"SELECT call_id, origin, disposition, note, agent_id, source, campaign_id FROM dispositions_all "
        f"WHERE call_id IN {ids} ORDER BY call_id, origin",
    )
    assert res[0] == [
        [c1, "sale", "signed", "P-1", "gold", "acme-crm"],
        [c2, "no_sale", "", "", "", "acme-crm"],
        [c3, "callback", "", "", "", "acme-crm"],
    ]
    assert res[1][0][0] in (1, 2)
    assert res[2] == [
        [c1, "agent", "sale", "agent note", f"{run}-ann", "", campaign],
        [c1, "crm", "sale", "signed", "", "acme-crm", campaign],
        [c2, "crm", "no_sale", "", "", "acme-crm", campaign],
        [c3, "crm", "callback", "", "", "acme-crm", ""],
    ]
    # c1: the agent and the CRM both said "sale": one call, counted in each origin once.
    assert dispositions_report(dsn, campaign) == [
        {"campaign_id": campaign, "disposition": "no_sale", "calls": 1, "agent": 0, "crm": 1},
        {"campaign_id": campaign, "disposition": "sale", "calls": 1, "agent": 1, "crm": 1},
    ]


OLD_SCHEMA = textwrap.dedent(
    """
    import sys
    from switchboard.analytics import tables
    from switchboard.analytics.client import open_client
    client = open_client(sys.argv[1])
    try:
        # The schema before call_dispositions and the views: every other table, with a row in one.
        client.command(f"CREATE DATABASE IF NOT EXISTS {client.database}")
        for t in tables.ALL_TABLES:
            if t is not tables.CALL_DISPOSITIONS:
                client.command(t.ddl(client.database))
        # and a view of that name from an older definition: migrate replaces it
        client.command(f"CREATE VIEW {client.database}.dispositions_all AS SELECT 1 AS stale")
        client.command("INSERT INTO calls_started (call_id, event_id, occurred_at, campaign_id) VALUES ('old-1', 'e1', now64(3), 'solar')")
    finally:
        client.close()
    """
)


def test_migrate_adds_the_dispositions_table_and_view_to_an_older_database(tmp_path: Path):
    dsn = f"chdb://{tmp_path / 'ch'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")} | {"SWITCHBOARD_ANALYTICS_DSN": dsn}
    old = subprocess.run([sys.executable, "-c", OLD_SCHEMA, dsn], capture_output=True, text=True, timeout=120, env=env)
    assert old.returncode == 0, old.stderr[-3000:]
    assert ["call_dispositions"] not in chdb_query(dsn, "SHOW TABLES FROM switchboard")[0]

    out = subprocess.run(
        [sys.executable, "-m", "switchboard.services.analytics.migrate"], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr + out.stdout

    res = chdb_query(
        dsn,
        "SHOW TABLES FROM switchboard",
        "SELECT call_id, campaign_id FROM calls_started",
        "SELECT count() FROM dispositions_all",
        "SELECT name FROM system.columns WHERE database = 'switchboard' AND table = 'dispositions_all' ORDER BY position",
    )
    names = {r[0] for r in res[0]}
    assert names == {t.name for t in tables.ALL_TABLES} | {v.name for v in tables.ALL_VIEWS}
    assert res[1] == [["old-1", "solar"]], "the existing data is kept"
    assert res[2] == [[0]]
    assert [r[0] for r in res[3]] == [
        "call_id",
        "event_id",
        "occurred_at",
        "origin",
        "disposition",
        "note",
        "agent_id",
        "source",
        "campaign_id",
        "publisher_id",
    ], "the stale view was replaced"
